"""The executor: the record lifecycle of one message (SPEC §4, §8)."""

from __future__ import annotations

import builtins
import datetime
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from types import FrameType
from typing import Any, Protocol

import pydantic
import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries, DjangoCaptureOnCommitCallbacks, Settings

from lambda_tasks_core import TaskMessage, UnknownTaskError, new_invocation_id, record_id
from lambda_tasks_django import executor
from lambda_tasks_django.execution import worker_id
from lambda_tasks_django.executor import TAKEOVER_MARGIN_SECONDS, Outcome, TaskInProgress
from lambda_tasks_django.models import TaskRecord
from lambda_tasks_django.registry import resolve
from lambda_tasks_django.task import LambdaTask
from tests.testapp import tasks

Status = TaskRecord.TaskStatus
TASKS = "tests.testapp.tasks"


def message(task: str, n_retries: int = 0, **kwargs: Any) -> TaskMessage:
    """The wire message of ``tests.testapp.tasks.<task>`` with JSON kwargs."""
    return TaskMessage(task_name=f"{TASKS}.{task}", kwargs=kwargs, n_retries=n_retries)


def make_record(invocation_id: str, task: str = "create_group", **fields: Any) -> TaskRecord:
    """A TaskRecord of attempt ``n_retries`` (default 0) of ``invocation_id``."""
    n_retries = fields.pop("n_retries", 0)
    values: dict[str, Any] = {
        "task_name": f"{TASKS}.{task}",
        "kwargs": {"name": "from-factory"},
        "status": Status.RUNNING,
        "start_time": timezone.now(),
        "invocation_id": invocation_id,
        "queue": "default",
        **fields,
    }
    return TaskRecord.objects.create(
        pk=record_id(invocation_id, n_retries), n_retries=n_retries, **values
    )


class Runner(Protocol):
    """Runs one first attempt of a test task and returns its record."""

    def __call__(self, task: str, **kwargs: Any) -> TaskRecord: ...


@pytest.fixture(params=["direct", "eager"])
def run(
    request: pytest.FixtureRequest,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> Runner:
    """Each test using it runs twice: ``executor.execute`` directly, and through eager mode."""

    def lambda_task(task: str) -> LambdaTask[..., Any]:
        found = resolve(f"{TASKS}.{task}")
        assert isinstance(found, LambdaTask)
        return found

    def direct(task: str, **kwargs: Any) -> TaskRecord:
        # The message as enqueued: kwargs in their JSON form.
        sent = lambda_task(task).invocation(kwargs).message
        outcome = executor.execute(sent, new_invocation_id())
        record = TaskRecord.objects.get(pk=outcome.record_id)
        assert outcome.status == record.status
        return record

    def eager(task: str, **kwargs: Any) -> TaskRecord:
        with django_capture_on_commit_callbacks(execute=True):
            invocation_id = lambda_task(task).execute_on_commit(**kwargs)
        return TaskRecord.objects.get(invocation_id=invocation_id, n_retries=0)

    return direct if request.param == "direct" else eager


def _task_log(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "lambda_tasks.task" and r.levelno == level
    ]


# --- outcomes ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_record_is_running_while_the_task_runs_and_succeeded_after(run: Runner) -> None:
    record = run("running_records_of_self")

    assert record.result == 1  # the task saw its own record RUNNING
    assert record.status == Status.SUCCEEDED
    assert record.traceback is None
    assert record.start_time is not None
    assert record.end_time is not None
    assert record.start_time <= record.end_time
    assert record.duration == record.end_time - record.start_time


@pytest.mark.django_db
def test_success_stores_kwargs_and_return_value(run: Runner) -> None:
    record = run("add", a=2, b=40)

    assert (record.status, record.result) == (Status.SUCCEEDED, 42)
    assert (record.task_name, record.kwargs, record.n_retries) == (
        f"{TASKS}.add",
        {"a": 2, "b": 40},
        0,
    )


@pytest.mark.django_db
def test_failure_is_recorded_with_traceback_logged_and_its_writes_rolled_back(
    run: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lambda_tasks")

    record = run("create_group_then_fail", name="failing-writer")

    assert record.status == Status.FAILED
    assert record.end_time is not None
    assert record.traceback is not None
    assert "RuntimeError: boom after a write" in record.traceback
    assert not Group.objects.filter(name="failing-writer").exists()
    errors = _task_log(caplog, logging.ERROR)
    assert errors == [f"[{record.pk}] Failed with RuntimeError"]


@pytest.mark.django_db
def test_ignored_error_succeeds_with_traceback_and_its_writes_rolled_back(run: Runner) -> None:
    record = run("create_group_then_ignore", name="ignored-writer")

    assert record.status == Status.SUCCEEDED
    assert record.result is None
    assert record.traceback is not None
    assert "Ignorable: not worth failing for" in record.traceback
    assert not Group.objects.filter(name="ignored-writer").exists()


@pytest.mark.django_db
def test_successful_writes_are_committed(run: Runner) -> None:
    record = run("create_group", name="kept")

    assert record.result == Group.objects.get(name="kept").pk


@pytest.mark.django_db
def test_unjsonable_return_value_fails_with_a_clear_message(run: Runner) -> None:
    record = run("returns_unjsonable")

    assert record.status == Status.FAILED
    assert record.result is None
    assert record.traceback is not None
    assert "return value cannot be stored as JSON" in record.traceback


@pytest.mark.django_db
def test_unjsonable_return_value_rolls_back_the_task_writes(run: Runner) -> None:
    record = run("create_group_then_return_unjsonable", name="half-done")

    assert record.status == Status.FAILED
    assert not Group.objects.filter(name="half-done").exists()


@pytest.mark.django_db
def test_nan_return_value_fails_instead_of_leaving_the_record_running(run: Runner) -> None:
    # NaN is not JSON: the database's JSON column would refuse the final UPDATE.
    record = run("returns_nan")

    assert record.status == Status.FAILED
    assert record.result is None
    assert record.traceback is not None
    assert "return value cannot be stored as JSON" in record.traceback


@pytest.mark.django_db
def test_rich_kwargs_arrive_as_their_python_types(run: Runner) -> None:
    record = run(
        "describe_types",
        when=datetime.datetime(2024, 2, 29, 12, 0, tzinfo=datetime.UTC),
        ident=uuid.uuid4(),
        amount=Decimal("9.99"),
        colour=tasks.Colour.RED,
    )

    assert record.result == {
        "when": "datetime",
        "ident": "UUID",
        "amount": "Decimal",
        "colour": "Colour",
    }


@pytest.mark.django_db
def test_json_kwargs_of_a_message_are_validated_back_into_python_types() -> None:
    # Given the wire form of datetime / UUID / Decimal kwargs (ISO strings etc.)
    wire = tasks.echo_types.invocation(
        {
            "when": datetime.datetime(2024, 2, 29, 12, 0, tzinfo=datetime.UTC),
            "ident": uuid.UUID(int=7),
            "amount": Decimal("9.99"),
            "tags": ["a", "b"],
        }
    ).message
    assert isinstance(wire.kwargs["when"], str)

    # When the executor runs the message, the task gets real objects back
    outcome = executor.execute(wire, new_invocation_id())

    assert TaskRecord.objects.get(pk=outcome.record_id).result == {
        "when": "2024-02-29T12:00:00+00:00",
        "ident": "00000000-0000-0000-0000-000000000007",
        "amount": "9.99",
        "tags": "a,b",
    }


# --- retries -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_retryable_error_records_retried_and_returns_the_next_attempt() -> None:
    invocation_id = new_invocation_id()
    sent = message("always_flaky", name="first")

    outcome = executor.execute(sent, invocation_id)

    record = TaskRecord.objects.get(pk=outcome.record_id)
    assert outcome.status == record.status == Status.RETRIED
    assert record.traceback is not None
    assert "Flaky: first" in record.traceback
    assert outcome.retry is not None
    assert outcome.retry.message == TaskMessage(
        task_name=f"{TASKS}.always_flaky", kwargs={"name": "first"}, n_retries=1
    )
    assert outcome.retry.invocation_id == invocation_id
    assert outcome.retry.queue == "default"
    assert 1 <= outcome.retry.delay <= 5


@pytest.mark.django_db
def test_retry_delay_adds_one_to_five_seconds_of_jitter() -> None:
    delays = set()
    for _ in range(30):
        outcome = executor.execute(message("flaky_with_retry_delay"), new_invocation_id())
        assert outcome.retry is not None
        delays.add(outcome.retry.delay)

    assert delays <= set(range(11, 16))
    assert len(delays) > 1  # jittered, not a constant


@pytest.mark.django_db
def test_retry_of_a_retry_gets_its_own_record_under_the_same_invocation(
    settings: Settings,
) -> None:
    settings.LAMBDA_TASKS_MAX_RETRIES = 5
    invocation_id = new_invocation_id()

    first = executor.execute(message("always_flaky"), invocation_id)
    assert first.retry is not None
    second = executor.execute(first.retry.message, invocation_id)

    assert second.record_id == str(record_id(invocation_id, 1)) != first.record_id
    assert second.retry is not None
    assert second.retry.message.n_retries == 2
    assert TaskRecord.objects.filter(invocation_id=invocation_id).count() == 2


@pytest.mark.django_db
def test_last_allowed_attempt_still_retries(settings: Settings) -> None:
    settings.LAMBDA_TASKS_MAX_RETRIES = 2

    outcome = executor.execute(message("always_flaky", n_retries=1), new_invocation_id())

    assert outcome.status == Status.RETRIED
    assert outcome.retry is not None


@pytest.mark.django_db
@pytest.mark.parametrize(("max_retries", "n_retries"), [(2, 2), (0, 0)])
def test_attempt_at_max_retries_fails_with_max_retries_exceeded_chained_to_the_error(
    settings: Settings, max_retries: int, n_retries: int
) -> None:
    settings.LAMBDA_TASKS_MAX_RETRIES = max_retries

    outcome = executor.execute(
        message("always_flaky", n_retries=n_retries, name="last"), new_invocation_id()
    )

    record = TaskRecord.objects.get(pk=outcome.record_id)
    assert outcome.status == record.status == Status.FAILED
    assert outcome.retry is None
    assert record.traceback is not None
    text = record.traceback
    assert "Flaky: last" in text
    assert "The above exception was the direct cause of the following exception" in text
    assert "MaxRetriesExceededError" in text
    assert f"LAMBDA_TASKS_MAX_RETRIES = {max_retries}" in text
    assert text.index("Flaky: last") < text.index("MaxRetriesExceededError")


# --- timeouts ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_soft_timeout_fails_the_task_with_soft_time_limit_exceeded() -> None:
    started = time.monotonic()

    outcome = executor.execute(message("sleepy_soft", seconds=3.0), new_invocation_id())

    assert time.monotonic() - started < 1.5
    record = TaskRecord.objects.get(pk=outcome.record_id)
    assert record.status == Status.FAILED
    assert record.traceback is not None
    assert "SoftTimeLimitExceeded" in record.traceback
    assert "HardTimeLimitExceeded" not in record.traceback


@pytest.mark.django_db
def test_task_that_swallows_the_soft_timeout_is_stopped_by_the_hard_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    started = time.monotonic()

    outcome = executor.execute(message("ignores_soft", seconds=3.0), new_invocation_id())

    assert time.monotonic() - started < 1.5
    record = TaskRecord.objects.get(pk=outcome.record_id)
    assert record.status == Status.FAILED
    assert record.traceback is not None
    assert "HardTimeLimitExceeded" in record.traceback
    assert _task_log(caplog, logging.ERROR) == [f"[{record.pk}] Hard time limit of 0.4 s exceeded"]


@pytest.mark.django_db
def test_timeouts_are_not_enforced_when_disabled() -> None:
    outcome = executor.execute(
        message("sleepy_soft", seconds=0.6), new_invocation_id(), enforce_timeouts=False
    )

    assert TaskRecord.objects.get(pk=outcome.record_id).result == "woke"


@pytest.fixture
def own_sigalrm() -> Iterator[list[int]]:
    """Install a SIGALRM handler and a 50 s alarm of our own; put pytest-timeout's back after."""
    fired: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        fired.append(signum)

    previous_handler = signal.signal(signal.SIGALRM, handler)
    previous_delay, previous_interval = signal.setitimer(signal.ITIMER_REAL, 50)
    try:
        yield fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_delay:
            signal.setitimer(signal.ITIMER_REAL, previous_delay, previous_interval)


@pytest.mark.django_db
@pytest.mark.parametrize(("task", "kwargs"), [("add", {"a": 1}), ("sleepy_soft", {"seconds": 2.0})])
def test_previous_sigalrm_handler_and_alarm_are_restored(
    own_sigalrm: list[int], task: str, kwargs: dict[str, Any]
) -> None:
    handler_before = signal.getsignal(signal.SIGALRM)

    executor.execute(message(task, **kwargs), new_invocation_id())

    assert signal.getsignal(signal.SIGALRM) is handler_before
    remaining, _ = signal.getitimer(signal.ITIMER_REAL)
    assert 45 < remaining <= 50
    assert own_sigalrm == []


# --- names and kwargs that must not run --------------------------------------------------------


@pytest.fixture
def spies(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Record calls of os.system, builtins.print and the installed app's plain function."""
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(os, "system", lambda *a, **k: calls.append(("os.system", a, k)))
    monkeypatch.setattr(builtins, "print", lambda *a, **k: calls.append(("print", a, k)))
    monkeypatch.setattr(tasks, "PLAIN_FUNCTION_CALLS", [])
    for name in ("this", "antigravity", "tabnanny"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return calls


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("task_name", "kwargs"),
    [
        ("os.system", {"command": "echo pwned"}),
        ("builtins.print", {}),
        (f"{TASKS}.plain_function", {}),  # a callable in an installed app, not a task
        (f"{TASKS}.Flaky", {}),  # a class is callable too
        (f"{TASKS}.Group", {"name": "x"}),  # imported into the tasks module
        (f"{TASKS}.add.__wrapped__", {"a": 1}),  # the undecorated function
        ("this.s", {}),
        ("antigravity.x", {}),
        ("tabnanny.check", {"file": "/"}),
        (f"{TASKS}", {}),
        ("unknown", {}),
    ],
)
def test_name_that_is_not_a_registered_task_is_rejected_before_anything_runs(
    spies: list[tuple[Any, ...]], task_name: str, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(UnknownTaskError, match="not a registered task"):
        executor.execute(TaskMessage(task_name=task_name, kwargs=kwargs), new_invocation_id())

    assert spies == []
    assert tasks.PLAIN_FUNCTION_CALLS == []
    assert not Group.objects.exists()
    assert not {"this", "antigravity", "tabnanny"} & sys.modules.keys()
    assert TaskRecord.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "kwargs",
    [
        {"a": "1"},  # a JSON string is not an int
        {"a": True},  # nor a JSON bool
        {"a": 1.5},
        {},  # missing a
        {"a": 1, "c": 2},  # extra c
        {"a": None},
    ],
)
def test_invalid_kwargs_raise_before_any_record_is_written(kwargs: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        executor.execute(message("add", **kwargs), new_invocation_id())

    assert TaskRecord.objects.count() == 0


@pytest.mark.django_db
def test_bad_timeout_settings_raise_before_any_record_is_written(
    settings: Settings,
) -> None:
    # Given default timeouts that cannot work (soft not below hard)
    settings.LAMBDA_TASKS_DEFAULT_SOFT_TIMEOUT = 300
    settings.LAMBDA_TASKS_DEFAULT_HARD_TIMEOUT = 300

    with pytest.raises(ImproperlyConfigured, match="LAMBDA_TASKS_DEFAULT_SOFT_TIMEOUT"):
        executor.execute(message("add", a=1), new_invocation_id())

    assert TaskRecord.objects.count() == 0


# --- redelivery --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_redelivery_of_a_finished_attempt_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    invocation_id = new_invocation_id()
    sent = message("create_group", name="once")
    first = executor.execute(sent, invocation_id)

    second = executor.execute(sent, invocation_id)

    assert second == Outcome(first.record_id, None, duplicate=True)
    assert TaskRecord.objects.get().status == Status.SUCCEEDED
    assert Group.objects.filter(name="once").count() == 1
    assert _task_log(caplog, logging.WARNING) == [
        f"[{first.record_id}] Skipping duplicate delivery of an attempt that already ended "
        "(SUCCEEDED)"
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("status", [Status.SUCCEEDED, Status.FAILED, Status.RETRIED])
def test_redelivery_never_reruns_or_rewrites_an_ended_attempt(status: str) -> None:
    invocation_id = new_invocation_id()
    existing = make_record(invocation_id, status=status, traceback="original")

    outcome = executor.execute(message("create_group", name="again"), invocation_id)

    assert outcome.duplicate
    assert outcome.retry is None
    assert not Group.objects.exists()
    existing_now = TaskRecord.objects.get()
    assert (existing_now.status, existing_now.traceback) == (status, "original")
    assert existing_now.pk == existing.pk


@pytest.mark.django_db
def test_running_record_younger_than_hard_timeout_plus_margin_is_left_alone() -> None:
    # Given a RUNNING record of the same attempt started just inside hard timeout + margin
    invocation_id = new_invocation_id()
    hard = tasks.create_group.timeouts()[1]
    started = timezone.now() - datetime.timedelta(seconds=hard + TAKEOVER_MARGIN_SECONDS - 5)
    make_record(invocation_id, start_time=started)

    # When the message is delivered again
    with pytest.raises(TaskInProgress, match="RUNNING"):
        executor.execute(message("create_group", name="maybe-running"), invocation_id)

    # Then the task did not run and the record is untouched
    assert not Group.objects.exists()
    record = TaskRecord.objects.get()
    assert (record.status, record.start_time, record.traceback) == (
        Status.RUNNING,
        started,
        None,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("task", "kwargs", "status"),
    [
        ("create_group", {"name": "recovered"}, Status.SUCCEEDED),
        ("create_group_then_fail", {"name": "recovered"}, Status.FAILED),
    ],
)
def test_running_record_older_than_hard_timeout_plus_margin_is_taken_over(
    task: str, kwargs: dict[str, Any], status: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a RUNNING record whose delivery died (started hard timeout + margin + 5 s ago)
    invocation_id = new_invocation_id()
    hard = resolve(f"{TASKS}.{task}").timeouts()[1]
    lost_start = timezone.now() - datetime.timedelta(seconds=hard + TAKEOVER_MARGIN_SECONDS + 5)
    make_record(invocation_id, task=task, start_time=lost_start, kwargs=kwargs)

    # When SQS redelivers the message
    outcome = executor.execute(message(task, **kwargs), invocation_id)

    # Then the attempt runs again in the same record, which notes the lost delivery
    assert not outcome.duplicate
    record = TaskRecord.objects.get()
    assert record.status == status
    assert record.start_time is not None
    assert record.start_time > lost_start
    assert record.traceback is not None
    assert record.traceback.startswith(f"An earlier delivery started at {lost_start} was lost")
    assert Group.objects.filter(name="recovered").exists() is (status == Status.SUCCEEDED)
    if status == Status.FAILED:
        assert "RuntimeError: boom after a write" in record.traceback
    assert any("Taking over" in m for m in _task_log(caplog, logging.WARNING))


# --- record identity ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_record_id_is_derived_from_invocation_id_and_attempt() -> None:
    invocation_id = new_invocation_id()

    outcome = executor.execute(message("add", n_retries=3, a=1), invocation_id)

    expected = record_id(invocation_id, 3)
    assert expected == uuid.uuid5(uuid.NAMESPACE_URL, f"lambda-tasks:{invocation_id}:3")
    assert outcome.record_id == str(expected)
    record = TaskRecord.objects.get(pk=expected)
    assert (record.invocation_id, record.n_retries, record.queue) == (invocation_id, 3, "default")


@pytest.mark.django_db
def test_record_stores_the_queue_of_the_task() -> None:
    outcome = executor.execute(message("on_other_queue", n=1), new_invocation_id())

    assert TaskRecord.objects.get(pk=outcome.record_id).queue == "other"


def test_worker_id_is_the_log_stream_else_host_and_pid_of_this_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_LAMBDA_LOG_STREAM_NAME", raising=False)
    parent = worker_id()
    assert parent.endswith(f":{os.getpid()}")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.write(write, worker_id().encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as reader:
        child = reader.read().decode()
    os.waitpid(pid, 0)
    assert child == f"{parent.rpartition(':')[0]}:{pid}"  # not the parent's cached value

    monkeypatch.setenv("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/29/[$LATEST]abc")
    assert worker_id() == "2026/11/29/[$LATEST]abc"


# --- process-ending exceptions -----------------------------------------------------------------


@pytest.mark.django_db
def test_interrupt_rolls_back_releases_the_attempt_and_propagates() -> None:
    invocation_id = new_invocation_id()
    sent = message("create_group_then_interrupt", name="interrupted")

    with pytest.raises(KeyboardInterrupt):
        executor.execute(sent, invocation_id)

    record = TaskRecord.objects.get(pk=record_id(invocation_id, 0))
    assert record.status == Status.READY  # released, not an outcome
    assert record.start_time is None
    assert record.end_time is None
    assert record.traceback is not None
    assert "was interrupted (KeyboardInterrupt)" in record.traceback
    assert not Group.objects.filter(name="interrupted").exists()


@pytest.mark.django_db
def test_released_attempt_runs_at_the_next_delivery_without_waiting(tmp_path: Any) -> None:
    invocation_id = new_invocation_id()
    sent = message("create_group_interrupted_once", name="once", marker=str(tmp_path / "m"))
    with pytest.raises(KeyboardInterrupt):
        executor.execute(sent, invocation_id)

    # Redelivered at once: not TaskInProgress (no stale-RUNNING wait), and the
    # interrupted run's write was rolled back (one group, not two).
    outcome = executor.execute(sent, invocation_id)

    assert outcome.status == Status.SUCCEEDED
    record = TaskRecord.objects.get(pk=record_id(invocation_id, 0))
    assert record.status == Status.SUCCEEDED
    assert record.result == 1
    assert record.traceback is not None
    assert "was interrupted" in record.traceback


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("task", "raised"),
    [
        ("create_group_then_exit", "SystemExit: 3"),
        ("create_group_then_generator_exit", "GeneratorExit"),
    ],
)
def test_system_exit_and_generator_exit_are_failed_outcomes(task: str, raised: str) -> None:
    invocation_id = new_invocation_id()

    outcome = executor.execute(message(task, name="exiting"), invocation_id)

    assert outcome.status == Status.FAILED
    record = TaskRecord.objects.get(pk=record_id(invocation_id, 0))
    assert record.status == Status.FAILED
    assert record.end_time is not None
    assert record.traceback is not None
    assert record.traceback.rstrip().endswith(raised)
    assert not Group.objects.filter(name="exiting").exists()


# --- outcomes that must always be written ----------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_callback_failing_after_the_commit_leaves_the_stored_outcome() -> None:
    invocation_id = new_invocation_id()

    outcome = executor.execute(
        message("create_group_then_failing_callback", name="cb"), invocation_id
    )

    assert outcome.status == Status.SUCCEEDED
    assert TaskRecord.objects.get(pk=record_id(invocation_id, 0)).status == Status.SUCCEEDED
    assert Group.objects.filter(name="cb").count() == 1


@pytest.mark.django_db
def test_a_retry_too_large_to_send_is_a_failed_outcome_naming_why() -> None:
    from lambda_tasks_core.limits import MAX_MESSAGE_SIZE_BYTES
    from lambda_tasks_django.invocation import _ATTRIBUTE_BYTES

    # A body exactly at the size limit on attempt 10: attempt 11's n_retries has one digit more.
    base = message("always_flaky", n_retries=9, name="")
    room = MAX_MESSAGE_SIZE_BYTES - _ATTRIBUTE_BYTES - len(base.to_json().encode())
    sent = message("always_flaky", n_retries=9, name="x" * room)
    invocation_id = new_invocation_id()

    outcome = executor.execute(sent, invocation_id)

    assert outcome.status == Status.FAILED
    assert outcome.retry is None
    record = TaskRecord.objects.get(pk=record_id(invocation_id, 9))
    assert record.status == Status.FAILED
    assert record.traceback is not None
    assert "Flaky" in record.traceback
    assert "The retry could not be sent" in record.traceback
    assert "MessageTooLarge" in record.traceback


@pytest.mark.django_db
def test_a_record_of_another_task_under_the_same_id_is_a_conflict_not_a_duplicate() -> None:
    invocation_id = new_invocation_id()
    make_record(invocation_id, task="create_group", status=Status.SUCCEEDED)

    with pytest.raises(executor.InvocationConflict, match="belongs to task"):
        executor.execute(message("add", a=1), invocation_id)

    assert TaskRecord.objects.get(pk=record_id(invocation_id, 0)).status == Status.SUCCEEDED


# --- cost --------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_one_successful_execution_outside_a_transaction_takes_five_queries(
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    # 1 INSERT of the RUNNING record (autocommit; the unique pk decides races),
    # 4 for the task's own atomic block: BEGIN, the task's INSERT of a Group, the
    #   UPDATE writing the outcome (it commits with the work, SPEC §4), COMMIT
    #   (Django logs BEGIN/COMMIT as queries on every backend).
    # No SELECT before the INSERT and no savepoints: a regression here costs every task.
    with django_assert_num_queries(5) as captured:
        outcome = executor.execute(message("create_group", name="counted"), new_invocation_id())

    assert outcome.status == Status.SUCCEEDED
    statements = [q["sql"].split()[0].upper() for q in captured.captured_queries]
    assert statements == ["INSERT", "BEGIN", "INSERT", "UPDATE", "COMMIT"]
