"""The benchmark's task, written for django-lambda-tasks 0.4.0.

The reference package is installed only in its own virtual environment
(``bench/.venvs/reference``), so it is imported by name here and typed loosely.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, cast

lambda_task = cast(
    Callable[[Callable[..., Any]], Any],
    importlib.import_module("lambda_tasks.decorators").lambda_task,
)


@lambda_task
def noop() -> None:
    """Does nothing: the benchmark measures the machinery around a task."""
