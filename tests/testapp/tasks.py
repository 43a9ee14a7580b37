"""Tasks used by the test suite (an installed app, so the registry knows them)."""

from __future__ import annotations

import datetime
import enum
import os
import time
import uuid
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import Group

from lambda_tasks_django import lambda_task, task_logger


class Flaky(Exception):
    """Raised by tasks that want to be retried."""


class Ignorable(Exception):
    """Raised by tasks that want the error ignored."""


@lambda_task
def add(*, a: int, b: int = 0) -> int:
    return a + b


@lambda_task
def noop() -> None:
    return None


@lambda_task
def echo_types(
    *, when: datetime.datetime, ident: uuid.UUID, amount: Decimal, tags: list[str]
) -> dict[str, str]:
    return {
        "when": when.isoformat(),
        "ident": str(ident),
        "amount": str(amount),
        "tags": ",".join(tags),
    }


@lambda_task
def create_group(*, name: str) -> int:
    return Group.objects.create(name=name).pk


@lambda_task
def create_group_then_fail(*, name: str) -> None:
    Group.objects.create(name=name)
    raise RuntimeError("boom after a write")


@lambda_task(ignore_errors=(Ignorable,))
def create_group_then_ignore(*, name: str) -> None:
    Group.objects.create(name=name)
    raise Ignorable("not worth failing for")


@lambda_task(retry_on=(Flaky,))
def always_flaky(*, name: str = "x") -> None:
    raise Flaky(name)


@lambda_task(retry_on=(Flaky,))
def flaky_until(*, marker: str, succeed_on_attempt: int) -> int:
    """Fails with Flaky until the group count for ``marker`` reaches the wanted attempt."""
    attempts = Group.objects.filter(name__startswith=f"{marker}-").count() + 1
    # Outside the task's atomic block nothing survives a failure, so count through
    # a separate autocommitted marker in the file system instead.
    path = f"/tmp/lambda-tasks-flaky-{marker}"
    with open(path, "a") as fh:
        fh.write("x")
    with open(path) as fh:
        attempts = len(fh.read())
    if attempts < succeed_on_attempt:
        raise Flaky(f"attempt {attempts}")
    return attempts


@lambda_task(soft_timeout=0.2, hard_timeout=0.5)
def sleepy_soft(*, seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


@lambda_task(soft_timeout=0.2, hard_timeout=0.4)
def ignores_soft(*, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(0.01)
        except Exception:
            continue
    return "done"


@lambda_task
def logs(*, text: str) -> None:
    task_logger.info("hello %s", text)


@lambda_task
def returns_unjsonable() -> object:
    return object()


@lambda_task
def pid() -> int:
    return os.getpid()


@lambda_task(singleton=True, hard_timeout=5, soft_timeout=4)
def singleton_sleep(*, seconds: float) -> str:
    time.sleep(seconds)
    return "ran"


@lambda_task(singleton=True, retry_singleton=False, hard_timeout=5, soft_timeout=4)
def singleton_no_retry(*, seconds: float) -> str:
    time.sleep(seconds)
    return "ran"


@lambda_task(queue="other", delay=3)
def on_other_queue(*, n: int) -> int:
    return n


# --- Added for tests/django (executor, decorator, registry) ---------------------------------


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@lambda_task
def running_records_of_self() -> int:
    """How many RUNNING records this task has while it runs (its own, normally 1)."""
    from lambda_tasks_django.models import TaskRecord

    return TaskRecord.objects.filter(
        task_name=f"{__name__}.running_records_of_self", status=TaskRecord.TaskStatus.RUNNING
    ).count()


@lambda_task(retry_on=(Flaky,), retry_delay=10)
def flaky_with_retry_delay() -> None:
    raise Flaky("again")


#: Calls of :func:`plain_function`, a callable of an installed app that is not a task.
PLAIN_FUNCTION_CALLS: list[dict[str, object]] = []


def plain_function(**kwargs: object) -> None:
    PLAIN_FUNCTION_CALLS.append(kwargs)


@lambda_task
def describe_types(
    *, when: datetime.datetime, ident: uuid.UUID, amount: Decimal, colour: Colour
) -> dict[str, str]:
    return {
        "when": type(when).__name__,
        "ident": type(ident).__name__,
        "amount": type(amount).__name__,
        "colour": type(colour).__name__,
    }


@lambda_task
def create_group_then_interrupt(*, name: str) -> None:
    Group.objects.create(name=name)
    raise KeyboardInterrupt


@lambda_task
def create_group_then_exit(*, name: str) -> None:
    Group.objects.create(name=name)
    raise SystemExit(3)


@lambda_task
def create_group_then_generator_exit(*, name: str) -> None:
    Group.objects.create(name=name)
    raise GeneratorExit


@lambda_task
def create_group_interrupted_once(*, name: str, marker: str) -> int:
    """Interrupted (KeyboardInterrupt) after its write on the first run only, per marker file."""
    Group.objects.create(name=name)
    if not os.path.exists(marker):
        with open(marker, "w"):
            pass
        raise KeyboardInterrupt
    return Group.objects.filter(name=name).count()


@lambda_task
def in_atomic_block() -> bool:
    from django.db import transaction

    return bool(transaction.get_connection().in_atomic_block)


@lambda_task
def enqueue_add(*, a: int) -> str:
    """Enqueues ``add`` from inside a running task; returns that invocation id."""
    return add.execute_on_commit(a=a)


@lambda_task
def store_payload(*, payload: dict[str, Any]) -> int:
    return len(payload)


@lambda_task
def enqueue_add_then_fail(*, a: int) -> None:
    """Enqueues ``add``, then fails: the enqueue must be rolled back with the task."""
    add.execute_on_commit(a=a)
    raise RuntimeError("failed after enqueueing")


# --- Added for tests/django (singleton locks, concurrent deliveries) ------------------------

SINGLETON_PROBE_KEY = "lambda_tasks.singleton_lock.tests.testapp.tasks.singleton_probe"


@lambda_task(singleton=True, soft_timeout=6, hard_timeout=7)
def singleton_probe(*, redis_url: str, fail: bool = False) -> dict[str, int]:
    """Reports its own lock while it runs: ``{"exists": 0|1, "ttl_ms": n}``; optionally fails."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        seen = {
            "exists": int(client.exists(SINGLETON_PROBE_KEY)),
            "ttl_ms": int(client.pttl(SINGLETON_PROBE_KEY)),
        }
    finally:
        client.close()
    if fail:
        raise RuntimeError("singleton probe failed on purpose")
    return seen


@lambda_task
def append_line(*, path: str, line: str, pause: float = 0.0) -> int:
    """Appends ``line`` to the file at ``path`` (one line per real run), then sleeps."""
    with open(path, "a") as fh:
        fh.write(line + "\n")
    time.sleep(pause)
    return os.getpid()


# --- used by tests/handler and tests/integration (lambda-tasks-handler) ---

#: Calls of ``not_a_task``: a message naming it must never reach it.
NOT_A_TASK_CALLS: list[dict[str, object]] = []


def not_a_task(**kwargs: object) -> None:
    """A plain function in an installed app's tasks module, not decorated: never run by messages."""
    NOT_A_TASK_CALLS.append(kwargs)


@lambda_task(soft_timeout=20, hard_timeout=30)
def sleep_for(*, seconds: float) -> float:
    """Sleeps for a while (longer than a test queue's visibility timeout)."""
    time.sleep(seconds)
    return seconds


# --- Used by tests/local (the local runner): crashes, C loops, identities. ---


@lambda_task
def local_exit(*, code: int = 3) -> None:
    """Ends the worker process at once, without recording anything."""
    os._exit(code)


@lambda_task
def local_sigkill() -> None:
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


@lambda_task
def local_segfault() -> None:
    import ctypes
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file
    ctypes.string_at(0)


@lambda_task(soft_timeout=0.5, hard_timeout=1)
def local_stuck_in_c() -> None:
    """An endless loop in C that never returns to Python, so SIGALRM never interrupts it.

    (A catastrophic regex would not do: ``re`` checks for signals while matching.)
    """
    import collections
    import itertools

    collections.deque(itertools.repeat(None), maxlen=0)


@lambda_task(soft_timeout=59, hard_timeout=60)
def local_slow(*, seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@lambda_task
def local_identity() -> dict[str, object]:
    """Who runs this: process ids, database backend pid, open sockets."""
    from django.db import connection

    backend_pid = None
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            row = cursor.fetchone()
            backend_pid = row[0] if row else None
    sockets = []
    fd_dir = "/proc/self/fd"
    if os.path.isdir(fd_dir):
        for name in os.listdir(fd_dir):
            try:
                target = os.readlink(os.path.join(fd_dir, name))
            except OSError:
                continue
            if target.startswith("socket:"):
                sockets.append(target)
    return {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "vendor": connection.vendor,
        "backend_pid": backend_pid,
        "sockets": sorted(sockets),
    }


@lambda_task(soft_timeout=59, hard_timeout=60)
def local_stuck_in_c_long() -> None:
    """Like ``local_stuck_in_c`` with a hard timeout far away (the watchdog stays quiet)."""
    import collections
    import itertools

    collections.deque(itertools.repeat(None), maxlen=0)


@lambda_task
def local_enqueue_identity() -> str:
    """Enqueues ``local_identity`` from inside a task; returns its invocation id."""
    return local_identity.execute_on_commit()


@lambda_task
def create_group_then_return_unjsonable(*, name: str) -> object:
    Group.objects.create(name=name)
    return {"not json": object()}


@lambda_task
def returns_nan() -> dict[str, float]:
    return {"ratio": float("nan")}


@lambda_task
def create_group_then_failing_callback(*, name: str) -> None:
    """Its on_commit callback raises after the commit (the outcome is stored by then)."""
    from django.db import transaction

    Group.objects.create(name=name)

    def fail() -> None:
        raise ValueError("callback after the commit failed")

    transaction.on_commit(fail)


def _touch(path: str) -> None:
    with open(path, "w"):
        pass


@lambda_task
def fault_drill(*, name: str, ready: str, where: str = "body", follow_up: bool = False) -> None:
    """For the fault drills: writes a group, then, on its first run only, tells the test
    (by creating the file ``ready``) that it reached the dangerous instant and holds there.

    ``where``: ``body`` (before the commit, for 30 s), ``after_commit`` (in an
    on_commit callback, for 30 s) or ``before_commit`` (1 s before the commit,
    so the test can make SQS hang for the follow-up's send). ``follow_up``
    enqueues ``create_group(name=<name>-follow)``.
    """
    from django.db import transaction

    first = not os.path.exists(ready)
    Group.objects.create(name=name)
    if follow_up:
        create_group.execute_on_commit(name=f"{name}-follow")
    if not first:
        return
    if where == "after_commit":

        def hold() -> None:
            _touch(ready)
            time.sleep(30)

        transaction.on_commit(hold)
        return
    _touch(ready)
    time.sleep(30 if where == "body" else 1)
