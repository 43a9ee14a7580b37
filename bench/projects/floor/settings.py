"""Settings of the floor project: the benchmark's settings, one app with one model."""

from __future__ import annotations

from bench.projects.common import (
    DATABASES,
    DEBUG,
    DEFAULT_AUTO_FIELD,
    SECRET_KEY,
    TIME_ZONE,
    USE_TZ,
)

__all__ = [
    "DATABASES",
    "DEBUG",
    "DEFAULT_AUTO_FIELD",
    "INSTALLED_APPS",
    "SECRET_KEY",
    "TIME_ZONE",
    "USE_TZ",
]

INSTALLED_APPS = ["bench.projects.floor.app"]
