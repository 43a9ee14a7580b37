"""Writing ``TaskRecord`` rows on the executor's hot path: one ready-made statement each.

``TaskRecord.objects.create(pk=..., **values)`` and
``TaskRecord.objects.filter(pk=...).update(**values)`` build a model instance
or a queryset and compile the same SQL again for every message: about 0.3 ms
of CPU per message, as much as the two writes themselves cost on a fast
database. Here each statement is written once per database alias and only
its parameters are prepared per call, as the ORM prepares them: with the
field's ``get_db_prep_save``, or, for the common values of built-in fields,
with the step that method ends in (a ``str`` of a text field is its own
prepared value; a UUID is itself, or its hex without a native uuid type; an
int, an aware UTC datetime and a JSON dict or list go to the backend's
adapter, and a UTC datetime on SQLite in UTC to the text that adapter writes).
Fields the caller gives no value for take their (constant) default, prepared
once.

A statement runs through Django's cursor wrapper whenever something observes
it: execute wrappers, or the debug cursor (``DEBUG`` or
``force_debug_cursor``; query logging). Otherwise it runs on the driver's own
cursor after the same checks Django's wrapper makes (health check, async
context, thread sharing, broken transaction), with database errors wrapped as
Django's and the atomic block marked for rollback on an error, as the ORM does.
The wrapper's layers cost about as much CPU as SQLite takes to run the
statement. Tools that patch Django's ``CursorWrapper`` class instead of using
``execute_wrappers`` (some APM integrations) do not see these two statements
unless ``DEBUG`` is on; driver-level instrumentation still does.

The ORM is used instead whenever this shortcut could behave differently:
when something listens to TaskRecord's model signals (``insert`` only; an
``update()`` sends none), when database routers are configured (they may
route by instance), on database backends other than Django's built-in SQL
ones, or when a field needs its own SQL placeholder.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import (
    BigIntegerField,
    CharField,
    DateTimeField,
    Field,
    IntegerField,
    JSONField,
    PositiveBigIntegerField,
    PositiveIntegerField,
    PositiveSmallIntegerField,
    SmallIntegerField,
    TextField,
    UUIDField,
    signals,
)

from lambda_tasks_django.models import TaskRecord

__all__ = ["insert", "update"]

# Backends whose single-row INSERT and UPDATE the ORM writes with plain %s placeholders.
_VENDORS = frozenset({"sqlite", "postgresql", "mysql", "oracle"})
# Backends whose driver takes the statement as written here (sqlite3 after %s -> ?).
_DRIVER_VENDORS = frozenset({"sqlite", "postgresql"})
_MODEL_SIGNALS = (signals.pre_init, signals.post_init, signals.pre_save, signals.post_save)
# How a field's value may skip get_db_prep_save (exact classes only: a subclass may
# prepare differently). Everything else, and every other value, takes the field's call.
_PLAIN, _TEXT, _DATETIME, _JSON, _UUID, _INT = range(6)
_KINDS: dict[type[Field[Any, Any]], int] = {
    CharField: _TEXT,  # a str is its own prepared value, on every backend
    TextField: _TEXT,
    DateTimeField: _DATETIME,  # an aware datetime goes to the backend's adapter as it is
    JSONField: _JSON,  # a dict or list goes to the backend's adapter with the field's encoder
    UUIDField: _UUID,  # a UUID is itself, or its hex where the database has no uuid type
    # an int goes to the backend's integer adapter as it is
    **dict.fromkeys(
        (
            IntegerField,
            SmallIntegerField,
            BigIntegerField,
            PositiveIntegerField,
            PositiveSmallIntegerField,
            PositiveBigIntegerField,
        ),
        _INT,
    ),
}


class _Statement(NamedTuple):  # not a dataclass: a fifth of the cold-start cost to define
    """One statement of one database alias, and how to prepare its parameters."""

    sql: str
    #: ``sql`` in the driver's own placeholder style; None: run through Django's cursor only.
    driver_sql: str | None
    #: The parameters that are the same on every call (fields the caller gives no
    #: value for hold their prepared default); the slots are filled per call.
    template: tuple[Any, ...]
    #: For each value given per call, in order: (position, field, kind, whether
    #: ``get_db_prep_save(None)`` is ``None`` so that a ``None`` value needs no call).
    slots: tuple[tuple[int, Field[Any, Any], int, bool], ...]

    def params(self, values: Iterable[Any], connection: BaseDatabaseWrapper) -> list[Any]:
        """The parameters: what ``field.get_db_prep_save(value, connection)`` returns per slot."""
        ops = connection.ops
        # Django's SQLite adapter stores an aware datetime as its naive time in the
        # connection's zone, as text: with both in UTC, that is the naive time itself.
        sqlite_utc = connection.vendor == "sqlite" and connection.timezone is datetime.UTC
        params = list(self.template)
        for (index, field, kind, none_is_null), value in zip(self.slots, values, strict=True):
            if value is None and none_is_null:
                continue  # the template holds None there
            if kind == _TEXT and type(value) is str:
                params[index] = value
            elif (
                kind == _DATETIME
                and type(value) is datetime.datetime
                and value.tzinfo is datetime.UTC
            ):
                params[index] = (
                    str(value.replace(tzinfo=None))
                    if sqlite_utc
                    else ops.adapt_datetimefield_value(value)
                )
            elif kind == _JSON and type(value) in (dict, list):
                params[index] = ops.adapt_json_value(value, field.encoder)  # type: ignore[attr-defined]
            elif kind == _UUID and type(value) is uuid.UUID:
                params[index] = value if connection.features.has_native_uuid_field else value.hex
            elif kind == _INT and type(value) is int:
                params[index] = ops.adapt_integerfield_value(value, field.get_internal_type())
            else:
                params[index] = field.get_db_prep_save(value, connection)
        return params


# (alias, vendor, statement kind, fields given per call) -> statement; None: use the ORM.
_statements: dict[tuple[str, str, str, tuple[str, ...]], _Statement | None] = {}


def _column(field: Field[Any, Any]) -> str:
    assert field.column is not None  # concrete fields have one
    return field.column


def _statement(
    connection: BaseDatabaseWrapper,
    fields: Sequence[Any],
    given: Sequence[Any],
    write_sql: Callable[[], str],
) -> _Statement | None:
    """Build a statement whose parameters are ``fields``, ``given`` ones filled per call.

    None when one of the fields needs more than a plain %s, or when a field not
    given has a default that is not a constant (computed per row, or by the database).
    """
    if connection.vendor not in _VENDORS or not all(
        isinstance(field, Field)
        and field.concrete
        and not hasattr(field, "get_placeholder")
        and not hasattr(field, "get_placeholder_sql")
        and (
            field in given
            or not (field.has_db_default() or (field.has_default() and callable(field.default)))
        )
        for field in fields
    ):
        return None
    sql = write_sql()
    driver_sql: str | None = None
    if connection.vendor in _DRIVER_VENDORS and "%%" not in sql:
        driver_sql = sql.replace("%s", "?") if connection.vendor == "sqlite" else sql
    positions = {field: index for index, field in enumerate(fields)}
    return _Statement(
        sql=sql,
        driver_sql=driver_sql,
        template=tuple(
            None if field in given else field.get_db_prep_save(field.get_default(), connection)
            for field in fields
        ),
        slots=tuple(
            (
                positions[field],
                field,
                _KINDS.get(type(field), _PLAIN),
                field.get_db_prep_save(None, connection) is None,
            )
            for field in given
        ),
    )


def _run(connection: BaseDatabaseWrapper, statement: _Statement, params: list[Any]) -> int:
    """Execute ``statement`` as ``connection.cursor().execute()`` would: rows affected."""
    try:
        if statement.driver_sql is None or connection.execute_wrappers or connection.queries_logged:
            with connection.cursor() as cursor:
                cursor.execute(statement.sql, params)
                return int(cursor.rowcount)
        # The checks of Django's cursor() and CursorWrapper.execute(), in their order.
        connection.close_if_health_check_failed()
        connection.ensure_connection()  # refuses an async context, as cursor() does
        connection.validate_thread_sharing()
        connection.validate_no_broken_transaction()
        with connection.wrap_database_errors:
            # Django's sqlite3 cursor rewrites %s to ? with a regex on every call;
            # driver_sql is rewritten once. PostgreSQL: the backend's own cursor.
            raw = (
                connection.connection.cursor()
                if connection.vendor == "sqlite"
                else connection.create_cursor()
            )
            try:
                raw.execute(statement.driver_sql, params)
                return int(raw.rowcount)
            finally:
                raw.close()
    except Exception:
        # transaction.mark_for_rollback_on_error, as the ORM's writes do.
        if connection.in_atomic_block:
            connection.needs_rollback = True
        raise


def insert(pk: Any, values: dict[str, Any]) -> None:
    """Same as ``TaskRecord.objects.create(pk=pk, **values)``; IntegrityError on a duplicate pk."""
    if router.routers or any(
        signal.receivers and signal.has_listeners(TaskRecord) for signal in _MODEL_SIGNALS
    ):
        TaskRecord.objects.create(pk=pk, **values)
        return
    connection = connections[router.db_for_write(TaskRecord)]
    key = (connection.alias, connection.vendor, "insert", tuple(values))
    try:
        statement = _statements[key]
    except KeyError:
        meta = TaskRecord._meta
        fields = list(meta.concrete_fields)

        def write_sql() -> str:
            quote = connection.ops.quote_name
            return (
                f"INSERT INTO {quote(meta.db_table)} "
                f"({', '.join(quote(_column(field)) for field in fields)}) "
                f"VALUES ({', '.join(['%s'] * len(fields))})"
            )

        # A name that is not a field fails here (FieldDoesNotExist) rather than being ignored.
        given = [meta.pk, *(meta.get_field(name) for name in values)]
        statement = _statements[key] = _statement(connection, fields, given, write_sql)
    if statement is None:
        TaskRecord.objects.create(pk=pk, **values)
        return
    _run(connection, statement, statement.params((pk, *values.values()), connection))


def update(pk: Any, **values: Any) -> int:
    """Same as ``TaskRecord.objects.filter(pk=pk).update(**values)``: rows updated."""
    connection = connections[router.db_for_write(TaskRecord)]
    key = (connection.alias, connection.vendor, "update", tuple(values))
    try:
        statement = _statements[key]
    except KeyError:
        meta = TaskRecord._meta
        pk_field = meta.pk
        assert pk_field is not None
        assigned = [meta.get_field(name) for name in values]
        fields = [*assigned, pk_field]  # the parameters: SET values, then the WHERE pk

        def write_sql() -> str:
            quote = connection.ops.quote_name
            table = quote(meta.db_table)
            assignments = ", ".join(f"{quote(_column(field))} = %s" for field in assigned)  # type: ignore[arg-type]
            return f"UPDATE {table} SET {assignments} WHERE {table}.{quote(_column(pk_field))} = %s"

        statement = _statements[key] = _statement(connection, fields, fields, write_sql)
    if statement is None:
        return TaskRecord.objects.filter(pk=pk).update(**values)
    return _run(connection, statement, statement.params((*values.values(), pk), connection))
