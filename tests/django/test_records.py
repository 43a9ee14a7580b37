"""The executor's ready-made record statements (``lambda_tasks_django._records``).

They must write exactly what the ORM writes, and behave as Django's cursor
does whether they run through it (something observes statements) or on the
driver's cursor (nothing does).
"""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.exceptions import SynchronousOnlyOperation
from django.db import IntegrityError, connection, transaction
from django.db.models import signals
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambda_tasks_django import _records
from lambda_tasks_django.models import TaskRecord

Status = TaskRecord.TaskStatus

# PostgreSQL text and jsonb cannot hold NUL: the executor handles that apart (_finish).
_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_text, children, max_size=3),
    max_leaves=8,
)
# What DjangoJSONEncoder (the fields' encoder) encodes beyond plain JSON.
_encodable = st.recursive(
    _json | st.uuids() | st.decimals(allow_nan=False, places=3) | st.dates(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_text, children, max_size=3),
    max_leaves=8,
)
_moment = st.datetimes(
    min_value=datetime.datetime(1970, 1, 2),
    max_value=datetime.datetime(2200, 1, 1),
    # UTC takes the shortcut to the backend's adapter; other zones the field's own call.
    timezones=st.sampled_from(
        [datetime.UTC, datetime.timezone(datetime.timedelta(hours=5, minutes=30))]
    ),
)


def _values(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "task_name": "tests.testapp.tasks.add",
        "kwargs": {"a": 1},
        "args": None,
        "n_retries": 0,
        "status": Status.RUNNING,
        "start_time": datetime.datetime(2026, 11, 29, 5, 0, tzinfo=datetime.UTC),
        "invocation_id": str(uuid.uuid4()),
        "queue": "default",
        "worker_id": "host:1",
    }
    return values | overrides


def _row(pk: uuid.UUID) -> tuple[Any, ...]:
    """The row as the database holds it (no field converters), primary key left out."""
    quote = connection.ops.quote_name
    columns = [str(f.column) for f in TaskRecord._meta.concrete_fields if not f.primary_key]
    pk_field = TaskRecord._meta.pk
    assert pk_field is not None
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(TaskRecord._meta.db_table)}"
            f" WHERE {quote(str(pk_field.column))} = %s",
            [pk_field.get_db_prep_value(pk, connection)],
        )
        row = cursor.fetchone()
    assert row is not None
    return tuple(row)


@pytest.fixture
def statements_seen() -> Iterator[list[str]]:
    """Statements passing through Django's cursor wrapper (an execute wrapper)."""
    seen: list[str] = []

    def wrapper(execute: Callable[..., Any], sql: str, *args: Any) -> Any:
        seen.append(sql.split(None, 1)[0].upper())
        return execute(sql, *args)

    with connection.execute_wrapper(wrapper):
        yield seen


# --- same rows as the ORM ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    task_name=_text.filter(bool),
    kwargs=st.dictionaries(_text, _encodable, max_size=4),
    args=st.none() | st.lists(_encodable, max_size=3),
    n_retries=st.integers(0, 32767),
    start_time=_moment,
    end_time=_moment,
    result=_json,
    traceback=st.none() | _text,
    status=st.sampled_from([Status.SUCCEEDED, Status.FAILED, Status.RETRIED]),
)
def test_insert_and_update_write_what_the_orm_writes(
    task_name: str,
    kwargs: dict[str, Any],
    args: list[Any] | None,
    n_retries: int,
    start_time: datetime.datetime,
    end_time: datetime.datetime,
    result: Any,
    traceback: str | None,
    status: str,
) -> None:
    values = _values(
        task_name=task_name, kwargs=kwargs, args=args, n_retries=n_retries, start_time=start_time
    )
    outcome = {"status": status, "result": result, "traceback": traceback, "end_time": end_time}
    ours, orm = uuid.uuid4(), uuid.uuid4()

    _records.insert(ours, values)
    TaskRecord.objects.create(pk=orm, **values)
    assert _row(ours) == _row(orm)

    assert _records.update(ours, **outcome) == 1
    assert TaskRecord.objects.filter(pk=orm).update(**outcome) == 1
    assert _row(ours) == _row(orm)


@pytest.mark.django_db(transaction=True)
def test_update_of_a_missing_record_reports_no_row() -> None:
    assert _records.update(uuid.uuid4(), status=Status.FAILED) == 0


# --- which cursor runs the statement ----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_execute_wrappers_see_the_statements(statements_seen: list[str]) -> None:
    pk = uuid.uuid4()

    _records.insert(pk, _values())
    _records.update(pk, status=Status.SUCCEEDED)

    assert statements_seen == ["INSERT", "UPDATE"]
    assert TaskRecord.objects.get(pk=pk).status == Status.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_the_debug_cursor_logs_the_statements() -> None:
    pk = uuid.uuid4()

    with CaptureQueriesContext(connection) as captured:
        _records.insert(pk, _values())
        _records.update(pk, status=Status.SUCCEEDED)

    assert [q["sql"].split(None, 1)[0] for q in captured.captured_queries] == ["INSERT", "UPDATE"]


@pytest.mark.django_db(transaction=True)
def test_without_observers_the_driver_runs_the_statement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Django's cursor wrapper is not used at all: failing it proves the direct path ran.
    def no_django_cursor() -> None:
        raise AssertionError("Django's cursor wrapper was used")

    pk = uuid.uuid4()
    connection.ensure_connection()
    monkeypatch.setattr(connection, "cursor", no_django_cursor)

    _records.insert(pk, _values())
    assert _records.update(pk, status=Status.SUCCEEDED) == 1

    monkeypatch.undo()
    assert TaskRecord.objects.get(pk=pk).status == Status.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_model_signal_listeners_get_the_orm(statements_seen: list[str]) -> None:
    saved: list[Any] = []

    def on_save(sender: type[TaskRecord], instance: TaskRecord, **kwargs: Any) -> None:
        saved.append(instance.pk)

    pk = uuid.uuid4()
    signals.post_save.connect(on_save, sender=TaskRecord)
    try:
        _records.insert(pk, _values())
    finally:
        signals.post_save.disconnect(on_save, sender=TaskRecord)

    assert saved == [pk]


# --- what Django's cursor would have done ------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_duplicate_key_is_djangos_integrity_error_and_marks_the_block_for_rollback() -> None:
    pk = uuid.uuid4()
    _records.insert(pk, _values())

    with transaction.atomic():
        with pytest.raises(IntegrityError):  # django.db's, not the driver's
            _records.insert(pk, _values())
        assert connection.needs_rollback

    assert TaskRecord.objects.filter(pk=pk).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_broken_transaction_is_refused() -> None:
    with transaction.atomic():
        connection.needs_rollback = True
        with pytest.raises(TransactionManagementError):
            _records.insert(uuid.uuid4(), _values())
        connection.needs_rollback = False


@pytest.mark.django_db(transaction=True)
def test_a_closed_connection_is_opened_again() -> None:
    pk = uuid.uuid4()
    connection.close()

    _records.insert(pk, _values())

    assert connection.connection is not None
    assert TaskRecord.objects.filter(pk=pk).exists()


@pytest.mark.django_db(transaction=True)
def test_an_async_context_is_refused() -> None:
    connection.ensure_connection()

    async def from_the_event_loop() -> None:
        _records.insert(uuid.uuid4(), _values())

    with pytest.raises(SynchronousOnlyOperation):
        asyncio.run(from_the_event_loop())
