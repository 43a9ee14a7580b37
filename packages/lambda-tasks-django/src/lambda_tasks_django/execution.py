"""What the executor tells a task about the attempt it runs."""

from __future__ import annotations

import datetime
import functools
import os
import socket
from dataclasses import dataclass
from typing import Any, Protocol

from lambda_tasks_core import TaskMessage, TaskOptions

__all__ = ["Attempt", "Runnable", "worker_id"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt of one invocation, as the executor runs it."""

    invocation_id: str
    record_id: str
    message: TaskMessage
    started_at: datetime.datetime
    enqueued_at: datetime.datetime | None
    worker_id: str


class Runnable(Protocol):
    """What the executor needs of a registered task (``@lambda_task`` or a ``django.tasks`` one)."""

    name: str
    options: TaskOptions

    def timeouts(self) -> tuple[float, float]: ...

    def prepare(self, message: TaskMessage) -> Any:
        """Validate the message's arguments; raise before any record is written."""

    def run(self, prepared: Any, attempt: Attempt) -> Any: ...

    def finished(self, attempt: Attempt, status: str, value: Any, error: str | None) -> None: ...


def worker_id() -> str:
    """Who runs an attempt: the Lambda log stream, else host and process id."""
    return os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME") or _host_and_pid()


@functools.cache
def _host_and_pid() -> str:
    # Cached: two system calls per attempt otherwise. A forked child gets its own.
    return f"{socket.gethostname()}:{os.getpid()}"


os.register_at_fork(after_in_child=_host_and_pid.cache_clear)
