from __future__ import annotations

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class LambdaTasksConfig(AppConfig):
    name = "lambda_tasks_django"
    # The reference package's label: its tables and migration history carry over.
    label = "lambda_tasks"
    verbose_name = "Lambda tasks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from lambda_tasks_django import checks  # noqa: F401  (registers the system checks)

        # Fill the task registry: messages may only name registered tasks.
        autodiscover_modules("tasks")
