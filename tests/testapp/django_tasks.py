"""Tasks written against Django's own ``django.tasks`` API (Django ≥ 6.0 only)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import django
from django.tasks import TaskContext, task

from lambda_tasks_django.backends import task_options


class Glitch(Exception):
    """Raised by the retrying task."""


@task
def multiply(a: int, b: int = 2) -> int:
    return a * b


@task
def explode(message: str) -> None:
    raise ValueError(message)


@task(takes_context=True)
def attempt_number(context: TaskContext[Any, Any], label: str) -> dict[str, Any]:
    return {"label": label, "attempt": context.attempt, "id": context.task_result.id}


@task
@task_options(retry_on=(Glitch,))
def glitchy(counter_path: str, fail_times: int) -> int:
    path = Path(counter_path)
    attempts = len(path.read_text()) + 1 if path.exists() else 1
    path.write_text("x" * attempts)
    if attempts <= fail_times:
        raise Glitch(f"attempt {attempts}")
    return attempts


@task
async def async_multiply(a: int, b: int) -> int:
    return a * b


@task(queue_name="other")
def on_other_queue(n: int) -> int:
    return n


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


if django.VERSION >= (6, 1):
    # Django 6.1 passes extra @task() keywords to the backend's task_class;
    # the stubs do not know that.
    task_with_options: Any = task
    too_slow = task_with_options(hard_timeout=0.5, soft_timeout=0.2)(_sleep)
