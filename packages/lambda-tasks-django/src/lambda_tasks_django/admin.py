"""Read-only admin for task records, with a replay action."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from django.contrib import admin, messages
from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet
from django.http import HttpRequest

from lambda_tasks_core import LambdaTasksError, TaskMessage
from lambda_tasks_django.invocation import TaskInvocation
from lambda_tasks_django.models import OutboxEntry, TaskRecord
from lambda_tasks_django.registry import resolve

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[TaskRecord]
    _OutboxAdmin = admin.ModelAdmin[OutboxEntry]
else:
    _ModelAdmin = _OutboxAdmin = admin.ModelAdmin


@admin.register(TaskRecord)
class TaskRecordAdmin(_ModelAdmin):
    list_display = ("task_name", "status", "n_retries", "start_time", "duration_display", "id")
    list_filter = ("status", "task_name")
    search_fields = ("task_name", "id", "invocation_id")
    date_hierarchy = "start_time"
    ordering = ("-start_time",)
    actions = ["replay"]
    readonly_fields = [
        "id",
        "invocation_id",
        "task_name",
        "queue",
        "kwargs",
        "n_retries",
        "status",
        "start_time",
        "end_time",
        "duration_display",
        "result",
        "traceback",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="duration")
    def duration_display(self, record: TaskRecord) -> datetime.timedelta | None:
        return record.duration

    @admin.action(description="Replay selected tasks", permissions=["change"])
    def replay(self, request: HttpRequest, queryset: QuerySet[TaskRecord]) -> None:
        """Enqueue each selected record's task again, as a new invocation (first attempt)."""
        replayed = 0
        for record in queryset:
            try:
                task = resolve(record.task_name)
                message = TaskMessage(
                    task_name=record.task_name, kwargs=record.kwargs, args=record.args
                )
                task.prepare(message)
                invocation = TaskInvocation(
                    message=message, queue=task.options.queue, group=task.options.fifo_group
                )
                invocation.execute_on_commit()
            except (LambdaTasksError, TypeError, ValueError, ImproperlyConfigured) as exc:
                self.message_user(
                    request, f"Not replayed {record.task_name} ({record.pk}): {exc}", messages.ERROR
                )
                continue
            replayed += 1
        if replayed:
            self.message_user(request, f"Replayed {replayed} task(s).", messages.SUCCESS)


@admin.register(OutboxEntry)
class OutboxEntryAdmin(_OutboxAdmin):
    """Invocations not yet accepted by SQS (LAMBDA_TASKS_OUTBOX), with their last error."""

    list_display = ("id", "task_name", "queue", "created_at", "attempts", "last_error")
    list_filter = ("queue", "task_name")
    search_fields = ("task_name", "key")
    ordering = ("id",)
    readonly_fields = [
        "id",
        "key",
        "task_name",
        "queue",
        "invocation",
        "created_at",
        "attempts",
        "last_error",
        "claimed_until",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: OutboxEntry | None = None) -> bool:
        return False
