"""SQS mode (SPEC §3, §5): wire shape, delays, queues, batching, failures after commit.

Everything goes through the moto server of ``tests.services``; what was sent is
read back with ``receive_message`` and, where the exact API calls matter,
from moto's request recorder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
import uuid
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from pytest_django.fixtures import Settings as SettingsWrapper

from lambda_tasks_core import INVOCATION_ID_ATTRIBUTE, TaskMessage
from lambda_tasks_core.limits import MAX_BATCH_SIZE_BYTES, MAX_MESSAGE_SIZE_BYTES
from lambda_tasks_django import MessageTooLarge, TaskInvocation, sqs
from tests.django.conftest import SqsMode
from tests.services import SqsQueueFactory
from tests.testapp.tasks import add, logs, on_other_queue

ADD = "tests.testapp.tasks.add"
ON_OTHER_QUEUE = "tests.testapp.tasks.on_other_queue"
LOGS = "tests.testapp.tasks.logs"


def body_of(task_name: str, **kwargs: Any) -> str:
    """The exact body the sender must log/send for a first attempt."""
    return TaskMessage(task_name=task_name, kwargs=kwargs).to_json()


def ids_of(messages: list[Any]) -> list[str]:
    return [m["MessageAttributes"][INVOCATION_ID_ATTRIBUTE]["StringValue"] for m in messages]


def unsent_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "lambda_tasks.sqs" and r.levelno == logging.ERROR
    ]


def assert_logged_unsent(
    caplog: pytest.LogCaptureFixture, expected: dict[str, str], *, only: bool = True
) -> None:
    """Each invocation id in ``expected`` has exactly one ERROR line holding its full body."""
    records = unsent_records(caplog)
    for invocation_id, body in expected.items():
        lines = [r.getMessage() for r in records if invocation_id in r.getMessage()]
        assert len(lines) == 1, f"{invocation_id}: {lines}"
        assert body in lines[0]
    if only:
        assert len(records) == len(expected)


# --------------------------------------------------------------------------- wire format


def test_body_is_the_reference_shape_and_the_attribute_carries_the_invocation_id(
    sqs_mode: SqsMode,
) -> None:
    invocation_id = add.execute_on_commit(a=1, b=2)  # no transaction: sent at once

    [message] = sqs_mode.receive(sqs_mode.default, 1)
    body = json.loads(message["Body"])
    assert body == {"task_name": ADD, "kwargs": {"a": 1, "b": 2}, "n_retries": 0}
    assert list(body) == ["task_name", "kwargs", "n_retries"]
    assert message["MessageAttributes"] == {
        INVOCATION_ID_ATTRIBUTE: {"StringValue": invocation_id, "DataType": "String"}
    }
    assert uuid.UUID(invocation_id).version == 4
    assert sqs_mode.receive_now(sqs_mode.other) == []


def test_each_enqueue_gets_its_own_invocation_id(sqs_mode: SqsMode) -> None:
    first = add.execute_on_commit(a=1)
    second = add.execute_on_commit(a=1)
    assert first != second
    assert sorted(ids_of(sqs_mode.receive(sqs_mode.default, 2))) == sorted([first, second])


# --------------------------------------------------------------------------- delay and queues


@pytest.mark.django_db(transaction=True)
def test_delay_option_and_per_call_override_become_delay_seconds(sqs_mode: SqsMode) -> None:
    with transaction.atomic():
        default_delay = on_other_queue.execute_on_commit(n=1)  # decorator delay=3
        no_delay = on_other_queue.execute_on_commit(n=2, _delay=0)
        delayed = add.execute_on_commit(a=1, _delay=2)
        immediate = add.execute_on_commit(a=2)
    sent_at = time.monotonic()

    delays = {
        entry["MessageAttributes"][INVOCATION_ID_ATTRIBUTE]["StringValue"]: entry["DelaySeconds"]
        for batch in sqs_mode.sent_batches()
        for entry in batch["Entries"]
    }
    assert delays == {default_delay: 3, no_delay: 0, delayed: 2, immediate: 0}

    # moto honours DelaySeconds: the delayed messages are not visible yet.
    assert ids_of(sqs_mode.receive_now(sqs_mode.default)) == [immediate]
    assert ids_of(sqs_mode.receive_now(sqs_mode.other)) == [no_delay]
    assert ids_of(sqs_mode.receive(sqs_mode.default, 1, timeout=6)) == [delayed]
    assert time.monotonic() - sent_at >= 1.5


@pytest.mark.django_db(transaction=True)
def test_named_queues_are_routed_to_their_urls(sqs_mode: SqsMode) -> None:
    with transaction.atomic():
        on_other = on_other_queue.execute_on_commit(n=7, _delay=0)
        on_default = add.execute_on_commit(a=7)

    [other_message] = sqs_mode.receive(sqs_mode.other, 1)
    [default_message] = sqs_mode.receive(sqs_mode.default, 1)
    assert ids_of([other_message]) == [on_other]
    assert json.loads(other_message["Body"])["task_name"] == ON_OTHER_QUEUE
    assert ids_of([default_message]) == [on_default]
    assert {b["QueueUrl"] for b in sqs_mode.sent_batches()} == {sqs_mode.default, sqs_mode.other}


@pytest.mark.django_db(transaction=True)
def test_unknown_queue_raises_at_enqueue_before_commit(
    sqs_mode: SqsMode, settings: SettingsWrapper
) -> None:
    settings.LAMBDA_TASKS_QUEUES = {"default": sqs_mode.default}

    with pytest.raises(ImproperlyConfigured, match=r"'other'.*LAMBDA_TASKS_QUEUES"):
        on_other_queue.execute_on_commit(n=1)  # outside a transaction too

    with transaction.atomic():
        kept = add.execute_on_commit(a=1)
        hooks_before = len(transaction.get_connection().run_on_commit)
        with pytest.raises(ImproperlyConfigured, match=r"'other'.*LAMBDA_TASKS_QUEUES"):
            on_other_queue.execute_on_commit(n=2)
        assert len(transaction.get_connection().run_on_commit) == hooks_before
    assert ids_of(sqs_mode.receive(sqs_mode.default, 1)) == [kept]
    assert sqs_mode.server.request_count("SendMessageBatch") == 1
    assert sqs_mode.count_in_queue(sqs_mode.other) == 0


# --------------------------------------------------------------------------- size limit


def _largest_text() -> int:
    """Length of the longest ASCII ``text`` whose ``logs`` message still fits in SQS."""
    probe = TaskInvocation(message=TaskMessage(task_name=LOGS, kwargs={"text": ""}))
    attribute_bytes = len(INVOCATION_ID_ATTRIBUTE) + len("String") + 36
    return MAX_MESSAGE_SIZE_BYTES - len(probe.body().encode()) - attribute_bytes


@pytest.mark.django_db(transaction=True)
def test_oversize_body_is_refused_at_enqueue_and_never_sent(sqs_mode: SqsMode) -> None:
    largest = _largest_text()
    with transaction.atomic():
        with pytest.raises(MessageTooLarge, match=r"over the SQS limit"):
            logs.execute_on_commit(text="x" * (largest + 1))
        # Bytes count, not characters: 2-byte characters overflow sooner.
        with pytest.raises(ValueError, match=r"over the SQS limit"):
            logs.execute_on_commit(text="é" * (largest // 2 + 1))
        fits = logs.execute_on_commit(text="x" * largest)

    [message] = sqs_mode.receive(sqs_mode.default, 1)
    assert ids_of([message]) == [fits]
    assert json.loads(message["Body"])["kwargs"]["text"] == "x" * largest
    assert sqs_mode.server.request_count("SendMessageBatch") == 1
    assert sqs_mode.server.request_count("SendMessage") == 0


def test_oversize_body_outside_a_transaction_sends_nothing(sqs_mode: SqsMode) -> None:
    with pytest.raises(MessageTooLarge):
        logs.execute_on_commit(text="x" * MAX_MESSAGE_SIZE_BYTES)
    assert sqs_mode.server.request_count("SendMessageBatch") == 0
    assert sqs_mode.server.request_count("SendMessage") == 0


# --------------------------------------------------------------------------- batching


@pytest.mark.django_db(transaction=True)
def test_one_commit_goes_out_in_batches_of_ten(sqs_mode: SqsMode) -> None:
    with transaction.atomic():
        ids = [add.execute_on_commit(a=n) for n in range(25)]

    assert sqs_mode.server.request_count("SendMessageBatch") == 3
    assert sqs_mode.server.request_count("SendMessage") == 0
    assert [len(b["Entries"]) for b in sqs_mode.sent_batches()] == [10, 10, 5]
    messages = sqs_mode.receive(sqs_mode.default, 25)
    assert sorted(ids_of(messages)) == sorted(ids)
    by_id = {i: json.loads(m["Body"]) for i, m in zip(ids_of(messages), messages, strict=True)}
    assert [by_id[i]["kwargs"]["a"] for i in ids] == list(range(25))


@pytest.mark.django_db(transaction=True)
def test_batches_are_split_by_their_total_size(sqs_mode: SqsMode) -> None:
    with transaction.atomic():
        ids = [logs.execute_on_commit(text=str(n) * 400_000) for n in range(3)]

    batches = sqs_mode.sent_batches()
    assert len(batches) >= 2
    for batch in batches:
        total = sum(len(e["MessageBody"].encode()) for e in batch["Entries"])
        assert total <= MAX_BATCH_SIZE_BYTES
    messages = sqs_mode.receive(sqs_mode.default, 3)
    assert sorted(ids_of(messages)) == sorted(ids)


# --------------------------------------------------------------------------- the client


@pytest.mark.django_db(transaction=True)
def test_one_client_is_built_and_reused(sqs_mode: SqsMode, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3.session

    built: list[str] = []
    original = boto3.session.Session.client

    def counting_client(self: boto3.session.Session, *args: Any, **kwargs: Any) -> Any:
        built.append(args[0] if args else kwargs["service_name"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(boto3.session.Session, "client", counting_client)

    for n in range(4):
        with transaction.atomic():
            add.execute_on_commit(a=n)
            add.execute_on_commit(a=n)
    add.execute_on_commit(a=99)
    add.execute_on_commit(a=100)

    assert built == ["sqs"]
    assert sqs.get_client() is sqs.get_client()
    assert built == ["sqs"]
    assert len(sqs_mode.receive(sqs_mode.default, 10)) == 10


def test_client_has_bounded_timeouts(sqs_mode: SqsMode) -> None:
    config: Any = sqs.get_client().meta.config  # botocore-stubs omit its attributes
    assert config.connect_timeout == sqs.CONNECT_TIMEOUT_SECONDS
    assert config.read_timeout == sqs.READ_TIMEOUT_SECONDS
    assert config.retries["total_max_attempts"] == sqs.MAX_ATTEMPTS
    # A hung endpoint holds a request for at most about this long (botocore: 60 s × 5).
    assert sqs.READ_TIMEOUT_SECONDS * sqs.MAX_ATTEMPTS + sqs.CONNECT_TIMEOUT_SECONDS <= 15


# --------------------------------------------------------------------------- failures after commit


def _count_send_attempts() -> list[str]:
    """Every HTTP attempt of SendMessageBatch made by the process's client."""
    attempts: list[str] = []

    def before_send(**kwargs: Any) -> None:
        attempts.append(kwargs["request"].url)

    sqs.get_client().meta.events.register("before-send.sqs.SendMessageBatch", before_send)
    return attempts


def _enqueue_thirty_on_two_queues() -> dict[str, str]:
    """15 tasks per queue (2 batches each); invocation id -> expected body."""
    expected = {}
    for n in range(15):
        expected[add.execute_on_commit(a=n)] = body_of(ADD, a=n)
        expected[on_other_queue.execute_on_commit(n=n, _delay=0)] = body_of(ON_OTHER_QUEUE, n=n)
    return expected


@pytest.mark.django_db(transaction=True)
def test_stopped_endpoint_logs_every_message_and_stops_trying(
    sqs_mode: SqsMode, caplog: pytest.LogCaptureFixture
) -> None:
    attempts = _count_send_attempts()
    caplog.set_level(logging.ERROR, logger="lambda_tasks.sqs")
    try:
        with transaction.atomic():
            expected = _enqueue_thirty_on_two_queues()
            sqs_mode.server.stop()
            started = time.monotonic()
        elapsed = time.monotonic() - started  # the commit did not raise
    finally:
        sqs_mode.server.start()

    assert elapsed < 6, f"commit took {elapsed:.1f} s"
    # Only the first batch was tried (with botocore's retries); the 3 others were not.
    assert 1 <= len(attempts) <= sqs.MAX_ATTEMPTS
    assert_logged_unsent(caplog, expected)

    # The same client works again once the endpoint is back.
    caplog.clear()
    again = add.execute_on_commit(a=1)
    assert ids_of(sqs_mode.receive(sqs_mode.default, 1)) == [again]
    assert unsent_records(caplog) == []


@pytest.mark.django_db(transaction=True)
def test_failed_entries_of_a_batch_are_logged_and_the_others_sent(
    sqs_mode: SqsMode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="lambda_tasks.sqs")
    # SQS answers 200 with a Failed entry for an out-of-range DelaySeconds (moto
    # too). Our own validation refuses such a delay, so force it past that.
    bad = TaskInvocation(
        message=TaskMessage(task_name=ADD, kwargs={"a": 5}), invocation_id=str(uuid.uuid4())
    )
    object.__setattr__(bad, "delay", 901)
    with transaction.atomic():
        first = add.execute_on_commit(a=1)
        bad_id = bad.execute_on_commit()
        last = add.execute_on_commit(a=2)
    assert bad_id == bad.invocation_id

    assert sorted(ids_of(sqs_mode.receive(sqs_mode.default, 2))) == sorted([first, last])
    assert sqs_mode.server.request_count("SendMessageBatch") == 1
    assert_logged_unsent(caplog, {bad_id: body_of(ADD, a=5)})
    assert "InvalidParameterValue" in unsent_records(caplog)[0].getMessage()


@pytest.mark.django_db(transaction=True)
def test_a_failing_queue_does_not_stop_the_other_queues(
    sqs_mode: SqsMode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="lambda_tasks.sqs")
    with transaction.atomic():
        lost = {add.execute_on_commit(a=n): body_of(ADD, a=n) for n in range(12)}
        kept = [on_other_queue.execute_on_commit(n=n, _delay=0) for n in range(3)]
        sqs_mode.client.delete_queue(QueueUrl=sqs_mode.default)  # after enqueue, before commit

    assert sorted(ids_of(sqs_mode.receive(sqs_mode.other, 3))) == sorted(kept)
    # Both batches of the missing queue were tried (not a connection problem).
    assert [b["QueueUrl"] for b in sqs_mode.sent_batches()].count(sqs_mode.default) == 2
    assert_logged_unsent(caplog, lost)


@pytest.mark.django_db(transaction=True)
def test_hung_endpoint_blocks_the_commit_for_a_bounded_time(
    sqs_mode: SqsMode,
    hung_endpoint: tuple[str, list[socket.socket]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, accepted = hung_endpoint
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    sqs.reset_client()
    caplog.set_level(logging.ERROR, logger="lambda_tasks.sqs")

    with transaction.atomic():
        expected = _enqueue_thirty_on_two_queues()
        started = time.monotonic()
    elapsed = time.monotonic() - started

    bound = sqs.READ_TIMEOUT_SECONDS * sqs.MAX_ATTEMPTS + sqs.CONNECT_TIMEOUT_SECONDS + 4
    assert sqs.READ_TIMEOUT_SECONDS <= elapsed < bound, f"commit took {elapsed:.1f} s"
    # One batch, retried at most MAX_ATTEMPTS times; the other three never tried.
    assert 1 <= len(accepted) <= sqs.MAX_ATTEMPTS
    assert_logged_unsent(caplog, expected)
    with contextlib.suppress(Exception):
        sqs.get_client().close()


def test_unsent_log_carries_the_serialized_invocation(
    sqs_mode: SqsMode, caplog: pytest.LogCaptureFixture
) -> None:
    """The ERROR record's ``invocation`` extra rebuilds the invocation (for re-sending by hand)."""
    caplog.set_level(logging.ERROR, logger="lambda_tasks.sqs")
    sqs_mode.client.delete_queue(QueueUrl=sqs_mode.other)
    invocation_id = on_other_queue.execute_on_commit(n=3, _delay=1)

    [record] = unsent_records(caplog)
    assert invocation_id in record.getMessage()
    assert body_of(ON_OTHER_QUEUE, n=3) in record.getMessage()
    rebuilt = TaskInvocation.from_dict(record.invocation)  # type: ignore[attr-defined]
    assert rebuilt.body() == body_of(ON_OTHER_QUEUE, n=3)
    assert (rebuilt.queue, rebuilt.delay) == ("other", 1)


# --------------------------------------------------------------------------- FIFO queues


@pytest.fixture
def fifo_mode(
    sqs_mode: SqsMode, sqs_queue_factory: SqsQueueFactory, settings: SettingsWrapper
) -> SqsMode:
    """Both queues FIFO (no content-based deduplication: our ids must be sent)."""
    sqs_mode.default = sqs_queue_factory("fifo", fifo=True)
    sqs_mode.other = sqs_queue_factory("fifo-other", fifo=True)
    settings.LAMBDA_TASKS_QUEUES = sqs_mode.queues
    return sqs_mode


@pytest.mark.django_db(transaction=True)
def test_fifo_messages_carry_group_and_deduplication_ids_in_order(fifo_mode: SqsMode) -> None:
    with transaction.atomic():
        ids = [add.execute_on_commit(a=n) for n in range(12)]
        grouped = add.execute_on_commit(a=99, _group="tenant-7")

    for batch in fifo_mode.sent_batches():
        for entry in batch["Entries"]:
            assert "DelaySeconds" not in entry
    messages = fifo_mode.receive(fifo_mode.default, 13)
    by_id = dict(zip(ids_of(messages), messages, strict=True))
    for invocation_id in [*ids, grouped]:
        attributes = by_id[invocation_id]["Attributes"]
        assert attributes["MessageDeduplicationId"] == f"{invocation_id}:0"
    assert {by_id[i]["Attributes"]["MessageGroupId"] for i in ids} == {ADD}
    assert by_id[grouped]["Attributes"]["MessageGroupId"] == "tenant-7"
    # First attempts of one group arrive in enqueue order.
    in_group = [json.loads(m["Body"])["kwargs"]["a"] for m in messages if m is not by_id[grouped]]
    assert in_group == list(range(12))


@pytest.mark.django_db(transaction=True)
def test_fifo_refuses_a_delay_at_enqueue(fifo_mode: SqsMode) -> None:
    with transaction.atomic():
        with pytest.raises(ValueError, match=r"FIFO"):
            add.execute_on_commit(a=1, _delay=5)
        with pytest.raises(ValueError, match=r"FIFO"):
            on_other_queue.execute_on_commit(n=1)  # the decorator's delay=3
        allowed = on_other_queue.execute_on_commit(n=2, _delay=0)
    assert ids_of(fifo_mode.receive(fifo_mode.other, 1)) == [allowed]
    assert fifo_mode.count_in_queue(fifo_mode.default) == 0


def test_fifo_retries_are_sent_without_delay(fifo_mode: SqsMode) -> None:
    invocation_id = str(uuid.uuid4())
    retry = TaskInvocation(
        message=TaskMessage(task_name=ADD, kwargs={"a": 1}, n_retries=3),
        delay=4,  # a retry's jittered delay: FIFO cannot honour it
        invocation_id=invocation_id,
    )
    assert sqs.send([retry], fifo_mode.queues) == []
    [message] = fifo_mode.receive(fifo_mode.default, 1, timeout=2)
    assert message["Attributes"]["MessageDeduplicationId"] == f"{invocation_id}:3"
    assert json.loads(message["Body"])["n_retries"] == 3
