"""The ``LAMBDA_TASKS_*`` settings, read and validated in one place (SPEC §11)."""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from lambda_tasks_core.limits import MAX_TIMEOUT_SECONDS

__all__ = ["Mode", "SettingProblem", "TasksSettings", "find_problems", "get_settings"]

PREFIX = "LAMBDA_TASKS_"
# n_retries is a PositiveSmallIntegerField: 32767 on every database Django supports.
_MAX_RETRIES_LIMIT = 32766


class Mode(enum.Enum):
    """How dispatched tasks run (SPEC §5)."""

    EAGER = "eager"
    LOCAL = "local"
    SQS = "sqs"
    NOOP = "noop"


@dataclass(frozen=True)
class SettingProblem:
    """One invalid setting; also reported as the system check ``lambda_tasks.<check_id>``."""

    check_id: str
    setting: str
    message: str
    hint: str


@dataclass(frozen=True)
class TasksSettings:
    """Validated ``LAMBDA_TASKS_*`` settings."""

    queues: dict[str, str] = field(default_factory=dict)
    eager: bool = False
    local_workers: int = 0
    noop_execution: bool = False
    outbox: bool = False
    default_soft_timeout: float = 270
    default_hard_timeout: float = 300
    max_retries: int = 2880
    singleton_cache: str = "default"
    handler_time_margin: float = 5

    @property
    def mode(self) -> Mode:
        if self.eager:
            return Mode.EAGER
        if self.local_workers > 0:
            return Mode.LOCAL
        if self.noop_execution:
            return Mode.NOOP
        return Mode.SQS

    @property
    def uses_outbox(self) -> bool:
        """Whether invocations go through the outbox: ``LAMBDA_TASKS_OUTBOX`` in SQS mode."""
        return self.outbox and self.mode is Mode.SQS

    def queue_url(self, queue: str) -> str:
        """The SQS URL of a named queue; ``ImproperlyConfigured`` when it is not configured."""
        try:
            return self.queues[queue]
        except KeyError:
            raise ImproperlyConfigured(_unknown_queue(queue, self.queues)) from None

    def check_queue(self, queue: str) -> None:
        """Refuse a queue name unknown to ``LAMBDA_TASKS_QUEUES`` (when that setting is given).

        Checked at enqueue time in every mode, so typos surface on a laptop.
        """
        if (self.queues or self.mode is Mode.SQS) and queue not in self.queues:
            raise ImproperlyConfigured(_unknown_queue(queue, self.queues))


def _unknown_queue(queue: str, queues: dict[str, str]) -> str:
    known = ", ".join(sorted(queues)) or "none"
    return f"Queue {queue!r} is not defined in LAMBDA_TASKS_QUEUES (defined: {known})."


def _raw(name: str, default: Any) -> Any:
    return getattr(django_settings, PREFIX + name, default)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def find_problems() -> tuple[TasksSettings, list[SettingProblem]]:
    """Read every setting; return what could be read and every problem found."""
    defaults = TasksSettings()
    problems: list[SettingProblem] = []

    def problem(check_id: str, name: str, message: str, hint: str) -> None:
        problems.append(SettingProblem(check_id, PREFIX + name, message, hint))

    queues = _raw("QUEUES", None)
    if queues is not None and not (
        isinstance(queues, dict)
        and all(isinstance(k, str) and isinstance(v, str) and v for k, v in queues.items())
    ):
        problem(
            "E001",
            "QUEUES",
            "LAMBDA_TASKS_QUEUES must be a dict of queue name to SQS queue URL.",
            'For example {"default": "https://sqs.eu-west-1.amazonaws.com/123456789012/tasks"}.',
        )
        queues = None
    elif queues is not None and "default" not in queues:
        problem(
            "E002",
            "QUEUES",
            "LAMBDA_TASKS_QUEUES must define the 'default' queue.",
            "Tasks without a queue option go to 'default'.",
        )
    flags = {}
    for name, check_id in (("EAGER", "E003"), ("NOOP_EXECUTION", "E003"), ("OUTBOX", "E003")):
        value = _raw(name, False)
        if not isinstance(value, bool):
            problem(check_id, name, f"{PREFIX}{name} must be True or False.", "")
            value = False
        flags[name] = value
    workers = _raw("LOCAL_WORKERS", 0)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        problem(
            "E004",
            "LOCAL_WORKERS",
            "LAMBDA_TASKS_LOCAL_WORKERS must be a whole number of worker processes, 0 or more.",
            "0 disables the local runner.",
        )
        workers = 0
    enabled = [
        n
        for n, on in (
            ("EAGER", flags["EAGER"]),
            ("LOCAL_WORKERS", workers > 0),
            ("NOOP_EXECUTION", flags["NOOP_EXECUTION"]),
        )
        if on
    ]
    if len(enabled) > 1:
        problem(
            "E005",
            enabled[0],
            f"{' and '.join(PREFIX + n for n in enabled)} are mutually exclusive.",
            "Choose one execution mode: eager, local workers, noop, or SQS (none of them).",
        )
    timeouts: dict[str, float] = {}
    for name, default in (
        ("DEFAULT_SOFT_TIMEOUT", defaults.default_soft_timeout),
        ("DEFAULT_HARD_TIMEOUT", defaults.default_hard_timeout),
    ):
        value = _raw(name, default)
        if not _is_number(value) or not 0 < value <= MAX_TIMEOUT_SECONDS:
            problem(
                "E006",
                name,
                f"{PREFIX}{name} must be a number of seconds above 0 and at most "
                f"{MAX_TIMEOUT_SECONDS}.",
                "Lambda stops any invocation after 900 s.",
            )
            value = default
        timeouts[name] = value
    if timeouts["DEFAULT_SOFT_TIMEOUT"] >= timeouts["DEFAULT_HARD_TIMEOUT"]:
        problem(
            "E006",
            "DEFAULT_SOFT_TIMEOUT",
            "LAMBDA_TASKS_DEFAULT_SOFT_TIMEOUT must be below LAMBDA_TASKS_DEFAULT_HARD_TIMEOUT.",
            "The soft limit gives the task a chance to clean up before the hard one.",
        )
    max_retries = _raw("MAX_RETRIES", defaults.max_retries)
    if (
        isinstance(max_retries, bool)
        or not isinstance(max_retries, int)
        or not 0 <= max_retries <= _MAX_RETRIES_LIMIT
    ):
        problem(
            "E007",
            "MAX_RETRIES",
            f"LAMBDA_TASKS_MAX_RETRIES must be an integer from 0 to {_MAX_RETRIES_LIMIT}.",
            "TaskRecord.n_retries is a small integer column (django-lambda-tasks' schema).",
        )
        max_retries = defaults.max_retries
    cache = _raw("SINGLETON_CACHE", defaults.singleton_cache)
    if not isinstance(cache, str) or not cache:
        problem(
            "E008", "SINGLETON_CACHE", "LAMBDA_TASKS_SINGLETON_CACHE must be a cache alias.", ""
        )
        cache = defaults.singleton_cache
    margin = _raw("HANDLER_TIME_MARGIN", defaults.handler_time_margin)
    if not _is_number(margin) or margin < 0:
        problem(
            "E009",
            "HANDLER_TIME_MARGIN",
            "LAMBDA_TASKS_HANDLER_TIME_MARGIN must be a number of seconds ≥ 0.",
            "",
        )
        margin = defaults.handler_time_margin
    read = TasksSettings(
        queues=dict(queues or {}),
        eager=flags["EAGER"],
        local_workers=workers,
        noop_execution=flags["NOOP_EXECUTION"],
        outbox=flags["OUTBOX"],
        default_soft_timeout=timeouts["DEFAULT_SOFT_TIMEOUT"],
        default_hard_timeout=timeouts["DEFAULT_HARD_TIMEOUT"],
        max_retries=max_retries,
        singleton_cache=cache,
        handler_time_margin=margin,
    )
    return read, problems


@functools.cache
def get_settings() -> TasksSettings:
    """The validated settings; raises ``ImproperlyConfigured`` naming the first bad setting.

    Cached; the cache is cleared whenever Django reports a setting change
    (``override_settings`` in tests).
    """
    read, problems = find_problems()
    if problems:
        first = problems[0]
        raise ImproperlyConfigured(f"{first.message} {first.hint}".strip())
    return read


@receiver(setting_changed)
def _clear_cache(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith(PREFIX) or setting == "CACHES":
        get_settings.cache_clear()
