"""The worker process: set up Django once, then run one task at a time for the parent.

Runs in a process started with the ``spawn`` method by :mod:`lambda_tasks_local.pool`.
The module imports nothing heavy at import time: the process unpickles its
target (:func:`run_worker`) before it may call ``django.setup()``.

Protocol over the worker's end of a duplex :func:`multiprocessing.Pipe` (plain
picklable data; the task message itself crosses as its JSON body):

parent → worker
    ``("run", invocation_id, body)`` — run one attempt; ``None`` — stop.
worker → parent
    ``("ready", pid)``, ``("setup_failed", traceback)``,
    ``("started", invocation_id, n_retries, pid, hard_timeout)`` before the task runs,
    ``("done", invocation_id, n_retries, status, duplicate, retry, retry_id)`` after,
    ``("error", invocation_id, n_retries, kind, text)`` when ``execute`` raised
    (``kind`` is ``"in_progress"`` or ``"exception"``), and
    ``("enqueue", [(invocation_id, serialized invocation), ...])`` for tasks that
    tasks enqueue: the parent schedules them, a worker never starts a pool.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from lambda_tasks_django import TaskInvocation

__all__ = ["WorkerStopped", "WorkerTransport", "in_worker", "run_worker"]

#: How often a worker checks that its parent is still alive (the portable fallback
#: of the Linux parent-death signal).
PARENT_CHECK_INTERVAL = 0.5

# Private switch for the test suite: "0" skips prctl(PR_SET_PDEATHSIG) so that the
# portable getppid() watch can be tested on Linux too.
_PDEATHSIG_ENV = "_LAMBDA_TASKS_LOCAL_PDEATHSIG"
_PR_SET_PDEATHSIG = 1

_conn: Connection[Any, Any] | None = None
_send_lock = threading.Lock()


class WorkerStopped(KeyboardInterrupt):
    """Raised in a local worker by SIGTERM: the server is shutting the pool down.

    An interrupt (not an ``Exception``), so task code cannot swallow it, and not
    the task's outcome: the executor rolls the task back and releases the
    attempt (SPEC §4), while a ``SystemExit`` from the task is its FAILED outcome.
    """


def in_worker() -> bool:
    """True inside a local worker process."""
    return _conn is not None


def _send(message: Any) -> None:
    assert _conn is not None
    with _send_lock:
        _conn.send(message)


class WorkerTransport:
    """The local-mode transport inside a worker: hands invocations to the parent.

    Tasks that enqueue tasks (after their transaction commits) reach the
    parent's scheduler this way; a worker never creates a pool of its own.
    """

    def send(self, invocations: Sequence[TaskInvocation]) -> None:
        payload = []
        for invocation in invocations:
            invocation = invocation.with_id()
            payload.append((invocation.invocation_id, invocation.serialize()))
        if payload:
            _send(("enqueue", payload))


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise WorkerStopped("the local worker was stopped (SIGTERM): the server is shutting down")


def _die_with_parent(parent_pid: int) -> None:
    """Exit as soon as the parent (the server) is gone: no orphaned workers.

    On Linux the kernel sends SIGKILL when the parent dies (this works even
    while the task holds the GIL in C code); everywhere a daemon thread also
    polls ``os.getppid()``.
    """
    if sys.platform.startswith("linux") and os.environ.get(_PDEATHSIG_ENV) != "0":
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - exotic libc
            pass
    if os.getppid() != parent_pid:  # died before we could watch it
        os._exit(0)

    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_INTERVAL)
            if os.getppid() != parent_pid:
                os._exit(0)

    threading.Thread(target=watch, name="lambda-tasks-parent-watch", daemon=True).start()


def _setup(settings_module: str | None, overrides: dict[str, Any]) -> None:
    if settings_module:
        os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    import django

    django.setup()
    from django.conf import settings
    from django.db import connections

    from lambda_tasks_django.settings import get_settings

    # The server's LAMBDA_TASKS_* values (the same settings module, but the
    # server may have changed them at run time, e.g. override_settings).
    for name, value in overrides.items():
        setattr(settings, name, value)
    get_settings.cache_clear()
    # Nothing is inherited with spawn, but a settings module or an app's ready()
    # may have connected: each task opens its own connection.
    connections.close_all()


def run_worker(
    conn: Connection[Any, Any],
    parent_pid: int,
    settings_module: str | None,
    overrides: dict[str, Any],
) -> None:
    """Entry point of a worker process."""
    global _conn
    _conn = conn
    # Ctrl+C in a terminal reaches the whole process group: the server decides
    # when workers stop. SIGINT was blocked by the parent's starting thread so
    # that it could not interrupt the start-up; a pending one is now discarded.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGTERM, _on_sigterm)
    _die_with_parent(parent_pid)
    code = 0
    try:
        try:
            _setup(settings_module, overrides)
        except WorkerStopped:
            raise
        except BaseException:
            _send(("setup_failed", traceback.format_exc()))
            code = 1
            return
        _send(("ready", os.getpid()))
        _serve()
    except (WorkerStopped, EOFError, BrokenPipeError, ConnectionResetError):
        # Stopped by the parent, or the parent closed the pipe: exit quietly.
        pass
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        _exit_now(code)


def _exit_now(code: int) -> None:
    """Exit without the interpreter's slow teardown of every loaded module."""
    import logging

    with contextlib.suppress(Exception):
        if "django.db" in sys.modules:
            from django.db import connections

            connections.close_all()
    with contextlib.suppress(Exception):
        logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _serve() -> None:
    assert _conn is not None
    while True:
        item = _conn.recv()
        if item is None:
            return
        _, invocation_id, body = item
        _run_one(invocation_id, body)


def _run_one(invocation_id: str, body: str) -> None:
    from django.db import close_old_connections, reset_queries
    from pydantic import ValidationError

    from lambda_tasks_core import TaskMessage
    from lambda_tasks_django.executor import TaskInProgress, execute
    from lambda_tasks_django.registry import resolve

    n_retries = -1
    try:
        message = TaskMessage.from_json(body)
        n_retries = message.n_retries
        _, hard = resolve(message.task_name).timeouts()
        _send(("started", invocation_id, n_retries, os.getpid(), hard))
        close_old_connections()
        outcome = execute(message, invocation_id, enforce_timeouts=True)
    except WorkerStopped:
        raise
    except TaskInProgress as exc:
        _send(("error", invocation_id, n_retries, "in_progress", str(exc)))
    except (Exception, ValidationError, SystemExit, KeyboardInterrupt):
        # Configuration errors (unknown task, invalid kwargs), database errors, or
        # a task that called sys.exit(): the executor recorded what it could; the
        # worker keeps serving and the parent logs the traceback.
        _send(("error", invocation_id, n_retries, "exception", traceback.format_exc()))
    else:
        retry = outcome.retry
        _send(
            (
                "done",
                invocation_id,
                n_retries,
                outcome.status,
                outcome.duplicate,
                retry.serialize() if retry is not None else None,
                retry.invocation_id if retry is not None else None,
            )
        )
    finally:
        reset_queries()
        close_old_connections()
