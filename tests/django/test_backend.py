"""The django.tasks backend (SPEC §10): Django's Task API through lambda-tasks."""

from __future__ import annotations

import asyncio
import datetime
import json
from pathlib import Path
from typing import Any

import django
import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test import override_settings
from django.utils import timezone

pytestmark = [
    pytest.mark.skipif(django.VERSION < (6, 0), reason="django.tasks needs Django 6.0 or later"),
    pytest.mark.django_db,
]

if django.VERSION >= (6, 0):
    from django.tasks import TaskResultStatus, default_task_backend, task_backends
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started

    from lambda_tasks_core import TaskMessage
    from lambda_tasks_django.backends import LambdaTasksBackend, task_options
    from lambda_tasks_django.executor import execute
    from lambda_tasks_django.models import TaskRecord
    from tests.testapp import django_tasks


def test_the_configured_backend_is_ours_and_says_what_it_supports() -> None:
    backend = task_backends["default"]
    assert isinstance(backend, LambdaTasksBackend)
    assert backend.supports_defer
    assert backend.supports_get_result
    assert backend.supports_async_task
    assert not backend.supports_priority


def test_eager_enqueue_runs_at_once_and_get_result_reads_the_record() -> None:
    result = django_tasks.multiply.enqueue(6, b=7)

    # Like Django's immediate backend, enqueue() hands back the finished result;
    # the id is the invocation id
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 42
    record = TaskRecord.objects.get(invocation_id=result.id)
    assert record.status == TaskRecord.TaskStatus.SUCCEEDED
    assert record.args == [6]

    fetched = django_tasks.multiply.get_result(result.id)
    assert fetched.status == TaskResultStatus.SUCCESSFUL
    assert fetched.return_value == 42
    assert fetched.args == [6]
    assert fetched.kwargs == {"b": 7}
    assert fetched.enqueued_at is not None
    assert fetched.started_at is not None
    assert fetched.finished_at is not None
    assert fetched.finished_at >= fetched.started_at
    assert fetched.attempts == 1
    result.refresh()
    refreshed: TaskResultStatus = result.status
    assert refreshed == TaskResultStatus.SUCCESSFUL


def test_a_failing_task_reports_its_exception_path_and_traceback() -> None:
    result = django_tasks.explode.enqueue("kaboom")

    fetched = default_task_backend.get_result(result.id)
    assert fetched.status == TaskResultStatus.FAILED
    assert len(fetched.errors) == 1
    error = fetched.errors[0]
    assert error.exception_class_path == "builtins.ValueError"
    assert error.exception_class is ValueError
    assert "kaboom" in error.traceback
    with pytest.raises(ValueError, match="Task failed"):
        _ = fetched.return_value


@override_settings(LAMBDA_TASKS_NOOP_EXECUTION=True, LAMBDA_TASKS_EAGER=False)
def test_an_invocation_that_has_not_started_is_ready() -> None:
    result = django_tasks.multiply.enqueue(1)

    fetched = default_task_backend.get_result(result.id)
    assert fetched.status == TaskResultStatus.READY
    assert fetched.started_at is None
    assert fetched.attempts == 0
    with pytest.raises(ValueError, match="not finished"):
        _ = fetched.return_value


def test_retries_report_the_latest_attempt(tmp_path: Path) -> None:
    result = django_tasks.glitchy.enqueue(str(tmp_path / "counter"), fail_times=2)

    fetched = default_task_backend.get_result(result.id)
    assert fetched.status == TaskResultStatus.SUCCESSFUL
    assert fetched.return_value == 3
    assert fetched.attempts == 3
    assert [e.exception_class_path for e in fetched.errors] == [
        "tests.testapp.django_tasks.Glitch"
    ] * 2


def test_takes_context_tasks_get_the_attempt_and_their_result_id() -> None:
    result = django_tasks.attempt_number.enqueue("first")

    value = default_task_backend.get_result(result.id).return_value
    assert value == {"label": "first", "attempt": 1, "id": result.id}


def test_coroutine_tasks_are_really_run() -> None:
    result = django_tasks.async_multiply.enqueue(3, 5)

    assert default_task_backend.get_result(result.id).return_value == 15


@pytest.mark.django_db(transaction=True)  # sync_to_async runs on another connection
def test_aenqueue_and_aget_result() -> None:
    async def scenario() -> Any:
        result = await django_tasks.multiply.aenqueue(2, b=4)
        fetched = await django_tasks.multiply.aget_result(result.id)
        # The connection of sync_to_async's thread must not outlive the test.
        await sync_to_async(lambda: connection.close())()
        return fetched

    fetched = asyncio.run(scenario())
    assert fetched.return_value == 8


def test_signals_are_sent_where_the_task_runs() -> None:
    seen: list[tuple[str, str]] = []

    def on_enqueued(sender: Any, task_result: Any, **kwargs: Any) -> None:
        seen.append(("enqueued", task_result.status))

    def on_started(sender: Any, task_result: Any, **kwargs: Any) -> None:
        seen.append(("started", task_result.status))

    def on_finished(sender: Any, task_result: Any, **kwargs: Any) -> None:
        seen.append(("finished", task_result.status))

    task_enqueued.connect(on_enqueued)
    task_started.connect(on_started)
    task_finished.connect(on_finished)
    try:
        django_tasks.multiply.enqueue(2)
    finally:
        task_enqueued.disconnect(on_enqueued)
        task_started.disconnect(on_started)
        task_finished.disconnect(on_finished)

    # Eager mode runs the task inside enqueue(), after announcing it (Django's order).
    assert seen == [
        ("enqueued", TaskResultStatus.READY),
        ("started", TaskResultStatus.RUNNING),
        ("finished", TaskResultStatus.SUCCESSFUL),
    ]


def test_unknown_ids_raise_task_result_does_not_exist() -> None:
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result("no-such-id")


def test_a_record_of_a_lambda_task_is_not_a_django_tasks_result() -> None:
    from tests.testapp.tasks import add

    invocation_id = add.execute_on_commit(a=1)
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(invocation_id)


def test_priority_is_refused() -> None:
    with pytest.raises(InvalidTask, match="priority"):
        django_tasks.multiply.using(priority=5)


def test_run_after_within_900_seconds_becomes_the_sqs_delay(sqs_mode: Any) -> None:
    run_after = timezone.now() + datetime.timedelta(seconds=120)

    result = django_tasks.multiply.using(run_after=run_after).enqueue(3)

    record = TaskRecord.objects.get(invocation_id=result.id)
    assert record.status == TaskRecord.TaskStatus.READY
    (batch,) = sqs_mode.sent_batches()
    (entry,) = batch["Entries"]
    assert 119 <= int(entry["DelaySeconds"]) <= 120
    body = json.loads(entry["MessageBody"])
    assert body == {
        "task_name": "tests.testapp.django_tasks.multiply",
        "kwargs": {},
        "n_retries": 0,
        "args": [3],
    }


def test_run_after_beyond_900_seconds_is_refused() -> None:
    with pytest.raises(InvalidTask, match="900"):
        django_tasks.multiply.using(run_after=timezone.now() + datetime.timedelta(hours=1))


def test_arguments_that_are_not_json_are_refused_at_enqueue() -> None:
    with pytest.raises(TypeError):
        django_tasks.multiply.enqueue(object())  # type: ignore[arg-type]
    assert not TaskRecord.objects.exists()


def test_the_handler_path_runs_a_message_enqueued_through_sqs(sqs_mode: Any) -> None:
    # Given a django.tasks invocation sent to SQS
    result = django_tasks.multiply.enqueue(5, b=5)
    (message,) = sqs_mode.receive(sqs_mode.default, 1)
    invocation_id = message["MessageAttributes"]["lambda_tasks_invocation_id"]["StringValue"]
    assert invocation_id == result.id

    # When a worker (handler, poller, local worker) executes the message
    outcome = execute(TaskMessage.from_json(message["Body"]), invocation_id)

    # Then the READY record became the outcome of that attempt
    assert outcome.status == TaskRecord.TaskStatus.SUCCEEDED
    assert default_task_backend.get_result(result.id).return_value == 25


def test_arguments_that_do_not_fit_fail_before_any_record() -> None:
    message = TaskMessage(
        task_name="tests.testapp.django_tasks.multiply", kwargs={"nope": 1}, args=[1]
    )
    with pytest.raises(TypeError, match="do not fit"):
        execute(message, "inv-1")
    assert not TaskRecord.objects.exists()


def test_task_options_reject_unknown_names() -> None:
    with pytest.raises(TypeError, match="unknown"):
        task_options(queue="x")


@override_settings(
    LAMBDA_TASKS_QUEUES={"default": "https://sqs.example/q"},
    TASKS={
        "default": {
            "BACKEND": "lambda_tasks_django.backends.LambdaTasksBackend",
            "QUEUES": ["default", "missing"],
            "OPTIONS": {"color": "blue"},
        }
    },
)
def test_check_reports_queues_outside_lambda_tasks_queues_and_unknown_options() -> None:
    ids = {message.id for message in task_backends["default"].check()}
    assert ids == {"lambda_tasks.E030", "lambda_tasks.E031"}


@pytest.mark.skipif(django.VERSION < (6, 1), reason="@task(**options) needs Django 6.1")
def test_task_decorator_options_reach_the_executor_on_django_6_1() -> None:
    result_id = "timeout-invocation"
    message = TaskMessage(task_name="tests.testapp.django_tasks._sleep", kwargs={"seconds": 2})

    outcome = execute(message, result_id, enforce_timeouts=True)

    assert outcome.status == TaskRecord.TaskStatus.FAILED
    record = TaskRecord.objects.get(invocation_id=result_id)
    assert "SoftTimeLimitExceeded" in (record.traceback or "")
