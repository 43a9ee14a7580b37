"""The local runner inside real server processes: orphans, runserver, Ctrl+C, SIGTERM."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lambda_tasks_django.models import TaskRecord
from tests.local.conftest import WORKER_START, alive, descendants, wait_finished, wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc"),
]

REPO = Path(__file__).resolve().parents[2]
SERVER_SETTINGS = "tests.local.server_settings"
#: What must never appear on a server's stderr when it is stopped.
BAD_OUTPUT = re.compile(r"traceback|warning|error|leaked|resource_tracker|exception", re.I)


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"DJANGO_SETTINGS_MODULE": SERVER_SETTINGS, "PYTHONUNBUFFERED": "1", **extra})
    return env


def _stop(process: subprocess.Popen[Any]) -> None:
    """Kill a test's process group if the test left it running."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


@contextlib.contextmanager
def _sigint_as_in_a_terminal() -> Iterator[None]:
    """Children started inside get SIGINT's default action, whatever the test run's.

    A test run started in the background by a shell without job control ignores
    SIGINT, and an ignored signal stays ignored across exec: the server would
    never see the Ctrl+C these tests send it.
    """
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # handlers reset on exec, SIG_IGN does not
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _read_line(process: subprocess.Popen[bytes], timeout: float, stderr: Path) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, f"no output within {timeout} s; stderr:\n{stderr.read_text()}"
    return process.stdout.readline().decode()


@pytest.fixture
def parent_process(tmp_path: Path) -> Iterator[Any]:
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str, **env: str) -> subprocess.Popen[bytes]:
        with (tmp_path / "stderr.txt").open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.local.parent_process", *args],
                cwd=REPO,
                env=_env(**env),
                stdout=subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,
            )
        started.append(process)
        return process

    yield start
    for process in started:
        _stop(process)
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("--stuck",), {}),
        ((), {"_LAMBDA_TASKS_LOCAL_PDEATHSIG": "0"}),
    ],
    ids=["parent-death-signal-even-when-stuck-in-C", "getppid-watch"],
)
def test_workers_exit_when_their_parent_is_killed(
    parent_process: Any, args: tuple[str, ...], env: dict[str, str], tmp_path: Path
) -> None:
    process = parent_process(*args, **env)
    info = json.loads(_read_line(process, WORKER_START + 30, tmp_path / "stderr.txt"))
    workers = info["workers"]
    assert len(workers) == 2
    assert all(alive(pid) for pid in workers)
    family = descendants(process.pid)  # the workers and multiprocessing's resource tracker
    assert set(workers) <= family

    process.kill()
    process.wait(5)

    wait_for(
        lambda: not any(alive(pid) for pid in family), 3.0, f"the orphans {sorted(family)} to exit"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _serving(url: str) -> Any:
    try:
        return _get_json(url)
    except (urllib.error.URLError, ConnectionError):
        return None


@pytest.mark.parametrize(
    ("reload", "stop"),
    [(False, "ctrl-c"), (True, "ctrl-c"), (True, "sigterm")],
    ids=["noreload-ctrl-c", "autoreload-ctrl-c", "autoreload-sigterm"],
)
def test_runserver_stops_promptly_and_cleanly(tmp_path: Path, reload: bool, stop: str) -> None:
    port = _free_port()
    stderr_path = tmp_path / "stderr.txt"
    command = [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}"]
    if not reload:
        command.append("--noreload")
    with (
        stderr_path.open("wb") as stderr,
        (tmp_path / "stdout.txt").open("wb") as stdout,
        _sigint_as_in_a_terminal(),
    ):
        server = subprocess.Popen(
            command, cwd=REPO, env=_env(), stdout=stdout, stderr=stderr, start_new_session=True
        )
    try:
        base = f"http://127.0.0.1:{port}"
        # The optional app starts the pool with the server, before any task.
        state = wait_for(
            lambda: (
                (body := _serving(f"{base}/state/"))
                and body["state"]
                and len(body["state"]["ready_pids"]) == 2
                and body["state"]
            ),
            WORKER_START + 20,
            "runserver and its warm pool",
        )
        assert state["submitted"] == 0
        invocation_id = _get_json(f"{base}/enqueue/")["invocation_id"]
        record = wait_finished([invocation_id])[invocation_id]
        assert record.status == TaskRecord.TaskStatus.SUCCEEDED
        assert record.result == 5

        if reload:
            # A code change restarts the serving process: the old pool goes with it
            # and the new process starts a new one.
            old = set(state["pids"])
            [serving] = descendants(server.pid, depth=1)
            (REPO / "tests" / "local" / "urls.py").touch()
            # No request while the old process exits (runserver's own traceback
            # when a request arrives at interpreter shutdown is not ours to test).
            wait_for(lambda: not alive(serving), WORKER_START, "the old serving process to exit")
            wait_for(
                lambda: (
                    (body := _serving(f"{base}/state/"))
                    and body["state"]
                    and len(body["state"]["ready_pids"]) == 2
                    and not old & set(body["state"]["pids"])
                ),
                WORKER_START + 20,
                "the reloaded server's pool",
            )
            wait_for(lambda: not any(alive(pid) for pid in old), 3.0, "the old workers to exit")

        family = descendants(server.pid)
        assert len(family) >= 3  # serving process (with the autoreloader) + the workers
        started = time.monotonic()
        if stop == "ctrl-c":
            os.killpg(server.pid, signal.SIGINT)  # what a terminal does on Ctrl+C
        else:
            server.send_signal(signal.SIGTERM)
        server.wait(10)
        took = time.monotonic() - started

        assert took < 5, took
        wait_for(lambda: not any(alive(pid) for pid in family), 3.0, f"{sorted(family)} to exit")
        errors = stderr_path.read_text()
        assert not BAD_OUTPUT.search(errors), errors
    finally:
        _stop(server)
