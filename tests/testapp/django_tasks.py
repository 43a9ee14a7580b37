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


# Used by tests/django/test_backend_contract.py (Django's own backend contract).


class Unusual(Exception):
    """An exception class defined in this module (its path is not builtins)."""


@task
def noop(*args: Any, **kwargs: Any) -> None:
    return None


@task
async def async_noop(*args: Any, **kwargs: Any) -> None:
    return None


@task
def raise_unusual(message: str) -> None:
    error = Unusual(message)
    error.add_note("a note added to the exception")
    raise error


@task
def exit_now() -> None:
    raise SystemExit("this task exits")


@task
def interrupt() -> None:
    raise KeyboardInterrupt("this task is interrupted")


@task
def return_unstorable() -> Any:
    return {1, 2}


@task(takes_context=True)
def describe_context(context: TaskContext[Any, Any]) -> dict[str, Any]:
    result = context.task_result
    return {
        "id": result.id,
        "status": str(result.status),
        "attempt": context.attempt,
        "worker_ids": list(result.worker_ids),
        "started": result.started_at is not None,
        "last_attempted": result.last_attempted_at is not None,
        "finished": result.finished_at is not None,
        "backend": result.backend,
        "args": result.args,
        "kwargs": result.kwargs,
    }


@task
def raise_group() -> None:
    raise ExceptionGroup("several problems", [ValueError("inner")])


@task(takes_context=True)
@task_options(retry_on=(Glitch,))
def fail_first_attempt(context: TaskContext[Any, Any]) -> int:
    if context.attempt == 1:
        raise Glitch("first attempt")
    return context.attempt
