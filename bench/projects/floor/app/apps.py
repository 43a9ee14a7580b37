from __future__ import annotations

from django.apps import AppConfig


class FloorAppConfig(AppConfig):
    name = "bench.projects.floor.app"
    label = "bench_floor"
