"""Example tasks: one of each outcome the library records."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from lambda_tasks_django import SoftTimeLimitExceeded, lambda_task, task_logger


class TemporaryGlitch(Exception):
    """A failure worth retrying (a flaky downstream service)."""


class NothingToDo(Exception):
    """A failure that is not worth failing the task for."""


@lambda_task
def add(*, a: int, b: int) -> int:
    """Succeeds with the sum."""
    return a + b


@lambda_task
def divide(*, a: int, b: int) -> float:
    """Fails (ZeroDivisionError) when b is 0: recorded FAILED with its traceback."""
    return a / b


@lambda_task(retry_on=(TemporaryGlitch,))
def flaky(*, key: str, fail_times: int) -> str:
    """Fails ``fail_times`` times with TemporaryGlitch, then succeeds."""
    # The attempt count must outlive the rolled-back transaction of a failed
    # attempt, so it is kept in a file rather than in the database.
    counter = Path(tempfile.gettempdir()) / f"lambda-tasks-example-{key}"
    attempts = len(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text("x" * attempts)
    if attempts <= fail_times:
        raise TemporaryGlitch(f"attempt {attempts} of {fail_times + 1}")
    counter.unlink()
    return f"succeeded on attempt {attempts}"


@lambda_task(soft_timeout=1, hard_timeout=2)
def slow(*, seconds: float) -> str:
    """Runs past its soft timeout when ``seconds`` > 1 (enforced outside eager mode)."""
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        task_logger.warning("soft time limit reached, cleaning up")
        raise
    return f"slept {seconds} s"


@lambda_task(ignore_errors=(NothingToDo,))
def maybe_nothing(*, items: list[int]) -> int:
    """Raises NothingToDo for an empty list: recorded SUCCEEDED, error kept in the traceback."""
    if not items:
        raise NothingToDo("empty list")
    return sum(items)
