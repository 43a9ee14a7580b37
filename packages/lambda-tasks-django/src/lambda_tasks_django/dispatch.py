"""Dispatch: one transport per mode, chosen in one place, fed after commit (SPEC §5)."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from lambda_tasks_django.invocation import TaskInvocation
from lambda_tasks_django.settings import Mode, TasksSettings, get_settings

__all__ = ["Transport", "dispatch_now", "enqueue_now", "enqueue_on_commit", "get_transport"]

logger = logging.getLogger("lambda_tasks.dispatch")


class Transport(Protocol):
    """Delivers enqueued invocations (each with its invocation id) to where they run."""

    def send(self, invocations: Sequence[TaskInvocation]) -> None: ...


class EagerTransport:
    """Runs each invocation in this process, retries included, iteratively."""

    def send(self, invocations: Sequence[TaskInvocation]) -> None:
        from lambda_tasks_django.executor import execute

        for invocation in invocations:
            current: TaskInvocation | None = invocation
            while current is not None:
                assert current.invocation_id is not None
                current = execute(
                    current.message, current.invocation_id, enforce_timeouts=False
                ).retry


class NoopTransport:
    """Drops invocations with a warning (LAMBDA_TASKS_NOOP_EXECUTION)."""

    def send(self, invocations: Sequence[TaskInvocation]) -> None:
        for invocation in invocations:
            logger.warning(
                "LAMBDA_TASKS_NOOP_EXECUTION is on: dropped task %s (invocation %s)",
                invocation.message.task_name,
                invocation.invocation_id,
            )


class SqsTransport:
    """Sends invocations to their SQS queues in batches.

    With ``LAMBDA_TASKS_OUTBOX`` the invocations are already in the outbox
    (every path stores them first); sent rows are deleted, the others stay
    for the relay.
    """

    def send(self, invocations: Sequence[TaskInvocation]) -> None:
        conf = get_settings()
        if conf.outbox:
            from lambda_tasks_django import outbox

            outbox.send_stored(invocations)
        else:
            from lambda_tasks_django import sqs

            sqs.send(invocations, conf.queues)


_EAGER = EagerTransport()
_NOOP = NoopTransport()
_SQS = SqsTransport()


def _local_transport() -> Transport:
    try:
        from lambda_tasks_local import get_local_transport  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        raise ImproperlyConfigured(
            "LAMBDA_TASKS_LOCAL_WORKERS is set but the local runner is not installed: "
            "pip install lambda-tasks-local"
        ) from None
    transport: Transport = get_local_transport()
    return transport


def get_transport(conf: TasksSettings | None = None) -> Transport:
    """The transport of the configured mode."""
    mode = (conf or get_settings()).mode
    if mode is Mode.EAGER:
        return _EAGER
    if mode is Mode.LOCAL:
        return _local_transport()
    if mode is Mode.NOOP:
        return _NOOP
    return _SQS


def dispatch_now(invocations: Sequence[TaskInvocation]) -> None:
    """Send invocations (e.g. retries) through the configured mode, without waiting for a commit."""
    if invocations:
        conf = get_settings()
        if conf.uses_outbox:
            from lambda_tasks_django import outbox

            outbox.store(invocations)
        get_transport(conf).send(invocations)


def enqueue_on_commit(invocation: TaskInvocation) -> str:
    """Check an invocation now and dispatch it once the current transaction commits.

    Configuration errors (unknown queue, local runner missing) raise here, in
    the caller's request, not after the commit. Several invocations committed
    together reach the transport in one call, so SQS gets them in batches.
    """
    conf = get_settings()
    conf.check_queue(invocation.queue)
    _refuse_fifo_delay(conf, invocation)
    transport = get_transport(conf)
    invocation = invocation.with_id()
    assert invocation.invocation_id is not None
    if conf.uses_outbox:
        from lambda_tasks_django import outbox

        # In the caller's transaction: committed or rolled back with its data.
        outbox.store([invocation])
    _send_after_commit(transport, invocation)
    return invocation.invocation_id


def _send_after_commit(transport: Transport, invocation: TaskInvocation) -> None:
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        transport.send([invocation])
        return
    pending = _pending(connection)
    # One on_commit callback per task: Django drops those of a savepoint that
    # rolls back. They only collect; the flush below sends what was collected.
    transaction.on_commit(lambda: pending.append(invocation))
    _keep_flush_last(connection)


def enqueue_now(
    invocation: TaskInvocation,
    *,
    enqueued_at: datetime.datetime,
    before_send: Callable[[TaskInvocation], None] | None = None,
) -> TaskInvocation:
    """Record the invocation READY and dispatch it at once (the ``django.tasks`` contract).

    Django's backends enqueue immediately, not on commit. The READY record is
    written in the caller's transaction: rolled back with it, it simply is not
    there when the attempt runs. With the outbox on, the invocation is written
    to the outbox in the current transaction instead and sent after commit.
    ``before_send`` is called with the invocation (and its id) once it is
    recorded, before the transport sees it: in eager mode, before it runs.
    Returns the invocation with its id.
    """
    from lambda_tasks_core import record_id
    from lambda_tasks_django.models import TaskRecord

    conf = get_settings()
    conf.check_queue(invocation.queue)
    _refuse_fifo_delay(conf, invocation)
    transport = get_transport(conf)
    invocation = invocation.with_id()
    assert invocation.invocation_id is not None
    message = invocation.message
    TaskRecord.objects.create(
        pk=record_id(invocation.invocation_id, message.n_retries),
        task_name=message.task_name,
        kwargs=message.kwargs,
        args=message.args,
        n_retries=message.n_retries,
        status=TaskRecord.TaskStatus.READY,
        enqueued_at=enqueued_at,
        invocation_id=invocation.invocation_id,
        queue=invocation.queue,
    )
    if conf.uses_outbox:
        from lambda_tasks_django import outbox

        outbox.store([invocation])
    if before_send is not None:
        before_send(invocation)
    if conf.uses_outbox:
        _send_after_commit(transport, invocation)
    else:
        transport.send([invocation])
    return invocation


def _refuse_fifo_delay(conf: TasksSettings, invocation: TaskInvocation) -> None:
    queue_url = conf.queues.get(invocation.queue, "")
    if queue_url.endswith(".fifo") and invocation.delay:
        raise ValueError(
            f"task {invocation.message.task_name}: queue {invocation.queue!r} is a FIFO queue, "
            f"which has no per-message delay (got a delay of {invocation.delay} s); "
            "enqueue it with _delay=0"
        )


def _pending(connection: BaseDatabaseWrapper) -> list[TaskInvocation]:
    pending: list[TaskInvocation] | None = getattr(connection, "_lambda_tasks_pending", None)
    if pending is None:
        pending = []
        connection._lambda_tasks_pending = pending  # type: ignore[attr-defined]
    return pending


def _flush_for(connection: BaseDatabaseWrapper) -> Callable[[], None]:
    flush: Callable[[], None] | None = getattr(connection, "_lambda_tasks_flush", None)
    if flush is None:

        def flush() -> None:
            pending = _pending(connection)
            batch = list(pending)
            pending.clear()
            if batch:
                get_transport().send(batch)

        connection._lambda_tasks_flush = flush  # type: ignore[attr-defined]
    return flush


def _keep_flush_last(connection: BaseDatabaseWrapper) -> None:
    """Keep one flush callback at the end of the connection's on_commit list.

    Private Django API: ``run_on_commit`` holds ``(savepoint ids, func, robust)``
    tuples and a rollback to a savepoint drops the entries whose ids contain it.
    An entry with no savepoint ids survives every savepoint rollback, so the
    flush runs whenever the outer transaction commits, after every collector.
    Pinned by tests on each supported Django version.
    """
    flush = _flush_for(connection)
    hooks: list[Any] = connection.run_on_commit
    if hooks and hooks[-1][1] is flush:
        return
    # Neutralise the earlier flush entry in place rather than removing it: code
    # that remembers positions in the list (TestCase.captureOnCommitCallbacks)
    # must not see later entries shift. It is normally one of the last entries.
    for index in range(len(hooks) - 1, -1, -1):
        sids, func, robust = hooks[index]
        if func is flush:
            hooks[index] = (sids, _flush_moved, robust)
            break
    hooks.append((set(), flush, False))


def _flush_moved() -> None:
    """Left where the flush callback was before it moved to the end of the list."""
