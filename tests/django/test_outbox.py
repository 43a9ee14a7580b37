"""Durable enqueue (SPEC §5, ``LAMBDA_TASKS_OUTBOX``): the outbox table and its relay.

Against the moto server of ``tests.services``: stopped to play an SQS outage,
replaced by a socket that never answers to play a hung one.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import django
import pytest
from django.core.checks import run_checks
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from lambda_tasks_core import INVOCATION_ID_ATTRIBUTE
from lambda_tasks_django import outbox, sqs
from lambda_tasks_django.dispatch import dispatch_now
from lambda_tasks_django.models import OutboxEntry, TaskRecord
from lambda_tasks_django.outbox import relay, relay_at_start
from tests.django.conftest import SqsMode
from tests.services import SqsQueueFactory
from tests.testapp.tasks import add

pytestmark = pytest.mark.django_db(transaction=True)


def ids_of(messages: list[Any]) -> list[str]:
    return [m["MessageAttributes"][INVOCATION_ID_ATTRIBUTE]["StringValue"] for m in messages]


def pending_keys() -> list[str]:
    return list(OutboxEntry.objects.order_by("id").values_list("key", flat=True))


class _RollBack(Exception):
    pass


def enqueue_and_roll_back(values: list[int]) -> None:
    """Enqueue ``add(a=value)`` for each value in an atomic block that rolls back."""
    with contextlib.suppress(_RollBack), transaction.atomic():
        for value in values:
            add.execute_on_commit(a=value)
        raise _RollBack


@pytest.fixture
def outbox_mode(sqs_mode: SqsMode, settings: SettingsWrapper) -> Iterator[SqsMode]:
    settings.LAMBDA_TASKS_OUTBOX = True
    yield sqs_mode
    sqs_mode.server.start()  # a test that stopped it leaves it running for the next


# --------------------------------------------------------------------------- after commit


def test_the_row_is_written_in_the_transaction_and_deleted_once_sent(
    outbox_mode: SqsMode,
) -> None:
    with transaction.atomic():
        invocation_id = add.execute_on_commit(a=1, b=2)
        # Written with the caller's data, not sent yet.
        assert pending_keys() == [f"{invocation_id}:0"]
        assert outbox_mode.server.request_count("SendMessageBatch") == 0

    [message] = outbox_mode.receive(outbox_mode.default, 1)
    assert ids_of([message]) == [invocation_id]
    assert json.loads(message["Body"]) == {
        "task_name": "tests.testapp.tasks.add",
        "kwargs": {"a": 1, "b": 2},
        "n_retries": 0,
    }
    assert pending_keys() == []


def test_a_rolled_back_transaction_leaves_no_row_and_sends_nothing(outbox_mode: SqsMode) -> None:
    enqueue_and_roll_back([1])

    assert pending_keys() == []
    assert outbox_mode.server.request_count("SendMessageBatch") == 0


def test_a_rolled_back_savepoint_drops_its_row_and_keeps_the_outer_one(
    outbox_mode: SqsMode,
) -> None:
    with transaction.atomic():
        kept = add.execute_on_commit(a=1)
        enqueue_and_roll_back([2])

    assert ids_of(outbox_mode.receive(outbox_mode.default, 1)) == [kept]
    assert pending_keys() == []


def test_outside_a_transaction_the_row_is_sent_at_once(outbox_mode: SqsMode) -> None:
    invocation_id = add.execute_on_commit(a=5)
    assert ids_of(outbox_mode.receive(outbox_mode.default, 1)) == [invocation_id]
    assert pending_keys() == []


def test_without_the_setting_nothing_is_written(sqs_mode: SqsMode) -> None:
    with transaction.atomic():
        add.execute_on_commit(a=1)
        assert pending_keys() == []
    sqs_mode.receive(sqs_mode.default, 1)


# --------------------------------------------------------------------------- outage and relay


def test_an_outage_loses_nothing_the_relay_sends_exactly_the_committed_tasks(
    outbox_mode: SqsMode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="lambda_tasks")
    outbox_mode.server.stop()
    committed: list[str] = []
    for n in range(10):
        with transaction.atomic():
            committed += [add.execute_on_commit(a=n, b=i) for i in range(10)]
    for n in range(10):
        enqueue_and_roll_back([100 + n] * 10)

    # Every committed task waits in the outbox, with the reason it was not sent.
    assert sorted(pending_keys()) == sorted(f"{i}:0" for i in committed)
    assert all(
        error and "Error" in error
        for error in OutboxEntry.objects.values_list("last_error", flat=True)
    )
    # Kept rows are a warning, not the ERROR "lost" line of the plain SQS mode.
    assert not [r for r in caplog.records if r.name == "lambda_tasks.sqs"]

    outbox_mode.server.start()
    result = relay(min_age_seconds=0)

    assert result == outbox.RelayResult(sent=100, failed=0)
    received = outbox_mode.receive(outbox_mode.default, 100)
    assert sorted(ids_of(received)) == sorted(committed)
    assert pending_keys() == []
    # A second pass finds nothing to send.
    assert relay(min_age_seconds=0) == outbox.RelayResult(sent=0, failed=0)


def test_the_relay_leaves_young_rows_to_their_own_request(outbox_mode: SqsMode) -> None:
    outbox_mode.server.stop()
    add.execute_on_commit(a=1)
    outbox_mode.server.start()

    assert relay() == outbox.RelayResult(sent=0, failed=0)  # default min age: 30 s
    assert len(pending_keys()) == 1
    assert relay(min_age_seconds=0).sent == 1


def test_a_relay_during_an_outage_keeps_the_rows_and_counts_the_attempts(
    outbox_mode: SqsMode,
) -> None:
    outbox_mode.server.stop()
    add.execute_on_commit(a=1)

    assert relay(min_age_seconds=0) == outbox.RelayResult(sent=0, failed=1)
    assert relay(min_age_seconds=0) == outbox.RelayResult(sent=0, failed=1)

    row = OutboxEntry.objects.get()
    assert row.attempts == 2
    assert row.claim_token is None  # released for the next relay
    assert row.last_error


def test_the_relay_sends_oldest_first_in_batches(outbox_mode: SqsMode) -> None:
    outbox_mode.server.stop()
    ids = [add.execute_on_commit(a=n) for n in range(25)]
    outbox_mode.server.start()
    outbox_mode.server.reset_recording()

    assert relay(min_age_seconds=0, batch_size=10).sent == 25

    sent = [
        entry["MessageAttributes"][INVOCATION_ID_ATTRIBUTE]["StringValue"]
        for batch in outbox_mode.sent_batches()
        for entry in batch["Entries"]
    ]
    assert sent == ids
    assert [len(batch["Entries"]) for batch in outbox_mode.sent_batches()] == [10, 10, 5]


def test_a_row_claimed_by_a_live_relay_is_not_sent_by_another(outbox_mode: SqsMode) -> None:
    outbox_mode.server.stop()
    add.execute_on_commit(a=1)
    outbox_mode.server.start()
    claimed = outbox._claim(min_age_seconds=0, batch_size=10)  # a relay that is mid-send
    assert len(claimed) == 1

    assert relay(min_age_seconds=0) == outbox.RelayResult(sent=0, failed=0)

    # Once the claim expires (the first relay died), the row is sent.
    OutboxEntry.objects.update(claimed_until=timezone.now())
    assert relay(min_age_seconds=0).sent == 1


def test_two_relays_at_once_send_each_row_once(outbox_mode: SqsMode) -> None:
    outbox_mode.server.stop()
    committed = [add.execute_on_commit(a=n) for n in range(120)]
    outbox_mode.server.start()
    start = threading.Barrier(2)
    results: list[outbox.RelayResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        from django.db import connection

        try:
            start.wait(5)
            results.append(relay(min_age_seconds=0, batch_size=5))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert sum(r.sent for r in results) == 120
    assert sum(r.failed for r in results) == 0
    sent = [
        entry["MessageAttributes"][INVOCATION_ID_ATTRIBUTE]["StringValue"]
        for batch in outbox_mode.sent_batches()
        for entry in batch["Entries"]
    ]
    assert sorted(sent) == sorted(committed)  # each exactly once
    assert pending_keys() == []


def test_a_hung_endpoint_blocks_the_commit_for_a_bounded_time_and_keeps_the_row(
    outbox_mode: SqsMode,
    hung_endpoint: tuple[str, list[socket.socket]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", hung_endpoint[0])
    sqs.reset_client()

    started = time.monotonic()
    with transaction.atomic():
        invocation_ids = [add.execute_on_commit(a=n) for n in range(30)]
    elapsed = time.monotonic() - started

    bound = sqs.READ_TIMEOUT_SECONDS * sqs.MAX_ATTEMPTS + sqs.CONNECT_TIMEOUT_SECONDS + 4
    assert elapsed < bound, f"the commit took {elapsed:.1f} s"
    assert sorted(pending_keys()) == sorted(f"{i}:0" for i in invocation_ids)

    monkeypatch.setenv("AWS_ENDPOINT_URL", outbox_mode.server.url)
    sqs.reset_client()
    assert relay(min_age_seconds=0).sent == 30
    assert sorted(ids_of(outbox_mode.receive(outbox_mode.default, 30))) == sorted(invocation_ids)


def test_dispatch_now_stores_before_sending(outbox_mode: SqsMode) -> None:
    outbox_mode.server.stop()
    invocation = add.invocation({"a": 1}).with_id()
    dispatch_now([invocation])
    assert pending_keys() == [f"{invocation.invocation_id}:0"]


# --------------------------------------------------------------------------- FIFO


def test_fifo_rows_are_relayed_in_order_with_their_ids_and_group(
    outbox_mode: SqsMode, sqs_queue_factory: SqsQueueFactory, settings: SettingsWrapper
) -> None:
    fifo = sqs_queue_factory("outbox-fifo", fifo=True)
    settings.LAMBDA_TASKS_QUEUES = {"default": fifo, "other": outbox_mode.other}
    outbox_mode.server.stop()
    ids = []
    for n in range(12):
        with transaction.atomic():
            ids.append(add.execute_on_commit(a=n, _group="tenant-1"))
    outbox_mode.server.start()

    assert relay(min_age_seconds=0).sent == 12

    messages = outbox_mode.receive(fifo, 12)
    assert [json.loads(m["Body"])["kwargs"]["a"] for m in messages] == list(range(12))
    assert ids_of(messages) == ids
    assert {m["Attributes"]["MessageGroupId"] for m in messages} == {"tenant-1"}
    assert [m["Attributes"]["MessageDeduplicationId"] for m in messages] == [f"{i}:0" for i in ids]


# --------------------------------------------------------------------------- relay entry points


def test_relay_at_start_does_nothing_without_the_outbox(sqs_mode: SqsMode) -> None:
    assert relay_at_start() is None


def test_relay_at_start_never_raises(outbox_mode: SqsMode) -> None:
    outbox_mode.server.stop()
    add.execute_on_commit(a=1)
    OutboxEntry.objects.update(created_at=timezone.now() - datetime.timedelta(minutes=5))

    assert relay_at_start() == outbox.RelayResult(sent=0, failed=1)
    outbox_mode.server.start()
    assert relay_at_start() == outbox.RelayResult(sent=1, failed=0)


def test_relay_command_one_pass(outbox_mode: SqsMode) -> None:
    outbox_mode.server.stop()
    add.execute_on_commit(a=1)
    outbox_mode.server.start()
    out = io.StringIO()

    call_command("lambda_tasks_relay", "--min-age=0", stdout=out)

    assert out.getvalue().strip() == "Outbox relay: 1 sent, 0 failed."
    assert pending_keys() == []


def test_relay_command_loop_stops_on_sigterm_and_restores_the_handler(
    outbox_mode: SqsMode,
) -> None:
    out = io.StringIO()
    before = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    started = time.monotonic()
    try:
        call_command("lambda_tasks_relay", "--loop", "--interval=0.1", stdout=out)
    finally:
        timer.cancel()

    assert time.monotonic() - started < 5
    assert out.getvalue().count("Outbox relay:") >= 2
    assert signal.getsignal(signal.SIGTERM) == before


@pytest.mark.parametrize("bad", ["--batch-size=0", "--min-age=-1", "--interval=0"])
def test_relay_command_refuses_bad_numbers(bad: str) -> None:
    with pytest.raises(CommandError):
        call_command("lambda_tasks_relay", bad)


# --------------------------------------------------------------------------- admin, checks


def test_admin_lists_pending_rows_with_their_last_error(
    outbox_mode: SqsMode, admin_client: Client
) -> None:
    outbox_mode.server.stop()
    add.execute_on_commit(a=1)
    row = OutboxEntry.objects.get()
    assert row.last_error

    changelist = admin_client.get(reverse("admin:lambda_tasks_outboxentry_changelist"))
    assert changelist.status_code == 200
    assert "tests.testapp.tasks.add" in changelist.content.decode()
    assert changelist.context["has_add_permission"] is False

    change = admin_client.get(reverse("admin:lambda_tasks_outboxentry_change", args=[row.pk]))
    assert change.status_code == 200
    assert row.last_error.split(":")[0] in change.content.decode()


def test_the_outbox_outside_sqs_mode_is_a_warning(settings: SettingsWrapper) -> None:
    settings.LAMBDA_TASKS_OUTBOX = True
    settings.LAMBDA_TASKS_EAGER = True
    assert "lambda_tasks.W002" in {m.id for m in run_checks()}


# --------------------------------------------------------------------------- django.tasks


@pytest.mark.skipif(django.VERSION < (6, 0), reason="django.tasks needs Django 6.0 or later")
def test_backend_enqueue_is_written_in_the_transaction_and_sent_after_commit(
    outbox_mode: SqsMode,
) -> None:
    from tests.testapp import django_tasks

    with transaction.atomic():
        result = django_tasks.multiply.enqueue(3, b=4)
        # Written in the caller's transaction: the READY record and the outbox row.
        assert pending_keys() == [f"{result.id}:0"]
        assert TaskRecord.objects.get(invocation_id=result.id).status == "READY"
        assert outbox_mode.server.request_count("SendMessageBatch") == 0
    assert ids_of(outbox_mode.receive(outbox_mode.default, 1)) == [result.id]
    assert pending_keys() == []

    with contextlib.suppress(_RollBack), transaction.atomic():
        django_tasks.multiply.enqueue(1, b=1)
        raise _RollBack
    assert pending_keys() == []
    assert TaskRecord.objects.count() == 1
    assert outbox_mode.receive_now(outbox_mode.default) == []
