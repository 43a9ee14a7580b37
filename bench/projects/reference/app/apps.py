from __future__ import annotations

from django.apps import AppConfig


class BenchAppConfig(AppConfig):
    name = "bench.projects.reference.app"
    label = "bench_reference"
