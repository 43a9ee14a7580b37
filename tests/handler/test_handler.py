"""``lambda_tasks_handler.handler`` on SQS batches (SPEC §6, §8).

Everything is real but the Lambda context object: the database (SQLite, or
PostgreSQL with ``LAMBDA_TASKS_TEST_DB=postgres``), the executor, and moto's
SQS server for the retries. The handler closes database connections around
each record, so these tests use transactional test databases.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from lambda_tasks_core import record_id
from lambda_tasks_django.models import TaskRecord
from lambda_tasks_handler import handler
from lambda_tasks_handler.exceptions import MalformedEventError
from tests.handler.conftest import FakeContext, SqsMode
from tests.handler.events import body, canonical, event, failed_ids, record, task_body
from tests.testapp import tasks as testapp

pytestmark = pytest.mark.django_db(transaction=True)

Status = TaskRecord.TaskStatus


def the_record(invocation_id: str, n_retries: int = 0) -> TaskRecord:
    return TaskRecord.objects.get(pk=record_id(invocation_id, n_retries))


# ---------------------------------------------------------------------- the happy path


def test_runs_every_record_and_reports_no_failure(lambda_context: FakeContext) -> None:
    first = record(task_body("add", a=1, b=2), invocation_id="inv-1")
    second = record(task_body("add", a=40, b=2), invocation_id="inv-2")

    response = handler(event(first, second), lambda_context)

    assert response == {"batchItemFailures": []}
    assert the_record("inv-1").status == Status.SUCCEEDED
    assert the_record("inv-1").result == 3
    assert the_record("inv-2").result == 42


def test_canonical_aws_event_invocation_id_from_attribute_else_message_id(
    lambda_context: FakeContext,
) -> None:
    # Given AWS's documented event shape: the first record carries our
    # invocation id attribute, the second (as sent by django-lambda-tasks) not.
    aws_event = canonical("sqs_standard")
    with_attribute, without = aws_event["Records"]
    with_attribute["body"] = task_body("add", a=1)
    without["body"] = task_body("add", a=2)

    response = handler(aws_event, lambda_context)

    assert response == {"batchItemFailures": []}
    attribute = with_attribute["messageAttributes"]["lambda_tasks_invocation_id"]["stringValue"]
    assert the_record(attribute).invocation_id == attribute
    assert the_record(without["messageId"]).result == 2


def test_task_failure_is_recorded_and_not_reported(lambda_context: FakeContext) -> None:
    failing = record(task_body("create_group_then_fail", name="rolled-back"), invocation_id="f")

    response = handler(event(failing), lambda_context)

    assert response == {"batchItemFailures": []}
    assert the_record("f").status == Status.FAILED
    assert "boom after a write" in (the_record("f").traceback or "")
    assert not Group.objects.filter(name="rolled-back").exists()


def test_time_limits_are_enforced(lambda_context: FakeContext) -> None:
    # ignores_soft swallows the soft limit (0.2 s); the hard one (0.4 s) still stops it.
    stubborn = record(task_body("ignores_soft", seconds=5.0), invocation_id="slow")

    response = handler(event(stubborn), lambda_context)

    assert response == {"batchItemFailures": []}
    assert the_record("slow").status == Status.FAILED
    assert "HardTimeLimitExceeded" in (the_record("slow").traceback or "")


def test_redelivery_of_a_finished_attempt_runs_nothing(lambda_context: FakeContext) -> None:
    delivery = record(task_body("create_group", name="once"), invocation_id="dup")

    assert handler(event(delivery), lambda_context) == {"batchItemFailures": []}
    assert handler(event(delivery), lambda_context) == {"batchItemFailures": []}

    assert Group.objects.filter(name="once").count() == 1


def test_one_database_connection_per_batch_at_conn_max_age_0(
    lambda_context: FakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db.backends.signals import connection_created

    assert connection.settings_dict["CONN_MAX_AGE"] == 0  # Django's default
    created: list[object] = []

    def count(sender: object, connection: object, **kwargs: object) -> None:
        created.append(connection)

    connection.close()
    connection_created.connect(count)
    try:
        records = [record(task_body("noop"), invocation_id=f"c{n}") for n in range(3)]
        handler(event(*records), lambda_context)
        handler(event(record(task_body("noop"), invocation_id="c3")), lambda_context)
    finally:
        connection_created.disconnect(count)

    assert len(created) == 2  # one per batch, not one per record
    assert connection.connection is None  # closed at the end of the batch (Django's rule)


def test_a_retry_whose_fifo_group_cannot_be_sent_ends_the_attempt_failed(
    lambda_context: FakeContext,
) -> None:
    # Minimal input of issue 14 point 8: a FIFO-shaped record whose group the
    # group check refuses, for a task with retry_on that raises.
    delivery = record(task_body("always_flaky"), invocation_id="bad-group", fifo=True)
    delivery["attributes"]["MessageGroupId"] = "bad group"

    response = handler(event(delivery), lambda_context)

    assert response == {"batchItemFailures": []}  # finished: nothing to redeliver
    stored = TaskRecord.objects.get(pk=record_id("bad-group", 0))
    assert stored.status == TaskRecord.TaskStatus.FAILED
    assert stored.traceback is not None
    assert "The retry could not be sent" in stored.traceback
    assert "'bad group'" in stored.traceback


def test_a_message_reusing_another_tasks_invocation_id_is_a_bad_record(
    lambda_context: FakeContext, caplog: pytest.LogCaptureFixture
) -> None:
    first = record(task_body("noop"), invocation_id="reused")
    assert handler(event(first), lambda_context) == {"batchItemFailures": []}
    other = record(task_body("add", a=1), invocation_id="reused")

    with caplog.at_level(logging.ERROR, logger="lambda_tasks.handler"):
        response = handler(event(other), lambda_context)

    assert failed_ids(response) == [other["messageId"]]
    assert "InvocationConflict" in caplog.text
    assert TaskRecord.objects.get(pk=record_id("reused", 0)).task_name.endswith(".noop")


# ---------------------------------------------------------------------- bad records


@pytest.mark.parametrize(
    ("bad_body", "why"),
    [
        ("not json", "undecodable"),
        ("[1, 2]", "not an object"),
        (json.dumps({"kwargs": {}}), "no task_name"),
        (json.dumps({"task_name": "tests.testapp.tasks.add", "n_retries": -1}), "n_retries < 0"),
        (body("tests.testapp.tasks.add", 0, a=1)[:-1] + ', "extra": 1}', "an extra key"),
        (body("tests.testapp.tasks.nope"), "unknown task"),
        (body("os.system", command="touch /tmp/lambda-tasks-pwned"), "not an app's task"),
        (body("tests.testapp.tasks.not_a_task", x=1), "undecorated function"),
        (body("tests.testapp.tasks.Flaky"), "a class"),
        (body("tests.testapp.tasks.os.system", command="true"), "a module's attribute"),
        (body("antigravity.fly"), "a module outside the apps"),
        (task_body("add", a="1"), "a string for an int"),
        (task_body("add", a=True), "a bool for an int"),
        (task_body("add"), "a missing kwarg"),
        (task_body("add", a=1, c=3), "an extra kwarg"),
    ],
)
def test_poison_record_is_reported_and_its_neighbours_run(
    lambda_context: FakeContext, monkeypatch: pytest.MonkeyPatch, bad_body: str, why: str
) -> None:
    called: list[str] = []

    def fake_system(command: str) -> int:
        called.append(command)
        return 0

    monkeypatch.setattr(os, "system", fake_system)
    before = record(task_body("add", a=1), invocation_id="before")
    bad = record(bad_body)
    after = record(task_body("add", a=2), invocation_id="after")

    response = handler(event(before, bad, after), lambda_context)

    assert failed_ids(response) == [bad["messageId"]], why
    assert the_record("before").result == 1
    assert the_record("after").result == 2
    assert TaskRecord.objects.count() == 2
    assert called == []
    assert testapp.NOT_A_TASK_CALLS == []


@pytest.mark.parametrize(
    "change",
    [
        {"body": None},
        {"body": 42},
        {"body": {"task_name": "tests.testapp.tasks.add"}},
        {"messageAttributes": ["not", "an", "object"]},
        {"messageAttributes": {"lambda_tasks_invocation_id": "not an object"}},
        {"messageAttributes": {"lambda_tasks_invocation_id": {"stringValue": 7}}},
        {"messageAttributes": {"lambda_tasks_invocation_id": {"stringValue": ""}}},
        {"messageAttributes": {"lambda_tasks_invocation_id": {"stringValue": "x" * 101}}},
        # PostgreSQL cannot store NUL: refused on every database alike.
        {"messageAttributes": {"lambda_tasks_invocation_id": {"stringValue": "id\x00"}}},
        {"messageAttributes": {"lambda_tasks_invocation_id": {"stringValue": "line\nbreak"}}},
    ],
)
def test_malformed_record_fields_are_reported(
    lambda_context: FakeContext, change: dict[str, Any]
) -> None:
    bad = record(task_body("add", a=1)) | change
    good = record(task_body("add", a=2), invocation_id="good")

    response = handler(event(bad, good), lambda_context)

    assert failed_ids(response) == [bad["messageId"]]
    assert the_record("good").result == 2
    assert TaskRecord.objects.count() == 1


def test_record_without_message_id_is_logged_and_skipped(
    lambda_context: FakeContext, caplog: pytest.LogCaptureFixture
) -> None:
    nameless = record(task_body("add", a=1))
    del nameless["messageId"]
    records: list[Any] = [
        nameless,
        "not a record",
        record(task_body("add", a=2), invocation_id="ok"),
    ]

    with caplog.at_level(logging.ERROR, logger="lambda_tasks.handler"):
        response = handler(event(*records), lambda_context)

    assert response == {"batchItemFailures": []}
    assert the_record("ok").result == 2
    assert TaskRecord.objects.count() == 1
    assert sum("has no messageId" in line for line in caplog.messages) == 2


@pytest.mark.parametrize("bad_event", [{}, {"Records": None}, {"Records": {}}, [], "Records", None])
def test_an_event_that_is_not_an_sqs_batch_raises(
    lambda_context: FakeContext, bad_event: Any
) -> None:
    with pytest.raises(MalformedEventError, match="Records"):
        handler(bad_event, lambda_context)
    assert issubclass(MalformedEventError, ValueError)


def test_attempt_still_running_elsewhere_is_reported_not_run(lambda_context: FakeContext) -> None:
    # Given another delivery of the same attempt that started a moment ago.
    TaskRecord.objects.create(
        pk=record_id("busy", 0),
        task_name="tests.testapp.tasks.create_group",
        kwargs={"name": "twice"},
        n_retries=0,
        status=Status.RUNNING,
        start_time=timezone.now(),
        invocation_id="busy",
    )
    delivery = record(task_body("create_group", name="twice"), invocation_id="busy")

    response = handler(event(delivery), lambda_context)

    assert failed_ids(response) == [delivery["messageId"]]
    assert not Group.objects.filter(name="twice").exists()


def test_configuration_error_is_reported(
    lambda_context: FakeContext, settings: SettingsWrapper
) -> None:
    settings.LAMBDA_TASKS_DEFAULT_HARD_TIMEOUT = "300"  # not a number: ImproperlyConfigured
    delivery = record(task_body("add", a=1))

    response = handler(event(delivery), lambda_context)

    assert failed_ids(response) == [delivery["messageId"]]
    assert TaskRecord.objects.count() == 0


def test_every_reported_id_is_a_message_id_of_the_batch_once(lambda_context: FakeContext) -> None:
    same = record("not json", message_id="same-id")

    response = handler(event(same, dict(same)), lambda_context)

    assert failed_ids(response) == ["same-id"]


# ---------------------------------------------------------------------- FIFO


@pytest.mark.parametrize("marker", ["arn", "group attribute"])
def test_fifo_batch_reports_everything_after_the_first_failure(
    lambda_context: FakeContext, marker: str
) -> None:
    def fifo_record(message_body: str, invocation_id: str | None = None) -> dict[str, Any]:
        made = record(message_body, invocation_id=invocation_id, fifo=True)
        if marker == "group attribute":
            made["eventSourceARN"] = "arn:aws:sqs:us-east-2:123456789012:looks-standard"
        else:
            del made["attributes"]["MessageGroupId"]
        return made

    first = fifo_record(task_body("add", a=1), "first")
    poison = fifo_record("not json")
    later = [fifo_record(task_body("add", a=n), f"later-{n}") for n in range(2)]

    response = handler(event(first, poison, *later), lambda_context)

    assert failed_ids(response) == [poison["messageId"]] + [r["messageId"] for r in later]
    assert the_record("first").result == 1
    assert TaskRecord.objects.count() == 1


def test_standard_batch_goes_on_after_a_failure(lambda_context: FakeContext) -> None:
    poison = record("not json")
    later = [record(task_body("add", a=n), invocation_id=f"later-{n}") for n in range(2)]

    response = handler(event(poison, *later), lambda_context)

    assert failed_ids(response) == [poison["messageId"]]
    assert TaskRecord.objects.count() == 2


# ---------------------------------------------------------------------- time budget


def test_records_whose_hard_timeout_no_longer_fits_are_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # 10 s left: add needs its default hard timeout (300 s) + the margin (5 s);
    # sleepy_soft needs 0.5 s + 5 s. The first record always runs.
    context = FakeContext(remaining_ms=10_000)
    first = record(task_body("add", a=1), invocation_id="first")
    fits = record(task_body("sleepy_soft", seconds=0.0), invocation_id="fits")
    too_long = record(task_body("add", a=2), invocation_id="too-long")
    rest = record(task_body("sleepy_soft", seconds=0.0), invocation_id="rest")

    with caplog.at_level(logging.WARNING, logger="lambda_tasks.handler"):
        response = handler(event(first, fits, too_long, rest), context)

    assert failed_ids(response) == [too_long["messageId"], rest["messageId"]]
    assert the_record("first").result == 1
    assert the_record("fits").result == "woke"
    assert TaskRecord.objects.count() == 2
    assert any(
        "tests.testapp.tasks.add" in line and "10.0 s left" in line for line in caplog.messages
    )


def test_first_record_runs_whatever_the_time_left() -> None:
    context = FakeContext(remaining_ms=1)
    first = record(task_body("add", a=1), invocation_id="first")
    second = record(task_body("add", a=2), invocation_id="second")

    response = handler(event(first, second), context)

    assert failed_ids(response) == [second["messageId"]]
    assert the_record("first").result == 1


def test_time_margin_comes_from_settings(settings: SettingsWrapper) -> None:
    settings.LAMBDA_TASKS_HANDLER_TIME_MARGIN = 0
    context = FakeContext(remaining_ms=1_000)  # sleepy_soft's hard timeout is 0.5 s
    records = [
        record(task_body("sleepy_soft", seconds=0.0), invocation_id=f"s{n}") for n in range(3)
    ]

    assert handler(event(*records), context) == {"batchItemFailures": []}


def test_remaining_time_is_read_before_each_record() -> None:
    left = iter([900_000, 900_000, 900_000, 1_000])  # cold start, then records 2, 3, 4
    context = FakeContext(remaining_ms=lambda: next(left))
    records = [record(task_body("add", a=n), invocation_id=f"r{n}") for n in range(4)]

    response = handler(event(*records), context)

    assert failed_ids(response) == [records[3]["messageId"]]


def test_unresolvable_task_fails_normally_when_time_is_short() -> None:
    context = FakeContext(remaining_ms=1_000)
    first = record(task_body("sleepy_soft", seconds=0.0), invocation_id="first")
    unknown = record(task_body("nope"))
    short = record(task_body("sleepy_soft", seconds=0.0), invocation_id="short")

    # sleepy_soft needs 5.5 s (hard 0.5 s + margin 5 s): the third is out of time too.
    response = handler(event(first, unknown, short), context)

    assert failed_ids(response) == [unknown["messageId"], short["messageId"]]


# ---------------------------------------------------------------------- retries


def _receive(mode: SqsMode, queue: str, wait: int) -> list[Any]:
    """Take the messages off the queue (received and deleted)."""
    client = mode.moto.sqs_client()
    response = client.receive_message(
        QueueUrl=queue,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=wait,
        MessageAttributeNames=["All"],
    )
    messages = list(response.get("Messages", []))
    for message in messages:
        client.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    return messages


def test_retry_is_sent_to_sqs_with_its_delay_and_invocation_id(
    lambda_context: FakeContext, sqs_mode: SqsMode
) -> None:
    flaky = record(task_body("always_flaky", name="x"), invocation_id="flaky-inv")

    response = handler(event(flaky), lambda_context)

    assert response == {"batchItemFailures": []}
    assert the_record("flaky-inv").status == Status.RETRIED
    assert _receive(sqs_mode, sqs_mode.default, wait=0) == []  # delayed by 1-5 s
    messages = _receive(sqs_mode, sqs_mode.default, wait=7)
    assert len(messages) == 1
    assert json.loads(messages[0]["Body"]) == {
        "task_name": "tests.testapp.tasks.always_flaky",
        "kwargs": {"name": "x"},
        "n_retries": 1,
    }
    attribute = messages[0]["MessageAttributes"]["lambda_tasks_invocation_id"]
    assert attribute["StringValue"] == "flaky-inv"


def test_retry_that_cannot_be_sent_keeps_the_record_until_it_is_sent(
    lambda_context: FakeContext,
    sqs_mode: SqsMode,
    settings: SettingsWrapper,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a default queue that does not exist: the retry cannot be sent.
    missing = sqs_mode.default.rsplit("/", 1)[0] + "/no-such-queue-" + uuid.uuid4().hex[:8]
    settings.LAMBDA_TASKS_QUEUES = {"default": missing, "other": sqs_mode.other}
    flaky = record(task_body("always_flaky", name="y"), invocation_id="lost-retry")

    with caplog.at_level(logging.ERROR):
        response = handler(event(flaky), lambda_context)

    # Then the record is reported (SQS offers it again) and the unsent body is logged.
    assert failed_ids(response) == [flaky["messageId"]]
    assert the_record("lost-retry").status == Status.RETRIED
    assert any('"n_retries":1' in line for line in caplog.messages)

    # When SQS offers it again at once, the retry may still be on its way: reported again.
    settings.LAMBDA_TASKS_QUEUES = {"default": sqs_mode.default, "other": sqs_mode.other}
    assert failed_ids(handler(event(flaky), lambda_context)) == [flaky["messageId"]]
    assert _receive(sqs_mode, sqs_mode.default, wait=0) == []

    # When it comes back after the retry is overdue, the retry is sent and the record done.
    overdue = timezone.now() - datetime.timedelta(minutes=5)
    TaskRecord.objects.filter(pk=record_id("lost-retry", 0)).update(end_time=overdue)
    assert handler(event(flaky), lambda_context) == {"batchItemFailures": []}
    messages = _receive(sqs_mode, sqs_mode.default, wait=7)
    assert [json.loads(m["Body"])["n_retries"] for m in messages] == [1]
    assert the_record("lost-retry").status == Status.RETRIED  # the attempt did not run again

    # Once the retry has run, a late redelivery sends nothing more.
    retry = record(messages[0]["Body"], invocation_id="lost-retry")
    assert handler(event(retry), lambda_context) == {"batchItemFailures": []}
    assert the_record("lost-retry", 1).status == Status.RETRIED
    assert handler(event(flaky), lambda_context) == {"batchItemFailures": []}
    bodies = [json.loads(m["Body"]) for m in _receive(sqs_mode, sqs_mode.default, wait=7)]
    assert [b["n_retries"] for b in bodies] == [2]  # only the retry of attempt 2


# ---------------------------------------------------------------------- cold start


def test_cold_start_warns_about_hard_timeouts_beyond_the_function_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    context = FakeContext(remaining_ms=200_000)  # a 200 s function; add's hard timeout is 300 s

    with caplog.at_level(logging.WARNING, logger="lambda_tasks.handler"):
        handler(event(), context)
        handler(event(), context)

    warned = [line for line in caplog.messages if "at or above this function's timeout" in line]
    assert any("tests.testapp.tasks.add " in line for line in warned)
    assert not any("tests.testapp.tasks.sleepy_soft " in line for line in warned)
    assert len(warned) == len({line.split()[1] for line in warned})  # once per task, first call


def test_cold_start_loads_the_environment_once(
    lambda_context: FakeContext, aws_env: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import boto3

    secret_value = "s3cr3t-" + uuid.uuid4().hex
    secrets = boto3.client("secretsmanager")
    arn = secrets.create_secret(
        Name=f"env-{uuid.uuid4().hex[:8]}",
        SecretString=json.dumps({"FROM_SECRETS_MANAGER": secret_value}),
    )["ARN"]
    os.environ["LAMBDA_TASKS_ENVIRONMENT_SECRETS_MANAGER_ARN"] = arn
    aws_env.reset_recording()

    # INFO, not DEBUG: botocore's own DEBUG lines quote whole responses (a logging
    # configuration that enables them leaks secrets whatever this package does).
    with caplog.at_level(logging.INFO):
        handler(event(), lambda_context)
        handler(event(), lambda_context)

    assert os.environ["FROM_SECRETS_MANAGER"] == secret_value
    assert aws_env.request_count("GetSecretValue") == 1
    assert secret_value not in caplog.text


def test_cold_start_error_is_raised_and_tried_again_next_time(
    lambda_context: FakeContext, aws_env: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import boto3

    name = f"db-{uuid.uuid4().hex[:8]}"
    os.environ["LAMBDA_TASKS_SECRET_DB_PASSWORD"] = f"{name}#password"
    delivery = record(task_body("add", a=1), invocation_id="after-cold-start")

    with (
        caplog.at_level(logging.INFO),
        pytest.raises(ValueError, match="LAMBDA_TASKS_SECRET_DB_PASSWORD"),
    ):
        handler(event(delivery), lambda_context)
    assert TaskRecord.objects.count() == 0

    password = "hunter2-" + uuid.uuid4().hex
    boto3.client("secretsmanager").create_secret(
        Name=name, SecretString=json.dumps({"password": password})
    )
    with caplog.at_level(logging.INFO):
        response = handler(event(delivery), lambda_context)

    assert response == {"batchItemFailures": []}
    assert os.environ["DB_PASSWORD"] == password
    assert password not in caplog.text
    assert the_record("after-cold-start").result == 1


def test_malformed_loader_variable_fails_the_cold_start_without_quoting_it(
    lambda_context: FakeContext,
) -> None:
    leaked = "pasted-secret-value-#-" + uuid.uuid4().hex
    os.environ["LAMBDA_TASKS_SECRET_API_KEY"] = leaked + "#a#b#c#d"

    with pytest.raises(ValueError, match="LAMBDA_TASKS_SECRET_API_KEY") as raised:
        handler(event(), lambda_context)

    assert leaked not in str(raised.value)
