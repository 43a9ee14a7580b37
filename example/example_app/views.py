from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, JsonResponse

from example_app.tasks import add
from lambda_tasks_django.models import TaskRecord


def enqueue(request: HttpRequest) -> JsonResponse:
    """Enqueue a task inside the request's transaction; it runs after commit."""
    with transaction.atomic():
        invocation_id = add.execute_on_commit(a=2, b=3)
    return JsonResponse({"invocation_id": invocation_id})


def records(request: HttpRequest) -> JsonResponse:
    rows = TaskRecord.objects.values("task_name", "status", "start_time", "end_time")[:50]
    return JsonResponse({"records": list(rows)})
