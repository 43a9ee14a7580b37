"""Shared fixtures of the SQS, on-commit, singleton and concurrency tests."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from lambda_tasks_django import sqs
from lambda_tasks_django.invocation import TaskInvocation
from tests.services import MotoServer, SqsQueueFactory

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef


@dataclass
class SqsMode:
    """SQS mode against the moto server: queue URLs, a reader client, the recorder."""

    server: MotoServer
    client: SQSClient
    default: str
    other: str

    @property
    def queues(self) -> dict[str, str]:
        return {"default": self.default, "other": self.other}

    def receive(self, queue_url: str, count: int, *, timeout: float = 10.0) -> list[MessageTypeDef]:
        """Read (and delete) exactly ``count`` messages, then check nothing else waits.

        Deleting matters for FIFO queues: a group's later messages stay hidden
        while earlier ones are in flight.
        """
        messages: list[MessageTypeDef] = []
        deadline = time.monotonic() + timeout
        while len(messages) < count and time.monotonic() < deadline:
            response = self.client.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
                VisibilityTimeout=60,
                MessageAttributeNames=["All"],
                AttributeNames=["All"],
            )
            received = response.get("Messages", [])
            if received:
                self.client.delete_message_batch(
                    QueueUrl=queue_url,
                    Entries=[
                        {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                        for n, m in enumerate(received)
                    ],
                )
            messages.extend(received)
        assert len(messages) == count, f"expected {count} messages, got {len(messages)}"
        assert self.receive_now(queue_url) == [], "more messages than expected"
        return messages

    def receive_now(self, queue_url: str) -> list[MessageTypeDef]:
        """Whatever is visible right now (no long polling)."""
        response = self.client.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            VisibilityTimeout=60,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
        )
        return response.get("Messages", [])

    def count_in_queue(self, queue_url: str) -> int:
        """Visible + delayed + in flight messages, as SQS reports them."""
        attributes = self.client.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesDelayed",
                "ApproximateNumberOfMessagesNotVisible",
            ],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())

    def sent_batches(self) -> list[dict[str, Any]]:
        """The SendMessageBatch request bodies recorded by moto since the test began."""
        batches = []
        for entry in self.server.recording():
            headers = {str(k).lower(): str(v) for k, v in (entry.get("headers") or {}).items()}
            if not headers.get("x-amz-target", "").endswith(".SendMessageBatch"):
                continue
            body = str(entry.get("body") or "")
            if entry.get("body_encoded"):
                body = base64.b64decode(body).decode()
            batches.append(json.loads(body))
        return batches


@pytest.fixture
def fresh_sqs_client() -> Iterator[None]:
    """Forget the process's SQS client before and after the test (endpoints change)."""
    sqs.reset_client()
    yield
    sqs.reset_client()


@pytest.fixture
def sqs_mode(
    settings: SettingsWrapper,
    aws_env: MotoServer,
    sqs_queue: str,
    sqs_queue_factory: SqsQueueFactory,
    fresh_sqs_client: None,
) -> SqsMode:
    """SQS mode: ``default`` is ``sqs_queue``, ``other`` a second fresh queue."""
    other = sqs_queue_factory("other")
    settings.LAMBDA_TASKS_EAGER = False
    settings.LAMBDA_TASKS_QUEUES = {"default": sqs_queue, "other": other}
    return SqsMode(server=aws_env, client=aws_env.sqs_client(), default=sqs_queue, other=other)


class SpyTransport:
    """A transport that records each ``send`` call (the invocation ids of each batch)."""

    def __init__(self) -> None:
        self.calls: list[list[TaskInvocation]] = []

    def send(self, invocations: Sequence[TaskInvocation]) -> None:
        self.calls.append(list(invocations))

    @property
    def batches(self) -> list[list[str | None]]:
        return [[inv.invocation_id for inv in call] for call in self.calls]

    @property
    def sent(self) -> list[str | None]:
        return [inv.invocation_id for call in self.calls for inv in call]


@pytest.fixture
def spy_transport(monkeypatch: pytest.MonkeyPatch) -> SpyTransport:
    """Every dispatch (enqueue and flush) goes to a recording transport."""
    from lambda_tasks_django import dispatch

    spy = SpyTransport()
    monkeypatch.setattr(dispatch, "get_transport", lambda conf=None: spy)
    return spy


@pytest.fixture
def hung_endpoint() -> Iterator[tuple[str, list[socket.socket]]]:
    """A TCP server that accepts connections and never answers; yields (url, accepted)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        listener.close()
