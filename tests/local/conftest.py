"""Fixtures and helpers of the local runner tests: real pools, real processes."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

import lambda_tasks_local
from lambda_tasks_django.models import TaskRecord
from lambda_tasks_local import runner

T = TypeVar("T")

#: Seconds a spawned worker may take to import Django and set it up (no bytecode
#: cache on these machines), generously.
WORKER_START = 15.0

Status = TaskRecord.TaskStatus


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def attempts(invocation_id: str) -> list[TaskRecord]:
    """The records of one invocation, first attempt first."""
    return list(TaskRecord.objects.filter(invocation_id=invocation_id).order_by("n_retries"))


def wait_finished(
    invocation_ids: Iterable[str], timeout: float = WORKER_START + 10
) -> dict[str, TaskRecord]:
    """Wait until each invocation's latest attempt ended; its record per invocation id."""
    wanted = list(invocation_ids)

    def finished() -> dict[str, TaskRecord] | None:
        latest: dict[str, TaskRecord] = {}
        for record in TaskRecord.objects.filter(invocation_id__in=wanted).order_by("n_retries"):
            assert record.invocation_id is not None
            latest[record.invocation_id] = record
        done = {
            key: record
            for key, record in latest.items()
            if record.status not in (Status.RUNNING, Status.RETRIED)
        }
        return done if len(done) == len(wanted) else None

    return wait_for(finished, timeout, f"{len(wanted)} invocations to finish")


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (orphans may never be reaped here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def descendants(root: int, *, depth: int | None = None) -> set[int]:
    """Every live process below ``root`` (Linux /proc), down to ``depth`` levels."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if fields[0] in ("Z", "X"):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [(root, 0)]
    while todo:
        parent, level = todo.pop()
        if depth is not None and level >= depth:
            continue
        for child in children.get(parent, []):
            if child not in found:
                found.add(child)
                todo.append((child, level + 1))
    return found


def local_workers() -> list[multiprocessing.process.BaseProcess]:
    return [p for p in multiprocessing.active_children() if p.name == "lambda-tasks-local-worker"]


def pool_state() -> lambda_tasks_local.PoolState:
    state = lambda_tasks_local.state()
    assert state is not None, "no local pool in this process"
    return state


def wait_ready(count: int = 2) -> lambda_tasks_local.PoolState:
    """Start the pool if needed and wait until ``count`` workers set Django up."""
    assert lambda_tasks_local.start()

    def ready() -> lambda_tasks_local.PoolState | None:
        state = pool_state()
        return state if len(state.ready_pids) >= count else None

    return wait_for(ready, WORKER_START, f"{count} ready workers")


@pytest.fixture
def local_mode(settings: SettingsWrapper, transactional_db: None) -> Iterator[SettingsWrapper]:
    """Local mode with two workers (MAX_RETRIES = 2); the pool is shut down afterwards.

    Workers see the test database only through committed data, hence the
    transactional database.
    """
    settings.LAMBDA_TASKS_EAGER = False
    settings.LAMBDA_TASKS_LOCAL_WORKERS = 2
    settings.LAMBDA_TASKS_MAX_RETRIES = 2
    assert runner.get_pool(create=False) is None, "a pool leaked from an earlier test"
    try:
        yield settings
    finally:
        pool = runner.get_pool(create=False)
        lambda_tasks_local.shutdown()
        if pool is not None:
            final = pool.state()
            assert final.stopped
            assert final.pids == ()
        assert local_workers() == []
