"""A ``django.tasks`` backend that runs tasks through lambda-tasks (SPEC §10, Django ≥ 6.0).

``TASKS = {"default": {"BACKEND": "lambda_tasks_django.backends.LambdaTasksBackend"}}``
lets code written against ``django.tasks`` run through the configured mode
(eager, local, SQS, noop), the same executor, records and Lambda handler.
The ``TaskResult`` id is the invocation id.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import datetime
import inspect
import math
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from django.core import checks
from django.db import connections
from django.tasks import Task, TaskContext, TaskResult, TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import TaskError
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.utils import timezone
from django.utils.json import normalize_json

from lambda_tasks_core import TaskMessage, TaskOptions
from lambda_tasks_core.limits import MAX_DELAY_SECONDS
from lambda_tasks_django.execution import Attempt
from lambda_tasks_django.invocation import TaskInvocation
from lambda_tasks_django.models import TaskRecord
from lambda_tasks_django.registry import find, register, resolve
from lambda_tasks_django.settings import Mode, find_problems, get_settings

__all__ = ["LambdaTasksBackend", "LambdaTasksTask", "task_options"]

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS_ATTRIBUTE = "_lambda_tasks_options"
# The options of @lambda_task that make sense for a django.tasks task; queue
# and delay come from Django's own queue_name and run_after.
_TASK_OPTIONS = (
    "soft_timeout",
    "hard_timeout",
    "retry_on",
    "ignore_errors",
    "retry_delay",
    "singleton",
    "retry_singleton",
    "fifo_group",
)
_STATUS = {
    TaskRecord.TaskStatus.READY: TaskResultStatus.READY,
    TaskRecord.TaskStatus.RUNNING: TaskResultStatus.RUNNING,
    # A retry is queued: the task is ready to be executed again.
    TaskRecord.TaskStatus.RETRIED: TaskResultStatus.READY,
    TaskRecord.TaskStatus.SUCCEEDED: TaskResultStatus.SUCCESSFUL,
    TaskRecord.TaskStatus.FAILED: TaskResultStatus.FAILED,
}


def task_options(**options: Any) -> Callable[[F], F]:
    """Give a ``django.tasks`` task lambda-tasks options on any Django version.

    Put it *below* ``@task``::

        @task
        @task_options(hard_timeout=60, retry_on=(ConnectionError,))
        def sync_inventory(sku: str) -> None: ...

    On Django ≥ 6.1 the options may also be passed to ``@task(...)`` directly.
    """
    unknown = set(options) - set(_TASK_OPTIONS)
    if unknown:
        raise TypeError(f"task_options() got unknown option(s): {', '.join(sorted(unknown))}")

    def decorate(func: F) -> F:
        setattr(func, _OPTIONS_ATTRIBUTE, dict(options))
        return func

    return decorate


if TYPE_CHECKING:
    _Task = Task[Any, Any]
else:
    _Task = Task


@dataclass(frozen=True, slots=True, kw_only=True)
class LambdaTasksTask(_Task):
    """The backend's ``task_class``: Django's Task plus lambda-tasks options (Django ≥ 6.1)."""

    soft_timeout: float | None = None
    hard_timeout: float | None = None
    retry_on: tuple[type[BaseException], ...] = ()
    ignore_errors: tuple[type[BaseException], ...] = ()
    retry_delay: int = 0
    singleton: bool = False
    retry_singleton: bool = True
    fifo_group: str | None = None


class DjangoTask:
    """Adapts a ``django.tasks.Task`` to the executor (what ``@lambda_task`` offers)."""

    def __init__(
        self, task: Task[Any, Any], options: TaskOptions, backend: LambdaTasksBackend
    ) -> None:
        self.task = task
        self.options = options
        self.name = options.task_name
        self.backend = backend

    def timeouts(self) -> tuple[float, float]:
        from lambda_tasks_core import resolve_timeouts
        from lambda_tasks_django.settings import get_settings

        conf = get_settings()
        return resolve_timeouts(self.options, conf.default_soft_timeout, conf.default_hard_timeout)

    def prepare(self, message: TaskMessage) -> dict[str, Any]:
        """Check that the message's args and kwargs fit the function (before any record)."""
        args = list(message.args or [])
        parameters = inspect.signature(self.task.func)
        leading = (None,) if self.task.takes_context else ()
        try:
            parameters.bind(*leading, *args, **message.kwargs)
        except TypeError as exc:
            raise TypeError(f"task {self.name}: arguments do not fit the function: {exc}") from exc
        return {"args": args, "kwargs": dict(message.kwargs)}

    def run(self, prepared: dict[str, Any], attempt: Attempt) -> Any:
        result = self._task_result(attempt, TaskResultStatus.RUNNING)
        task_started.send(type(self.backend), task_result=result)
        args, kwargs = prepared["args"], prepared["kwargs"]
        try:
            if self.task.takes_context:
                value = self.task.call(TaskContext(task_result=result), *args, **kwargs)
            else:
                value = self.task.call(*args, **kwargs)
            # As Django's backends do: a tuple comes back as a list, and what
            # JSON cannot hold fails the task with Django's "Unsupported type".
            return normalize_json(value)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            _failure.set((attempt.record_id, exc))
            raise

    def finished(self, attempt: Attempt, record_status: str, value: Any, error: str | None) -> None:
        failure = _failure.get()
        _failure.set(None)
        status = _STATUS[TaskRecord.TaskStatus(record_status)]
        errors = [_task_error(error)] if error and status != TaskResultStatus.SUCCESSFUL else []
        result = self._task_result(attempt, status, errors=errors, finished_at=timezone.now())
        if status == TaskResultStatus.SUCCESSFUL:
            object.__setattr__(result, "_return_value", value)
        if status == TaskResultStatus.FAILED and failure and failure[0] == attempt.record_id:
            _send_while_handling(failure[1], type(self.backend), result)
        else:
            task_finished.send(type(self.backend), task_result=result)

    def _task_result(
        self,
        attempt: Attempt,
        status: TaskResultStatus,
        errors: list[TaskError] | None = None,
        finished_at: datetime.datetime | None = None,
    ) -> TaskResult[Any, Any]:
        return TaskResult(
            task=self.task,
            id=attempt.invocation_id,
            status=status,
            enqueued_at=attempt.enqueued_at,
            started_at=attempt.started_at,
            finished_at=finished_at,
            last_attempted_at=attempt.started_at,
            args=list(attempt.message.args or []),
            kwargs=dict(attempt.message.kwargs),
            backend=self.backend.alias,
            errors=errors or [],
            worker_ids=[attempt.worker_id] * (attempt.message.n_retries + 1),
        )


# The exception of the attempt that just failed in DjangoTask.run(), for its
# finished() call: the executor hands finished() the traceback text only.
_failure: contextvars.ContextVar[tuple[str, BaseException] | None] = contextvars.ContextVar(
    "lambda_tasks_django_failure", default=None
)


def _send_while_handling(
    exc: BaseException, sender: type[BaseTaskBackend], result: TaskResult[Any, Any]
) -> None:
    """Send ``task_finished`` with ``exc`` as the exception being handled.

    Django's receiver logs the failure with ``sys.exc_info()`` (its backends send
    the signal inside their ``except`` block), so the exception must be the one
    being handled; its traceback is put back so the log shows the task's frames only.
    """
    traceback = exc.__traceback__
    try:
        raise exc
    except BaseException:
        exc.__traceback__ = traceback
        task_finished.send(sender, task_result=result)


class LambdaTasksBackend(BaseTaskBackend):
    """Runs ``django.tasks`` tasks through lambda-tasks' modes, records and handler."""

    task_class = LambdaTasksTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = False

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)

    def validate_task(self, task: Task[Any, Any]) -> None:
        super().validate_task(task)
        options = self._options(task)
        # Register the task as decorated, not each variant: Task.using() validates
        # every variant it makes, and one variant's queue_name must not become the
        # queue_name that get_result() reports (or the queue the checks and retries
        # use) for every other invocation of the same function.
        current = find(task.module_path)
        if not (isinstance(current, DjangoTask) and current.task.func is task.func):
            register(DjangoTask(task, options, self))
        if task.run_after is not None:
            self._delay(task.run_after)

    def _options(self, task: Task[Any, Any]) -> TaskOptions:
        values = dict(getattr(task.func, _OPTIONS_ATTRIBUTE, {}))
        if isinstance(task, LambdaTasksTask):
            for name in _TASK_OPTIONS:
                value = getattr(task, name)
                if value != LambdaTasksTask.__dataclass_fields__[name].default:
                    values[name] = value
        try:
            return TaskOptions.build(task.module_path, queue=task.queue_name, **values)
        except (TypeError, ValueError) as exc:
            raise InvalidTask(str(exc)) from exc

    def _delay(self, run_after: datetime.datetime) -> int:
        seconds = (run_after - timezone.now()).total_seconds()
        if seconds > MAX_DELAY_SECONDS:
            raise InvalidTask(
                f"run_after must be at most {MAX_DELAY_SECONDS} s from now (the SQS delay "
                f"limit), got {math.ceil(seconds)} s"
            )
        return max(0, math.ceil(seconds))

    def enqueue(
        self, task: Task[Any, Any], args: Sequence[Any], kwargs: dict[str, Any]
    ) -> TaskResult[Any, Any]:
        from lambda_tasks_django.dispatch import enqueue_now

        self.validate_task(task)
        try:
            json_args: list[Any] = normalize_json(list(args))  # type: ignore[assignment]
            json_kwargs: dict[str, Any] = normalize_json(dict(kwargs))  # type: ignore[assignment]
        except TypeError as exc:
            raise TypeError(
                f"task {task.module_path}: arguments must be JSON-serialisable: {exc}"
            ) from exc
        delay = self._delay(task.run_after) if task.run_after is not None else 0
        invocation = TaskInvocation(
            message=TaskMessage(task_name=task.module_path, kwargs=json_kwargs, args=json_args),
            delay=delay,
            queue=task.queue_name,
        )
        enqueued_at = timezone.now()
        ready: list[TaskResult[Any, Any]] = []

        def announce(recorded: TaskInvocation) -> None:
            assert recorded.invocation_id is not None
            result: TaskResult[Any, Any] = TaskResult(
                task=task,
                id=recorded.invocation_id,
                status=TaskResultStatus.READY,
                enqueued_at=enqueued_at,
                started_at=None,
                finished_at=None,
                last_attempted_at=None,
                args=json_args,
                kwargs=json_kwargs,
                backend=self.alias,
                errors=[],
                worker_ids=[],
            )
            ready.append(result)
            task_enqueued.send(type(self), task_result=result)

        invocation = enqueue_now(invocation, enqueued_at=enqueued_at, before_send=announce)
        assert invocation.invocation_id is not None
        if get_settings().mode is Mode.EAGER:
            # It has run (retries included): hand back the outcome, as the
            # immediate backend does, for the task as it was enqueued.
            return _with_task(self._read_result(invocation.invocation_id), task)
        return ready[0]

    def get_result(self, result_id: str) -> TaskResult[Any, Any]:
        """The invocation's result, read from its ``TaskRecord`` rows (the latest attempt's state).

        Also works when called from async code (e.g. ``TaskResult.refresh()`` in an
        async view), where Django refuses the ORM: the rows are then read in a
        thread of their own, on a connection of its own (committed data only).
        ``aget_result()`` does not block the event loop; prefer it there.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._read_result(result_id)
        with ThreadPoolExecutor(1, thread_name_prefix="lambda-tasks-get-result") as pool:
            return pool.submit(_closing_connections, self._read_result, result_id).result()

    def _read_result(self, result_id: str) -> TaskResult[Any, Any]:
        records = list(TaskRecord.objects.filter(invocation_id=result_id).order_by("n_retries"))
        if not records:
            raise TaskResultDoesNotExist(result_id)
        first, latest = records[0], records[-1]
        try:
            adapter = resolve(latest.task_name)
        except LookupError as exc:
            raise TaskResultDoesNotExist(result_id) from exc
        if not isinstance(adapter, DjangoTask):
            raise TaskResultDoesNotExist(result_id)
        status = _STATUS[TaskRecord.TaskStatus(latest.status)]
        task = adapter.task
        if first.queue and first.queue != task.queue_name:
            # Like Django's backends, report the task as it was enqueued: a
            # Task.using(queue_name=...) variant keeps its queue in the record.
            # (A queue no longer valid for this backend: the task as decorated.)
            with contextlib.suppress(InvalidTask):
                task = task.using(queue_name=first.queue)
        if task.backend != self.alias:
            # Enqueued with Task.using(backend=...): the result is this backend's.
            with contextlib.suppress(InvalidTask):
                task = task.using(backend=self.alias)
        result: TaskResult[Any, Any] = TaskResult(
            task=task,
            id=result_id,
            status=status,
            enqueued_at=first.enqueued_at,
            started_at=first.start_time if first.status != TaskRecord.TaskStatus.READY else None,
            finished_at=latest.end_time if status in _FINISHED else None,
            last_attempted_at=(
                latest.start_time if latest.status != TaskRecord.TaskStatus.READY else None
            ),
            args=list(first.args or []),
            kwargs=dict(first.kwargs),
            backend=self.alias,
            errors=[_task_error(r.traceback) for r in records if r.traceback and _failed(r)],
            worker_ids=[
                r.worker_id or "unknown" for r in records if r.status != TaskRecord.TaskStatus.READY
            ],
        )
        if status == TaskResultStatus.SUCCESSFUL:
            object.__setattr__(result, "_return_value", latest.result)
        return result

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        messages: list[checks.CheckMessage] = []
        conf, _ = find_problems()
        if conf.queues:
            for queue in sorted(self.queues - set(conf.queues)):
                messages.append(
                    checks.Error(
                        f"TASKS[{self.alias!r}] lists queue {queue!r}, which "
                        "LAMBDA_TASKS_QUEUES does not define.",
                        hint="The TASKS entry may only list a subset of LAMBDA_TASKS_QUEUES.",
                        obj=f"TASKS[{self.alias!r}]",
                        id="lambda_tasks.E030",
                    )
                )
        unknown = set(self.options)
        if unknown:
            messages.append(
                checks.Error(
                    f"TASKS[{self.alias!r}]['OPTIONS'] has unknown keys: "
                    f"{', '.join(sorted(unknown))}.",
                    hint="Configure lambda-tasks with the LAMBDA_TASKS_* settings.",
                    obj=f"TASKS[{self.alias!r}]",
                    id="lambda_tasks.E031",
                )
            )
        return messages


_FINISHED = {TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED}


def _with_task(result: TaskResult[Any, Any], task: Task[Any, Any]) -> TaskResult[Any, Any]:
    """``result`` for ``task`` (records do not keep a variant's run_after or backend)."""
    if result.task == task:
        return result
    changed = dataclasses.replace(result, task=task)
    # The stubs lack _return_value, which dataclasses.replace() does not copy (init=False).
    object.__setattr__(changed, "_return_value", getattr(result, "_return_value"))  # noqa: B009
    return changed


def _closing_connections(
    read: Callable[[str], TaskResult[Any, Any]], result_id: str
) -> TaskResult[Any, Any]:
    try:
        return read(result_id)
    finally:
        # The thread ends here; its connections must not outlive it.
        connections.close_all()


def _failed(record: TaskRecord) -> bool:
    return record.status in {TaskRecord.TaskStatus.FAILED, TaskRecord.TaskStatus.RETRIED}


# The first line of a traceback, and of an exception group's (whose lines are prefixed "  | ").
_TRACEBACK = "Traceback (most recent call last):"
_GROUP_TRACEBACK = "  + Exception Group Traceback (most recent call last):"
_EXCEPTION_NAME = re.compile(r"[^\W\d]\w*(\.[^\W\d]\w*)*")  # dotted identifiers


def _task_error(traceback_text: str) -> TaskError:
    """A TaskError from a recorded traceback, naming the exception class it ends with.

    The class starts the first unindented line after the last traceback's frames
    (``module.Class: message``). It is not the text's last line: a multi-line
    message and the exception's notes (``add_note``) follow it.
    """
    lines = traceback_text.splitlines()
    start = max(
        (n for n, line in enumerate(lines) if line in (_TRACEBACK, _GROUP_TRACEBACK)), default=-1
    )
    name = ""
    if start >= 0:
        group = lines[start] == _GROUP_TRACEBACK
        for line in lines[start + 1 :]:
            if group and line.startswith("  | "):
                line = line[4:]
            if not line or line[0].isspace():
                continue  # a frame, its source line or its ^^^ markers
            name = line.split(":", 1)[0].strip()
            break
    if not _EXCEPTION_NAME.fullmatch(name):
        name = "Exception"
    if "." not in name:
        name = f"builtins.{name}"
    return TaskError(exception_class_path=name, traceback=traceback_text)
