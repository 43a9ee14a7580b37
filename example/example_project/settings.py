"""Settings of the example project.

By default it needs nothing but Python: a SQLite file next to this project and
tasks run in local worker processes. ``EXAMPLE_TASKS_MODE`` picks another mode:
``eager`` (in-process), ``local`` (default) or ``sqs`` (with ``EXAMPLE_SQS_QUEUE_URL``).
"""

from __future__ import annotations

import os
from pathlib import Path

import django

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "lambda_tasks_django",
    "example_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
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

STATIC_URL = "static/"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EXAMPLE_DB_PATH", str(BASE_DIR / "example.sqlite3")),
        # WAL lets the worker processes write while the web process reads.
        "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL;", "timeout": 20},
    }
}

if django.VERSION >= (6, 0):
    # Code written against django.tasks runs through lambda-tasks too.
    TASKS = {"default": {"BACKEND": "lambda_tasks_django.backends.LambdaTasksBackend"}}

_MODE = os.environ.get("EXAMPLE_TASKS_MODE", "local")
if _MODE == "eager":
    LAMBDA_TASKS_EAGER = True
elif _MODE == "local":
    LAMBDA_TASKS_LOCAL_WORKERS = 2
elif _MODE == "sqs":
    LAMBDA_TASKS_QUEUES = {"default": os.environ["EXAMPLE_SQS_QUEUE_URL"]}
else:
    raise ValueError(f"EXAMPLE_TASKS_MODE must be eager, local or sqs, got {_MODE!r}")

# Task logs (tracebacks of the failing example tasks included) go to a file so
# that the demo's table stays readable; `tail -f example/lambda-tasks.log`.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(process)d %(levelname)s %(name)s %(message)s"}
    },
    "handlers": {
        "file": {
            "class": "logging.FileHandler",
            "filename": os.environ.get("EXAMPLE_LOG_PATH", str(BASE_DIR / "lambda-tasks.log")),
            "formatter": "plain",
        }
    },
    "loggers": {"lambda_tasks": {"handlers": ["file"], "level": "INFO", "propagate": False}},
}
