"""Optional app: ``"lambda_tasks_local"`` in ``INSTALLED_APPS`` warms the pool in ``runserver``."""

from __future__ import annotations

import os
import sys

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured


def serving_runserver(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> bool:
    """True in the process of ``manage.py runserver`` that serves requests.

    That is the autoreloader's child (``RUN_MAIN=true``) or a ``--noreload``
    server; not the autoreloader's watching parent, not other commands.
    """
    argv = sys.argv if argv is None else argv
    environ = dict(os.environ) if environ is None else environ
    if len(argv) < 2 or argv[1] != "runserver":
        return False
    return environ.get("RUN_MAIN") == "true" or "--noreload" in argv[2:]


class LambdaTasksLocalConfig(AppConfig):
    name = "lambda_tasks_local"
    label = "lambda_tasks_local"
    verbose_name = "Lambda tasks (local runner)"

    def ready(self) -> None:
        from lambda_tasks_local.runner import start
        from lambda_tasks_local.worker import in_worker

        if in_worker() or not serving_runserver():
            return
        try:
            start()
        except ImproperlyConfigured:
            return  # the system checks report the settings problem
