"""The module-level pool of this server process and the local-mode transport."""

from __future__ import annotations

import atexit
import json
import logging
import multiprocessing
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lambda_tasks_local.pool import Job, LocalPool, PoolState
from lambda_tasks_local.worker import WorkerTransport, in_worker

if TYPE_CHECKING:
    from lambda_tasks_django import TaskInvocation
    from lambda_tasks_django.dispatch import Transport

__all__ = [
    "LocalTransport",
    "get_local_transport",
    "get_pool",
    "shutdown",
    "start",
    "state",
]

logger = logging.getLogger("lambda_tasks.local")

_lock = threading.Lock()
_pool: LocalPool | None = None
_atexit_registered = False
_exiting = False


class LocalTransport:
    """Local mode in the server process: queue for the pool and return at once."""

    def send(self, invocations: Sequence[TaskInvocation]) -> None:
        jobs = [Job.from_invocation(invocation) for invocation in invocations]
        pool = get_pool()
        if pool is None:
            for job in jobs:
                logger.warning("Local runner: task %s was not run", job.describe())
            return
        pool.submit(jobs)


_LOCAL_TRANSPORT = LocalTransport()
_WORKER_TRANSPORT = WorkerTransport()


def get_local_transport() -> Transport:
    """The transport of local mode (``LAMBDA_TASKS_LOCAL_WORKERS > 0``).

    Called by ``lambda_tasks_django.dispatch``. In the server it feeds this
    process's pool; inside a worker it hands invocations to the parent.
    """
    if in_worker():
        return _WORKER_TRANSPORT
    return _LOCAL_TRANSPORT


def get_pool(*, create: bool = True) -> LocalPool | None:
    """This process's pool, created (and started in the background) on first use.

    ``None`` while the interpreter exits, or when ``create`` is false and there
    is no pool yet.
    """
    global _pool, _atexit_registered
    pool = _pool
    if pool is not None or not create:
        return pool
    with _lock:
        if _pool is None:
            if _exiting:
                return None
            if getattr(multiprocessing.current_process(), "_inheriting", False):
                # A spawned worker is importing the server's main module, which
                # enqueues a task at import time: a pool here would recurse.
                logger.error(
                    "Local runner: a task was enqueued while a worker process imported the "
                    "main module; guard the main module's code with "
                    '`if __name__ == "__main__":`'
                )
                return None
            _pool = _new_pool()
            if not _atexit_registered:
                atexit.register(_shutdown_at_exit)
                _atexit_registered = True
            _pool.start()
        return _pool


def _new_pool() -> LocalPool:
    from django.conf import settings

    from lambda_tasks_django.settings import get_settings

    return LocalPool(
        get_settings().local_workers,
        settings_module=settings.SETTINGS_MODULE,
        overrides=_lambda_tasks_settings(),
    )


def _lambda_tasks_settings() -> dict[str, Any]:
    """This process's ``LAMBDA_TASKS_*`` settings that can cross to a worker."""
    from django.conf import settings

    values: dict[str, Any] = {}
    for name in dir(settings):
        if not name.startswith("LAMBDA_TASKS_"):
            continue
        value = getattr(settings, name)
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        values[name] = value
    return values


def start() -> bool:
    """Start the pool now, in the background, when local mode is configured.

    Optional: the first task starts it otherwise (and then waits for the
    workers' ``django.setup()``). Returns whether a pool is (now) running.
    """
    from lambda_tasks_django.settings import Mode, get_settings

    if in_worker() or get_settings().mode is not Mode.LOCAL:
        return False
    return get_pool() is not None


def shutdown() -> None:
    """Stop this process's pool, if any; a later task starts a new one.

    Running tasks are interrupted (SIGTERM raises ``WorkerStopped`` in them,
    which is recorded as their failure; SIGKILL after ``TERMINATE_GRACE`` s);
    tasks that have not started are logged at WARNING as not run.
    """
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown()


def state() -> PoolState | None:
    """A snapshot of this process's pool, or ``None`` when there is none."""
    pool = _pool
    return pool.state() if pool is not None else None


def _forget_pool_after_fork() -> None:
    """In a process forked from the server (e.g. gunicorn --preload), start afresh.

    The parent's pool object came along, but not its threads or its workers.
    """
    global _pool, _lock
    _pool = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _shutdown_at_exit() -> None:
    global _exiting
    with _lock:
        _exiting = True
    shutdown()
