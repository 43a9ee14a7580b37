"""Sending invocations to SQS: one reused client, batches, bounded timeouts (SPEC §5)."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from lambda_tasks_core import INVOCATION_ID_ATTRIBUTE
from lambda_tasks_core.limits import MAX_BATCH_ENTRIES, MAX_BATCH_SIZE_BYTES
from lambda_tasks_django.invocation import TaskInvocation

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

__all__ = ["get_client", "reset_client", "send", "send_batches"]

logger = logging.getLogger("lambda_tasks.sqs")

# A hung endpoint must not hold a web request for minutes (botocore's defaults
# are a 60 s read timeout and several retries).
CONNECT_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 5.0
#: Total attempts per request, the first included (botocore's ``total_max_attempts``;
#: its ``max_attempts`` counts retries only, which would make this one attempt more).
MAX_ATTEMPTS = 2

_client: SQSClient | None = None
_client_lock = threading.Lock()


def get_client() -> SQSClient:
    """The process's SQS client, built on first use (boto3 is imported only then)."""
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                import boto3
                from botocore.config import Config

                _client = boto3.session.Session().client(
                    "sqs",
                    config=Config(
                        connect_timeout=CONNECT_TIMEOUT_SECONDS,
                        read_timeout=READ_TIMEOUT_SECONDS,
                        retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"},
                    ),
                )
    return _client


def reset_client() -> None:
    """Forget the client (tests that change the endpoint or credentials)."""
    global _client
    with _client_lock:
        _client = None


def is_fifo(queue_url: str) -> bool:
    return queue_url.endswith(".fifo")


def _entry(
    index: int, invocation: TaskInvocation, fifo: bool
) -> SendMessageBatchRequestEntryTypeDef:
    assert invocation.invocation_id is not None
    entry: SendMessageBatchRequestEntryTypeDef = {
        "Id": str(index),
        "MessageBody": invocation.body(),
        "MessageAttributes": {
            INVOCATION_ID_ATTRIBUTE: {"DataType": "String", "StringValue": invocation.invocation_id}
        },
    }
    if fifo:
        entry["MessageGroupId"] = invocation.group or invocation.message.task_name
        entry["MessageDeduplicationId"] = (
            f"{invocation.invocation_id}:{invocation.message.n_retries}"
        )
    else:
        entry["DelaySeconds"] = invocation.delay
    return entry


def _entry_size(entry: SendMessageBatchRequestEntryTypeDef) -> int:
    attributes = sum(
        len(name) + len(value["DataType"]) + len(value.get("StringValue", ""))
        for name, value in entry.get("MessageAttributes", {}).items()
    )
    return len(entry["MessageBody"].encode()) + attributes


def _batches(
    entries: list[SendMessageBatchRequestEntryTypeDef],
) -> Iterator[list[SendMessageBatchRequestEntryTypeDef]]:
    batch: list[SendMessageBatchRequestEntryTypeDef] = []
    size = 0
    for entry in entries:
        entry_size = _entry_size(entry)
        if batch and (len(batch) == MAX_BATCH_ENTRIES or size + entry_size > MAX_BATCH_SIZE_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += entry_size
    if batch:
        yield batch


def _is_unreachable(exc: BaseException) -> bool:
    """A connection failure or timeout: the endpoint will not answer the next batch either."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    # ReadTimeoutError is an HTTPClientError, not a ConnectionError.
    return isinstance(exc, BotoConnectionError | HTTPClientError)


def send(invocations: Sequence[TaskInvocation], queue_urls: dict[str, str]) -> list[TaskInvocation]:
    """Send invocations in batches; returns those that could not be sent.

    Never raises for a failed send: the caller's transaction has committed, so
    each unsent message is logged at ERROR with its full body instead. After a
    timeout or connection failure the remaining batches are not tried (one
    stall, not one per batch).
    """
    failures = send_batches(invocations, queue_urls)
    for invocation, reason in failures:
        _log_unsent(invocation, queue_urls[invocation.queue], reason)
    return [invocation for invocation, _ in failures]


def send_batches(
    invocations: Sequence[TaskInvocation], queue_urls: dict[str, str]
) -> list[tuple[TaskInvocation, str]]:
    """Send invocations in batches; return the unsent ones with the reason, logging nothing."""
    by_queue: dict[str, list[TaskInvocation]] = defaultdict(list)
    for invocation in invocations:
        by_queue[queue_urls[invocation.queue]].append(invocation)
    failures: list[tuple[TaskInvocation, str]] = []
    unreachable: BaseException | None = None
    for queue_url, queued in by_queue.items():
        fifo = is_fifo(queue_url)
        entries = [_entry(i, inv, fifo) for i, inv in enumerate(queued)]
        for batch in _batches(entries):
            batch_invocations = [queued[int(entry["Id"])] for entry in batch]
            if unreachable is not None:
                reason = f"not tried after {type(unreachable).__name__}"
                failures.extend((inv, reason) for inv in batch_invocations)
                continue
            try:
                response = get_client().send_message_batch(QueueUrl=queue_url, Entries=batch)
            except Exception as exc:
                if _is_unreachable(exc):
                    unreachable = exc
                reason = f"{type(exc).__name__}: {exc}"
                failures.extend((inv, reason) for inv in batch_invocations)
                continue
            for failed in response.get("Failed", []):
                reason = f"{failed['Code']}: {failed.get('Message', '')}"
                failures.append((queued[int(failed["Id"])], reason))
    return failures


def _log_unsent(invocation: TaskInvocation, queue_url: str, reason: str) -> None:
    logger.error(
        "Task %s (invocation %s) was NOT sent to %s (%s); message body: %s",
        invocation.message.task_name,
        invocation.invocation_id,
        queue_url,
        reason,
        invocation.body(),
        extra={"invocation": invocation.serialize(), "queue_url": queue_url},
    )
