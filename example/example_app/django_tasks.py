"""A task written against Django's own ``django.tasks`` API (Django ≥ 6.0).

It runs through lambda-tasks like any ``@lambda_task``: the ``TASKS`` setting
points Django at ``lambda_tasks_django.backends.LambdaTasksBackend``.
"""

from __future__ import annotations

from django.tasks import task


@task
def word_count(text: str) -> int:
    """Counts the words of ``text``."""
    return len(text.split())
