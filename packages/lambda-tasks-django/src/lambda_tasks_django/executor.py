"""Run one message: the record lifecycle of SPEC §4."""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import traceback
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from lambda_tasks_core import (
    HardTimeLimitExceeded,
    LambdaTasksError,
    MaxRetriesExceededError,
    SingletonLocked,
    TaskMessage,
    record_id,
    retry_delay_seconds,
    should_retry,
    time_limits,
)
from lambda_tasks_django import _records
from lambda_tasks_django.execution import Attempt, Runnable, worker_id
from lambda_tasks_django.invocation import TaskInvocation
from lambda_tasks_django.logging import task_logger
from lambda_tasks_django.models import TaskRecord
from lambda_tasks_django.registry import resolve
from lambda_tasks_django.settings import get_settings
from lambda_tasks_django.singleton import check_singleton_cache, singleton_lock

__all__ = ["Outcome", "TaskInProgress", "execute"]

logger = logging.getLogger("lambda_tasks.executor")

Status = TaskRecord.TaskStatus

# A RUNNING record older than its hard timeout plus this margin belongs to a
# delivery that died (Lambda timeout, out of memory, killed worker).
TAKEOVER_MARGIN_SECONDS = 30


class TaskInProgress(LambdaTasksError):
    """Another delivery of the same attempt may still be running it: do not acknowledge."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one message."""

    record_id: str
    status: str | None
    retry: TaskInvocation | None = None
    duplicate: bool = False


def execute(
    message: TaskMessage,
    invocation_id: str,
    *,
    enforce_timeouts: bool = True,
    group: str | None = None,
) -> Outcome:
    """Run one attempt of a task and record its outcome.

    Configuration problems (unknown task, invalid kwargs, bad timeouts) raise
    before any record is written. Task errors never raise: they are recorded.
    A retry is returned in :attr:`Outcome.retry` for the caller to dispatch
    through its own mode; ``group`` (the FIFO MessageGroupId the message came
    with) is kept by the retry. ``TaskInProgress`` means another delivery may
    still be running this attempt.
    """
    task: Runnable = resolve(message.task_name)
    soft, hard = task.timeouts()
    prepared = task.prepare(message)
    conf = get_settings()
    if task.options.singleton:
        # A missing redis package or a non-Redis cache is a configuration error:
        # raise it before the record, so the message is not acknowledged.
        check_singleton_cache(conf.singleton_cache)
    rid = record_id(invocation_id, message.n_retries)
    rid_text = str(rid)

    with task_logger.bind(rid_text):
        claim = _claim(message, invocation_id, rid, task.options.queue, hard)
        if claim is None:
            return Outcome(rid_text, None, duplicate=True)
        attempt = Attempt(
            invocation_id=invocation_id,
            record_id=rid_text,
            message=message,
            started_at=claim.started_at,
            enqueued_at=claim.enqueued_at,
            worker_id=claim.worker_id,
        )
        note = claim.note
        task_logger.info("Running %s (attempt %d)", message.task_name, message.n_retries + 1)
        status = Status.FAILED
        result: Any = None
        error_text: str | None = None
        retry: TaskInvocation | None = None
        try:
            lock = (
                singleton_lock(conf.singleton_cache, message.task_name, hard)
                if task.options.singleton
                else contextlib.nullcontext()
            )
            limits = time_limits(soft, hard) if enforce_timeouts else contextlib.nullcontext()
            with lock, transaction.atomic(), limits:
                # Checked inside the block: a result that cannot be stored fails
                # the task, so its writes must roll back with it.
                result = _jsonable(task.run(prepared, attempt))
            status = Status.SUCCEEDED
        except HardTimeLimitExceeded:
            error_text = traceback.format_exc()
            task_logger.error("Hard time limit of %s s exceeded", hard)
        except Exception as exc:
            error_text = traceback.format_exc()
            options = task.options
            if isinstance(exc, SingletonLocked) and task.options.singleton:
                retryable, ignored = options.retry_singleton, not options.retry_singleton
            else:
                retryable = isinstance(exc, options.retry_on)
                ignored = isinstance(exc, options.ignore_errors)
            if ignored:
                status = Status.SUCCEEDED
                task_logger.info("Ignored %s", type(exc).__name__)
            elif retryable and should_retry(message.n_retries, conf.max_retries):
                status = Status.RETRIED
                retry = TaskInvocation(
                    message=message.next_attempt(),
                    delay=retry_delay_seconds(options.retry_delay),
                    queue=options.queue,
                    group=group if group is not None else options.fifo_group,
                    invocation_id=invocation_id,
                )
                task_logger.warning("Retrying after %s", type(exc).__name__)
            elif retryable:
                error_text = _max_retries_traceback(exc, message, conf.max_retries)
                task_logger.warning("Gave up after %d retries", message.n_retries)
            else:
                task_logger.error("Failed with %s", type(exc).__name__, exc_info=True)
        except BaseException:
            # SystemExit, KeyboardInterrupt: record, then let the process stop.
            _finish(rid, Status.FAILED, None, _join(note, traceback.format_exc()))
            raise
        _finish(rid, status, result, _join(note, error_text))
        task.finished(attempt, status, result, error_text)
        return Outcome(rid_text, status, retry)


class _Claim(NamedTuple):  # not a dataclass: a fifth of the cold-start cost to define
    started_at: datetime.datetime
    enqueued_at: datetime.datetime | None
    worker_id: str
    note: str | None = None


def _claim(
    message: TaskMessage, invocation_id: str, rid: Any, queue: str, hard: float
) -> _Claim | None:
    """Make the attempt's record RUNNING for this delivery; None when it already ended.

    Usually one INSERT. The record may exist already: READY (enqueued through
    the ``django.tasks`` backend), finished (a redelivery), or RUNNING (another
    delivery runs it, or died running it).
    """
    now = timezone.now()
    worker = worker_id()
    values = {
        "task_name": message.task_name,
        "kwargs": message.kwargs,
        "args": message.args,
        "n_retries": message.n_retries,
        "status": Status.RUNNING,
        "start_time": now,
        "invocation_id": invocation_id,
        "queue": queue,
        "worker_id": worker,
    }
    try:
        # Inside an outer transaction a failed INSERT must not poison it.
        in_transaction = transaction.get_connection().in_atomic_block
        with transaction.atomic() if in_transaction else contextlib.nullcontext():
            _records.insert(rid, values)
        return _Claim(now, None, worker)
    except IntegrityError:
        pass
    existing = (
        TaskRecord.objects.filter(pk=rid).values("status", "start_time", "enqueued_at").first()
    )
    if existing is None:  # deleted in between: treat as in progress, SQS offers it again
        raise TaskInProgress(f"record {rid} vanished while claiming it")
    enqueued_at = existing["enqueued_at"]
    if existing["status"] == Status.READY:
        # Recorded at enqueue by the django.tasks backend; one conditional UPDATE
        # decides between concurrent deliveries.
        claimed = TaskRecord.objects.filter(pk=rid, status=Status.READY).update(
            status=Status.RUNNING, start_time=now, worker_id=worker
        )
        if not claimed:
            raise TaskInProgress(f"record {rid} was claimed by another delivery")
        return _Claim(now, enqueued_at, worker)
    if existing["status"] != Status.RUNNING:
        task_logger.warning(
            "Skipping duplicate delivery of an attempt that already ended (%s)",
            existing["status"],
        )
        return None
    started = existing["start_time"]
    stale_before = now - datetime.timedelta(seconds=hard + TAKEOVER_MARGIN_SECONDS)
    if started is not None and started > stale_before:
        raise TaskInProgress(
            f"record {rid} is RUNNING since {started.isoformat()}: another delivery may "
            "still be running it"
        )
    # The earlier delivery died. One conditional UPDATE decides between racing redeliveries.
    note = f"An earlier delivery started at {started} was lost (no outcome recorded); ran again."
    took_over = TaskRecord.objects.filter(pk=rid, status=Status.RUNNING, start_time=started).update(
        start_time=now, traceback=note, worker_id=worker
    )
    if not took_over:
        raise TaskInProgress(f"record {rid} was taken over by another delivery")
    task_logger.warning("Taking over an attempt lost by an earlier delivery started at %s", started)
    return _Claim(now, enqueued_at, worker, note)


def _finish(rid: Any, status: str, result: Any, error_text: str | None) -> None:
    try:
        _records.update(
            rid, status=status, result=result, traceback=error_text, end_time=timezone.now()
        )
    except DatabaseError as exc:
        # The database refused the outcome itself (e.g. a NUL character, which
        # PostgreSQL text cannot hold): record a FAILED outcome it can store
        # rather than leave the record RUNNING.
        safe_text = (error_text or "").replace("\x00", "\\x00")
        _records.update(
            rid,
            status=Status.FAILED,
            result=None,
            traceback=f"{safe_text}\nThe outcome could not be stored: {type(exc).__name__}: "
            f"{str(exc).replace(chr(0), '')}".lstrip(),
            end_time=timezone.now(),
        )


def _join(note: str | None, text: str | None) -> str | None:
    if note is None:
        return text
    return note if text is None else f"{note}\n\n{text}"


# Return values that need no encoding test (float is not one of them: NaN, Infinity).
_JSON_SCALARS = frozenset({bool, int, str})


def _jsonable(result: Any) -> Any:
    if result is None or type(result) in _JSON_SCALARS:
        return result
    try:
        # allow_nan=False: NaN and Infinity are not JSON; PostgreSQL and SQLite's
        # JSON check refuse them, which would leave the record RUNNING.
        json.dumps(result, cls=DjangoJSONEncoder, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"the task's return value cannot be stored as JSON: {exc}") from exc
    return result


def _max_retries_traceback(exc: BaseException, message: TaskMessage, max_retries: int) -> str:
    try:
        raise MaxRetriesExceededError(
            f"task {message.task_name} failed on attempt {message.n_retries + 1}; "
            f"LAMBDA_TASKS_MAX_RETRIES = {max_retries} allows no more retries"
        ) from exc
    except MaxRetriesExceededError:
        return traceback.format_exc()
