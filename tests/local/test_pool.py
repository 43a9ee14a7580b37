"""The local runner with real worker processes: crashes, timeouts, retries, delays, commits."""

from __future__ import annotations

import datetime
import itertools
import logging
import os
import statistics
import time
import uuid
from typing import Any, cast

import django
import pytest
from django.db import connection, transaction
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

import lambda_tasks_local
from lambda_tasks_core import TaskMessage, new_invocation_id, record_id
from lambda_tasks_django import TaskInvocation
from lambda_tasks_django.models import TaskRecord
from lambda_tasks_local import HARD_TIMEOUT_GRACE, get_local_transport
from lambda_tasks_local.pool import TERMINATE_GRACE, LocalPool
from tests.local.conftest import (
    WORKER_START,
    alive,
    attempts,
    pool_state,
    wait_finished,
    wait_for,
    wait_ready,
)
from tests.testapp import tasks

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("local_mode")]

Status = TaskRecord.TaskStatus


def _socket_of_this_connection() -> str | None:
    """The ``socket:[inode]`` of the test process's PostgreSQL connection."""
    connection.ensure_connection()
    raw = connection.connection
    fileno = getattr(raw, "fileno", None)
    if connection.vendor != "postgresql" or fileno is None:
        return None
    return os.readlink(f"/proc/self/fd/{fileno()}")


def test_tasks_run_in_worker_processes_with_their_own_connections() -> None:
    our_socket = _socket_of_this_connection()
    our_backend = None
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            row = cursor.fetchone()
            assert row is not None
            our_backend = row[0]

    ids = [tasks.local_identity.execute_on_commit() for _ in range(6)]
    records = wait_finished(ids)

    results: list[dict[str, Any]] = [cast("dict[str, Any]", records[i].result) for i in ids]
    assert all(records[i].status == Status.SUCCEEDED for i in ids)
    pids = {r["pid"] for r in results}
    assert os.getpid() not in pids
    assert {r["vendor"] for r in results} == {connection.vendor}  # the same database
    assert {r["ppid"] for r in results} == {os.getpid()}
    assert pids <= set(pool_state().pids)
    if our_socket is not None:
        assert not any(our_socket in r["sockets"] for r in results)
        assert our_backend not in {r["backend_pid"] for r in results}
    # This process's own connection still works after the workers used theirs.
    assert TaskRecord.objects.filter(invocation_id__in=ids).count() == 6


def test_a_crashing_worker_fails_its_task_only() -> None:
    crashes = {
        tasks.local_exit.execute_on_commit(code=3): "exited with code 3",
        tasks.local_sigkill.execute_on_commit(): "killed by signal SIGKILL",
        tasks.local_segfault.execute_on_commit(): "killed by signal SIGSEGV",
    }
    others = [tasks.add.execute_on_commit(a=n, b=1) for n in range(20)]

    records = wait_finished([*crashes, *others], timeout=3 * WORKER_START)

    for crashed, cause in crashes.items():
        failed = records[crashed]
        assert failed.status == Status.FAILED
        assert failed.traceback is not None
        assert "WorkerDied" in failed.traceback
        assert cause in failed.traceback
        assert failed.end_time is not None
    # Queued tasks ran on the surviving and the replacement workers.
    assert [records[i].status for i in others] == [Status.SUCCEEDED] * 20
    assert [records[i].result for i in others] == [n + 1 for n in range(20)]
    # The pool is whole again and later submissions succeed.
    wait_for(lambda: len(pool_state().ready_pids) == 2, WORKER_START, "replacement workers")
    later = tasks.add.execute_on_commit(a=40, b=2)
    assert wait_finished([later])[later].result == 42


def test_a_task_stuck_in_c_is_killed_after_hard_timeout_and_grace() -> None:
    wait_ready()
    stuck = tasks.local_stuck_in_c.execute_on_commit()
    after = tasks.add.execute_on_commit(a=1, b=1)

    records = wait_finished([stuck, after], timeout=1 + HARD_TIMEOUT_GRACE + WORKER_START)

    record = records[stuck]
    assert record.status == Status.FAILED
    assert record.traceback is not None
    assert "hard time limit of 1 s exceeded" in record.traceback
    assert "was killed" in record.traceback
    assert record.start_time is not None
    assert record.end_time is not None
    took = (record.end_time - record.start_time).total_seconds()
    assert 1 <= took <= 1 + HARD_TIMEOUT_GRACE + 1.0
    assert records[after].status == Status.SUCCEEDED


def test_python_timeouts_are_enforced_in_the_worker_without_killing_it() -> None:
    ready = wait_ready()
    soft = tasks.sleepy_soft.execute_on_commit(seconds=5)
    hard = tasks.ignores_soft.execute_on_commit(seconds=5)

    records = wait_finished([soft, hard])

    assert records[soft].status == Status.FAILED
    assert "SoftTimeLimitExceeded" in (records[soft].traceback or "")
    assert records[hard].status == Status.FAILED
    assert "HardTimeLimitExceeded" in (records[hard].traceback or "")
    for record in records.values():
        assert record.duration is not None
        assert record.duration < datetime.timedelta(seconds=2)
    assert pool_state().pids == ready.pids  # no worker was replaced


def test_retries_are_scheduled_by_the_parent_with_their_delays() -> None:
    # retry_delay 0: each retry waits round(uniform(1, 5)) seconds; MAX_RETRIES = 2.
    invocation = tasks.always_flaky.execute_on_commit(name="again")

    wait_finished([invocation], timeout=WORKER_START + 2 * 5 + 5)

    records = attempts(invocation)
    assert [r.n_retries for r in records] == [0, 1, 2]
    assert [r.status for r in records] == [Status.RETRIED, Status.RETRIED, Status.FAILED]
    assert "MaxRetriesExceededError" in (records[-1].traceback or "")
    assert {r.pk for r in records} == {record_id(invocation, n) for n in range(3)}
    for earlier, later in itertools.pairwise(records):
        assert earlier.end_time is not None
        assert later.start_time is not None
        gap = (later.start_time - earlier.end_time).total_seconds()
        assert gap >= 1.0, gap
    # Only the first attempt came in through submit(): the parent scheduled the retries.
    assert pool_state().submitted == 1


def test_delays_are_honoured() -> None:
    wait_ready()
    before = timezone.now()
    call_delay = tasks.add.execute_on_commit(a=1, _delay=1)
    decorator_delay = tasks.on_other_queue.execute_on_commit(n=7)  # delay=3, queue "other"

    records = wait_finished([call_delay, decorator_delay])

    first = records[call_delay]
    assert first.start_time is not None
    assert (first.start_time - before).total_seconds() >= 1
    second = records[decorator_delay]
    assert second.start_time is not None
    assert (second.start_time - before).total_seconds() >= 3
    assert second.queue == "other"
    assert second.result == 7


def test_rolled_back_work_submits_nothing() -> None:
    class Rollback(Exception):
        pass

    rolled_back = ""
    try:
        with transaction.atomic():
            rolled_back = tasks.add.execute_on_commit(a=1)
            raise Rollback
    except Rollback:
        pass
    with transaction.atomic():
        kept = tasks.add.execute_on_commit(a=2)
        try:
            with transaction.atomic():
                in_savepoint = tasks.add.execute_on_commit(a=3)
                raise Rollback
        except Rollback:
            pass
    assert lambda_tasks_local.state() is not None  # the commit reached the pool

    wait_finished([kept])

    assert pool_state().submitted == 1
    assert attempts(rolled_back) == []
    assert attempts(in_savepoint) == []


def test_the_caller_never_waits() -> None:
    # Cold: the first send creates the pool; the workers start in the background.
    started = time.perf_counter()
    slow = [tasks.local_slow.execute_on_commit(seconds=1) for _ in range(2)]
    assert time.perf_counter() - started < 0.05
    assert pool_state().ready_pids == ()

    wait_for(lambda: len(pool_state().running) == 2, WORKER_START, "both slow tasks to run")
    # Warm, with every worker busy: a commit that dispatches still returns at once.
    started = time.perf_counter()
    with transaction.atomic():
        queued = tasks.add.execute_on_commit(a=1)
    assert time.perf_counter() - started < 0.05
    # The transport itself only queues: far below a millisecond per send.
    transport = get_local_transport()
    invocation = tasks.noop.invocation({}, None, None)
    timings = []
    for _ in range(200):
        one = invocation.with_id()
        started = time.perf_counter()
        transport.send([one])
        timings.append(time.perf_counter() - started)
    assert statistics.median(timings) < 0.001

    records = wait_finished([*slow, queued])
    assert all(r.status == Status.SUCCEEDED for r in records.values())


def test_tasks_enqueued_by_tasks_are_scheduled_by_the_parent() -> None:
    outer = tasks.local_enqueue_identity.execute_on_commit()
    inner = wait_finished([outer])[outer].result
    assert isinstance(inner, str)

    record = wait_finished([inner])[inner]

    assert record.status == Status.SUCCEEDED
    result = cast("dict[str, Any]", record.result)
    assert result["ppid"] == os.getpid()  # a worker of this process ran it
    assert pool_state().submitted == 1


def test_errors_escaping_the_executor_are_logged_in_the_parent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="lambda_tasks.local")
    unknown = TaskInvocation(
        message=TaskMessage(task_name="tests.testapp.tasks.no_such_task"),
        invocation_id=new_invocation_id(),
    )
    # An attempt another delivery is still running: the executor refuses it.
    busy_id = new_invocation_id()
    TaskRecord.objects.create(
        pk=record_id(busy_id, 0),
        task_name=tasks.add.name,
        kwargs={"a": 1},
        n_retries=0,
        status=Status.RUNNING,
        start_time=timezone.now(),
        invocation_id=busy_id,
    )
    busy = tasks.add.invocation({"a": 1}, None, None)
    get_local_transport().send([unknown, TaskInvocation(busy.message, invocation_id=busy_id)])

    def logged() -> list[logging.LogRecord] | None:
        found = [r for r in caplog.records if r.name == "lambda_tasks.local"]
        texts = " ".join(r.getMessage() for r in found)
        return found if "UnknownTaskError" in texts and "nothing redelivers" in texts else None

    found = wait_for(logged, WORKER_START + 5, "both errors to be logged")
    levels = {r.levelno for r in found}
    assert logging.ERROR in levels
    assert logging.WARNING in levels
    assert attempts(unknown.invocation_id or "") == []
    assert [r.status for r in attempts(busy_id)] == [Status.RUNNING]  # untouched


def test_shutdown_stops_running_tasks_and_logs_those_not_started(
    local_mode: SettingsWrapper, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="lambda_tasks.local")
    local_mode.LAMBDA_TASKS_LOCAL_WORKERS = 1
    running = tasks.local_slow.execute_on_commit(seconds=30)
    waiting = [tasks.add.execute_on_commit(a=n) for n in range(2)]
    wait_for(lambda: attempts(running), WORKER_START, "the slow task to start")
    [pid] = pool_state().pids

    started = time.monotonic()
    lambda_tasks_local.shutdown()
    took = time.monotonic() - started

    assert took < TERMINATE_GRACE + 1.0
    assert not alive(pid)
    record = wait_finished([running])[running]
    assert record.status == Status.FAILED
    assert "WorkerStopped" in (record.traceback or "")
    not_run = [r.getMessage() for r in caplog.records if "was not run" in r.getMessage()]
    assert len(not_run) == 2
    assert all(any(i in text for text in not_run) for i in waiting)
    assert all(attempts(i) == [] for i in waiting)
    # A later task starts a new pool.
    later = tasks.add.execute_on_commit(a=5)
    assert wait_finished([later])[later].result == 5


def test_a_worker_that_cannot_set_up_django_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="lambda_tasks.local")
    pool = LocalPool(1, settings_module=f"tests.local.missing_{uuid.uuid4().hex}")
    pool.start()
    try:
        wait_for(
            lambda: any("could not set up Django" in r.getMessage() for r in caplog.records),
            WORKER_START,
            "the set-up failure to be logged",
        )
    finally:
        pool.shutdown()
    assert "ModuleNotFoundError" in caplog.text
    assert pool.state().stopped


@pytest.mark.skipif(django.VERSION < (6, 0), reason="django.tasks needs Django 6.0 or later")
def test_django_tasks_run_in_the_local_workers() -> None:
    from django.tasks import TaskResultStatus

    from tests.testapp import django_tasks

    result = django_tasks.multiply.enqueue(6, b=7)
    assert result.status == TaskResultStatus.READY  # enqueue() never waits

    def finished() -> object:
        fetched = django_tasks.multiply.get_result(result.id)
        return fetched if fetched.status == TaskResultStatus.SUCCESSFUL else None

    fetched = wait_for(finished, WORKER_START + 5, "the django.tasks task to succeed")
    assert getattr(fetched, "return_value", None) == 42
    [record] = attempts(result.id)
    assert record.result == 42
    assert record.worker_id is not None
    assert not record.worker_id.endswith(f":{os.getpid()}")  # ran in a worker process
