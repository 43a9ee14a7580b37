"""The wire message: the SQS body shared with django-lambda-tasks."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "INVOCATION_ID_ATTRIBUTE",
    "TaskMessage",
    "new_invocation_id",
    "record_id",
]

#: SQS message attribute carrying our invocation id beside the body (SPEC §3).
INVOCATION_ID_ATTRIBUTE: Final = "lambda_tasks_invocation_id"


class TaskMessage(BaseModel):
    """One attempt of one task, as sent over SQS.

    The JSON shape, ``{"task_name": ..., "kwargs": {...}, "n_retries": n}``, is the
    reference package's, so a queue can be drained by either during a migration.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    task_name: str = Field(min_length=1)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    n_retries: int = Field(default=0, ge=0)
    #: Positional arguments of ``django.tasks`` tasks only; absent from the body
    #: otherwise, so ``@lambda_task`` messages keep the reference's exact shape.
    args: list[Any] | None = None

    def to_json(self) -> str:
        """Encode as the SQS message body."""
        return self.model_dump_json(exclude={"args"} if self.args is None else None)

    def to_dict(self) -> dict[str, Any]:
        """The body as a JSON-compatible dict (same keys as :meth:`to_json`)."""
        return self.model_dump(mode="json", exclude={"args"} if self.args is None else None)

    @classmethod
    def from_json(cls, body: str | bytes) -> TaskMessage:
        """Decode an SQS message body; raises ``pydantic.ValidationError`` when malformed."""
        return cls.model_validate_json(body)

    def next_attempt(self) -> TaskMessage:
        """The message that retries this one."""
        return self.model_copy(update={"n_retries": self.n_retries + 1})


def new_invocation_id() -> str:
    """A fresh invocation id (UUID4), given to every enqueue."""
    return str(uuid.uuid4())


def record_id(invocation_id: str, n_retries: int) -> uuid.UUID:
    """The TaskRecord primary key of one attempt of one invocation.

    Stable across redeliveries and re-sends of the same attempt, distinct per retry.
    """
    # uuid.uuid5(uuid.NAMESPACE_URL, name), without its per-call import and namespace
    # conversion: this runs once per message on the handler's hot path.
    name = f"lambda-tasks:{invocation_id}:{n_retries}".encode()
    return uuid.UUID(bytes=hashlib.sha1(_NAMESPACE_URL + name).digest()[:16], version=5)


_NAMESPACE_URL: Final = uuid.NAMESPACE_URL.bytes
