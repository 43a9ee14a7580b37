"""Optional Django app: add ``"lambda_tasks_handler"`` to ``INSTALLED_APPS`` for the
``lambda_tasks_poll`` management command. It has no models and no migrations."""

from __future__ import annotations

from django.apps import AppConfig


class LambdaTasksHandlerConfig(AppConfig):
    name = "lambda_tasks_handler"
    label = "lambda_tasks_handler"
    verbose_name = "Lambda tasks handler"
