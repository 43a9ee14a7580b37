"""Fault drills: real pollers killed or interrupted at the dangerous instants (SPEC §4).

Each drill runs ``python -m lambda_tasks_handler.poll`` against moto's SQS
server, stops it while ``tests.testapp.tasks.fault_drill`` is at a dangerous
instant (the task says so by creating a file), then lets a second poller
drain the queue, and counts what the task wrote: nothing lost, nothing
committed twice.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import Group

from lambda_tasks_django.models import TaskRecord
from tests.handler.conftest import SqsMode
from tests.handler.events import task_body
from tests.handler.test_poll import queue_counts, read_until, send, start_poller, the_status

pytestmark = pytest.mark.django_db(transaction=True)

Status = TaskRecord.TaskStatus
POLL = ["-m", "lambda_tasks_handler.poll", "--queue", "default", "--wait-time-seconds", "1"]


def wait_for_file(path: Path, process: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            output = process.communicate()[0] if process.poll() is not None else ""
            raise AssertionError(f"the task never reached the instant:\n{output}")
        time.sleep(0.02)


def stop(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.wait()
    if process.stdout is not None:
        process.stdout.close()


def drain(sqs_mode: SqsMode, invocation_id: str, timeout: float = 30) -> str:
    """Run a second poller until the queue is empty and the attempt has ended."""
    process = start_poller(POLL, sqs_mode)
    try:
        deadline = time.monotonic() + timeout
        while not (
            queue_counts(sqs_mode.moto, sqs_mode.default) == (0, 0)
            and the_status(invocation_id) in (Status.SUCCEEDED, Status.FAILED)
        ):
            assert time.monotonic() < deadline, "the queue was not drained"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        return process.communicate(timeout=30)[0]
    finally:
        stop(process)


def test_killed_after_the_commit_the_work_is_done_once(sqs_mode: SqsMode, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    body = task_body("fault_drill", name="after-commit", ready=str(ready), where="after_commit")
    send(sqs_mode.moto, sqs_mode.default, body, "drill-commit")
    process = start_poller(POLL, sqs_mode)
    try:
        wait_for_file(ready, process)  # inside an on_commit callback: committed
    finally:
        stop(process)

    # The outcome committed with the work: a redelivery must not run it again.
    assert the_status("drill-commit") == Status.SUCCEEDED
    output = drain(sqs_mode, "drill-commit")
    assert "Skipping duplicate delivery" in output
    assert Group.objects.filter(name="after-commit").count() == 1
    assert the_status("drill-commit") == Status.SUCCEEDED


def test_a_second_sigterm_releases_the_attempt_and_exits_143(
    sqs_mode: SqsMode, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    body = task_body("fault_drill", name="interrupted", ready=str(ready), where="body")
    send(sqs_mode.moto, sqs_mode.default, body, "drill-term")
    process = start_poller(POLL, sqs_mode)
    try:
        read_until(process, "Polling", timeout=30)
        wait_for_file(ready, process)  # the task wrote its row and holds, uncommitted
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    finally:
        stop(process)

    assert process.returncode == 128 + signal.SIGTERM, output
    assert "stopping without finishing the batch" in output
    # Released, rolled back, and offered again at once (not after the visibility timeout).
    assert the_status("drill-term") == Status.READY
    assert not Group.objects.filter(name="interrupted").exists()
    assert queue_counts(sqs_mode.moto, sqs_mode.default) == (1, 0)

    drain(sqs_mode, "drill-term")
    assert the_status("drill-term") == Status.SUCCEEDED
    assert Group.objects.filter(name="interrupted").count() == 1
    record = TaskRecord.objects.get(invocation_id="drill-term")
    assert record.traceback is not None
    assert "was interrupted (KeyboardInterrupt)" in record.traceback
