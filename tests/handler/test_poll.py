"""The SQS poller (SPEC §9) against moto's SQS server.

Test queues have a 2 s visibility timeout, so a message left for redelivery
comes back quickly and a task of a few seconds outlives it (the heartbeat
must hold it). In-process tests run the poller in the main thread, as
production does; the signal tests run it as ``python -m`` and as the
management command in a subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lambda_tasks_core import record_id
from lambda_tasks_django.models import TaskRecord
from lambda_tasks_handler import PartialBatchResponse, handler
from lambda_tasks_handler.poll import Poller, PollerContext
from tests.handler.conftest import SqsMode
from tests.handler.events import canonical, task_body
from tests.services import MotoServer, SqsQueueFactory

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
Status = TaskRecord.TaskStatus


def send(moto: MotoServer, queue: str, message_body: str, invocation_id: str | None = None) -> str:
    client = moto.sqs_client()
    attributes: dict[str, Any] = {}
    if invocation_id is not None:
        attributes["lambda_tasks_invocation_id"] = {
            "DataType": "String",
            "StringValue": invocation_id,
        }
    response = client.send_message(
        QueueUrl=queue, MessageBody=message_body, MessageAttributes=attributes
    )
    return response["MessageId"]


def queue_counts(moto: MotoServer, queue: str) -> tuple[int, int]:
    """(visible, in flight) messages of a queue."""
    attributes = moto.sqs_client().get_queue_attributes(
        QueueUrl=queue,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def within(seconds: float, condition: Callable[[], bool]) -> Callable[[], bool]:
    """``condition`` for ``Poller.run(until=...)``, failing the test after ``seconds``."""
    deadline = time.monotonic() + seconds

    def check() -> bool:
        if condition():
            return True
        if time.monotonic() > deadline:
            raise AssertionError(f"not done within {seconds} s")
        return False

    return check


def the_status(invocation_id: str, n_retries: int = 0) -> str | None:
    return (
        TaskRecord.objects.filter(pk=record_id(invocation_id, n_retries))
        .values_list("status", flat=True)
        .first()
    )


# ---------------------------------------------------------------------- one batch


def test_deletes_what_was_done_and_leaves_failures_for_redelivery(sqs_mode: SqsMode) -> None:
    moto = sqs_mode.moto
    send(moto, sqs_mode.default, task_body("add", a=1), "one")
    send(moto, sqs_mode.default, task_body("add", a=2), "two")
    poison = send(moto, sqs_mode.default, "not json")
    moto.reset_recording()

    report = Poller(sqs_mode.default, wait_time_seconds=1).poll_once()

    assert report is not None
    assert (report.received, report.deleted, report.failed) == (3, 2, 1)
    assert the_status("one") == the_status("two") == Status.SUCCEEDED
    assert moto.request_count("DeleteMessageBatch") == 1
    # The poison message reappears after the visibility timeout (2 s).
    again = moto.sqs_client().receive_message(
        QueueUrl=sqs_mode.default, WaitTimeSeconds=5, MessageSystemAttributeNames=["All"]
    )["Messages"]
    assert [m["MessageId"] for m in again] == [poison]
    assert again[0]["Attributes"]["ApproximateReceiveCount"] == "2"


def test_fifo_queue_stops_the_batch_at_its_first_failure(
    sqs_mode: SqsMode, sqs_queue_factory: SqsQueueFactory
) -> None:
    fifo = sqs_queue_factory("fifo", fifo=True, VisibilityTimeout=2)
    client = sqs_mode.moto.sqs_client()
    for n, message_body in enumerate([task_body("add", a=1), "not json", task_body("add", a=2)]):
        client.send_message(
            QueueUrl=fifo,
            MessageBody=message_body,
            MessageGroupId="g",
            MessageDeduplicationId=str(n),
            MessageAttributes={
                "lambda_tasks_invocation_id": {"DataType": "String", "StringValue": f"fifo-{n}"}
            },
        )

    report = Poller(fifo, wait_time_seconds=1).poll_once()

    assert report is not None
    assert (report.received, report.deleted, report.failed) == (3, 1, 2)
    assert the_status("fifo-0") == Status.SUCCEEDED
    assert the_status("fifo-2") is None  # not run ahead of the message before it


def test_nothing_received_means_no_batch(sqs_mode: SqsMode) -> None:
    assert Poller(sqs_mode.default, wait_time_seconds=0).poll_once() is None


def test_events_have_the_lambda_shape(sqs_mode: SqsMode) -> None:
    from tests.testapp.tasks import add

    invocation_id = add.execute_on_commit(a=1)  # SQS mode: sent with our attribute
    seen: list[dict[str, Any]] = []

    def capture(event: dict[str, Any], context: Any) -> PartialBatchResponse:
        seen.append(event)
        assert isinstance(context, PollerContext)
        assert context.get_remaining_time_in_millis() >= 900_000
        return {"batchItemFailures": []}

    Poller(sqs_mode.default, wait_time_seconds=1, handler=capture).poll_once()

    [lambda_record] = seen[0]["Records"]
    aws_record = canonical("sqs_standard")["Records"][0]
    assert lambda_record.keys() == aws_record.keys()
    assert lambda_record["attributes"].keys() >= aws_record["attributes"].keys()
    attribute = lambda_record["messageAttributes"]["lambda_tasks_invocation_id"]
    assert attribute.keys() == aws_record["messageAttributes"]["lambda_tasks_invocation_id"].keys()
    assert attribute["stringValue"] == invocation_id
    assert lambda_record["eventSource"] == "aws:sqs"
    assert lambda_record["eventSourceARN"].endswith(":" + sqs_mode.default.rsplit("/", 1)[1])
    assert json.loads(lambda_record["body"])["task_name"] == "tests.testapp.tasks.add"


def test_batches_hold_at_most_ten_messages(sqs_mode: SqsMode) -> None:
    client = sqs_mode.moto.sqs_client()
    for start in (0, 10):
        client.send_message_batch(
            QueueUrl=sqs_mode.default,
            Entries=[
                {"Id": str(n), "MessageBody": task_body("noop")} for n in range(start, start + 6)
            ],
        )
    sizes: list[int] = []

    def count(event: dict[str, Any], context: Any) -> PartialBatchResponse:
        sizes.append(len(event["Records"]))
        return {"batchItemFailures": []}

    poller = Poller(sqs_mode.default, wait_time_seconds=1, handler=count)
    check = within(20, lambda: sum(sizes) >= 12)
    while not check():
        poller.poll_once()
    assert max(sizes) <= 10
    assert Poller(sqs_mode.default, wait_time_seconds=0, batch_size=3).batch_size == 3


def test_visibility_of_a_running_batch_is_extended(sqs_mode: SqsMode) -> None:
    # Given a task that runs 4 s on a queue whose messages are hidden for 2 s.
    moto = sqs_mode.moto
    send(moto, sqs_mode.default, task_body("sleep_for", seconds=4.0), "long")
    stolen: list[str] = []
    done = threading.Event()

    def other_consumer() -> None:  # a second machine polling the same queue
        client = moto.sqs_client()
        while not done.is_set():
            response = client.receive_message(QueueUrl=sqs_mode.default, WaitTimeSeconds=1)
            stolen.extend(m["MessageId"] for m in response.get("Messages", []))

    thief = threading.Thread(target=other_consumer)

    def handler_then_steal(event: dict[str, Any], context: Any) -> PartialBatchResponse:
        thief.start()  # once the poller holds the message
        return handler(event, context)

    moto.reset_recording()
    poller = Poller(sqs_mode.default, wait_time_seconds=1, handler=handler_then_steal)
    try:
        report = poller.poll_once()
    finally:
        done.set()
        if thief.is_alive():
            thief.join()

    assert report is not None
    assert (report.deleted, report.failed) == (1, 0)
    assert stolen == []
    assert the_status("long") == Status.SUCCEEDED
    assert moto.request_count("ChangeMessageVisibilityBatch") >= 3  # every 2/3 s for 4 s
    assert queue_counts(moto, sqs_mode.default) == (0, 0)


def test_run_stops_when_asked(sqs_mode: SqsMode) -> None:
    send(sqs_mode.moto, sqs_mode.default, task_body("add", a=5), "five")

    status = Poller(sqs_mode.default, wait_time_seconds=1).run(
        until=within(20, lambda: the_status("five") == Status.SUCCEEDED)
    )

    assert status == 0


def test_retries_come_back_through_the_queue(sqs_mode: SqsMode) -> None:
    marker = f"poll-{os.getpid()}-{time.monotonic_ns()}"
    send(
        sqs_mode.moto,
        sqs_mode.default,
        task_body("flaky_until", marker=marker, succeed_on_attempt=2),
        "fl",
    )
    try:
        Poller(sqs_mode.default, wait_time_seconds=1).run(
            until=within(30, lambda: the_status("fl", 1) == Status.SUCCEEDED)
        )
    finally:
        Path(f"/tmp/lambda-tasks-flaky-{marker}").unlink(missing_ok=True)
    assert the_status("fl", 0) == Status.RETRIED


def test_honours_aws_endpoint_url_sqs(sqs_mode: SqsMode, monkeypatch: pytest.MonkeyPatch) -> None:
    # The generic endpoint leads nowhere; only the SQS-specific one reaches moto.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", sqs_mode.moto.url)
    send(sqs_mode.moto, sqs_mode.default, task_body("add", a=7), "seven")

    report = Poller(sqs_mode.default, wait_time_seconds=1).poll_once()

    assert report is not None
    assert report.deleted == 1
    assert the_status("seven") == Status.SUCCEEDED


@pytest.mark.parametrize(
    ("option", "value"),
    [("wait_time_seconds", 21), ("batch_size", 0), ("batch_size", 11), ("visibility_timeout", 0)],
)
def test_rejects_options_beyond_the_sqs_limits(option: str, value: int) -> None:
    with pytest.raises(ValueError, match=option):
        Poller("https://sqs.eu-west-1.amazonaws.com/123456789012/q", **{option: value})  # type: ignore[arg-type]


# ---------------------------------------------------------------------- signals


def start_poller(argv: list[str], sqs_mode: SqsMode) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.handler.sqs_settings",
        "LAMBDA_TASKS_TEST_QUEUES": json.dumps(
            {"default": sqs_mode.default, "other": sqs_mode.other}
        ),
        "PYTHONUNBUFFERED": "1",
    }
    return subprocess.Popen(
        [sys.executable, *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def read_until(process: subprocess.Popen[str], needle: str, timeout: float) -> str:
    """Read the process's output until a line contains ``needle``."""
    assert process.stdout is not None
    seen: list[str] = []
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    try:
        for line in process.stdout:
            seen.append(line)
            if needle in line:
                return "".join(seen)
    finally:
        timer.cancel()
    raise AssertionError(f"{needle!r} never appeared:\n{''.join(seen)}")


def test_sigterm_finishes_the_current_batch_then_exits_0(sqs_mode: SqsMode) -> None:
    send(sqs_mode.moto, sqs_mode.default, task_body("sleep_for", seconds=2.0), "term")
    process = start_poller(
        ["-m", "lambda_tasks_handler.poll", "--queue", "default", "--wait-time-seconds", "1"],
        sqs_mode,
    )
    try:
        read_until(process, "Running tests.testapp.tasks.sleep_for", timeout=30)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()

    assert process.returncode == 0, output
    assert "SIGTERM: finishing the current batch" in output
    assert "1 done and deleted, 0 left for redelivery" in output
    assert the_status("term") == Status.SUCCEEDED
    assert queue_counts(sqs_mode.moto, sqs_mode.default) == (0, 0)


def test_sigint_while_waiting_stops_at_once_management_command(sqs_mode: SqsMode) -> None:
    process = start_poller(
        ["-m", "django", "lambda_tasks_poll", "--queue", "default", "--wait-time-seconds", "20"],
        sqs_mode,
    )
    try:
        read_until(process, "Polling", timeout=30)
        time.sleep(0.5)  # inside the 20 s long poll
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=15)
        took = time.monotonic() - started
    finally:
        process.kill()
        process.wait()

    assert process.returncode == 0, output
    assert took < 5
    assert "stopped" in output


def test_poll_module_reports_a_failed_cold_start(sqs_mode: SqsMode) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.handler.sqs_settings",
        "LAMBDA_TASKS_SECRET_TOKEN": "#",
    }
    result = subprocess.run(
        [sys.executable, "-m", "lambda_tasks_handler.poll", "--queue", "default"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "cold start failed: ValueError: LAMBDA_TASKS_SECRET_TOKEN" in result.stderr
