"""Durable enqueue: the outbox table and its relay (SPEC §5, ``LAMBDA_TASKS_OUTBOX``).

With the outbox on, an invocation is written to ``OutboxEntry`` inside the
caller's transaction and sent after commit; rows SQS accepted are deleted.
What could not be sent stays and :func:`relay` sends it later, oldest first.
Delivery is at least once: a row sent by the after-commit path and by a
relay at the same moment reaches SQS twice, and the executor's record id
(SPEC §3) runs the attempt once.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Q, Subquery
from django.utils import timezone

from lambda_tasks_core import TaskMessage
from lambda_tasks_django import sqs
from lambda_tasks_django.invocation import TaskInvocation
from lambda_tasks_django.models import OutboxEntry
from lambda_tasks_django.settings import get_settings

__all__ = ["RelayResult", "relay", "relay_at_start", "send_stored", "store"]

logger = logging.getLogger("lambda_tasks.outbox")

#: Rows younger than this are left to the after-commit send of their own request.
DEFAULT_MIN_AGE_SECONDS = 30
#: A relay's claim on rows expires after this, should the relay die mid-send.
CLAIM_SECONDS = 120
DEFAULT_BATCH_SIZE = 100


def _key(invocation: TaskInvocation) -> str:
    return f"{invocation.invocation_id}:{invocation.message.n_retries}"


def store(invocations: Sequence[TaskInvocation]) -> None:
    """Write invocations (with their ids) to the outbox, in the current transaction."""
    now = timezone.now()
    OutboxEntry.objects.bulk_create(
        [
            OutboxEntry(
                key=_key(invocation),
                task_name=invocation.message.task_name,
                queue=invocation.queue,
                invocation={**invocation.serialize(), "invocation_id": invocation.invocation_id},
                created_at=now,
            )
            for invocation in invocations
        ]
    )


def send_stored(invocations: Sequence[TaskInvocation]) -> list[TaskInvocation]:
    """Send invocations already in the outbox; delete the sent rows, keep the others.

    Returns the unsent invocations. Never raises for a failed send.
    """
    failures = sqs.send_batches(invocations, get_settings().queues)
    failed_keys = {_key(invocation): reason for invocation, reason in failures}
    sent_keys = [_key(inv) for inv in invocations if _key(inv) not in failed_keys]
    if sent_keys:
        OutboxEntry.objects.filter(key__in=sent_keys).delete()
    for key, reason in failed_keys.items():
        OutboxEntry.objects.filter(key=key).update(
            last_error=reason[:2000], claim_token=None, claimed_until=None
        )
        logger.warning("Task invocation %s kept in the outbox, not sent: %s", key, reason)
    return [invocation for invocation, _ in failures]


@dataclass(frozen=True, slots=True)
class RelayResult:
    """What one relay pass did."""

    sent: int
    failed: int


def relay(
    *,
    min_age_seconds: float = DEFAULT_MIN_AGE_SECONDS,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> RelayResult:
    """Send what the outbox holds, oldest first, until it is empty or SQS fails.

    Safe to run in several processes at once: each row is claimed by one relay
    (``SELECT … FOR UPDATE SKIP LOCKED`` where the database has it, and a
    conditional UPDATE everywhere), so no two relays send the same row.
    """
    sent = failed = 0
    while True:
        rows = _claim(min_age_seconds, batch_size)
        if not rows:
            break
        invocations = [_invocation(row) for row in rows]
        OutboxEntry.objects.filter(pk__in=[row.pk for row in rows]).update(
            attempts=F("attempts") + 1
        )
        unsent = send_stored(invocations)
        sent += len(invocations) - len(unsent)
        failed += len(unsent)
        if unsent:
            # SQS refused or is unreachable: stop this pass, the rows wait.
            break
    if sent or failed:
        logger.info("Outbox relay: %d sent, %d failed", sent, failed)
    return RelayResult(sent=sent, failed=failed)


def relay_at_start() -> RelayResult | None:
    """One :func:`relay` pass when the outbox is on in SQS mode; for worker starts.

    Never raises: a worker must start even when SQS or the database is not
    reachable yet (the error is logged). ``None`` when the outbox is off.
    """
    try:
        if not get_settings().uses_outbox:
            return None
        return relay()
    except Exception:
        logger.exception("Outbox relay at start failed; the rows wait for the next relay")
        return None


def _claim(min_age_seconds: float, batch_size: int) -> list[OutboxEntry]:
    """Mark up to ``batch_size`` of the oldest claimable rows as this pass's; return them."""
    now = timezone.now()
    token = str(uuid.uuid4())
    claimable = Q(created_at__lte=now - datetime.timedelta(seconds=min_age_seconds)) & (
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    )
    claim = {"claim_token": token, "claimed_until": now + datetime.timedelta(seconds=CLAIM_SECONDS)}
    oldest = OutboxEntry.objects.filter(claimable).order_by("id")
    if connection.features.has_select_for_update_skip_locked:
        with transaction.atomic():
            ids = list(
                oldest.select_for_update(skip_locked=True).values_list("id", flat=True)[:batch_size]
            )
            OutboxEntry.objects.filter(id__in=ids).update(**claim)
    else:
        # One UPDATE statement (SQLite): the database runs it under its write
        # lock, so two relays cannot both match a row; the condition is in it.
        OutboxEntry.objects.filter(
            claimable, id__in=Subquery(oldest.values("id")[:batch_size])
        ).update(**claim)
    return list(OutboxEntry.objects.filter(claim_token=token).order_by("id"))


def _invocation(row: OutboxEntry) -> TaskInvocation:
    data: dict[str, Any] = row.invocation
    return TaskInvocation(
        message=TaskMessage.model_validate(data["message"], strict=False),
        delay=data["delay"],
        queue=data["queue"],
        group=data.get("group"),
        invocation_id=data["invocation_id"],
    )
