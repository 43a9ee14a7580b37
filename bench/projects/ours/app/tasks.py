"""The benchmark's task, written for lambda-tasks."""

from __future__ import annotations

from lambda_tasks_django import lambda_task


@lambda_task
def noop() -> None:
    """Does nothing: the benchmark measures the machinery around a task."""
