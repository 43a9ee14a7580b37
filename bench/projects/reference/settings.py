"""Settings of the reference (django-lambda-tasks 0.4.0) benchmark project."""

from __future__ import annotations

from bench.projects.common import (
    DATABASES,
    DEBUG,
    DEFAULT_AUTO_FIELD,
    LAMBDA_TASKS_LOCAL_WORKERS,
    LAMBDA_TASKS_QUEUES,
    SECRET_KEY,
    TIME_ZONE,
    USE_TZ,
)

__all__ = [
    "DATABASES",
    "DEBUG",
    "DEFAULT_AUTO_FIELD",
    "INSTALLED_APPS",
    "LAMBDA_TASKS_LOCAL_WORKERS",
    "LAMBDA_TASKS_QUEUES",
    "SECRET_KEY",
    "TIME_ZONE",
    "USE_TZ",
]

INSTALLED_APPS = ["lambda_tasks", "bench.projects.reference.app"]
