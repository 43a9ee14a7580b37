"""Exceptions shared by every lambda-tasks distribution."""

from __future__ import annotations

__all__ = [
    "HardTimeLimitExceeded",
    "LambdaTasksError",
    "MaxRetriesExceededError",
    "SingletonLocked",
    "SoftTimeLimitExceeded",
    "TaskDefinitionError",
    "UnknownTaskError",
]


class LambdaTasksError(Exception):
    """Root of the errors raised by lambda-tasks."""


class TaskDefinitionError(LambdaTasksError, TypeError):
    """A task function or its decorator options are not acceptable."""


class UnknownTaskError(LambdaTasksError, LookupError):
    """A message names something that is not a registered task."""


class SoftTimeLimitExceeded(LambdaTasksError):
    """Raised inside a task when its soft timeout expires.

    It derives from ``Exception`` on purpose: task code may catch it to clean up.
    """


class HardTimeLimitExceeded(BaseException):
    """Raised inside a task when its hard timeout expires.

    It derives from ``BaseException`` so that ``except Exception`` in task code
    cannot swallow it; the executor catches it and records the task as failed.
    """


class MaxRetriesExceededError(LambdaTasksError):
    """A retryable error happened once more than ``LAMBDA_TASKS_MAX_RETRIES`` allows."""


class SingletonLocked(LambdaTasksError):
    """Another run of a singleton task holds its lock."""
