"""``@lambda_task``: turn a function into a task (SPEC §2)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar, overload

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from lambda_tasks_core import TaskMessage, TaskOptions, TaskSignature, resolve_timeouts
from lambda_tasks_core.options import validate_delay
from lambda_tasks_django.execution import Attempt
from lambda_tasks_django.invocation import TaskInvocation
from lambda_tasks_django.registry import register

__all__ = ["LambdaTask", "lambda_task"]

P = ParamSpec("P")
R = TypeVar("R")


class LambdaTask(Generic[P, R]):
    """A decorated task function.

    Calling it runs the function synchronously (kwargs validated strictly; no
    record, no transaction, no timeouts). :meth:`execute_on_commit` dispatches it.
    """

    # Copied from the function by functools.update_wrapper; declared for type checkers.
    __name__: str
    __qualname__: str
    __wrapped__: Callable[P, R]

    def __init__(self, func: Callable[P, R], options: TaskOptions) -> None:
        self.func = func
        self.options = options
        self.name = options.task_name
        self.signature = TaskSignature(func, self.name)
        functools.update_wrapper(self, func)
        self.__wrapped__ = func

    def __repr__(self) -> str:
        return f"<LambdaTask {self.name}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if args:
            raise TypeError(f"task {self.name} takes keyword arguments only")
        validated = self.signature.validate_python(kwargs)
        return self.func(**validated)  # type: ignore[call-arg]

    def run_validated(self, kwargs: dict[str, Any]) -> R:
        """Run with kwargs that were already validated (the executor's path)."""
        return self.func(**kwargs)  # type: ignore[call-arg]

    # The executor's interface (lambda_tasks_django.execution.Runnable).

    def prepare(self, message: TaskMessage) -> dict[str, Any]:
        """The message's kwargs rebuilt and validated from their JSON form."""
        if message.args:
            raise TypeError(f"task {self.name} takes keyword arguments only, got args")
        return self.signature.validate_json(message.kwargs)

    def run(self, prepared: dict[str, Any], attempt: Attempt) -> R:
        return self.run_validated(prepared)

    def finished(self, attempt: Attempt, status: str, value: Any, error: str | None) -> None:
        """Called once the attempt's outcome is recorded (nothing to do for @lambda_task)."""

    def timeouts(self) -> tuple[float, float]:
        """(soft, hard) seconds: the task's options, else the settings defaults."""
        from lambda_tasks_django.settings import get_settings

        conf = get_settings()
        return resolve_timeouts(self.options, conf.default_soft_timeout, conf.default_hard_timeout)

    def invocation(
        self, kwargs: dict[str, Any], delay: int | None = None, group: str | None = None
    ) -> TaskInvocation:
        """Validate a call and build its (not yet enqueued) invocation."""
        if delay is not None:
            validate_delay(delay, f"task {self.name}: _delay")
        message = TaskMessage(task_name=self.name, kwargs=self._json_kwargs(kwargs))
        return TaskInvocation(
            message=message,
            delay=self.options.delay if delay is None else delay,
            queue=self.options.queue,
            group=group if group is not None else self.options.fifo_group,
        )

    def _json_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Validated kwargs in their wire form; ``ValueError`` when JSON cannot carry them."""
        try:
            json_kwargs = self.signature.to_json_compatible(kwargs)
            # NaN and Infinity pass pydantic but would reach the task as null.
            json.dumps(json_kwargs, allow_nan=False)
        except (PydanticSerializationError, ValueError) as exc:
            if isinstance(exc, ValidationError):
                raise
            raise ValueError(
                f"task {self.name}: the kwargs cannot be sent as JSON ({exc}); pass JSON "
                "values, datetime, UUID, Decimal, enums or pydantic models"
            ) from exc
        return json_kwargs

    def execute_on_commit(
        self, *, _delay: int | None = None, _group: str | None = None, **kwargs: Any
    ) -> str:
        """Validate now, dispatch after the current transaction commits.

        Runs at once when no transaction is open. ``_delay`` overrides the
        task's ``delay`` and ``_group`` its FIFO group for this call. Returns
        the invocation id.
        """
        return self.invocation(kwargs, _delay, _group).execute_on_commit()

    def serialize(self, *, _delay: int | None = None, **kwargs: Any) -> dict[str, Any]:
        """The validated call as a JSON-compatible dict, for :meth:`TaskInvocation.from_dict`."""
        return self.invocation(kwargs, _delay).serialize()


@overload
def lambda_task(func: Callable[P, R], /) -> LambdaTask[P, R]: ...


@overload
def lambda_task(
    *,
    queue: str = ...,
    soft_timeout: float | None = ...,
    hard_timeout: float | None = ...,
    retry_on: tuple[type[BaseException], ...] | type[BaseException] = ...,
    ignore_errors: tuple[type[BaseException], ...] | type[BaseException] = ...,
    retry_delay: int = ...,
    delay: int = ...,
    singleton: bool = ...,
    retry_singleton: bool = ...,
    fifo_group: str | None = ...,
) -> Callable[[Callable[P, R]], LambdaTask[P, R]]: ...


def lambda_task(
    func: Callable[P, R] | None = None, /, **options: Any
) -> LambdaTask[P, R] | Callable[[Callable[P, R]], LambdaTask[P, R]]:
    """Declare a task: ``@lambda_task`` or ``@lambda_task(queue=..., retry_on=(...), ...)``.

    Every parameter must be keyword-only and annotated. Options are checked
    here; errors name the task and the option or parameter.
    """

    def decorate(f: Callable[P, R]) -> LambdaTask[P, R]:
        if not callable(f):
            raise TypeError(f"@lambda_task decorates functions, got {f!r}")
        name = f"{f.__module__}.{f.__qualname__}"
        task = LambdaTask(f, TaskOptions.build(name, **options))
        register(task)
        return task

    if func is not None:
        return decorate(func)
    return decorate
