"""Settings shared by both benchmark projects, chosen by environment variables.

``BENCH_DATABASE``: ``sqlite:///<path>`` or a ``postgresql://`` URI.
``BENCH_QUEUE_URL``: the SQS queue of the ``default`` queue name.
``BENCH_LOCAL_WORKERS``: ``LAMBDA_TASKS_LOCAL_WORKERS`` (0: SQS mode).
``BENCH_CONN_MAX_AGE``: ``CONN_MAX_AGE`` (seconds; ``none`` for unlimited; default 60).
``BENCH_SQLITE_SYNCHRONOUS``: SQLite's ``PRAGMA synchronous`` (default: SQLite's
own, FULL: every commit waits for fsync); ``OFF`` takes the disk out of a profile.

Both sides get exactly the same values; only ``INSTALLED_APPS`` differs.
"""

from __future__ import annotations

import os
import urllib.parse
from typing import Any

__all__ = [
    "DATABASES",
    "DEBUG",
    "DEFAULT_AUTO_FIELD",
    "LAMBDA_TASKS_LOCAL_WORKERS",
    "LAMBDA_TASKS_QUEUES",
    "SECRET_KEY",
    "TIME_ZONE",
    "USE_TZ",
]

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _conn_max_age() -> int | None:
    value = os.environ.get("BENCH_CONN_MAX_AGE", "60")
    return None if value.lower() == "none" else int(value)


def database(url: str) -> dict[str, Any]:
    """The Django ``DATABASES["default"]`` entry for a ``BENCH_DATABASE`` value."""
    parts = urllib.parse.urlsplit(url)
    common: dict[str, Any] = {"CONN_MAX_AGE": _conn_max_age()}
    if parts.scheme == "sqlite":
        return {
            **common,
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": "/" + parts.path.lstrip("/"),
            # Several processes write in local mode: wait for the lock, take it
            # at BEGIN (no deadlocking lock upgrades), readers never block writers.
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL;"
                + (
                    f"PRAGMA synchronous={sync};"
                    if (sync := os.environ.get("BENCH_SQLITE_SYNCHRONOUS"))
                    else ""
                ),
            },
        }
    if parts.scheme in {"postgres", "postgresql"}:
        return {
            **common,
            "ENGINE": "django.db.backends.postgresql",
            "NAME": parts.path.lstrip("/"),
            "USER": parts.username or "postgres",
            "PASSWORD": parts.password or "",
            "HOST": parts.hostname or "127.0.0.1",
            "PORT": str(parts.port or 5432),
        }
    raise ValueError(f"BENCH_DATABASE: unsupported URL {url!r}")


DATABASES = {"default": database(os.environ.get("BENCH_DATABASE", "sqlite:///bench.sqlite3"))}
LAMBDA_TASKS_QUEUES = {
    "default": os.environ.get("BENCH_QUEUE_URL", "http://127.0.0.1:9/000000000000/bench-not-used")
}
LAMBDA_TASKS_LOCAL_WORKERS = int(os.environ.get("BENCH_LOCAL_WORKERS", "0"))
