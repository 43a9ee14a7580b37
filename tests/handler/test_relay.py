"""The outbox relay from the Lambda side: at cold start, and as a scheduled function."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

import lambda_tasks_handler
from lambda_tasks_django.models import OutboxEntry
from tests.handler.conftest import FakeContext, SqsMode
from tests.testapp.tasks import add

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stranded(sqs_mode: SqsMode, settings: SettingsWrapper) -> str:
    """An invocation the outbox kept during an outage a minute ago; SQS is back."""
    settings.LAMBDA_TASKS_OUTBOX = True
    sqs_mode.moto.stop()
    try:
        invocation_id = add.execute_on_commit(a=1)
    finally:
        sqs_mode.moto.start()
    OutboxEntry.objects.update(created_at=timezone.now() - datetime.timedelta(minutes=1))
    return invocation_id


def queued(sqs_mode: SqsMode) -> int:
    client = sqs_mode.moto.sqs_client()
    attributes = client.get_queue_attributes(
        QueueUrl=sqs_mode.default, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def test_the_cold_start_relays_the_outbox(
    stranded: str, sqs_mode: SqsMode, lambda_context: FakeContext
) -> None:
    assert OutboxEntry.objects.count() == 1

    assert lambda_tasks_handler.handler({"Records": []}, lambda_context) == {
        "batchItemFailures": []
    }

    assert OutboxEntry.objects.count() == 0
    assert queued(sqs_mode) == 1


def test_the_cold_start_does_not_relay_without_the_outbox(
    stranded: str, sqs_mode: SqsMode, lambda_context: FakeContext, settings: SettingsWrapper
) -> None:
    settings.LAMBDA_TASKS_OUTBOX = False
    lambda_tasks_handler.handler({"Records": []}, lambda_context)
    assert OutboxEntry.objects.count() == 1


def test_a_cold_start_relay_that_fails_does_not_fail_the_cold_start(
    stranded: str, sqs_mode: SqsMode, lambda_context: FakeContext
) -> None:
    sqs_mode.moto.stop()
    try:
        lambda_tasks_handler.handler({"Records": []}, lambda_context)
    finally:
        sqs_mode.moto.start()
    assert OutboxEntry.objects.get().attempts == 1


def test_relay_handler_sends_and_reports_counts(
    stranded: str, sqs_mode: SqsMode, lambda_context: FakeContext
) -> None:
    from lambda_tasks_handler import _coldstart

    _coldstart.cold_start(lambda_context)  # warm: this call alone must relay
    assert OutboxEntry.objects.count() == 0
    sqs_mode.moto.stop()  # a restarted moto forgets its messages: the queue starts empty
    add.execute_on_commit(a=3)  # stranded too
    sqs_mode.moto.start()
    OutboxEntry.objects.update(created_at=timezone.now() - datetime.timedelta(minutes=1))

    result = lambda_tasks_handler.relay_handler({"source": "aws.events"}, lambda_context)

    assert result == {"sent": 1, "failed": 0}
    assert OutboxEntry.objects.count() == 0
    assert queued(sqs_mode) == 1


def test_the_poller_relays_the_outbox_when_it_starts(stranded: str, sqs_mode: SqsMode) -> None:
    from lambda_tasks_handler.poll import Poller

    Poller(sqs_mode.default, wait_time_seconds=0).run(until=lambda: True, handle_signals=False)

    assert OutboxEntry.objects.count() == 0
    assert queued(sqs_mode) == 1
