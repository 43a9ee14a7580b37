"""Django's own contract for ``django.tasks`` backends, checked against ours (issue #7).

Django's test suite for its built-in backends (``tests/tasks/`` in its source
distribution) pins what a backend's results look like and what it refuses.
Where that contract overlaps ours, these tests hold the backend to it: SQS
mode stands in for a queue-backed backend like the dummy one (the result is
READY until a worker runs it), eager mode for the immediate one. Where we
differ on purpose (no priorities, at most 900 s of run_after, results kept
in TaskRecord, ...) the tests pin our documented behaviour. Django's suite
itself runs against the backend through tests/conformance/.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import django
import pytest
from asgiref.sync import sync_to_async
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

pytestmark = [
    pytest.mark.skipif(django.VERSION < (6, 0), reason="django.tasks needs Django 6.0 or later"),
    pytest.mark.django_db,
]

if django.VERSION >= (6, 0):
    from django.tasks import (
        TaskResult,
        TaskResultStatus,
        default_task_backend,
        task,
        task_backends,
    )
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist, TaskResultMismatch
    from django.tasks.signals import task_enqueued, task_finished, task_started

    from lambda_tasks_core import TaskMessage
    from lambda_tasks_django.backends import LambdaTasksBackend
    from lambda_tasks_django.executor import Outcome, execute
    from lambda_tasks_django.models import TaskRecord
    from lambda_tasks_django.registry import resolve
    from tests.django.conftest import SqsMode
    from tests.testapp import django_tasks

TASKS_WITH_OPEN_QUEUES = {
    "default": {"BACKEND": "lambda_tasks_django.backends.LambdaTasksBackend", "QUEUES": []}
}
TASKS_WITH_ONE_QUEUE = {
    "default": {"BACKEND": "lambda_tasks_django.backends.LambdaTasksBackend", "QUEUES": ["default"]}
}


def run_next(sqs_mode: SqsMode, queue_url: str | None = None) -> tuple[Outcome, str]:
    """Be the worker: take the one message waiting on the queue and execute it."""
    (message,) = sqs_mode.receive(queue_url or sqs_mode.default, 1)
    invocation_id = message["MessageAttributes"]["lambda_tasks_invocation_id"]["StringValue"]
    return execute(TaskMessage.from_json(message["Body"]), invocation_id), invocation_id


def status_of(result: TaskResult[Any, Any]) -> TaskResultStatus:
    """The status now (mypy keeps an earlier narrowing of ``result.status`` across refresh())."""
    return result.status


@contextmanager
def recorded_signals() -> Iterator[list[tuple[str, Any, dict[str, Any]]]]:
    """(signal, sender, a copy of the fields of the task_result it carried), in order."""
    seen: list[tuple[str, Any, dict[str, Any]]] = []

    def recorder(name: str) -> Any:
        def receive(sender: Any, task_result: Any, **kwargs: Any) -> None:
            fields = {f.name: getattr(task_result, f.name) for f in dataclasses.fields(task_result)}
            seen.append((name, sender, fields))

        return receive

    receivers = [
        (task_enqueued, recorder("enqueued")),
        (task_started, recorder("started")),
        (task_finished, recorder("finished")),
    ]
    for signal, receiver in receivers:
        signal.connect(receiver)
    try:
        yield seen
    finally:
        for signal, receiver in receivers:
            signal.disconnect(receiver)


# The backend as configured


def _assert_timestamps_in_order(result: TaskResult[Any, Any]) -> None:
    """Every timestamp of a finished result is set, and they follow the run."""
    assert result.started_at is not None
    assert result.enqueued_at is not None
    assert result.finished_at is not None
    assert result.last_attempted_at is not None
    assert result.started_at >= result.enqueued_at
    assert result.finished_at >= result.started_at


def test_the_default_alias_is_our_backend_without_options() -> None:
    assert default_task_backend == task_backends["default"]
    assert isinstance(task_backends["default"], LambdaTasksBackend)
    assert default_task_backend.alias == "default"
    assert default_task_backend.options == {}


def test_a_valid_configuration_passes_the_backend_check_and_djangos_task_checks() -> None:
    assert default_task_backend.check() == []
    # django.tasks registers a system check that runs every backend's check().
    assert [m for m in checks.run_checks() if m.id and m.id.startswith("lambda_tasks.E03")] == []


def test_enqueue_on_commit_is_not_a_task_option_in_django_6() -> None:
    decorate: Any = task
    with pytest.raises(TypeError, match="enqueue_on_commit"):
        decorate(enqueue_on_commit=True)(django_tasks.multiply.func)
    assert not hasattr(default_task_backend, "enqueue_on_commit")


# What enqueue() returns, and what get_result() / refresh() read


@pytest.mark.parametrize("name", ["noop", "async_noop"])
def test_enqueue_returns_a_ready_result_until_a_worker_runs_it(
    sqs_mode: SqsMode, name: str
) -> None:
    the_task = getattr(django_tasks, name)
    before = timezone.now()

    result = the_task.enqueue(1, two=3)

    assert result.status == TaskResultStatus.READY
    assert result.is_finished is False
    assert isinstance(result.id, str)
    assert result.id
    assert isinstance(result.enqueued_at, datetime.datetime)
    assert timezone.is_aware(result.enqueued_at)
    assert before <= result.enqueued_at <= timezone.now()
    assert result.started_at is None
    assert result.last_attempted_at is None
    assert result.finished_at is None
    with pytest.raises(ValueError, match="Task has not finished yet"):
        _ = result.return_value
    assert result.task == the_task
    assert result.args == [1]
    assert result.kwargs == {"two": 3}
    assert result.backend == "default"
    assert result.errors == []
    assert result.worker_ids == []
    assert result.attempts == 0


def test_get_result_and_refresh_agree_with_the_enqueued_result(sqs_mode: SqsMode) -> None:
    result = django_tasks.noop.enqueue("x", key={"nested": [1]})
    snapshot = dataclasses.asdict(result)

    assert default_task_backend.get_result(result.id) == result
    assert django_tasks.noop.get_result(result.id) == result
    result.refresh()
    assert dataclasses.asdict(result) == snapshot


def test_refresh_reads_what_the_worker_did(sqs_mode: SqsMode) -> None:
    result = django_tasks.multiply.enqueue(6, b=7)

    run_next(sqs_mode)
    result.refresh()

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.is_finished is True
    assert result.return_value == 42
    assert result.started_at is not None
    assert result.enqueued_at is not None
    assert result.finished_at is not None
    assert result.started_at >= result.enqueued_at
    assert result.finished_at >= result.started_at
    assert result.last_attempted_at == result.started_at
    assert result.attempts == 1
    assert len(result.worker_ids) == 1
    assert result.worker_ids[0]
    assert result.errors == []


@pytest.mark.parametrize("name", ["noop", "async_noop"])
def test_an_eager_enqueue_has_run_the_task_when_it_returns(name: str) -> None:
    the_task = getattr(django_tasks, name)

    result = the_task.enqueue(1, two=3)

    # Like the immediate backend: the finished result, and refresh() agrees with it.
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.is_finished is True
    assert default_task_backend.get_result(result.id) == result
    assert result.return_value is None
    _assert_timestamps_in_order(result)
    assert result.task == the_task
    assert result.args == [1]
    assert result.kwargs == {"two": 3}
    assert result.attempts == 1


def test_a_queued_retry_is_ready_again_and_keeps_the_failed_attempt(
    sqs_mode: SqsMode, tmp_path: Path
) -> None:
    result = django_tasks.glitchy.enqueue(str(tmp_path / "counter"), fail_times=1)

    outcome, invocation_id = run_next(sqs_mode)
    assert outcome.retry is not None
    result.refresh()

    assert result.status == TaskResultStatus.READY
    assert result.is_finished is False
    assert result.attempts == 1
    assert result.finished_at is None
    assert result.started_at is not None
    assert result.last_attempted_at == result.started_at
    assert [e.exception_class for e in result.errors] == [django_tasks.Glitch]

    execute(outcome.retry.message, invocation_id)
    result.refresh()

    assert status_of(result) == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 2
    assert result.attempts == 2
    assert len(result.worker_ids) == 2
    assert result.last_attempted_at is not None
    assert result.last_attempted_at > result.started_at
    assert len(result.errors) == 1


def test_unknown_ids_raise_through_the_task_too() -> None:
    with pytest.raises(TaskResultDoesNotExist):
        django_tasks.multiply.get_result("123")


def test_a_result_read_through_another_task_is_a_mismatch() -> None:
    result = django_tasks.multiply.enqueue(2)

    with pytest.raises(TaskResultMismatch, match="Task does not match"):
        django_tasks.noop.get_result(result.id)


def test_get_result_reports_the_queue_name_the_task_was_enqueued_with(sqs_mode: SqsMode) -> None:
    # A Task.using() variant must not leak into other invocations of the same
    # function: before the fix, get_result() reported whichever variant had
    # been validated last.
    on_other = django_tasks.multiply.using(queue_name="other").enqueue(1)
    on_default = django_tasks.multiply.enqueue(2)
    django_tasks.multiply.using(queue_name="other")

    assert default_task_backend.get_result(on_other.id).task.queue_name == "other"
    assert default_task_backend.get_result(on_other.id) == on_other
    assert default_task_backend.get_result(on_default.id).task.queue_name == "default"
    assert default_task_backend.get_result(on_default.id) == on_default
    # The checks and the retries see the task as decorated.
    assert resolve("tests.testapp.django_tasks.multiply").options.queue == "default"
    sqs_mode.receive(sqs_mode.other, 1)
    sqs_mode.receive(sqs_mode.default, 1)


@pytest.mark.django_db(transaction=True)  # sync_to_async runs on another connection
def test_the_async_api_matches_the_sync_one() -> None:
    async def scenario() -> None:
        try:
            result = await django_tasks.noop.aenqueue(1, two=3)
            assert result.status == TaskResultStatus.SUCCESSFUL
            assert result.args == [1]
            assert result.kwargs == {"two": 3}

            await result.arefresh()
            assert status_of(result) == TaskResultStatus.SUCCESSFUL
            assert result.attempts == 1
            assert await django_tasks.noop.aget_result(result.id) == result
            # The synchronous API too, although the ORM refuses to run in an event loop.
            assert django_tasks.noop.get_result(result.id) == result
            result.refresh()
            assert status_of(result) == TaskResultStatus.SUCCESSFUL
            with pytest.raises(TaskResultDoesNotExist):
                default_task_backend.get_result("123")

            with pytest.raises(TaskResultDoesNotExist):
                await default_task_backend.aget_result("123")
            with pytest.raises(TaskResultDoesNotExist):
                await django_tasks.noop.aget_result("123")
            with pytest.raises(TaskResultMismatch, match="Task does not match"):
                await django_tasks.multiply.aget_result(result.id)
            with pytest.raises(TypeError, match="Unsupported type"):
                await django_tasks.noop.aenqueue(datetime.datetime.now())
            with (
                override_settings(TASKS=TASKS_WITH_ONE_QUEUE),
                pytest.raises(InvalidTask, match="Queue 'other' is not valid for backend"),
            ):
                await django_tasks.on_other_queue.aenqueue(1)
        finally:
            # The connection of sync_to_async's thread must not outlive the test.
            await sync_to_async(lambda: connection.close())()

    asyncio.run(scenario())


# Failures


@pytest.mark.parametrize(
    ("name", "args", "exception", "ending"),
    [
        ("explode", ["This task failed"], ValueError, "ValueError: This task failed\n"),
        # Before the fix, the last line of the message was taken for the class.
        ("explode", ["line one\nline two"], ValueError, "ValueError: line one\nline two\n"),
        # ... and so was the last note.
        (
            "raise_unusual",
            ["odd"],
            "Unusual",
            "tests.testapp.django_tasks.Unusual: odd\na note added to the exception\n",
        ),
        ("raise_group", [], ExceptionGroup, "+------------------------------------\n"),
        # Like the immediate backend, a return value that cannot be stored fails the task.
        ("return_unstorable", [], TypeError, "TypeError: Unsupported type: <class 'set'>\n"),
    ],
)
def test_a_failure_records_the_exception_class_and_its_traceback(
    name: str, args: list[Any], exception: type[BaseException] | str, ending: str
) -> None:
    the_task = getattr(django_tasks, name)
    expected = getattr(django_tasks, exception) if isinstance(exception, str) else exception

    result = the_task.enqueue(*args)
    result.refresh()

    assert result.status == TaskResultStatus.FAILED
    assert result.is_finished is True
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value
    assert result._return_value is None
    _assert_timestamps_in_order(result)
    assert len(result.errors) == 1
    assert result.errors[0].exception_class is expected
    assert "Traceback (most recent call last):\n" in result.errors[0].traceback
    assert result.errors[0].traceback.endswith(ending)
    assert result.task == the_task
    assert result.args == args
    assert result.kwargs == {}


def test_the_finished_signal_of_a_failure_carries_the_error(sqs_mode: SqsMode) -> None:
    result = django_tasks.explode.enqueue("line one\nline two")

    with recorded_signals() as seen:
        run_next(sqs_mode)

    (_, _, finished) = seen[-1]
    assert finished["status"] == TaskResultStatus.FAILED
    (error,) = finished["errors"]
    assert error.exception_class is ValueError
    assert error.traceback == default_task_backend.get_result(result.id).errors[0].traceback


def test_a_failure_is_logged_at_error_level_by_django_tasks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="django.tasks"):
        result = django_tasks.explode.enqueue("This task failed")

    lines = [r for r in caplog.records if r.name == "django.tasks"]
    assert [r.levelno for r in lines] == [logging.DEBUG, logging.INFO, logging.ERROR]
    assert "enqueued" in lines[0].getMessage()
    assert "state=RUNNING" in lines[1].getMessage()
    failure = lines[2]
    assert result.id in failure.getMessage()
    assert "state=FAILED" in failure.getMessage()
    # Logged with the task's exception, as logger.exception() in Django's backends
    assert failure.exc_info is not None
    assert isinstance(failure.exc_info[1], ValueError)
    text = logging.Formatter().format(failure)
    assert text.endswith("ValueError: This task failed")
    assert text.count('File "') == result.errors[0].traceback.count('File "')


def test_a_worker_logs_a_failure_with_its_exception_too(
    sqs_mode: SqsMode, caplog: pytest.LogCaptureFixture
) -> None:
    result = django_tasks.explode.enqueue("failed on a worker")

    with caplog.at_level(logging.ERROR, logger="django.tasks"):
        run_next(sqs_mode)

    (failure,) = [r for r in caplog.records if r.name == "django.tasks"]
    assert result.id in failure.getMessage()
    assert failure.exc_info is not None
    assert str(failure.exc_info[1]) == "failed on a worker"


@override_settings(
    TASKS={
        "default": {"BACKEND": "lambda_tasks_django.backends.LambdaTasksBackend"},
        "second": {"BACKEND": "lambda_tasks_django.backends.LambdaTasksBackend"},
    }
)
def test_a_result_enqueued_through_another_alias_names_that_backend() -> None:
    variant = django_tasks.multiply.using(backend="second")

    result = variant.enqueue(2)

    assert result.backend == "second"
    assert result.task == variant
    assert task_backends["second"].get_result(result.id) == result
    result.refresh()
    assert result.task == variant


def test_keyboard_interrupt_is_not_swallowed(caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.ERROR, logger="django.tasks"),
        pytest.raises(KeyboardInterrupt),
    ):
        default_task_backend.enqueue(django_tasks.interrupt, [], {})

    assert [r for r in caplog.records if r.name == "django.tasks"] == []


def test_system_exit_is_recorded_as_a_failure_and_not_raised() -> None:
    # As Django's immediate backend does (SPEC §4: SystemExit is the task's outcome).
    django_tasks.exit_now.enqueue()

    record = TaskRecord.objects.get(task_name="tests.testapp.django_tasks.exit_now")
    assert record.invocation_id is not None
    result = default_task_backend.get_result(record.invocation_id)
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class is SystemExit
    assert result.errors[0].traceback.endswith("SystemExit: this task exits\n")


# What validate_task() refuses


def test_a_function_not_defined_at_module_level_is_refused() -> None:
    def nested() -> None:
        pass

    decorate: Any = task
    for function in (nested, any):
        with pytest.raises(InvalidTask, match="Task function must be defined at a module level"):
            decorate(function)


def test_takes_context_needs_a_first_parameter_named_context() -> None:
    with pytest.raises(InvalidTask, match="first argument of 'context'"):
        task(takes_context=True)(django_tasks.multiply.func)


def test_priority_is_refused_whatever_its_value() -> None:
    # Deliberate difference: SQS has no priorities, so any priority but the
    # default is refused, including those Django's backends accept (-100..100).
    for priority in (1, -1, 100, -100, 101):
        with pytest.raises(InvalidTask, match="does not support setting priority"):
            django_tasks.multiply.using(priority=priority)
    assert django_tasks.multiply.using(priority=0).priority == 0


def test_run_after_must_be_aware() -> None:
    naive = datetime.datetime.now() + datetime.timedelta(seconds=10)
    with pytest.raises(InvalidTask, match="run_after must be an aware datetime"):
        django_tasks.multiply.using(run_after=naive)


def test_run_after_is_limited_to_the_sqs_delay_limit() -> None:
    # supports_defer, within SQS's 900 s (the immediate backend refuses any run_after).
    assert default_task_backend.supports_defer
    now = timezone.now()
    for seconds in (-60, 0, 899):
        later = now + datetime.timedelta(seconds=seconds)
        assert django_tasks.multiply.using(run_after=later).run_after == later
    with pytest.raises(InvalidTask, match="at most 900 s"):
        django_tasks.multiply.using(run_after=now + datetime.timedelta(seconds=902))


def test_a_run_after_in_the_past_is_sent_without_delay(sqs_mode: SqsMode) -> None:
    past = timezone.now() - datetime.timedelta(minutes=5)

    result = django_tasks.multiply.using(run_after=past).enqueue(4)

    (batch,) = sqs_mode.sent_batches()
    (entry,) = batch["Entries"]
    assert int(entry.get("DelaySeconds", 0)) == 0
    outcome, invocation_id = run_next(sqs_mode)
    assert invocation_id == result.id
    assert outcome.status == TaskRecord.TaskStatus.SUCCEEDED


def test_a_queue_name_outside_the_backends_queues_is_refused() -> None:
    with pytest.raises(InvalidTask, match="Queue 'nope' is not valid for backend"):
        django_tasks.multiply.using(queue_name="nope")


def test_enqueue_validates_again_under_the_current_settings() -> None:
    with (
        override_settings(TASKS=TASKS_WITH_ONE_QUEUE),
        pytest.raises(InvalidTask, match="Queue 'other' is not valid for backend"),
    ):
        django_tasks.on_other_queue.enqueue(1)
    assert not TaskRecord.objects.exists()


@override_settings(TASKS=TASKS_WITH_OPEN_QUEUES)
def test_without_queues_any_name_validates_but_lambda_tasks_queues_still_decides(
    sqs_mode: SqsMode,
) -> None:
    # Django skips the queue check when QUEUES is empty. LAMBDA_TASKS_QUEUES
    # stays the one source of queues: a name it lacks is refused at enqueue.
    variant = django_tasks.multiply.using(queue_name="nope")
    assert variant.queue_name == "nope"
    with pytest.raises(ImproperlyConfigured, match="'nope' is not defined in LAMBDA_TASKS_QUEUES"):
        variant.enqueue(1)
    assert not TaskRecord.objects.exists()


def test_using_makes_a_new_task_and_leaves_the_original_alone() -> None:
    now = timezone.now()
    original = django_tasks.multiply

    copy = original.using()
    assert copy == original
    assert copy is not original
    deferred = original.using(run_after=now)
    moved = deferred.using(queue_name="other")

    assert (moved.run_after, moved.queue_name) == (now, "other")
    assert (deferred.run_after, deferred.queue_name) == (now, "default")
    assert (original.run_after, original.queue_name) == (None, "default")
    assert type(moved) is type(original)


@pytest.mark.skipif(django.VERSION < (6, 1), reason="@task(**options) needs Django 6.1")
def test_using_keeps_our_task_options() -> None:
    moved: Any = django_tasks.too_slow.using(queue_name="other")

    assert (moved.soft_timeout, moved.hard_timeout) == (0.2, 0.5)


# Arguments and return values


def test_arguments_are_normalised_to_json_everywhere(sqs_mode: SqsMode) -> None:
    result = django_tasks.noop.enqueue((1, 2), key=("a", {"b": (3,)}), raw=b"bytes")

    assert result.args == [[1, 2]]
    assert result.kwargs == {"key": ["a", {"b": [3]}], "raw": "bytes"}
    assert default_task_backend.get_result(result.id).args == [[1, 2]]
    (batch,) = sqs_mode.sent_batches()
    body = json.loads(batch["Entries"][0]["MessageBody"])
    assert (body["args"], body["kwargs"]) == (result.args, result.kwargs)


def test_arguments_that_are_not_json_are_refused_like_djangos() -> None:
    with pytest.raises(TypeError, match="Unsupported type"):
        django_tasks.noop.enqueue(datetime.datetime.now())
    with pytest.raises(TypeError, match="Unsupported type"):
        django_tasks.noop.enqueue(when={1, 2})
    with pytest.raises(ValueError, match="Unsupported value"):
        django_tasks.noop.enqueue(b"\xff")
    assert not TaskRecord.objects.exists()


def test_call_and_acall_run_the_function_here_without_the_backend() -> None:
    assert django_tasks.multiply.call(6, b=7) == 42
    # The stubs type call() of a coroutine task as returning a coroutine; it runs it.
    async_task: Any = django_tasks.async_multiply
    assert async_task.call(3, 5) == 15
    assert asyncio.run(django_tasks.multiply.acall(2)) == 4
    assert asyncio.run(async_task.acall(2, 8)) == 16
    assert not TaskRecord.objects.exists()


# The task context


def test_the_context_describes_the_running_attempt(sqs_mode: SqsMode) -> None:
    result = django_tasks.describe_context.enqueue()

    run_next(sqs_mode)

    assert default_task_backend.get_result(result.id).return_value == {
        "id": result.id,
        "status": "RUNNING",
        "attempt": 1,
        "worker_ids": default_task_backend.get_result(result.id).worker_ids,
        "started": True,
        "last_attempted": True,
        "finished": False,
        "backend": "default",
        "args": [],
        "kwargs": {},
    }


def test_the_retries_of_a_queue_name_variant_stay_on_its_queue(
    sqs_mode: SqsMode, tmp_path: Path
) -> None:
    variant = django_tasks.glitchy.using(queue_name="other")
    result = variant.enqueue(str(tmp_path / "counter"), fail_times=1)

    outcome, invocation_id = run_next(sqs_mode, sqs_mode.other)

    assert invocation_id == result.id
    assert outcome.retry is not None
    assert outcome.retry.queue == "other"
    execute(outcome.retry.message, invocation_id)
    assert default_task_backend.get_result(result.id).task == variant


def test_the_context_counts_attempts_across_retries() -> None:
    result = django_tasks.fail_first_attempt.enqueue()

    # Eager retries run inside enqueue(): its result is the last attempt's.
    assert result.return_value == 2
    assert result.attempts == 2
    assert [e.exception_class for e in result.errors] == [django_tasks.Glitch]
    result.refresh()
    assert result.return_value == 2
    assert result.attempts == 2
    assert [e.exception_class for e in result.errors] == [django_tasks.Glitch]


# Signals and their log lines


def test_signals_follow_djangos_order_when_a_worker_runs_the_task(
    sqs_mode: SqsMode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="django.tasks")
    with recorded_signals() as seen:
        result = django_tasks.multiply.enqueue(2, b=5)
        assert [name for name, _, _ in seen] == ["enqueued"]
        run_next(sqs_mode)

    assert [(name, sender, fields["id"], fields["status"]) for name, sender, fields in seen] == [
        ("enqueued", LambdaTasksBackend, result.id, TaskResultStatus.READY),
        ("started", LambdaTasksBackend, result.id, TaskResultStatus.RUNNING),
        ("finished", LambdaTasksBackend, result.id, TaskResultStatus.SUCCESSFUL),
    ]
    started, finished = seen[1][2], seen[2][2]
    assert started["started_at"] is not None
    assert started["finished_at"] is None
    assert len(started["worker_ids"]) == 1
    assert finished["finished_at"] is not None
    assert finished["_return_value"] == 10

    lines = [r.getMessage() for r in caplog.records if r.name == "django.tasks"]
    assert len(lines) == 3
    assert all(result.id in line for line in lines)
    assert "enqueued" in lines[0]
    assert "state=RUNNING" in lines[1]
    assert "state=SUCCESSFUL" in lines[2]
    assert not any("NoneType" in line for line in lines)


def test_enqueue_does_not_wait_for_the_transaction_to_commit(sqs_mode: SqsMode) -> None:
    with transaction.atomic():
        result = django_tasks.multiply.enqueue(3)
        assert result.enqueued_at is not None
        # Already on the queue, and the READY record is in the transaction.
        outcome, invocation_id = run_next(sqs_mode)

    assert invocation_id == result.id
    assert outcome.status == TaskRecord.TaskStatus.SUCCEEDED


def test_an_eager_enqueue_inside_a_transaction_runs_at_once() -> None:
    with transaction.atomic():
        result = django_tasks.multiply.enqueue(3)
        assert default_task_backend.get_result(result.id).status == TaskResultStatus.SUCCESSFUL
