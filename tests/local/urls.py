"""Views of ``tests.local.server_settings``: enqueue a task, report the pool."""

from __future__ import annotations

import dataclasses

from django.http import HttpRequest, JsonResponse
from django.urls import path

import lambda_tasks_local
from tests.testapp.tasks import add


def enqueue(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"invocation_id": add.execute_on_commit(a=2, b=3)})


def state(request: HttpRequest) -> JsonResponse:
    current = lambda_tasks_local.state()
    return JsonResponse({"state": dataclasses.asdict(current) if current else None})


urlpatterns = [path("enqueue/", enqueue), path("state/", state)]
