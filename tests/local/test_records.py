"""Recording the failure of an attempt whose worker died, in every state its record may be."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from lambda_tasks_core import new_invocation_id, record_id
from lambda_tasks_django.models import TaskRecord
from lambda_tasks_local.pool import Job, failure_text, record_failure
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)

Status = TaskRecord.TaskStatus
CAUSE = "the local worker process (pid 1) running this task died: exited with code 3"


def _job() -> Job:
    return Job.from_invocation(tasks.add.invocation({"a": 1, "b": 2}, None, None).with_id())


def _record(job: Job, status: str, **values: object) -> TaskRecord:
    return TaskRecord.objects.create(
        pk=record_id(job.invocation_id, 0),
        task_name=job.task_name,
        kwargs={"a": 1, "b": 2},
        n_retries=0,
        status=status,
        invocation_id=job.invocation_id,
        **values,
    )


def test_no_record_yet_one_is_created() -> None:
    job = _job()
    started = timezone.now() - datetime.timedelta(seconds=3)

    record_failure(job, CAUSE, started)

    record = TaskRecord.objects.get(pk=record_id(job.invocation_id, 0))
    assert record.status == Status.FAILED
    assert record.task_name == tasks.add.name
    assert record.kwargs == {"a": 1, "b": 2}
    assert record.queue == "default"
    assert record.start_time == started
    assert record.end_time is not None
    assert record.traceback == failure_text(CAUSE)
    assert "lambda_tasks_local.pool.WorkerDied: " + CAUSE in record.traceback


def test_a_running_record_fails_and_keeps_its_note() -> None:
    job = _job()
    started = timezone.now()
    _record(job, Status.RUNNING, start_time=started, traceback="An earlier delivery was lost.")

    record_failure(job, CAUSE)

    record = TaskRecord.objects.get(pk=record_id(job.invocation_id, 0))
    assert record.status == Status.FAILED
    assert record.start_time == started
    assert record.traceback is not None
    assert record.traceback.startswith("An earlier delivery was lost.\n\n")
    assert CAUSE in record.traceback


def test_a_ready_record_fails_too() -> None:
    job = _job()
    _record(job, Status.READY)

    record_failure(job, CAUSE)

    record = TaskRecord.objects.get(pk=record_id(job.invocation_id, 0))
    assert record.status == Status.FAILED
    assert record.start_time is not None
    assert CAUSE in (record.traceback or "")


def test_a_finished_attempt_keeps_its_outcome() -> None:
    job = _job()
    _record(job, Status.SUCCEEDED, start_time=timezone.now(), result=3)

    record_failure(job, CAUSE)

    record = TaskRecord.objects.get(pk=record_id(job.invocation_id, 0))
    assert record.status == Status.SUCCEEDED
    assert record.result == 3
    assert record.traceback is None


def test_other_attempts_are_untouched() -> None:
    job = _job()
    other = new_invocation_id()
    TaskRecord.objects.create(
        pk=record_id(other, 0),
        task_name=job.task_name,
        kwargs={},
        n_retries=0,
        status=Status.RUNNING,
        start_time=timezone.now(),
        invocation_id=other,
    )

    record_failure(job, CAUSE)

    assert TaskRecord.objects.get(pk=record_id(other, 0)).status == Status.RUNNING
