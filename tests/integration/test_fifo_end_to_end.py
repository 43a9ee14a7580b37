"""FIFO queues end to end (SPEC §5, §6): ``execute_on_commit`` → moto FIFO queue → poller → handler.

Order within a message group, stop-at-first-failure (the records behind a
failing one wait for it instead of overtaking it), and retries that keep
their group.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.db import transaction
from pytest_django.fixtures import Settings

from lambda_tasks_core import INVOCATION_ID_ATTRIBUTE, TaskMessage, record_id
from lambda_tasks_django import sqs
from lambda_tasks_django.models import TaskRecord
from lambda_tasks_handler.poll import Poller
from tests.django.conftest import SqsMode
from tests.integration.test_sqs_end_to_end import status, within
from tests.services import MotoServer, SqsQueueFactory
from tests.testapp.tasks import create_group, flaky_until

pytestmark = pytest.mark.django_db(transaction=True)

Status = TaskRecord.TaskStatus


@pytest.fixture
def fifo(
    aws_env: MotoServer, sqs_queue_factory: SqsQueueFactory, settings: Settings
) -> Iterator[SqsMode]:
    """SQS mode with a FIFO default queue (the ``other`` queue is FIFO too)."""
    url = sqs_queue_factory("e2e-fifo", fifo=True, VisibilityTimeout=30)
    other = sqs_queue_factory("e2e-fifo-other", fifo=True)
    settings.LAMBDA_TASKS_EAGER = False
    settings.LAMBDA_TASKS_QUEUES = {"default": url, "other": other}
    sqs.reset_client()
    yield SqsMode(server=aws_env, client=aws_env.sqs_client(), default=url, other=other)
    sqs.reset_client()


def created_in_order(marker: str) -> list[str]:
    """The names of the marker's groups, in the order the tasks created them."""
    return list(
        Group.objects.filter(name__startswith=marker).order_by("pk").values_list("name", flat=True)
    )


def test_a_group_runs_in_enqueue_order_across_batches(fifo: SqsMode) -> None:
    marker = f"fifo-{uuid.uuid4().hex[:8]}"
    names = [f"{marker}-{n:02d}" for n in range(25)]
    for start in range(0, 25, 5):  # five commits, one batch each
        with transaction.atomic():
            for name in names[start : start + 5]:
                create_group.execute_on_commit(name=name, _group=marker)

    Poller(fifo.default, wait_time_seconds=1).run(
        until=within(60, lambda: len(created_in_order(marker)) == 25), handle_signals=False
    )

    assert created_in_order(marker) == names
    assert fifo.count_in_queue(fifo.default) == 0


def test_a_failing_record_stops_the_rest_of_its_fifo_batch(fifo: SqsMode) -> None:
    marker = f"fifo-{uuid.uuid4().hex[:8]}"
    names = [f"{marker}-{n:02d}" for n in range(9)]
    # Given a group of nine tasks with a poison message (invalid kwargs) after the fifth
    with transaction.atomic():
        for name in names[:5]:
            create_group.execute_on_commit(name=name, _group=marker)
    poison = TaskMessage(task_name=create_group.name, kwargs={"name": 5})
    fifo.client.send_message(
        QueueUrl=fifo.default,
        MessageBody=poison.to_json(),
        MessageGroupId=marker,
        MessageDeduplicationId=f"{marker}-poison",
    )
    with transaction.atomic():
        for name in names[5:]:
            create_group.execute_on_commit(name=name, _group=marker)

    # When the poller runs the batch of ten
    report = Poller(fifo.default, wait_time_seconds=1).poll_once()

    # Then the records before the poison ran in order; the poison and every
    # record behind it were reported, not run, and wait in the queue.
    assert report is not None
    assert (report.received, report.deleted, report.failed) == (10, 5, 5)
    assert created_in_order(marker) == names[:5]
    assert fifo.count_in_queue(fifo.default) == 5
    assert TaskRecord.objects.filter(task_name=create_group.name).count() == 5


def test_a_retry_keeps_its_message_group(fifo: SqsMode, aws_env: MotoServer) -> None:
    marker = f"fifo-retry-{uuid.uuid4().hex[:8]}"
    aws_env.reset_recording()
    try:
        with transaction.atomic():
            invocation_id = flaky_until.execute_on_commit(
                marker=marker, succeed_on_attempt=2, _group="tenant-42"
            )
        Poller(fifo.default, wait_time_seconds=1).run(
            until=within(30, lambda: status(invocation_id, 1) == Status.SUCCEEDED),
            handle_signals=False,
        )
    finally:
        Path(f"/tmp/lambda-tasks-flaky-{marker}").unlink(missing_ok=True)

    assert status(invocation_id, 0) == Status.RETRIED
    entries = [entry for batch in fifo.sent_batches() for entry in batch["Entries"]]
    assert [
        (
            entry["MessageAttributes"][INVOCATION_ID_ATTRIBUTE]["StringValue"],
            json.loads(entry["MessageBody"])["n_retries"],
            entry["MessageGroupId"],
            entry["MessageDeduplicationId"],
        )
        for entry in entries
    ] == [
        (invocation_id, 0, "tenant-42", f"{invocation_id}:0"),
        (invocation_id, 1, "tenant-42", f"{invocation_id}:1"),
    ]
    assert all("DelaySeconds" not in entry for entry in entries)
    assert TaskRecord.objects.get(pk=record_id(invocation_id, 1)).result == 2
