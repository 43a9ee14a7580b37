from __future__ import annotations

from django.apps import AppConfig


class BenchAppConfig(AppConfig):
    name = "bench.projects.ours.app"
    label = "bench_ours"
