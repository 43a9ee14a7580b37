"""Concurrent deliveries of one attempt run the task once (SPEC §4 step 2), in real processes.

Two worker processes (``tests/django/concurrency_worker.py``) deliver the same
(message, invocation id) at the same moment, round after round, on SQLite and
on PostgreSQL. The task appends a line to a file per real run, so the file
counts runs independently of the records.

Databases: the backend of the current leg (``LAMBDA_TASKS_TEST_DB``) is the
Django test database, shared with the workers through the inherited
environment. The other backend runs too, on a database of its own (a fresh
SQLite file, or a fresh database on the ``postgres_server`` fixture) that the
test migrates in a child process first; so both backends are covered by
every run of this file.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from lambda_tasks_core import TaskMessage, new_invocation_id, record_id
from tests.testapp.tasks import append_line

REPO_ROOT = Path(__file__).resolve().parents[2]
PG_ENV = ("LAMBDA_TASKS_TEST_PG_PORT", "LAMBDA_TASKS_TEST_PG_NAME")
ROUNDS = 10  # fresh deliveries
STALE_ROUNDS = 4  # deliveries racing to take over a RUNNING record left by a dead one


def child_env(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Environment for worker processes that open a ``backend`` database with our tables."""
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings")
    current = "postgres" if connection.vendor == "postgresql" else "sqlite"
    if backend == current:
        return env  # the Django test database, which the settings find from the environment
    if backend == "postgres":
        dsn: str = request.getfixturevalue("postgres_dsn")
        server = request.getfixturevalue("postgres_server")
        env["LAMBDA_TASKS_TEST_PG_PORT"] = str(server.port)
        env["LAMBDA_TASKS_TEST_PG_NAME"] = dsn.rsplit("/", 1)[1]
    else:
        for name in PG_ENV:
            env.pop(name, None)
        env["LAMBDA_TASKS_TEST_SQLITE"] = str(tmp_path / "race.sqlite3")
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    return env


def run_workers(env: dict[str, str], workdir: Path) -> list[dict[str, Any]]:
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.django.concurrency_worker", str(workdir), str(index)],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in (0, 1)
    ]
    reports = []
    for worker in workers:
        try:
            out, err = worker.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            for other in workers:
                other.kill()
                other.communicate()
            raise
        assert worker.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_simultaneous_deliveries_run_each_attempt_once(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    env = child_env(backend, request, tmp_path)
    workdir = tmp_path / "race"
    workdir.mkdir()
    runs_file = tmp_path / "runs.txt"
    runs_file.touch()

    rounds: list[dict[str, Any]] = []
    for number in range(ROUNDS + STALE_ROUNDS):
        stale = number >= ROUNDS
        # Alternate a task that is still running when the twin arrives (TaskInProgress)
        # with one that may already be finished (duplicate).
        pause = 0.2 if number % 2 else 0.0
        message = TaskMessage(
            task_name=append_line.name,
            kwargs={"path": str(runs_file), "line": str(number), "pause": pause},
        )
        rounds.append(
            {"invocation_id": new_invocation_id(), "body": message.to_json(), "stale": stale}
        )
    (workdir / "rounds.json").write_text(json.dumps(rounds))

    reports = run_workers(env, workdir)

    runs = collections.Counter(runs_file.read_text().split())
    assert runs == collections.Counter(str(n) for n in range(len(rounds))), "not once per round"

    records = {r["id"]: r for r in reports[0]["records"]}
    assert len(records) == len(rounds)
    by_round = [
        {report["pid"]: report["results"][number] for report in reports}
        for number in range(len(rounds))
    ]
    kinds: collections.Counter[str] = collections.Counter()
    for number, (round_, results) in enumerate(zip(rounds, by_round, strict=True)):
        outcomes = sorted(r["result"] for r in results.values())
        assert outcomes[1] == "ran", (number, results)
        assert outcomes[0] in ("duplicate", "in_progress"), (number, results)
        kinds[outcomes[0]] += 1
        [runner] = [pid for pid, r in results.items() if r["result"] == "ran"]
        assert results[runner]["status"] == "SUCCEEDED"
        record = records[str(record_id(round_["invocation_id"], 0))]
        assert record["status"] == "SUCCEEDED"
        assert record["result"] == runner  # the task returns the pid that ran it
        if round_["stale"]:
            assert "was lost" in (record["traceback"] or ""), record
        else:
            assert record["traceback"] is None
    # The slow rounds were still running when the twin arrived.
    assert kinds["in_progress"] >= 1, kinds
