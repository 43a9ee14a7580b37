"""The results table, compatible with django-lambda-tasks' ``lambda_tasks_taskrecord``."""

from __future__ import annotations

import datetime

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q

__all__ = ["TaskRecord"]


class TaskStatus(models.TextChoices):
    # Only for invocations enqueued through the django.tasks backend (SPEC §10):
    # recorded at enqueue, before any attempt runs.
    READY = "READY"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    RETRIED = "RETRIED"


class TaskRecord(models.Model):
    """One attempt of one task invocation.

    The primary key is derived from the invocation id and the attempt number
    (:func:`lambda_tasks_core.record_id`), so a redelivered message finds the
    record of its attempt instead of running twice.
    """

    TaskStatus = TaskStatus

    id = models.UUIDField(primary_key=True, editable=False)
    task_name = models.CharField(max_length=255, editable=False)
    kwargs = models.JSONField(editable=False, encoder=DjangoJSONEncoder)
    n_retries = models.PositiveSmallIntegerField(editable=False)
    status = models.CharField(max_length=10, choices=TaskStatus, editable=False)
    start_time = models.DateTimeField(null=True, editable=False)
    end_time = models.DateTimeField(null=True, editable=False)
    result = models.JSONField(null=True, editable=False, encoder=DjangoJSONEncoder)
    traceback = models.TextField(null=True, editable=False)
    # Ours, beyond the reference's columns (nullable so its rows stay valid).
    invocation_id = models.CharField(max_length=100, null=True, editable=False)
    queue = models.CharField(max_length=80, null=True, editable=False)
    args = models.JSONField(null=True, editable=False, encoder=DjangoJSONEncoder)
    enqueued_at = models.DateTimeField(null=True, editable=False)
    worker_id = models.CharField(max_length=255, null=True, editable=False)

    class Meta:
        ordering = ["-start_time"]
        indexes = [
            models.Index(fields=["task_name"], name="lambda_task_task_na_f00cb7_idx"),
            models.Index(fields=["status"], name="lambda_task_status_6901ee_idx"),
            models.Index(fields=["-start_time"], name="lambda_task_start_t_9caffc_idx"),
            models.Index(fields=["invocation_id"], name="lambda_task_invocation_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=TaskStatus.values), name="taskrecord_status_valid"
            )
        ]

    def __str__(self) -> str:
        return f"{self.task_name} [{self.status}] {self.id}"

    @property
    def duration(self) -> datetime.timedelta | None:
        """Run time, once the attempt has finished."""
        if self.start_time is None or self.end_time is None:
            return None
        return self.end_time - self.start_time


class OutboxEntry(models.Model):
    """An invocation waiting to be sent to SQS (``LAMBDA_TASKS_OUTBOX = True``).

    Written in the caller's transaction, so it commits or rolls back with the
    caller's data; deleted once SQS accepts the message. Rows whose send failed
    stay until the relay (``manage.py lambda_tasks_relay``) sends them.
    """

    id = models.BigAutoField(primary_key=True)
    #: ``<invocation id>:<n_retries>``, the FIFO deduplication id too.
    key = models.CharField(max_length=120, unique=True, editable=False)
    task_name = models.CharField(max_length=255, editable=False)
    queue = models.CharField(max_length=80, editable=False)
    invocation = models.JSONField(editable=False, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(editable=False, db_index=True)
    attempts = models.PositiveIntegerField(default=0, editable=False)
    last_error = models.TextField(null=True, editable=False)
    claimed_until = models.DateTimeField(null=True, editable=False)
    claim_token = models.CharField(max_length=36, null=True, editable=False, db_index=True)

    class Meta:
        ordering = ["id"]
        verbose_name = "outbox entry"
        verbose_name_plural = "outbox"

    def __str__(self) -> str:
        return f"{self.task_name} ({self.key})"
