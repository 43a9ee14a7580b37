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

__all__ = ["InvocationConflict", "Outcome", "TaskInProgress", "execute"]

logger = logging.getLogger("lambda_tasks.executor")

Status = TaskRecord.TaskStatus

# A RUNNING record older than its hard timeout plus this margin belongs to a
# delivery that died (Lambda timeout, out of memory, killed worker).
TAKEOVER_MARGIN_SECONDS = 30


class TaskInProgress(LambdaTasksError):
    """Another delivery of the same attempt may still be running it: do not acknowledge."""


class InvocationConflict(LambdaTasksError, ValueError):
    """The attempt's record exists under another task name: a bad message, not a duplicate."""


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
    before any record is written. Task errors never raise: they are recorded,
    ``SystemExit`` and ``GeneratorExit`` from the task included. A retry is
    returned in :attr:`Outcome.retry` for the caller to dispatch through its
    own mode; ``group`` (the FIFO MessageGroupId the message came with) is
    kept by the retry. ``TaskInProgress`` means another delivery may still be
    running this attempt; ``InvocationConflict`` that the attempt's record
    belongs to another task.

    A ``KeyboardInterrupt`` (Ctrl+C, a second stop signal, a local worker
    stopped by its server) is not the task's outcome: the task's writes roll
    back, the record is released (READY again, so the next delivery runs it
    at once) and the interrupt propagates.
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
        task_logger.info("Running %s (attempt %d)", message.task_name, message.n_retries + 1)
        try:
            status, result, error_text, retry = _run(
                task, prepared, attempt, claim, soft if enforce_timeouts else None, hard, group
            )
        except KeyboardInterrupt:
            _release(rid, claim, traceback.format_exc())
            raise
        task.finished(attempt, status, result, error_text)
        return Outcome(rid_text, status, retry)


class _OutcomeNotStored(Exception):
    """The database refused the SUCCEEDED outcome; the task's work rolls back with it."""


_Result = tuple[str, Any, "str | None", "TaskInvocation | None"]


def _run(
    task: Runnable,
    prepared: Any,
    attempt: Attempt,
    claim: _Claim,
    soft: float | None,
    hard: float,
    group: str | None,
) -> _Result:
    """Run the task and write its outcome; (status, result, error text, retry)."""
    options = task.options
    conf = get_settings()
    message = attempt.message
    rid = attempt.record_id
    note = claim.note
    committed: list[bool] = []
    lock = (
        singleton_lock(conf.singleton_cache, message.task_name, hard)
        if options.singleton
        else contextlib.nullcontext()
    )
    limits = time_limits(soft, hard) if soft is not None else contextlib.nullcontext()
    # A savepoint only where an error may be ignored: its outcome then commits in
    # the same transaction while the task's writes roll back (two statements more).
    savepoint = transaction.atomic() if options.ignore_errors else contextlib.nullcontext()
    try:
        with lock, transaction.atomic():
            # Registered first, so it runs first once the commit happened: an
            # exception out of a later on_commit callback leaves the outcome stored.
            transaction.on_commit(lambda: committed.append(True))
            error_text: str | None = None
            try:
                with savepoint, limits:
                    # Checked inside the block: a result that cannot be stored
                    # fails the task, so its writes must roll back with it.
                    result = _jsonable(task.run(prepared, attempt))
            except options.ignore_errors as exc:
                result, error_text = None, traceback.format_exc()
                task_logger.info("Ignored %s", type(exc).__name__)
            # SPEC §4: the outcome commits with the task's work, so a process
            # killed at any instant leaves neither or both.
            try:
                _records.update(
                    rid,
                    status=Status.SUCCEEDED,
                    result=result,
                    traceback=_join(note, error_text),
                    end_time=timezone.now(),
                )
            except DatabaseError as exc:
                raise _OutcomeNotStored(_storage_error(error_text, exc)) from exc
        return Status.SUCCEEDED, result, error_text, None
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        if committed:
            # The outcome and the work are committed; a callback the task
            # registered with on_commit failed afterwards.
            task_logger.exception("A callback run after the task's commit failed")
            return Status.SUCCEEDED, result, error_text, None
        status, error_text, retry = _failure(task, exc, attempt, claim.queue, group)
    except HardTimeLimitExceeded:
        status, error_text, retry = Status.FAILED, traceback.format_exc(), None
        task_logger.error("Hard time limit of %s s exceeded", hard)
    except BaseException as exc:
        # SystemExit (sys.exit() in the task), GeneratorExit: the task's outcome,
        # as in Django's own backends; the handler, poller or worker goes on.
        status, error_text, retry = Status.FAILED, traceback.format_exc(), None
        task_logger.error("Failed with %s", type(exc).__name__, exc_info=True)
    _finish(rid, status, None, _join(note, error_text))
    return status, None, error_text, retry


def _failure(
    task: Runnable, exc: Exception, attempt: Attempt, queue: str, group: str | None
) -> tuple[str, str, TaskInvocation | None]:
    """The outcome of a task that raised ``exc``: (status, error text, retry on ``queue``)."""
    options = task.options
    message = attempt.message
    max_retries = get_settings().max_retries
    if isinstance(exc, _OutcomeNotStored):
        task_logger.error("The outcome could not be stored: %s", exc.__cause__)
        return Status.FAILED, str(exc), None
    error_text = traceback.format_exc()
    if isinstance(exc, SingletonLocked) and options.singleton:
        retryable, ignored = options.retry_singleton, not options.retry_singleton
    else:
        retryable, ignored = isinstance(exc, options.retry_on), False
    if ignored:
        # Lock contention with retry_singleton=False: nothing ran, nothing to roll back.
        task_logger.info("Ignored %s", type(exc).__name__)
        return Status.SUCCEEDED, error_text, None
    if retryable and should_retry(message.n_retries, max_retries):
        try:
            retry = TaskInvocation(
                message=message.next_attempt(),
                delay=retry_delay_seconds(options.retry_delay),
                queue=queue,
                group=group if group is not None else options.fifo_group,
                invocation_id=attempt.invocation_id,
            )
        except Exception as build_error:
            # E.g. a body that grows past the size limit with the attempt number,
            # or a FIFO group that cannot be sent: the attempt must still end.
            task_logger.error("Retry could not be built: %s", build_error)
            return (
                Status.FAILED,
                f"{error_text}\nThe retry could not be sent, so the task was not retried: "
                f"{type(build_error).__name__}: {build_error}\n",
                None,
            )
        task_logger.warning("Retrying after %s", type(exc).__name__)
        return Status.RETRIED, error_text, retry
    if retryable:
        task_logger.warning("Gave up after %d retries", message.n_retries)
        return Status.FAILED, _max_retries_traceback(exc, message, max_retries), None
    task_logger.error("Failed with %s", type(exc).__name__, exc_info=True)
    return Status.FAILED, error_text, None


class _Claim(NamedTuple):  # not a dataclass: a fifth of the cold-start cost to define
    started_at: datetime.datetime
    enqueued_at: datetime.datetime | None
    worker_id: str
    #: The queue the invocation was enqueued on (its retries go there too).
    queue: str
    note: str | None = None


def _claim(
    message: TaskMessage, invocation_id: str, rid: Any, queue: str, hard: float
) -> _Claim | None:
    """Make the attempt's record RUNNING for this delivery; None when it already ended.

    Usually one INSERT. The record may exist already: READY (enqueued through
    the ``django.tasks`` backend, or released by an interrupted delivery),
    finished (a redelivery), or RUNNING (another delivery runs it, or died
    running it).
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
        return _Claim(now, None, worker, queue)
    except IntegrityError:
        pass
    existing = (
        TaskRecord.objects.filter(pk=rid)
        .values("status", "start_time", "enqueued_at", "task_name", "queue", "traceback")
        .first()
    )
    if existing is None:  # deleted in between: treat as in progress, SQS offers it again
        raise TaskInProgress(f"record {rid} vanished while claiming it")
    if existing["task_name"] != message.task_name:
        raise InvocationConflict(
            f"record {rid} of invocation {invocation_id} belongs to task "
            f"{existing['task_name']}, not {message.task_name}: the message reuses another "
            "invocation's id"
        )
    enqueued_at = existing["enqueued_at"]
    queue = existing["queue"] or queue
    if existing["status"] == Status.READY:
        # One conditional UPDATE decides between concurrent deliveries.
        claimed = TaskRecord.objects.filter(pk=rid, status=Status.READY).update(
            status=Status.RUNNING, start_time=now, worker_id=worker
        )
        if not claimed:
            raise TaskInProgress(f"record {rid} was claimed by another delivery")
        return _Claim(now, enqueued_at, worker, queue, existing["traceback"])
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
    return _Claim(now, enqueued_at, worker, queue, note)


def _release(rid: Any, claim: _Claim, error_text: str) -> None:
    """Give an interrupted attempt back: READY, so that the next delivery runs it at once.

    Conditional on this delivery's claim: an attempt whose outcome committed
    (an interrupt during its on_commit callbacks) keeps it. Never raises: the
    interrupt must go on, and a record left RUNNING is taken over later anyway.
    """
    last_line = error_text.rstrip().rpartition("\n")[2]
    note = (
        f"A delivery started at {claim.started_at} by {claim.worker_id} was interrupted "
        f"({last_line}); its writes were rolled back and the attempt released to run again."
    )
    try:
        released = TaskRecord.objects.filter(
            pk=rid, status=Status.RUNNING, start_time=claim.started_at
        ).update(status=Status.READY, start_time=None, worker_id=None, traceback=note)
    except Exception:
        task_logger.exception("Could not release the interrupted attempt; it stays RUNNING")
        return
    if released:
        task_logger.warning("Interrupted: the attempt was rolled back and released")


def _storage_error(error_text: str | None, exc: BaseException) -> str:
    # PostgreSQL text cannot hold NUL, a likely reason why the outcome was refused.
    safe_text = (error_text or "").replace("\x00", "\\x00")
    return (
        f"{safe_text}\nThe outcome could not be stored: {type(exc).__name__}: "
        f"{str(exc).replace(chr(0), '')}".lstrip()
    )


def _finish(rid: Any, status: str, result: Any, error_text: str | None) -> None:
    try:
        _records.update(
            rid, status=status, result=result, traceback=error_text, end_time=timezone.now()
        )
    except DatabaseError as exc:
        # The database refused the outcome itself: record a FAILED outcome it
        # can store rather than leave the record RUNNING.
        _records.update(
            rid,
            status=Status.FAILED,
            result=None,
            traceback=_storage_error(error_text, exc),
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
