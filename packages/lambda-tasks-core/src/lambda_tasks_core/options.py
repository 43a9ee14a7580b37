"""Task options and their decoration-time validation (SPEC §2)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lambda_tasks_core.exceptions import SingletonLocked, TaskDefinitionError
from lambda_tasks_core.limits import MAX_DELAY_SECONDS, MAX_TIMEOUT_SECONDS

__all__ = ["TaskOptions", "resolve_timeouts", "validate_delay", "validate_fifo_group"]

ExceptionTypes = tuple[type[BaseException], ...]

# SQS MessageGroupId: 1-128 characters of alphanumerics and punctuation.
# Matched with fullmatch: "$" would also accept a trailing newline.
_FIFO_GROUP = re.compile(r"""[A-Za-z0-9!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]{1,128}""")


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """The validated options of one task; build it with :meth:`build`."""

    task_name: str
    queue: str = "default"
    soft_timeout: float | None = None
    hard_timeout: float | None = None
    retry_on: ExceptionTypes = ()
    ignore_errors: ExceptionTypes = ()
    retry_delay: int = 0
    delay: int = 0
    singleton: bool = False
    retry_singleton: bool = True
    fifo_group: str | None = None

    @classmethod
    def build(cls, task_name: str, **options: Any) -> TaskOptions:
        """Validate decorator options; errors name the task and the option."""
        unknown = set(options) - (set(cls.__dataclass_fields__) - {"task_name"})
        if unknown:
            raise TaskDefinitionError(
                f"task {task_name}: unknown option(s) {', '.join(sorted(unknown))}"
            )
        opts = cls(task_name=task_name, **options)
        opts._validate()
        return opts

    def _fail(self, option: str, problem: str, exc: type[Exception] = ValueError) -> None:
        raise exc(f"task {self.task_name}: option {option!r} {problem}")

    def _validate(self) -> None:
        if not isinstance(self.queue, str) or not self.queue:
            self._fail("queue", "must be a non-empty string", TypeError)
        for name in ("soft_timeout", "hard_timeout"):
            value = getattr(self, name)
            if value is not None:
                _check_seconds(self.task_name, name, value)
        if (
            self.soft_timeout is not None
            and self.hard_timeout is not None
            and self.soft_timeout >= self.hard_timeout
        ):
            self._fail(
                "soft_timeout",
                f"({self.soft_timeout}) must be below hard_timeout ({self.hard_timeout})",
            )
        object.__setattr__(self, "retry_on", _exception_types(self, "retry_on", self.retry_on))
        object.__setattr__(
            self, "ignore_errors", _exception_types(self, "ignore_errors", self.ignore_errors)
        )
        for retried in self.retry_on:
            for ignored in self.ignore_errors:
                if issubclass(retried, ignored) or issubclass(ignored, retried):
                    self._fail(
                        "retry_on",
                        f"overlaps ignore_errors: {retried.__name__} and {ignored.__name__} "
                        "are related by subclassing, so which one applies would be ambiguous",
                        TypeError,
                    )
        validate_delay(self.retry_delay, f"task {self.task_name}: option 'retry_delay'")
        if self.retry_delay and not self.retry_on:
            self._fail("retry_delay", "needs retry_on: without it the task never retries")
        validate_delay(self.delay, f"task {self.task_name}: option 'delay'")
        for name in ("singleton", "retry_singleton"):
            if not isinstance(getattr(self, name), bool):
                self._fail(name, "must be True or False", TypeError)
        if self.singleton:
            for retried in self.retry_on:
                if issubclass(SingletonLocked, retried):
                    self._fail(
                        "retry_on",
                        f"contains {retried.__name__}, which catches SingletonLocked: lock "
                        "contention of a singleton task already retries (see retry_singleton)",
                        TypeError,
                    )
        if self.fifo_group is not None:
            validate_fifo_group(self.fifo_group, f"task {self.task_name}: option 'fifo_group'")


def validate_delay(value: object, what: str) -> int:
    """Check an SQS delay (whole seconds, 0–900); ``what`` names it in errors."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be a whole number of seconds, got {value!r}")
    if not 0 <= value <= MAX_DELAY_SECONDS:
        raise ValueError(f"{what} must be between 0 and {MAX_DELAY_SECONDS} s, got {value}")
    return value


def validate_fifo_group(value: object, what: str) -> str:
    """Check an SQS MessageGroupId; ``what`` names it in errors."""
    if not isinstance(value, str) or not _FIFO_GROUP.fullmatch(value):
        raise ValueError(
            f"{what} must be 1-128 letters, digits or punctuation (an SQS MessageGroupId), "
            f"got {value!r}"
        )
    return value


def resolve_timeouts(
    options: TaskOptions, default_soft: float, default_hard: float
) -> tuple[float, float]:
    """The (soft, hard) limits of a task: its own options, else the settings defaults."""
    soft = options.soft_timeout if options.soft_timeout is not None else default_soft
    hard = options.hard_timeout if options.hard_timeout is not None else default_hard
    origin = {
        "soft": "soft_timeout"
        if options.soft_timeout is not None
        else "LAMBDA_TASKS_DEFAULT_SOFT_TIMEOUT",
        "hard": "hard_timeout"
        if options.hard_timeout is not None
        else "LAMBDA_TASKS_DEFAULT_HARD_TIMEOUT",
    }
    _check_seconds(options.task_name, origin["soft"], soft)
    _check_seconds(options.task_name, origin["hard"], hard)
    if soft >= hard:
        raise ValueError(
            f"task {options.task_name}: soft timeout {soft} s (from {origin['soft']}) must be "
            f"below hard timeout {hard} s (from {origin['hard']})"
        )
    return soft, hard


def _check_seconds(task_name: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"task {task_name}: {name!r} must be a number of seconds, got {value!r}")
    if not 0 < value <= MAX_TIMEOUT_SECONDS:
        raise ValueError(
            f"task {task_name}: {name!r} must be above 0 and at most "
            f"{MAX_TIMEOUT_SECONDS} s (Lambda's limit), got {value}"
        )


def _exception_types(opts: TaskOptions, name: str, value: object) -> ExceptionTypes:
    items: Iterable[object]
    if isinstance(value, type):
        items = (value,)
    elif isinstance(value, tuple | list | set | frozenset):
        items = value
    else:
        raise TypeError(
            f"task {opts.task_name}: option {name!r} must be a tuple of exception types, "
            f"got {value!r}"
        )
    result: list[type[BaseException]] = []
    for item in items:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise TypeError(
                f"task {opts.task_name}: option {name!r} must contain exception types only, "
                f"got {item!r}"
            )
        result.append(item)
    return tuple(result)
