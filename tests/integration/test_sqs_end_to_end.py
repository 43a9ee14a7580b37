"""End to end in SQS mode: ``execute_on_commit`` → moto's SQS → poller → handler → TaskRecord.

Nothing is mocked: the tasks are sent after the commit by the SQS transport,
received by the poller (as another machine would), run by the Lambda
handler, and recorded in the database (SQLite, or PostgreSQL with
``LAMBDA_TASKS_TEST_DB=postgres``). A retry travels back through the queue
with its delay; poison messages stay in the queue while their neighbours run.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.db import transaction
from pytest_django.fixtures import Settings

from lambda_tasks_core import record_id
from lambda_tasks_django import sqs
from lambda_tasks_django.models import TaskRecord
from lambda_tasks_handler.poll import Poller
from tests.services import MotoServer, SqsQueueFactory
from tests.testapp.tasks import add, create_group, flaky_until

pytestmark = pytest.mark.django_db(transaction=True)

Status = TaskRecord.TaskStatus


@pytest.fixture
def queue(
    aws_env: MotoServer, sqs_queue_factory: SqsQueueFactory, settings: Settings
) -> Iterator[str]:
    """SQS mode with a fresh default queue (2 s visibility timeout)."""
    url = sqs_queue_factory("e2e", VisibilityTimeout=2)
    settings.LAMBDA_TASKS_EAGER = False
    settings.LAMBDA_TASKS_QUEUES = {"default": url, "other": sqs_queue_factory("e2e-other")}
    sqs.reset_client()
    yield url
    sqs.reset_client()


def status(invocation_id: str, n_retries: int = 0) -> str | None:
    return (
        TaskRecord.objects.filter(pk=record_id(invocation_id, n_retries))
        .values_list("status", flat=True)
        .first()
    )


def within(seconds: float, condition: Callable[[], bool]) -> Callable[[], bool]:
    deadline = time.monotonic() + seconds

    def check() -> bool:
        if condition():
            return True
        if time.monotonic() > deadline:
            raise AssertionError(f"not done within {seconds} s")
        return False

    return check


def test_tasks_go_through_sqs_and_the_poller_to_their_records(
    queue: str, aws_env: MotoServer
) -> None:
    marker = f"e2e-{uuid.uuid4().hex}"
    client = aws_env.sqs_client()
    aws_env.reset_recording()
    try:
        # Given three tasks enqueued in one transaction...
        with transaction.atomic():
            added = add.execute_on_commit(a=2, b=3)
            flaky = flaky_until.execute_on_commit(marker=marker, succeed_on_attempt=2)
            grouped = create_group.execute_on_commit(name=marker)
            assert aws_env.request_count("SendMessageBatch") == 0  # nothing before the commit
        assert aws_env.request_count("SendMessageBatch") == 1  # one batch for the commit
        # ...and two poison messages beside them.
        poison = {
            client.send_message(QueueUrl=queue, MessageBody=poison_body)["MessageId"]
            for poison_body in (
                "{not json",
                json.dumps({"task_name": "os.system", "kwargs": {"command": "true"}}),
            )
        }

        # When the poller drains the queue until the tasks are done...
        Poller(queue, wait_time_seconds=1).run(
            until=within(
                45,
                lambda: status(added) == status(grouped) == status(flaky, 1) == Status.SUCCEEDED,
            ),
            handle_signals=False,
        )
    finally:
        Path(f"/tmp/lambda-tasks-flaky-{marker}").unlink(missing_ok=True)

    # Then each task has its records.
    assert TaskRecord.objects.get(pk=record_id(added, 0)).result == 5
    assert Group.objects.filter(name=marker).exists()
    first = TaskRecord.objects.get(pk=record_id(flaky, 0))
    retry = TaskRecord.objects.get(pk=record_id(flaky, 1))
    assert first.status == Status.RETRIED
    assert retry.result == 2
    assert retry.invocation_id == flaky
    # The retry came back through the queue after its delay (1-5 s of jitter).
    assert first.end_time is not None
    assert retry.start_time is not None
    assert (retry.start_time - first.end_time).total_seconds() >= 0.9
    # And the poison messages are still in the queue, offered again and again.
    seen: dict[str, int] = {}
    deadline = time.monotonic() + 10
    while set(seen) != poison and time.monotonic() < deadline:
        response = client.receive_message(
            QueueUrl=queue, WaitTimeSeconds=1, MessageSystemAttributeNames=["All"]
        )
        for message in response.get("Messages", []):
            seen[message["MessageId"]] = int(message["Attributes"]["ApproximateReceiveCount"])
    assert set(seen) == poison
    assert min(seen.values()) >= 2
    assert TaskRecord.objects.filter(task_name="os.system").count() == 0
