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


def enqueue_word_count(request: HttpRequest) -> JsonResponse:
    """Enqueue a django.tasks task (Django ≥ 6.0): Django's API, our backend."""
    from example_app.django_tasks import word_count

    result = word_count.enqueue(request.GET.get("text", "lambda tasks run django tasks"))
    return JsonResponse({"result_id": result.id, "status": result.status})


def word_count_result(request: HttpRequest, result_id: str) -> JsonResponse:
    """Read a django.tasks result back (``get_result`` reads the task records)."""
    from django.tasks.exceptions import TaskResultDoesNotExist

    from example_app.django_tasks import word_count

    try:
        result = word_count.get_result(result_id)
    except TaskResultDoesNotExist:
        return JsonResponse({"error": "no such result"}, status=404)
    body: dict[str, object] = {"result_id": result.id, "status": result.status}
    if result.is_finished:
        body["errors"] = [e.exception_class_path for e in result.errors]
        if not result.errors or result.status == "SUCCESSFUL":
            body["return_value"] = result.return_value
    return JsonResponse(body)
