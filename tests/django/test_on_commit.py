"""Dispatch after commit, batched per commit, respecting savepoints (SPEC §5).

Most tests count what reaches the transport through a spy; the end-to-end
ones run eagerly (TaskRecords) or through SQS (moto) to show the same.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils.version import get_complete_version

from lambda_tasks_django import dispatch
from lambda_tasks_django.models import TaskRecord
from tests.django.conftest import SpyTransport, SqsMode
from tests.testapp.tasks import add, noop, on_other_queue

pytestmark = pytest.mark.django_db(transaction=True)


class Rollback(Exception):
    """Raised to leave an atomic block with a rollback."""


@contextlib.contextmanager
def rolled_back() -> Iterator[None]:
    """An atomic block (a savepoint when nested) left by an exception, so rolled back."""
    with contextlib.suppress(Rollback), transaction.atomic():
        yield
        raise Rollback


def test_without_a_transaction_the_task_is_sent_at_once(spy_transport: SpyTransport) -> None:
    invocation_id = add.execute_on_commit(a=1)
    assert spy_transport.batches == [[invocation_id]]


def test_a_commit_sends_all_its_tasks_in_one_send_call(spy_transport: SpyTransport) -> None:
    with transaction.atomic():
        ids = [add.execute_on_commit(a=n) for n in range(5)]
        ids.append(noop.execute_on_commit())
        ids.append(on_other_queue.execute_on_commit(n=1))
        assert spy_transport.calls == []  # nothing before the commit
    assert spy_transport.batches == [ids]

    with transaction.atomic():
        second = add.execute_on_commit(a=9)
    assert spy_transport.batches == [ids, [second]]


def test_a_rolled_back_transaction_sends_nothing(spy_transport: SpyTransport) -> None:
    with rolled_back():
        add.execute_on_commit(a=1)
        add.execute_on_commit(a=2)
    assert spy_transport.calls == []

    # Nothing of the rolled-back transaction is left over for the next commit.
    with transaction.atomic():
        kept = add.execute_on_commit(a=3)
    assert spy_transport.batches == [[kept]]


def test_a_set_rollback_transaction_sends_nothing(spy_transport: SpyTransport) -> None:
    with transaction.atomic():
        add.execute_on_commit(a=1)
        transaction.set_rollback(True)
    assert spy_transport.calls == []


def test_a_rolled_back_savepoint_drops_only_its_own_tasks(spy_transport: SpyTransport) -> None:
    with transaction.atomic():
        before = add.execute_on_commit(a=1)
        with rolled_back():
            add.execute_on_commit(a=2)
            add.execute_on_commit(a=3)
        after = add.execute_on_commit(a=4)
    assert spy_transport.batches == [[before, after]]


def test_a_rolled_back_savepoint_registered_last_keeps_the_outer_tasks(
    spy_transport: SpyTransport,
) -> None:
    # The flush callback was (re)registered inside the savepoint; it must survive it.
    with transaction.atomic():
        outer = [add.execute_on_commit(a=n) for n in range(3)]
        with rolled_back():
            add.execute_on_commit(a=99)
    assert spy_transport.batches == [outer]


def test_only_a_savepoint_that_rolled_back_loses_its_tasks(spy_transport: SpyTransport) -> None:
    with transaction.atomic():
        with transaction.atomic():
            inner = add.execute_on_commit(a=1)  # savepoint released: kept
        with rolled_back():
            add.execute_on_commit(a=2)
    assert spy_transport.batches == [[inner]]


def test_nested_savepoints_with_the_middle_level_rolled_back(
    spy_transport: SpyTransport,
) -> None:
    with transaction.atomic():
        a = add.execute_on_commit(a=1)
        with rolled_back():  # level 2: rolled back
            add.execute_on_commit(a=2)
            with transaction.atomic():  # level 3: released, but inside level 2
                add.execute_on_commit(a=3)
            add.execute_on_commit(a=4)
        e = add.execute_on_commit(a=5)
        with transaction.atomic():  # level 2: released
            f = add.execute_on_commit(a=6)
            with rolled_back():  # level 3: rolled back
                add.execute_on_commit(a=7)
            h = add.execute_on_commit(a=8)
    assert spy_transport.batches == [[a, e, f, h]]


def test_user_on_commit_callbacks_keep_their_order_around_ours(
    spy_transport: SpyTransport,
) -> None:
    seen: list[tuple[str, int]] = []
    with transaction.atomic():
        transaction.on_commit(lambda: seen.append(("user", len(spy_transport.calls))))
        first = add.execute_on_commit(a=1)
        transaction.on_commit(lambda: seen.append(("user", len(spy_transport.calls))))
        second = add.execute_on_commit(a=2)
    assert spy_transport.batches == [[first, second]]
    # Both user callbacks ran, once each, before our send (which stays last).
    assert seen == [("user", 0), ("user", 0)]


# --------------------------------------------------------------------------- private API pin


def test_run_on_commit_private_api_shape_and_flush_stays_last(
    spy_transport: SpyTransport,
) -> None:
    """Pins what ``dispatch._keep_flush_last`` relies on, on the installed Django.

    ``connection.run_on_commit`` holds ``(savepoint ids: set, func, robust: bool)``
    tuples; a savepoint rollback drops the entries whose set holds that
    savepoint; an entry with an empty set survives every savepoint rollback.
    """
    assert get_complete_version()[:2] >= (5, 2)
    flush = dispatch._flush_for(connection)

    def entries() -> list[Any]:
        hooks: list[Any] = connection.run_on_commit
        return hooks

    def user_callback() -> None:
        return None

    with transaction.atomic():
        transaction.on_commit(user_callback)
        add.execute_on_commit(a=1)
        for entry in entries():
            assert type(entry) is tuple
            assert len(entry) == 3
            sids, func, robust = entry
            assert type(sids) is set
            assert callable(func)
            assert type(robust) is bool
        assert entries()[-1] == (set(), flush, False)

        transaction.on_commit(user_callback, robust=True)
        assert entries()[-1][1:] == (user_callback, True)
        add.execute_on_commit(a=2)
        assert entries()[-1] == (set(), flush, False)

        with transaction.atomic():
            sid = connection.savepoint_ids[-1]
            add.execute_on_commit(a=3)
            # Django's own registrations inside a savepoint carry its id ...
            transaction.on_commit(user_callback)
            assert sid in entries()[-1][0]
            add.execute_on_commit(a=4)
            assert entries()[-1] == (set(), flush, False)
            collector_sids = [e[0] for e in entries() if e[1] is not flush]
            assert sum(sid in sids for sids in collector_sids) == 3
        for _ in range(5):
            add.execute_on_commit(a=5)
            assert entries()[-1] == (set(), flush, False)
        # Exactly one live flush, at the end.
        assert [e[1] for e in entries()].count(flush) == 1

        # ... and a savepoint rollback removes exactly the entries holding its id.
        with rolled_back():
            sid = connection.savepoint_ids[-1]
            transaction.on_commit(user_callback)
            assert sid in entries()[-1][0]
            entries().append((set(), user_callback, False))  # like our flush: no savepoint ids
        assert not any(sid in e[0] for e in entries())
        assert entries()[-1] == (set(), user_callback, False)
        entries().pop()
        assert entries()[-1] == (set(), flush, False)
    assert len(spy_transport.calls) == 1
    assert len(spy_transport.calls[0]) == 9


# --------------------------------------------------------------------------- capture helper


@pytest.mark.django_db
def test_capture_on_commit_callbacks_runs_our_flush(
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        first = add.execute_on_commit(a=2, b=3)
        second = add.execute_on_commit(a=4)
    assert callbacks
    records = {r.invocation_id: r for r in TaskRecord.objects.all()}
    assert set(records) == {first, second}
    assert records[first].status == TaskRecord.TaskStatus.SUCCEEDED
    assert records[first].result == 5
    assert records[second].result == 4


@pytest.mark.django_db
def test_capture_on_commit_callbacks_after_an_earlier_enqueue(
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    """A task enqueued before the capture (a fixture, setUpTestData) must not hide later ones."""
    earlier = add.execute_on_commit(a=1)
    with django_capture_on_commit_callbacks(execute=True):
        captured = add.execute_on_commit(a=2)
    ran = set(TaskRecord.objects.values_list("invocation_id", flat=True))
    assert captured in ran
    assert earlier not in ran  # registered before the capture: not captured, not run


@pytest.mark.django_db
def test_capture_without_execute_runs_nothing(
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        add.execute_on_commit(a=1)
    assert callbacks
    assert not TaskRecord.objects.exists()


# --------------------------------------------------------------------------- end to end


def test_eager_runs_exactly_the_committed_tasks() -> None:
    with transaction.atomic():
        first = add.execute_on_commit(a=1)
        with rolled_back():
            add.execute_on_commit(a=2)
        last = add.execute_on_commit(a=3)
        assert not TaskRecord.objects.exists()  # not before the commit
    records = {r.invocation_id: r for r in TaskRecord.objects.all()}
    assert set(records) == {first, last}
    assert {r.status for r in records.values()} == {TaskRecord.TaskStatus.SUCCEEDED}
    assert (records[first].result, records[last].result) == (1, 3)


def test_sqs_batches_skip_a_rolled_back_savepoint(sqs_mode: SqsMode) -> None:
    with transaction.atomic():
        kept = [add.execute_on_commit(a=n) for n in range(12)]
        with rolled_back():
            for n in range(5):
                add.execute_on_commit(a=100 + n)
        kept += [add.execute_on_commit(a=200 + n) for n in range(3)]

    assert sqs_mode.server.request_count("SendMessageBatch") == 2
    assert sqs_mode.server.request_count("SendMessage") == 0
    messages = sqs_mode.receive(sqs_mode.default, 15)
    received = [
        m["MessageAttributes"]["lambda_tasks_invocation_id"]["StringValue"] for m in messages
    ]
    assert sorted(received) == sorted(kept)
