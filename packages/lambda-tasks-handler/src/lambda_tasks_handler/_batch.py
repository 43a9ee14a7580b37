"""Processing one SQS event-source batch (SPEC §6, §8).

A small template in the manner of Powertools' batch processor: each record
is handled inside its own ``try``; a record that cannot run is reported in
``batchItemFailures`` by its ``messageId`` and the others carry on.

Imported by :func:`lambda_tasks_handler.handler` after the cold start, so
Django is set up by the time the imports below run.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final, NamedTuple

import pydantic
from django.db import close_old_connections
from django.utils import timezone

from lambda_tasks_core import (
    INVOCATION_ID_ATTRIBUTE,
    TaskMessage,
    UnknownTaskError,
    record_id,
    retry_delay_seconds,
)
from lambda_tasks_django._db import close_broken_connections
from lambda_tasks_django.executor import InvocationConflict, TaskInProgress, execute
from lambda_tasks_django.invocation import TaskInvocation
from lambda_tasks_django.models import TaskRecord
from lambda_tasks_django.registry import resolve
from lambda_tasks_django.settings import Mode, get_settings
from lambda_tasks_handler._context import remaining_ms
from lambda_tasks_handler.exceptions import MalformedEventError
from lambda_tasks_handler.response import BatchItemFailure, PartialBatchResponse

__all__ = ["BadRecordError", "is_fifo_batch", "process_batch", "records_of"]

logger = logging.getLogger("lambda_tasks.handler")

#: Longest invocation id we accept: the ``TaskRecord.invocation_id`` column's length.
MAX_INVOCATION_ID_CHARS: Final = 100
#: Highest attempt number a record can hold: ``TaskRecord.n_retries`` is a
#: PositiveSmallIntegerField (the reference's column), 32767 on every database.
MAX_N_RETRIES: Final = 32_767
#: Jitter added to every retry delay (lambda_tasks_core.retry_delay_seconds: 1-5 s).
RETRY_JITTER_MAX_SECONDS: Final = 5
#: How long after its delay a retry that has not started counts as lost.
RETRY_GRACE_SECONDS: Final = 60
#: How much of an error message goes into a log line about a bad record.
_MAX_REASON_CHARS: Final = 1000


class BadRecordError(ValueError):
    """A record that cannot be a task message; reported as a batch failure."""


class _Parsed(NamedTuple):  # not a dataclass: a fifth of the cold-start cost to define
    message_id: str
    message: TaskMessage
    invocation_id: str
    #: The FIFO ``MessageGroupId`` the message came with; its retries keep it.
    group: str | None = None


def records_of(event: object) -> list[Any]:
    """The ``Records`` list of an SQS event; :class:`MalformedEventError` otherwise."""
    if not isinstance(event, Mapping):
        raise MalformedEventError(
            "lambda_tasks_handler.handler expects an SQS event (a JSON object with a "
            f"'Records' list), got a {type(event).__name__}: is the function's trigger an "
            "SQS event source mapping?"
        )
    records = event.get("Records")
    if not isinstance(records, list):
        raise MalformedEventError(
            "lambda_tasks_handler.handler expects an SQS event, but the event has no "
            "'Records' list: is the function's trigger an SQS event source mapping?"
        )
    return records


def is_fifo_batch(records: Sequence[Any]) -> bool:
    """Whether the batch comes from a FIFO queue (``.fifo`` ARN or a MessageGroupId)."""
    for record in records:
        if not isinstance(record, Mapping):
            continue
        arn = record.get("eventSourceARN")
        if isinstance(arn, str) and arn.endswith(".fifo"):
            return True
        attributes = record.get("attributes")
        if isinstance(attributes, Mapping) and "MessageGroupId" in attributes:
            return True
    return False


def message_id_of(record: object) -> str | None:
    """The record's ``messageId`` when it is a non-empty string (else it cannot be reported)."""
    if not isinstance(record, Mapping):
        return None
    message_id = record.get("messageId")
    if isinstance(message_id, str) and message_id:
        return message_id
    return None


def parse_record(record: Mapping[str, Any], message_id: str) -> _Parsed:
    """Decode the body and find the invocation id; ``BadRecordError`` or pydantic's error."""
    body = record.get("body")
    if not isinstance(body, str):
        raise BadRecordError(f"the body is a {type(body).__name__}, not a string")
    message = TaskMessage.from_json(body)
    if message.n_retries > MAX_N_RETRIES:
        raise BadRecordError(f"n_retries is above {MAX_N_RETRIES}, the most a record can hold")
    return _Parsed(message_id, message, _invocation_id(record, message_id), _group(record))


def _group(record: Mapping[str, Any]) -> str | None:
    attributes = record.get("attributes")
    group = attributes.get("MessageGroupId") if isinstance(attributes, Mapping) else None
    return group if isinstance(group, str) and group else None


def _invocation_id(record: Mapping[str, Any], message_id: str) -> str:
    attributes = record.get("messageAttributes")
    if attributes is None:
        attributes = {}
    if not isinstance(attributes, Mapping):
        raise BadRecordError("messageAttributes is not an object")
    if INVOCATION_ID_ATTRIBUTE in attributes:
        attribute = attributes[INVOCATION_ID_ATTRIBUTE]
        value = attribute.get("stringValue") if isinstance(attribute, Mapping) else None
        where = f"the message attribute {INVOCATION_ID_ATTRIBUTE}"
        if not isinstance(value, str):
            raise BadRecordError(f"{where} has no string value")
    else:
        # A message without our attribute (e.g. sent by django-lambda-tasks): SPEC §3.
        value, where = message_id, "the messageId (used as the invocation id)"
    # Printable only: ids are UUIDs or SQS message ids, and a control character
    # (NUL above all, which PostgreSQL cannot store) would make the same record
    # fail on one database and run on another.
    if not value or len(value) > MAX_INVOCATION_ID_CHARS or not value.isprintable():
        raise BadRecordError(f"{where} is not 1 to {MAX_INVOCATION_ID_CHARS} printable characters")
    return value


def process_batch(event: object, context: object) -> PartialBatchResponse:
    """Run every record of the batch; report those that must be offered again."""
    records = records_of(event)
    return _Batch(records, context).run()


class _Batch:
    def __init__(self, records: list[Any], context: object) -> None:
        self.records = records
        self.context = context
        self.fifo = is_fifo_batch(records)
        self.failures: list[BatchItemFailure] = []
        self._reported: set[str] = set()
        # Once set, every later record is reported without running (FIFO order, time).
        self.stop_reason: str | None = None
        self.succeeded = 0
        self.skipped = 0

    def run(self) -> PartialBatchResponse:
        started = time.monotonic()
        enforce_timeouts = threading.current_thread() is threading.main_thread()
        if not enforce_timeouts:
            logger.warning(
                "The handler runs outside the main thread: task time limits (SIGALRM) "
                "are not enforced"
            )
        for index, record in enumerate(self.records):
            message_id = message_id_of(record)
            if message_id is None:
                self.skipped += 1
                logger.error(
                    "Record %d of the batch has no messageId: skipped (its failure cannot be "
                    "reported to SQS)",
                    index,
                )
                if self.fifo and self.stop_reason is None:
                    self.stop_reason = f"record {index} of this FIFO batch had no messageId"
                continue
            if self.stop_reason is not None:
                self._fail(message_id)
                continue
            if self._process(index, record, message_id, enforce_timeouts):
                self.succeeded += 1
            else:
                self._fail(message_id)
                if self.fifo and self.stop_reason is None:
                    self.stop_reason = (
                        f"record {message_id} failed and this is a FIFO batch: later records "
                        "must not run before it"
                    )
        close_old_connections()
        if self.stop_reason is not None:
            logger.warning("Records not run: %s", self.stop_reason)
        logger.info(
            "Batch of %d record(s) (request %s): %d done, %d reported as failures, %d skipped "
            "(%.0f ms)",
            len(self.records),
            getattr(self.context, "aws_request_id", "-"),
            self.succeeded,
            len(self.failures),
            self.skipped,
            (time.monotonic() - started) * 1000,
        )
        return {"batchItemFailures": list(self.failures)}

    def _fail(self, message_id: str) -> None:
        if message_id not in self._reported:
            self._reported.add(message_id)
            self.failures.append({"itemIdentifier": message_id})

    def _process(
        self, index: int, record: Mapping[str, Any], message_id: str, enforce_timeouts: bool
    ) -> bool:
        """Handle one record; True when it may be acknowledged (deleted from the queue)."""
        try:
            parsed = parse_record(record, message_id)
            if index > 0 and not self._time_left_for(parsed):
                return False
            # One connection for the batch, even at CONN_MAX_AGE = 0 (Django's
            # per-request rule would reconnect per record); a broken one is replaced.
            close_broken_connections()
            return self._execute(parsed, enforce_timeouts)
        except (
            BadRecordError,
            pydantic.ValidationError,
            UnknownTaskError,
            InvocationConflict,
        ) as exc:
            # Poison pills: malformed body or attributes, unknown task, invalid kwargs.
            logger.error(
                "Record %s cannot run: %s: %s",
                message_id,
                type(exc).__name__,
                _shorten(str(exc)),
            )
        except TaskInProgress as exc:
            logger.warning("Record %s not acknowledged: %s", message_id, exc)
        except Exception:
            # Configuration errors, database errors...: SQS offers the record again.
            logger.exception("Record %s could not be run", message_id)
        return False

    def _time_left_for(self, parsed: _Parsed) -> bool:
        """False (and stop the batch) when the task's hard timeout no longer fits."""
        left_ms = remaining_ms(self.context)
        if left_ms is None:
            return True
        try:
            _soft, hard = resolve(parsed.message.task_name).timeouts()
            margin = get_settings().handler_time_margin
        except Exception:
            return True  # the executor raises the same error: the record fails normally
        needed_ms = (hard + margin) * 1000
        if left_ms >= needed_ms:
            return True
        self.stop_reason = (
            f"{left_ms / 1000:.1f} s left in this invocation, less than the hard timeout "
            f"of {parsed.message.task_name} ({hard:g} s) plus LAMBDA_TASKS_HANDLER_TIME_MARGIN "
            f"({margin:g} s); record {parsed.message_id} and the later ones go back to the queue"
        )
        return False

    def _execute(self, parsed: _Parsed, enforce_timeouts: bool) -> bool:
        outcome = execute(
            parsed.message,
            parsed.invocation_id,
            enforce_timeouts=enforce_timeouts,
            group=parsed.group,
        )
        if outcome.duplicate:
            return _resend_lost_retry(parsed)
        if outcome.retry is not None:
            return _dispatch_retry(outcome.retry, parsed.message_id)
        return True


def _dispatch_retry(retry: TaskInvocation, message_id: str) -> bool:
    """Send a retry; False when it was not sent (the record is then reported).

    Acknowledging the record would lose the retry; reporting it makes SQS
    offer it again. Its attempt is already RETRIED, so the redelivery runs
    nothing: :func:`_resend_lost_retry` sends the retry again once it is
    overdue, and the record is acknowledged when that succeeds.
    """
    try:
        conf = get_settings()
        if conf.mode is Mode.SQS:
            from lambda_tasks_django import sqs

            conf.queue_url(retry.queue)  # ImproperlyConfigured rather than a KeyError
            # sqs.send logs every unsent message (with its body) at ERROR and never raises.
            if sqs.send([retry], conf.queues):
                logger.error(
                    "Record %s: its retry was not sent; reporting the record so that SQS "
                    "offers it again and the retry is sent then",
                    message_id,
                )
                return False
        else:
            from lambda_tasks_django.dispatch import dispatch_now

            dispatch_now([retry])
    except Exception:
        logger.exception(
            "Record %s: sending its retry failed; reporting the record so that SQS offers it "
            "again and the retry is sent then",
            message_id,
        )
        return False
    return True


def _resend_lost_retry(parsed: _Parsed) -> bool:
    """On a redelivery of a finished attempt, send its retry again if it was lost.

    An attempt recorded RETRIED whose next attempt has no record may have lost
    its retry (the send failed, or the invocation died right after recording
    it) — or the retry may still be on its way (delayed, or queued behind
    others). While the retry could still be on its way, the record is
    reported again, to look later; once it is overdue, the retry is sent
    again. A second copy of a retry never runs the task twice: the retry's
    record id is fixed.
    """
    message, invocation_id = parsed.message, parsed.invocation_id
    finished = (
        TaskRecord.objects.filter(pk=record_id(invocation_id, message.n_retries))
        .values("status", "end_time")
        .first()
    )
    if finished is None or finished["status"] != TaskRecord.TaskStatus.RETRIED:
        return True
    if TaskRecord.objects.filter(pk=record_id(invocation_id, message.n_retries + 1)).exists():
        return True
    options = resolve(message.task_name).options
    overdue_after = options.retry_delay + RETRY_JITTER_MAX_SECONDS + RETRY_GRACE_SECONDS
    ended = finished["end_time"]
    if ended is not None and timezone.now() - ended < datetime.timedelta(seconds=overdue_after):
        logger.warning(
            "Record %s: attempt %d of %s was retried and the retry has not started yet; "
            "not acknowledging this redelivery until the retry starts or is overdue (%d s)",
            parsed.message_id,
            message.n_retries + 1,
            message.task_name,
            overdue_after,
        )
        return False
    retry = TaskInvocation(
        message=message.next_attempt(),
        delay=retry_delay_seconds(options.retry_delay),
        queue=options.queue,
        group=parsed.group if parsed.group is not None else options.fifo_group,
        invocation_id=invocation_id,
    )
    logger.warning(
        "Record %s: attempt %d of %s was retried but the retry never started; sending it again",
        parsed.message_id,
        message.n_retries + 1,
        message.task_name,
    )
    return _dispatch_retry(retry, parsed.message_id)


def _shorten(text: str) -> str:
    return text if len(text) <= _MAX_REASON_CHARS else text[:_MAX_REASON_CHARS] + "…"
