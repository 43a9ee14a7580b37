"""The cold start: run once, at the first invocation, never at import (SPEC §6).

In order: the environment loaders (Secrets Manager environment, SSM
environment, ``LAMBDA_TASKS_SECRET_<NAME>`` references), ``django.setup()``,
the address-space cap (``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``), a warning
for every task whose hard timeout cannot fit in the function's timeout, then
one outbox relay pass when ``LAMBDA_TASKS_OUTBOX`` is on.

An error is raised to the caller (the Lambda runtime reports the invocation as
failed and SQS offers the batch again) and the cold start is tried again, in
full, on the next invocation. No value of the environment is ever logged.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from lambda_tasks_handler._context import remaining_ms
from lambda_tasks_handler.environment import load_environment
from lambda_tasks_handler.memory import cap_address_space

__all__ = ["cold_start", "is_done", "reset"]

logger = logging.getLogger("lambda_tasks.handler")

SETTINGS_VARIABLE = "DJANGO_SETTINGS_MODULE"

_lock = threading.Lock()
_done = False


def is_done() -> bool:
    """Whether the cold start of this process has completed."""
    return _done


def reset() -> None:
    """Forget that the cold start ran (tests)."""
    global _done
    with _lock:
        _done = False


def cold_start(context: object = None) -> None:
    """Run the cold start unless it already succeeded in this process.

    ``context`` is the Lambda context of the first invocation: the time it has
    left is the best available measure of the function's timeout.
    """
    global _done
    if _done:
        return
    with _lock:
        if is_done():  # another thread finished it while this one waited
            return
        budget_ms = remaining_ms(context)  # before any work, to approximate the function timeout
        started = time.monotonic()
        load_environment()
        _setup_django()
        cap_address_space()
        if budget_ms is not None:
            _warn_about_timeouts(budget_ms)
        _relay_outbox()
        _done = True
        logger.info("Cold start done in %.0f ms", (time.monotonic() - started) * 1000)


def _setup_django() -> None:
    import django
    from django.apps import apps
    from django.conf import settings

    if apps.ready:  # already set up (management command, tests, a second cold start)
        return
    if not settings.configured and not os.environ.get(SETTINGS_VARIABLE):
        raise ValueError(
            f"{SETTINGS_VARIABLE} is not set: set it in the function's environment to the "
            "dotted path of your settings module (e.g. mysite.settings)"
        )
    if apps.loading:
        _forget_failed_populate()
    django.setup()


def _forget_failed_populate() -> None:
    """Let ``django.setup()`` run again after an earlier call failed half-way.

    ``Apps.populate()`` sets ``loading`` before importing the apps and never
    clears it when an import or a ``ready()`` raises, so every later call
    would fail with "populate() isn't reentrant" instead of trying again.
    Model classes that were already imported stay registered in
    ``apps.all_models`` and are picked up again.
    """
    from django.apps import apps

    logger.warning("An earlier django.setup() failed in this process; trying it again")
    apps.app_configs = {}
    apps.apps_ready = apps.models_ready = apps.ready = False
    apps.loading = False
    apps.clear_cache()


def _relay_outbox() -> None:
    """Send what an earlier outage left in the outbox (``LAMBDA_TASKS_OUTBOX``); never raises."""
    from lambda_tasks_django.settings import get_settings

    try:
        uses_outbox = get_settings().uses_outbox
    except Exception:  # invalid settings: relay_at_start logs them
        uses_outbox = True
    if not uses_outbox:  # the outbox module (and its SQS client module) stays unimported
        return
    from lambda_tasks_django.outbox import relay_at_start

    relay_at_start()


def _warn_about_timeouts(budget_ms: float) -> None:
    """Warn about tasks whose hard timeout reaches the function's whole timeout.

    Such a task cannot finish before Lambda stops the invocation, and with it
    the whole batch: a deployment error (raise the function timeout or lower
    the task's ``hard_timeout``).
    """
    from lambda_tasks_django.registry import registered
    from lambda_tasks_django.settings import get_settings

    try:
        get_settings()
    except Exception as exc:
        logger.warning("Invalid LAMBDA_TASKS_* settings: every record will fail: %s", exc)
        return
    budget_s = budget_ms / 1000
    for name, task in sorted(registered().items()):
        try:
            _soft, hard = task.timeouts()
        except Exception as exc:  # its messages will fail as configuration errors
            logger.warning("Task %s has invalid timeouts: %s", name, exc)
            continue
        if hard >= budget_s:
            logger.warning(
                "Task %s has a hard timeout of %g s, at or above this function's timeout "
                "(about %.0f s): Lambda would stop the invocation, failing its whole batch. "
                "Raise the function timeout or lower the task's hard_timeout.",
                name,
                hard,
                budget_s,
            )
