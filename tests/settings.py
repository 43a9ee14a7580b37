"""Django settings for the test suite.

The default database is a SQLite file so that worker processes (local runner,
concurrent deliveries) see the same data as the test process. Setting
``LAMBDA_TASKS_TEST_DB=postgres`` moves the default database to a throwaway
PostgreSQL cluster started by ``tests.services``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "tests.urls"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "lambda_tasks_django",
    "tests.testapp",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# Child processes (local workers, concurrent deliveries) inherit these
# variables, so they open the very database the test process uses.
_SQLITE_PATH = os.environ.setdefault(
    "LAMBDA_TASKS_TEST_SQLITE",
    str(Path(tempfile.gettempdir()) / f"lambda-tasks-tests-{os.getpid()}.sqlite3"),
)
DATABASES: dict[str, dict[str, object]] = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _SQLITE_PATH,
        "TEST": {"NAME": _SQLITE_PATH},
        "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL;", "timeout": 20},
    }
}
if os.environ.get("LAMBDA_TASKS_TEST_PG_PORT"):
    # Set by tests.services once the throwaway cluster runs (in this process or a parent).
    DATABASES["default"] = {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": "127.0.0.1",
        "PORT": os.environ["LAMBDA_TASKS_TEST_PG_PORT"],
        "NAME": os.environ.get("LAMBDA_TASKS_TEST_PG_NAME", "test_lambda_tasks"),
        "USER": "postgres",
        "TEST": {"NAME": os.environ.get("LAMBDA_TASKS_TEST_PG_NAME", "test_lambda_tasks")},
    }

LAMBDA_TASKS_EAGER = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}

import django  # noqa: E402

if django.VERSION >= (6, 0):
    # The django.tasks backend (SPEC §10) exists from Django 6.0 on.
    TASKS = {
        "default": {
            "BACKEND": "lambda_tasks_django.backends.LambdaTasksBackend",
            "QUEUES": ["default", "other"],
        }
    }
