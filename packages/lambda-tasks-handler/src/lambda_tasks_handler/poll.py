"""The SQS poller: run tasks from a queue without Lambda (SPEC §9).

``python -m lambda_tasks_handler.poll --queue default`` (or the
``lambda_tasks_poll`` management command when ``"lambda_tasks_handler"`` is
in ``INSTALLED_APPS``) long-polls the queue, turns each receive into a
Lambda-shaped SQS event of at most 10 records and gives it to the very
:func:`lambda_tasks_handler.handler` that Lambda would call. Then it deletes
the messages that were done (``DeleteMessageBatch``) and leaves the reported
failures to reappear after the visibility timeout.

While a batch runs, a heartbeat thread extends the visibility of its messages
(``ChangeMessageVisibilityBatch`` every third of the visibility timeout), so a
long task is not offered to another poller mid-run; if this process dies, the
messages reappear within one visibility timeout. The handler itself runs in
the main thread, which the SIGALRM time limits need.

SIGTERM or SIGINT: the current batch is finished (and acknowledged), then the
poller exits with status 0; while it waits for messages it stops at once. A
second signal during a batch interrupts the running task (``KeyboardInterrupt``:
its writes roll back and its attempt is released), acknowledges nothing, makes
the batch's messages visible again at once, and exits with 128 + the signal
number (130 for SIGINT, 143 for SIGTERM), as a shell reports a process that a
signal stopped.

The endpoint comes from the usual AWS configuration, so ``AWS_ENDPOINT_URL_SQS``
(or ``AWS_ENDPOINT_URL``) points it at any SQS-compatible server, and several
machines can share one queue.
"""

from __future__ import annotations

import argparse
import base64
import logging
import re
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any, Final

from lambda_tasks_handler.response import PartialBatchResponse

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueOutputTypeDef, MessageTypeDef

__all__ = ["BatchReport", "Poller", "PollerContext", "main"]

logger = logging.getLogger("lambda_tasks.poll")

# SQS limits: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html
#: Longest long poll of one ReceiveMessage.
MAX_WAIT_TIME_SECONDS: Final = 20
#: Most messages one ReceiveMessage returns (also Lambda's default SQS batch size).
MAX_MESSAGES_PER_RECEIVE: Final = 10
#: Longest visibility timeout (12 hours).
MAX_VISIBILITY_TIMEOUT_SECONDS: Final = 43_200
#: Used when the queue's own visibility timeout is 0 (every message visible at once).
FALLBACK_VISIBILITY_TIMEOUT_SECONDS: Final = 30
#: What the poller's context reports as time left: it has no deadline.
NO_DEADLINE_MS: Final = 3_600_000
#: Pause after a failed ReceiveMessage, doubled up to the maximum.
RECEIVE_BACKOFF_SECONDS: Final = 1.0
MAX_RECEIVE_BACKOFF_SECONDS: Final = 20.0
CONNECT_TIMEOUT_SECONDS: Final = 5

Handler = Callable[[dict[str, Any], Any], PartialBatchResponse]

_REGION_IN_URL = re.compile(r"^https?://sqs[.-]([a-z0-9-]+)\.amazonaws\.com")


class PollerContext:
    """The Lambda context object the poller passes to the handler."""

    function_name = "lambda-tasks-poller"
    function_version = "$LATEST"
    invoked_function_arn = ""
    memory_limit_in_mb: str | None = None

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        """The poller has no deadline: always enough for the longest task (900 s)."""
        return NO_DEADLINE_MS


@dataclass(frozen=True, slots=True)
class BatchReport:
    """What became of one received batch."""

    received: int
    deleted: int
    failed: int
    seconds: float


class _Interrupted(BaseException):
    """Raised by the signal handler to leave a long poll at once."""


class Poller:
    """Receives batches from one queue and runs them through the Lambda handler."""

    def __init__(
        self,
        queue_url: str,
        *,
        wait_time_seconds: int = MAX_WAIT_TIME_SECONDS,
        batch_size: int = MAX_MESSAGES_PER_RECEIVE,
        visibility_timeout: int | None = None,
        handler: Handler | None = None,
        client: SQSClient | None = None,
    ) -> None:
        if not queue_url:
            raise ValueError("the poller needs a queue URL")
        _check_range("wait_time_seconds", wait_time_seconds, 0, MAX_WAIT_TIME_SECONDS)
        _check_range("batch_size", batch_size, 1, MAX_MESSAGES_PER_RECEIVE)
        if visibility_timeout is not None:
            _check_range(
                "visibility_timeout", visibility_timeout, 1, MAX_VISIBILITY_TIMEOUT_SECONDS
            )
        self.queue_url = queue_url
        self.wait_time_seconds = wait_time_seconds
        self.batch_size = batch_size
        self._visibility_override = visibility_timeout
        self._handler = handler
        self._client = client
        self._queue_arn: str | None = None
        self._visibility: int | None = None
        self._stopping = False
        self._idle = False
        self._forced_by: int | None = None

    # ------------------------------------------------------------------ setup

    @property
    def client(self) -> SQSClient:
        if self._client is None:
            self._client = _make_client(self.queue_url, self.wait_time_seconds)
        return self._client

    @property
    def handler(self) -> Handler:
        if self._handler is None:
            from lambda_tasks_handler import handler

            self._handler = handler
        return self._handler

    @property
    def visibility_timeout(self) -> int:
        """Seconds each heartbeat keeps the batch's messages invisible."""
        self._load_queue_attributes()
        assert self._visibility is not None
        return self._visibility

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between visibility extensions: a third of the visibility timeout."""
        return self.visibility_timeout / 3

    def _load_queue_attributes(self) -> None:
        if self._visibility is not None:
            return
        attributes = self.client.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn", "VisibilityTimeout"]
        ).get("Attributes", {})
        self._queue_arn = attributes.get("QueueArn", "")
        if self._visibility_override is not None:
            self._visibility = self._visibility_override
            return
        visibility = int(attributes.get("VisibilityTimeout", FALLBACK_VISIBILITY_TIMEOUT_SECONDS))
        if visibility < 1:
            logger.warning(
                "Queue %s has a visibility timeout of 0 s; holding messages for %d s instead",
                self.queue_url,
                FALLBACK_VISIBILITY_TIMEOUT_SECONDS,
            )
            visibility = FALLBACK_VISIBILITY_TIMEOUT_SECONDS
        self._visibility = visibility

    # ------------------------------------------------------------------ running

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current batch."""
        self._stopping = True

    def run(self, *, until: Callable[[], bool] | None = None, handle_signals: bool = True) -> int:
        """Poll until stopped (SIGTERM, SIGINT, :meth:`stop`, or ``until()`` turning true).

        Returns the exit status: 0, or 128 + the signal number when a second
        signal interrupted a batch. ``handle_signals`` installs the SIGTERM and
        SIGINT handlers (main thread only) for the duration of the call.
        """
        self._stopping = False
        self._forced_by = None
        status = 0
        self._load_queue_attributes()
        previous: dict[int, Any] = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, self._on_signal)
        logger.info(
            "Polling %s (batches of up to %d, visibility %d s, long poll %d s)",
            self.queue_url,
            self.batch_size,
            self.visibility_timeout,
            self.wait_time_seconds,
        )
        self._warm_up()
        backoff = RECEIVE_BACKOFF_SECONDS
        try:
            while not self._stopping and not (until is not None and until()):
                try:
                    messages = self._receive()
                except _Interrupted:
                    break
                except Exception as exc:
                    logger.warning(
                        "ReceiveMessage failed (%s: %s); trying again in %.0f s",
                        type(exc).__name__,
                        exc,
                        backoff,
                    )
                    try:
                        self._idle_sleep(backoff)
                    except _Interrupted:
                        break
                    backoff = min(backoff * 2, MAX_RECEIVE_BACKOFF_SECONDS)
                    continue
                backoff = RECEIVE_BACKOFF_SECONDS
                if messages:
                    try:
                        self.run_batch(messages)
                    except KeyboardInterrupt:
                        status = 128 + (self._forced_by or signal.SIGINT)
                        break
        finally:
            for installed, handler in previous.items():
                signal.signal(installed, handler)
        logger.info("Poller of %s stopped", self.queue_url)
        return status

    def _warm_up(self) -> None:
        """Run the handler's cold start now (it relays the outbox) rather than at the first batch.

        A failure is logged, not raised: the first batch tries the cold start
        again and reports its records as failures if it still fails.
        """
        if self._handler is not None:
            return  # a caller's own handler: its start-up is its business
        from lambda_tasks_handler import _coldstart

        try:
            _coldstart.cold_start()
        except Exception:
            logger.exception("Cold start failed; it is tried again with the first batch")

    def poll_once(self) -> BatchReport | None:
        """Receive one batch and run it; ``None`` when the long poll brought nothing."""
        self._load_queue_attributes()
        messages = self._receive()
        return self.run_batch(messages) if messages else None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._idle:
            self._stopping = True
            raise _Interrupted
        if self._stopping:
            logger.warning("%s again: stopping without finishing the batch", name)
            self._forced_by = signum
            raise KeyboardInterrupt
        self._stopping = True
        logger.warning("%s: finishing the current batch, then stopping", name)

    def _idle_sleep(self, seconds: float) -> None:
        self._idle = True
        try:
            if self._stopping:
                raise _Interrupted
            time.sleep(seconds)
        finally:
            self._idle = False

    def _receive(self) -> list[MessageTypeDef]:
        self._idle = True
        try:
            if self._stopping:
                raise _Interrupted
            kwargs: dict[str, Any] = {}
            if self._visibility_override is not None:
                kwargs["VisibilityTimeout"] = self._visibility_override
            response = self.client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=self.batch_size,
                WaitTimeSeconds=self.wait_time_seconds,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["All"],
                **kwargs,
            )
        finally:
            self._idle = False
        return list(response.get("Messages", []))

    def run_batch(self, messages: Sequence[MessageTypeDef]) -> BatchReport:
        """Run received messages through the handler, then acknowledge the successes."""
        started = time.monotonic()
        event = {"Records": [self._record(message) for message in messages]}
        receipts = [message["ReceiptHandle"] for message in messages]
        heartbeat = _Heartbeat(
            self.client, self.queue_url, receipts, self.visibility_timeout, self.heartbeat_interval
        )
        heartbeat.start()
        try:
            response = self.handler(event, PollerContext())
        except KeyboardInterrupt:
            heartbeat.stop()
            self._make_visible(messages)
            raise
        finally:
            heartbeat.stop()
        failed_ids = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
        done = [message for message in messages if message["MessageId"] not in failed_ids]
        deleted = self._delete(done)
        report = BatchReport(
            received=len(messages),
            deleted=deleted,
            failed=len(messages) - len(done),
            seconds=time.monotonic() - started,
        )
        logger.info(
            "Batch of %d message(s) from %s: %d done and deleted, %d left for redelivery (%.2f s)",
            report.received,
            self.queue_url,
            report.deleted,
            report.failed,
            report.seconds,
        )
        return report

    def _make_visible(self, messages: Sequence[MessageTypeDef]) -> None:
        """Offer an interrupted batch again now, not after the visibility timeout.

        Nothing of it was acknowledged; the attempts that finished are skipped as
        duplicates when they come back, the interrupted one was released.
        """
        logger.warning(
            "Batch of %d message(s) interrupted: nothing acknowledged, offering them again now",
            len(messages),
        )
        for start in range(0, len(messages), MAX_MESSAGES_PER_RECEIVE):
            chunk = messages[start : start + MAX_MESSAGES_PER_RECEIVE]
            try:
                self.client.change_message_visibility_batch(
                    QueueUrl=self.queue_url,
                    Entries=[
                        {
                            "Id": str(index),
                            "ReceiptHandle": message["ReceiptHandle"],
                            "VisibilityTimeout": 0,
                        }
                        for index, message in enumerate(chunk)
                    ],
                )
            except Exception as exc:  # they come back after the visibility timeout instead
                logger.warning(
                    "Could not make the interrupted batch visible again (%s: %s)",
                    type(exc).__name__,
                    exc,
                )

    def _delete(self, messages: Sequence[MessageTypeDef]) -> int:
        deleted = 0
        for start in range(0, len(messages), MAX_MESSAGES_PER_RECEIVE):
            chunk = messages[start : start + MAX_MESSAGES_PER_RECEIVE]
            try:
                response = self.client.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[
                        {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                        for index, message in enumerate(chunk)
                    ],
                )
            except Exception as exc:
                # Redelivered later, they are recognised as finished duplicates and deleted then.
                logger.error(
                    "DeleteMessageBatch of %d message(s) failed (%s: %s); they will be offered "
                    "again and skipped as already done",
                    len(chunk),
                    type(exc).__name__,
                    exc,
                )
                continue
            failed = response.get("Failed", [])
            for failure in failed:
                logger.error(
                    "Could not delete message %s (%s: %s); it will be offered again and "
                    "skipped as already done",
                    chunk[int(failure["Id"])]["MessageId"],
                    failure["Code"],
                    failure.get("Message", ""),
                )
            deleted += len(chunk) - len(failed)
        return deleted

    def _record(self, message: MessageTypeDef) -> dict[str, Any]:
        """The record Lambda's SQS event source would build for this message."""
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message.get("Body", ""),
            "attributes": dict(message.get("Attributes", {})),
            "messageAttributes": {
                name: _lambda_attribute(value)
                for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self._queue_arn or "",
            "awsRegion": self.client.meta.region_name,
        }


def _lambda_attribute(value: MessageAttributeValueOutputTypeDef) -> dict[str, Any]:
    attribute: dict[str, Any] = {
        "dataType": value["DataType"],
        "stringListValues": [],
        "binaryListValues": [],
    }
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
    return attribute


class _Heartbeat(threading.Thread):
    """Extends the visibility of a running batch's messages until stopped."""

    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        receipts: Sequence[str],
        visibility_timeout: int,
        interval: float,
    ) -> None:
        super().__init__(name="lambda-tasks-visibility-heartbeat", daemon=True)
        self._client = client
        self._queue_url = queue_url
        self._receipts = list(receipts)
        self._visibility_timeout = visibility_timeout
        self._interval = interval
        self._stopped = threading.Event()
        self.beats = 0

    def run(self) -> None:
        while not self._stopped.wait(self._interval):
            self._extend()

    def stop(self) -> None:
        self._stopped.set()
        self.join()

    def _extend(self) -> None:
        for start in range(0, len(self._receipts), MAX_MESSAGES_PER_RECEIVE):
            chunk = self._receipts[start : start + MAX_MESSAGES_PER_RECEIVE]
            try:
                response = self._client.change_message_visibility_batch(
                    QueueUrl=self._queue_url,
                    Entries=[
                        {
                            "Id": str(index),
                            "ReceiptHandle": receipt,
                            "VisibilityTimeout": self._visibility_timeout,
                        }
                        for index, receipt in enumerate(chunk)
                    ],
                )
            except Exception as exc:
                logger.warning(
                    "Could not extend the visibility of the running batch (%s: %s)",
                    type(exc).__name__,
                    exc,
                )
                continue
            for failure in response.get("Failed", []):
                logger.warning(
                    "Could not extend the visibility of a running message (%s: %s)",
                    failure["Code"],
                    failure.get("Message", ""),
                )
        self.beats += 1


def _check_range(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}")


def _make_client(queue_url: str, wait_time_seconds: int) -> SQSClient:
    """An SQS client whose read timeout outlasts a long poll; the endpoint comes from the env."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    region: str | None = session.region_name
    if region is None:
        match = _REGION_IN_URL.match(queue_url)
        region = match.group(1) if match else None
    return session.client(
        "sqs",
        region_name=region,
        config=Config(
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=wait_time_seconds + 10,
            retries={"mode": "standard"},
        ),
    )


# ---------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The poller's options (shared by ``python -m`` and the management command)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--queue",
        default="default",
        help="queue name in LAMBDA_TASKS_QUEUES (default: %(default)s)",
    )
    where.add_argument("--queue-url", help="poll this SQS queue URL instead of a named queue")
    parser.add_argument(
        "--wait-time-seconds",
        type=int,
        default=MAX_WAIT_TIME_SECONDS,
        help="long-poll duration of each ReceiveMessage, 0-20 (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=MAX_MESSAGES_PER_RECEIVE,
        help="messages per batch, 1-10 (default: %(default)s)",
    )
    parser.add_argument(
        "--visibility-timeout",
        type=int,
        default=None,
        help="seconds a received message stays hidden, renewed while it runs "
        "(default: the queue's visibility timeout)",
    )


def poller_from_options(
    *,
    queue: str,
    queue_url: str | None,
    wait_time_seconds: int,
    batch_size: int,
    visibility_timeout: int | None,
) -> Poller:
    """A poller for parsed options; a queue name is looked up in ``LAMBDA_TASKS_QUEUES``."""
    if queue_url is None:
        from lambda_tasks_django.settings import get_settings

        queue_url = get_settings().queue_url(queue)
    return Poller(
        queue_url,
        wait_time_seconds=wait_time_seconds,
        batch_size=batch_size,
        visibility_timeout=visibility_timeout,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lambda_tasks_handler.poll``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m lambda_tasks_handler.poll",
        description="Run lambda-tasks from an SQS queue without AWS Lambda.",
    )
    add_arguments(parser)
    parser.add_argument(
        "--log-level", default="INFO", help="level of the lambda_tasks loggers (default: INFO)"
    )
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from lambda_tasks_handler import _coldstart

    try:
        _coldstart.cold_start()  # environment loaders, then django.setup()
    except Exception as exc:
        print(
            f"lambda-tasks poller: cold start failed: {type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return 1
    ours = logging.getLogger("lambda_tasks")
    if ours.level == logging.NOTSET:
        ours.setLevel(args.log_level.upper())
    try:
        poller = poller_from_options(
            queue=args.queue,
            queue_url=args.queue_url,
            wait_time_seconds=args.wait_time_seconds,
            batch_size=args.batch_size,
            visibility_timeout=args.visibility_timeout,
        )
    except Exception as exc:
        print(f"lambda-tasks poller: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return poller.run()


if __name__ == "__main__":
    sys.exit(main())
