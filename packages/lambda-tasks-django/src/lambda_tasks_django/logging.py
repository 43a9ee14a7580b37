"""``task_logger``: a logger whose lines carry the id of the running task's record."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

__all__ = ["TaskLoggerAdapter", "task_logger"]

_current_record_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "lambda_tasks_record_id", default=None
)


class TaskLoggerAdapter(logging.LoggerAdapter[logging.Logger]):
    """Prefixes each line with ``[<record id>]`` while a task runs.

    The id lives in a context variable, so threads and nested runs cannot mix ids.
    """

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        record_id = _current_record_id.get()
        if record_id is None:
            return msg, kwargs
        extra = dict(kwargs.get("extra") or {})
        extra.setdefault("task_record_id", record_id)
        kwargs["extra"] = extra
        return f"[{record_id}] {msg}", kwargs

    @contextmanager
    def bind(self, record_id: str) -> Iterator[None]:
        """Prefix lines with ``record_id`` inside the ``with`` block."""
        token = _current_record_id.set(record_id)
        try:
            yield
        finally:
            _current_record_id.reset(token)


task_logger = TaskLoggerAdapter(logging.getLogger("lambda_tasks.task"), {})
