"""``TaskInvocation``: one enqueueable task call (message + delay + queue)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from lambda_tasks_core import INVOCATION_ID_ATTRIBUTE, TaskMessage, new_invocation_id
from lambda_tasks_core.limits import MAX_MESSAGE_SIZE_BYTES
from lambda_tasks_core.options import validate_delay, validate_fifo_group

__all__ = ["MessageTooLarge", "TaskInvocation"]

# SQS counts message attributes in the size limit: our one attribute is its
# name, its type ("String") and a 36-character UUID.
_ATTRIBUTE_BYTES = len(INVOCATION_ID_ATTRIBUTE) + len("String") + 36


class MessageTooLarge(ValueError):
    """The encoded message exceeds the SQS body limit; it was not sent."""


@dataclass(frozen=True, slots=True)
class TaskInvocation:
    """A validated task call, ready to enqueue now or later.

    ``serialize()`` gives ``{"message": {...}, "delay": n, "queue": name}`` (plus
    ``"group"`` when a FIFO group was chosen); :meth:`from_dict` rebuilds it, so
    an invocation can be stored and enqueued later (deferred enqueue).
    ``invocation_id`` is given when the invocation is enqueued; retries keep it.
    """

    message: TaskMessage
    delay: int = 0
    queue: str = "default"
    group: str | None = None
    invocation_id: str | None = None

    def __post_init__(self) -> None:
        validate_delay(self.delay, f"task {self.message.task_name}: delay")
        if self.group is not None:
            validate_fifo_group(self.group, f"task {self.message.task_name}: _group")
        body_size = len(self.body().encode()) + _ATTRIBUTE_BYTES
        if body_size > MAX_MESSAGE_SIZE_BYTES:
            raise MessageTooLarge(
                f"task {self.message.task_name}: the message body is {body_size} bytes, over "
                f"the SQS limit of {MAX_MESSAGE_SIZE_BYTES} bytes; pass a reference (a primary "
                "key, an S3 key) instead of the data"
            )

    def body(self) -> str:
        """The SQS message body (the reference package's shape)."""
        return self.message.to_json()

    def serialize(self) -> dict[str, Any]:
        """A JSON-compatible dict that :meth:`from_dict` turns back into this invocation."""
        data: dict[str, Any] = {
            "message": self.message.to_dict(),
            "delay": self.delay,
            "queue": self.queue,
        }
        if self.group is not None:
            data["group"] = self.group
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskInvocation:
        """Rebuild an invocation from :meth:`serialize` output, re-validating its kwargs."""
        from lambda_tasks_django.registry import resolve

        if not isinstance(data, dict) or not {"message", "delay", "queue"} <= data.keys():
            raise ValueError("a serialized invocation needs the keys message, delay and queue")
        message = TaskMessage.model_validate(data["message"], strict=False)
        task = resolve(message.task_name)
        task.prepare(message)
        return cls(
            message=message,
            delay=data["delay"],
            queue=data["queue"],
            group=data.get("group"),
        )

    def with_id(self) -> TaskInvocation:
        """This invocation with an invocation id, a fresh one if it has none yet."""
        if self.invocation_id is not None:
            return self
        return replace(self, invocation_id=new_invocation_id())

    def execute_on_commit(self) -> str:
        """Dispatch after the current transaction commits; returns the invocation id."""
        from lambda_tasks_django.dispatch import enqueue_on_commit

        return enqueue_on_commit(self)
