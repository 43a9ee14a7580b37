"""The benchmark scripts of bench/ start and run with tiny counts (not the benchmark itself).

No reference install, no wheel build: our side runs from the workspace venv
(``--ours-env workspace --no-reference``), a few seconds in all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "LAMBDA_TASKS_", "BENCH_"))
    }
    env.update(PYTHONPATH=str(REPO), **extra)
    return env


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    "module", ["bench", "bench.probe", "bench.coldstart", "bench.fuzz_handler"]
)
def test_script_prints_its_help(module: str) -> None:
    completed = _run("-m", module, "--help")

    assert completed.returncode == 0, completed.stderr
    assert "usage" in completed.stdout.lower() or "python -m" in completed.stdout


def test_coldstart_probe_reports_its_timings(tmp_path: Path) -> None:
    env = _env(
        DJANGO_SETTINGS_MODULE="bench.projects.ours.settings",
        BENCH_DATABASE=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    completed = _run("-m", "bench.coldstart", "ours", env=env)

    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["side"] == "ours"
    assert 0 < result["import_s"] < result["total_s"]
    assert result["boto3_imported"] is False  # the cold start of an empty batch needs no boto3


def test_quick_run_of_our_side_prints_the_table(tmp_path: Path) -> None:
    completed = _run(
        "-m",
        "bench",
        "--quick",
        "--no-reference",
        "--ours-env",
        "workspace",
        "--only",
        "throughput-sqlite,oncommit",
        "--json",
        str(tmp_path / "results.json"),
    )

    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "| handler throughput, SQLite" in completed.stdout
    assert "SendMessageBatch" in completed.stdout
    results = json.loads((tmp_path / "results.json").read_text())
    throughput = results["raw"]["throughput-SQLite"]["ours"][0]
    # The timed messages and the extra event in which statements are counted.
    expected = throughput["messages"] + throughput["counted_messages"]
    assert throughput["statuses"] == {"SUCCEEDED": expected}
    assert throughput["queries_per_message"] == 2
    assert "the SPEC §4 skeleton" in completed.stdout


def test_local_mode_probe_runs_a_few_tasks(tmp_path: Path) -> None:
    env = _env(
        DJANGO_SETTINGS_MODULE="bench.projects.ours.settings",
        BENCH_DATABASE=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        BENCH_LOCAL_WORKERS="2",
    )
    migrated = _run("-m", "bench.probe", "migrate", "--side", "ours", env=env)
    assert migrated.returncode == 0, migrated.stderr

    completed = _run("-m", "bench.probe", "local-burst", "--side", "ours", "--tasks", "5", env=env)

    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["statuses"] == {"SUCCEEDED": 5, "FAILED": 0}
    assert result["submit_p50_s"] < result["wall_s"]
