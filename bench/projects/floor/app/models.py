"""A results table with the reference's columns (SPEC §4): the floor has one model too."""

from __future__ import annotations

from django.db import models


class Record(models.Model):
    id = models.UUIDField(primary_key=True)
    task_name = models.CharField(max_length=255)
    kwargs = models.JSONField()
    n_retries = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=10)
    start_time = models.DateTimeField(null=True)
    end_time = models.DateTimeField(null=True)
    result = models.JSONField(null=True)
    traceback = models.TextField(null=True)

    class Meta:
        indexes = [
            models.Index(fields=["task_name"]),
            models.Index(fields=["status"]),
            models.Index(fields=["-start_time"]),
        ]
