"""Eager and noop modes, and how the mode settings combine (SPEC §5)."""

from __future__ import annotations

import contextlib
import logging
import sys
import uuid
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from pytest_django import DjangoCaptureOnCommitCallbacks, Settings

from lambda_tasks_core import TaskMessage
from lambda_tasks_django import TaskInvocation
from lambda_tasks_django.models import TaskRecord
from tests.testapp import tasks

Status = TaskRecord.TaskStatus
QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/tasks"


# --- eager -------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_eager_task_runs_right_after_commit_not_before() -> None:
    with transaction.atomic():
        Group.objects.create(name="written-by-caller")
        invocation_id = tasks.create_group.execute_on_commit(name="written-by-task")
        # Still inside the transaction: nothing ran yet.
        assert not TaskRecord.objects.exists()
        assert not Group.objects.filter(name="written-by-task").exists()

    record = TaskRecord.objects.get(invocation_id=invocation_id)
    assert record.status == Status.SUCCEEDED
    assert Group.objects.filter(name="written-by-task").exists()


@pytest.mark.django_db(transaction=True)
def test_eager_task_sees_what_the_committed_transaction_wrote() -> None:
    with transaction.atomic():
        Group.objects.create(name="caller-1")
        tasks.running_records_of_self.execute_on_commit()

    assert TaskRecord.objects.get().result == 1


@pytest.mark.django_db(transaction=True)
def test_eager_tasks_of_one_commit_run_in_enqueue_order() -> None:
    with transaction.atomic():
        ids = [tasks.add.execute_on_commit(a=n) for n in range(3)]

    by_start = TaskRecord.objects.order_by("start_time").values_list("invocation_id", "result")
    assert list(by_start) == [(invocation_id, n) for n, invocation_id in enumerate(ids)]


class Rollback(Exception):
    """Raised to roll a transaction back."""


def enqueue_then_roll_back() -> None:
    with transaction.atomic():
        tasks.create_group.execute_on_commit(name="never")
        raise Rollback


@pytest.mark.django_db(transaction=True)
def test_rolled_back_transaction_dispatches_nothing() -> None:
    with pytest.raises(Rollback):
        enqueue_then_roll_back()

    assert not TaskRecord.objects.exists()
    assert not Group.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_eager_runs_at_once_without_a_transaction() -> None:
    invocation_id = tasks.add.execute_on_commit(a=5)

    assert TaskRecord.objects.get(invocation_id=invocation_id).result == 5


@pytest.mark.django_db(transaction=True)
def test_eager_mode_enforces_no_timeouts() -> None:
    # sleepy_soft has soft 0.2 s and hard 0.5 s limits; eager mode ignores both.
    tasks.sleepy_soft.execute_on_commit(seconds=0.6)

    record = TaskRecord.objects.get()
    assert (record.status, record.result) == (Status.SUCCEEDED, "woke")


@pytest.mark.django_db(transaction=True)
def test_eager_failure_does_not_raise_to_the_caller() -> None:
    invocation_id = tasks.create_group_then_fail.execute_on_commit(name="x")

    assert TaskRecord.objects.get(invocation_id=invocation_id).status == Status.FAILED


@pytest.mark.django_db(transaction=True)
def test_eager_retries_run_until_success() -> None:
    marker = uuid.uuid4().hex
    try:
        invocation_id = tasks.flaky_until.execute_on_commit(marker=marker, succeed_on_attempt=3)
    finally:
        Path(f"/tmp/lambda-tasks-flaky-{marker}").unlink(missing_ok=True)

    records = TaskRecord.objects.filter(invocation_id=invocation_id).order_by("n_retries")
    assert [(r.n_retries, r.status) for r in records] == [
        (0, Status.RETRIED),
        (1, Status.RETRIED),
        (2, Status.SUCCEEDED),
    ]
    assert records[2].result == 3


@pytest.mark.django_db
def test_eager_retries_3000_times_without_recursion_then_fails(
    settings: Settings, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    # Given a task that always asks to be retried and room for 3000 retries
    settings.LAMBDA_TASKS_MAX_RETRIES = 3000
    # (well above the recursion limit: a recursive retry loop would blow it)
    assert sys.getrecursionlimit() < 3000

    # When it is enqueued in eager mode (no exception reaches the caller); the
    # test transaction stays open, which spares 3001 commits to disk
    with django_capture_on_commit_callbacks(execute=True):
        invocation_id = tasks.always_flaky.execute_on_commit()

    # Then every attempt has its record: 3000 RETRIED and the last FAILED
    records = TaskRecord.objects.filter(invocation_id=invocation_id)
    counts = {s: records.filter(status=s).count() for s in Status.values}
    assert counts == {
        Status.READY: 0,
        Status.RETRIED: 3000,
        Status.FAILED: 1,
        Status.RUNNING: 0,
        Status.SUCCEEDED: 0,
    }
    last = records.get(status=Status.FAILED)
    assert last.n_retries == 3000
    assert last.traceback is not None
    assert "MaxRetriesExceededError" in last.traceback


@pytest.mark.django_db(transaction=True)
def test_task_enqueued_from_a_running_eager_task_runs_too() -> None:
    outer_id = tasks.enqueue_add.execute_on_commit(a=7)

    outer = TaskRecord.objects.get(invocation_id=outer_id)
    assert outer.status == Status.SUCCEEDED
    inner = TaskRecord.objects.get(invocation_id=outer.result)
    assert (inner.task_name, inner.status, inner.result) == (
        "tests.testapp.tasks.add",
        Status.SUCCEEDED,
        7,
    )


@pytest.mark.django_db(transaction=True)
def test_task_enqueued_by_an_eager_task_that_then_fails_is_dropped() -> None:
    # The inner enqueue belongs to the outer task's atomic block, which rolls back.
    outer_id = tasks.enqueue_add_then_fail.execute_on_commit(a=1)

    record = TaskRecord.objects.get()
    assert (record.invocation_id, record.status) == (outer_id, Status.FAILED)


@pytest.mark.django_db
def test_eager_task_inside_a_savepoint_that_rolls_back_is_dropped(
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        kept = tasks.add.execute_on_commit(a=1)
        with contextlib.suppress(Rollback), transaction.atomic():
            tasks.add.execute_on_commit(a=2)
            raise Rollback

    assert list(TaskRecord.objects.values_list("invocation_id", "result")) == [(kept, 1)]


# --- noop --------------------------------------------------------------------------------------


@pytest.fixture
def noop_mode(settings: Settings) -> None:
    settings.LAMBDA_TASKS_EAGER = False
    settings.LAMBDA_TASKS_NOOP_EXECUTION = True


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("noop_mode")
def test_noop_mode_drops_the_task_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with transaction.atomic():
        invocation_id = tasks.create_group.execute_on_commit(name="dropped")

    assert not TaskRecord.objects.exists()
    assert not Group.objects.exists()
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "lambda_tasks.dispatch" and r.levelno == logging.WARNING
    ]
    assert warnings == [
        "LAMBDA_TASKS_NOOP_EXECUTION is on: dropped task tests.testapp.tasks.create_group "
        f"(invocation {invocation_id})"
    ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("noop_mode")
def test_noop_mode_drops_nothing_for_a_rolled_back_transaction(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(Rollback):
        enqueue_then_roll_back()

    assert not [r for r in caplog.records if r.name == "lambda_tasks.dispatch"]


# --- mode settings -----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"LAMBDA_TASKS_LOCAL_WORKERS": 2}, ["LAMBDA_TASKS_EAGER", "LAMBDA_TASKS_LOCAL_WORKERS"]),
        (
            {"LAMBDA_TASKS_NOOP_EXECUTION": True},
            ["LAMBDA_TASKS_EAGER", "LAMBDA_TASKS_NOOP_EXECUTION"],
        ),
        (
            {
                "LAMBDA_TASKS_EAGER": False,
                "LAMBDA_TASKS_LOCAL_WORKERS": 1,
                "LAMBDA_TASKS_NOOP_EXECUTION": True,
            },
            ["LAMBDA_TASKS_LOCAL_WORKERS", "LAMBDA_TASKS_NOOP_EXECUTION"],
        ),
        ({"LAMBDA_TASKS_LOCAL_WORKERS": -1}, ["LAMBDA_TASKS_LOCAL_WORKERS"]),
        ({"LAMBDA_TASKS_LOCAL_WORKERS": True}, ["LAMBDA_TASKS_LOCAL_WORKERS"]),
        ({"LAMBDA_TASKS_LOCAL_WORKERS": "2"}, ["LAMBDA_TASKS_LOCAL_WORKERS"]),
        ({"LAMBDA_TASKS_EAGER": "yes"}, ["LAMBDA_TASKS_EAGER"]),
    ],
)
def test_conflicting_or_invalid_mode_settings_raise_at_enqueue_naming_them(
    settings: Settings,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
    overrides: dict[str, object],
    named: list[str],
) -> None:
    for name, value in overrides.items():
        setattr(settings, name, value)

    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(ImproperlyConfigured) as excinfo,
    ):
        tasks.add.execute_on_commit(a=1)

    for setting in named:
        assert setting in str(excinfo.value)
    assert callbacks == []


@pytest.mark.parametrize(
    "mode",
    [
        {},  # eager (the test settings)
        {"LAMBDA_TASKS_EAGER": False, "LAMBDA_TASKS_NOOP_EXECUTION": True},
        {"LAMBDA_TASKS_EAGER": False},  # SQS
    ],
)
@pytest.mark.django_db(transaction=True)
def test_unknown_queue_raises_at_enqueue_inside_the_transaction_when_queues_are_set(
    settings: Settings, mode: dict[str, object]
) -> None:
    # Given LAMBDA_TASKS_QUEUES without the "other" queue of on_other_queue
    settings.LAMBDA_TASKS_QUEUES = {"default": QUEUE_URL}
    for name, value in mode.items():
        setattr(settings, name, value)

    # When it is enqueued inside a transaction, the error comes at once, not after commit
    with transaction.atomic():
        with pytest.raises(ImproperlyConfigured, match=r"'other'.*LAMBDA_TASKS_QUEUES"):
            tasks.on_other_queue.execute_on_commit(n=1)
        Group.objects.create(name="caller-continues")

    assert Group.objects.filter(name="caller-continues").exists()
    assert not TaskRecord.objects.exists()


@pytest.mark.django_db
def test_local_mode_checks_the_queue_at_enqueue(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.LAMBDA_TASKS_EAGER = False
    settings.LAMBDA_TASKS_LOCAL_WORKERS = 1
    settings.LAMBDA_TASKS_QUEUES = {"default": QUEUE_URL}
    monkeypatch.setitem(sys.modules, "lambda_tasks_local", None)  # must not be reached

    with pytest.raises(ImproperlyConfigured, match=r"'other'.*LAMBDA_TASKS_QUEUES"):
        tasks.on_other_queue.execute_on_commit(n=1)


@pytest.mark.django_db
def test_queue_is_not_checked_outside_sqs_mode_when_queues_are_unset(
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        invocation_id = tasks.on_other_queue.execute_on_commit(n=4)

    record = TaskRecord.objects.get(invocation_id=invocation_id)
    assert (record.queue, record.result) == ("other", 4)


@pytest.mark.django_db
def test_sqs_mode_without_queues_refuses_every_enqueue(settings: Settings) -> None:
    settings.LAMBDA_TASKS_EAGER = False

    with pytest.raises(ImproperlyConfigured, match=r"'default'.*LAMBDA_TASKS_QUEUES"):
        tasks.add.execute_on_commit(a=1)


@pytest.mark.django_db
def test_deferred_invocation_to_an_unknown_queue_is_refused_at_enqueue(settings: Settings) -> None:
    settings.LAMBDA_TASKS_QUEUES = {"default": QUEUE_URL}
    invocation = TaskInvocation(
        message=TaskMessage(task_name="tests.testapp.tasks.add", kwargs={"a": 1}), queue="typo"
    )

    with pytest.raises(ImproperlyConfigured, match="'typo'"):
        invocation.execute_on_commit()


@pytest.mark.django_db
def test_local_mode_without_the_local_package_names_the_pip_install(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    settings.LAMBDA_TASKS_EAGER = False
    settings.LAMBDA_TASKS_LOCAL_WORKERS = 2
    monkeypatch.setitem(sys.modules, "lambda_tasks_local", None)

    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(ImproperlyConfigured, match="pip install lambda-tasks-local"),
    ):
        tasks.add.execute_on_commit(a=1)

    assert callbacks == []
