"""Built-in tasks."""

from __future__ import annotations

import datetime

from django.utils import timezone

from lambda_tasks_django.models import TaskRecord
from lambda_tasks_django.task import lambda_task

__all__ = ["cleanup_task_records"]


@lambda_task
def cleanup_task_records(*, retention_days: int = 7) -> int:
    """Delete task records started more than ``retention_days`` days ago; return how many."""
    if retention_days < 0:
        raise ValueError(f"retention_days must be 0 or more, got {retention_days}")
    cutoff = timezone.now() - datetime.timedelta(days=retention_days)
    deleted, _ = TaskRecord.objects.filter(start_time__lt=cutoff).delete()
    return deleted
