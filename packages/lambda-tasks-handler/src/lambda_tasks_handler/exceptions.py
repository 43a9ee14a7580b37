"""Exceptions of lambda-tasks-handler."""

from __future__ import annotations

from lambda_tasks_core import LambdaTasksError

__all__ = ["MalformedEventError"]


class MalformedEventError(LambdaTasksError, ValueError):
    """The Lambda event is not an SQS batch (no ``Records`` list).

    The one error the handler raises outside the cold start: such an event
    means the function was wired to the wrong trigger.
    """
