"""System checks for the settings and the registered tasks (ids ``lambda_tasks.E0xx``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings as django_settings
from django.core import checks

from lambda_tasks_core import resolve_timeouts
from lambda_tasks_django.registry import registered
from lambda_tasks_django.settings import Mode, find_problems

__all__ = ["check_settings", "check_tasks"]


@checks.register("lambda_tasks")
def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    conf, problems = find_problems()
    errors: list[checks.CheckMessage] = [
        checks.Error(p.message, hint=p.hint or None, obj=p.setting, id=f"lambda_tasks.{p.check_id}")
        for p in problems
    ]
    if (
        conf.mode is Mode.SQS
        and not conf.queues
        and not any(p.setting.endswith("QUEUES") for p in problems)
    ):
        errors.append(
            checks.Error(
                "LAMBDA_TASKS_QUEUES is required in SQS mode (no EAGER, LOCAL_WORKERS or "
                "NOOP_EXECUTION set).",
                hint='Set LAMBDA_TASKS_QUEUES = {"default": "<queue URL>"}, or pick a local mode.',
                obj="LAMBDA_TASKS_QUEUES",
                id="lambda_tasks.E010",
            )
        )
    if conf.outbox and conf.mode is not Mode.SQS:
        errors.append(
            checks.Warning(
                f"LAMBDA_TASKS_OUTBOX has no effect in {conf.mode.value} mode: only SQS sends "
                "can fail after commit.",
                obj="LAMBDA_TASKS_OUTBOX",
                id="lambda_tasks.W002",
            )
        )
    if conf.mode is Mode.LOCAL:
        try:
            import lambda_tasks_local  # noqa: F401
        except ImportError:
            errors.append(
                checks.Error(
                    "LAMBDA_TASKS_LOCAL_WORKERS is set but lambda-tasks-local is not installed.",
                    hint="pip install lambda-tasks-local",
                    obj="LAMBDA_TASKS_LOCAL_WORKERS",
                    id="lambda_tasks.E011",
                )
            )
    return errors


@checks.register("lambda_tasks")
def check_tasks(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    conf, _ = find_problems()
    messages: list[checks.CheckMessage] = []
    caches = getattr(django_settings, "CACHES", {})
    for name, task in sorted(registered().items()):
        options = task.options
        if conf.queues and options.queue not in conf.queues:
            messages.append(
                checks.Error(
                    f"Task {name} uses queue {options.queue!r}, which LAMBDA_TASKS_QUEUES "
                    "does not define.",
                    hint=f"Add {options.queue!r} to LAMBDA_TASKS_QUEUES or fix the queue option.",
                    obj=name,
                    id="lambda_tasks.E020",
                )
            )
        try:
            # Not task.timeouts(): get_settings() raises while any setting is invalid,
            # and a check must report, not crash. find_problems() fell back to defaults.
            resolve_timeouts(options, conf.default_soft_timeout, conf.default_hard_timeout)
        except (TypeError, ValueError) as exc:
            messages.append(
                checks.Error(
                    str(exc),
                    obj=name,
                    id="lambda_tasks.E021",
                    hint="Adjust the task's timeouts or the LAMBDA_TASKS_DEFAULT_* settings.",
                )
            )
        if options.singleton and conf.singleton_cache not in caches:
            messages.append(
                checks.Error(
                    f"Task {name} is a singleton but LAMBDA_TASKS_SINGLETON_CACHE = "
                    f"{conf.singleton_cache!r} is not in CACHES.",
                    hint="Point LAMBDA_TASKS_SINGLETON_CACHE at a Redis cache alias.",
                    obj=name,
                    id="lambda_tasks.E022",
                )
            )
        queue_url = conf.queues.get(options.queue, "")
        if queue_url.endswith(".fifo") and options.delay:
            messages.append(
                checks.Error(
                    f"Task {name} sets delay={options.delay} but its queue {options.queue!r} is "
                    "FIFO, which has no per-message delay: every enqueue would be refused.",
                    hint="Drop the delay option or route the task to a standard queue.",
                    obj=name,
                    id="lambda_tasks.E023",
                )
            )
        if queue_url.endswith(".fifo") and options.retry_delay:
            messages.append(
                checks.Warning(
                    f"Task {name} sets retry_delay but its queue {options.queue!r} is FIFO, "
                    "which has no per-message delay: retries are sent at once.",
                    hint="Drop retry_delay or route the task to a standard queue.",
                    obj=name,
                    id="lambda_tasks.W001",
                )
            )
    return messages
