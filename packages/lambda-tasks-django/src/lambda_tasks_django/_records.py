"""Writing ``TaskRecord`` rows on the executor's hot path: one ready-made statement each.

``TaskRecord.objects.create(pk=..., **values)`` and
``TaskRecord.objects.filter(pk=...).update(**values)`` build a model instance
or a queryset and compile the same SQL again for every message: about 0.3 ms
of CPU per message, as much as the two writes themselves cost on a fast
database. Here each statement is written once per database alias and only
its parameters are prepared per call, with the very field methods the ORM
uses (``get_db_prep_save``), executed through Django's cursor wrapper
(database errors wrapped as Django's, execute wrappers and query logging
apply) inside ``mark_for_rollback_on_error`` as the ORM does.

The ORM is used instead whenever this shortcut could behave differently:
when something listens to TaskRecord's model signals (``insert`` only; an
``update()`` sends none), when database routers are configured (they may
route by instance), on database backends other than Django's built-in SQL
ones, or when a field needs its own SQL placeholder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, signals

from lambda_tasks_django.models import TaskRecord

__all__ = ["insert", "update"]

# Backends whose single-row INSERT and UPDATE the ORM writes with plain %s placeholders.
_VENDORS = frozenset({"sqlite", "postgresql", "mysql", "oracle"})
_MODEL_SIGNALS = (signals.pre_init, signals.post_init, signals.pre_save, signals.post_save)


@dataclass(frozen=True, slots=True)
class _Statement:
    """One statement of one database alias, and how to prepare its parameters."""

    sql: str
    fields: tuple[Field[Any, Any], ...]
    #: Per field: ``get_db_prep_save(None)`` is ``None``, so a ``None`` value needs no call.
    none_is_null: tuple[bool, ...]

    def params(self, values: Sequence[Any], connection: BaseDatabaseWrapper) -> list[Any]:
        return [
            None if value is None and none_is_null else field.get_db_prep_save(value, connection)
            for field, none_is_null, value in zip(
                self.fields, self.none_is_null, values, strict=True
            )
        ]


# (alias, vendor, statement kind, updated fields) -> statement; None: use the ORM.
_statements: dict[tuple[str, str, str, tuple[str, ...]], _Statement | None] = {}


def _column(field: Field[Any, Any]) -> str:
    assert field.column is not None  # concrete fields have one
    return field.column


def _statement(
    connection: BaseDatabaseWrapper, fields: Sequence[Any], write_sql: Callable[[], str]
) -> _Statement | None:
    """Build a statement, or None when one of the fields needs more than a plain %s."""
    if connection.vendor not in _VENDORS or not all(
        isinstance(field, Field)
        and field.concrete
        and not hasattr(field, "get_placeholder")
        and not hasattr(field, "get_placeholder_sql")
        for field in fields
    ):
        return None
    return _Statement(
        sql=write_sql(),
        fields=tuple(fields),
        none_is_null=tuple(field.get_db_prep_save(None, connection) is None for field in fields),
    )


def insert(pk: Any, values: dict[str, Any]) -> None:
    """Same as ``TaskRecord.objects.create(pk=pk, **values)``; IntegrityError on a duplicate pk."""
    if router.routers or any(signal.has_listeners(TaskRecord) for signal in _MODEL_SIGNALS):
        TaskRecord.objects.create(pk=pk, **values)
        return
    connection = connections[router.db_for_write(TaskRecord)]
    key = (connection.alias, connection.vendor, "insert", ())
    try:
        statement = _statements[key]
    except KeyError:
        fields = list(TaskRecord._meta.concrete_fields)

        def write_sql() -> str:
            quote = connection.ops.quote_name
            return (
                f"INSERT INTO {quote(TaskRecord._meta.db_table)} "
                f"({', '.join(quote(_column(field)) for field in fields)}) "
                f"VALUES ({', '.join(['%s'] * len(fields))})"
            )

        statement = _statements[key] = _statement(connection, fields, write_sql)
    if statement is None:
        TaskRecord.objects.create(pk=pk, **values)
        return
    row = [
        pk
        if field.primary_key
        else values[field.attname]
        if field.attname in values
        else field.get_default()
        for field in statement.fields
    ]
    params = statement.params(row, connection)
    with transaction.mark_for_rollback_on_error(connection.alias), connection.cursor() as cursor:
        cursor.execute(statement.sql, params)


def update(pk: Any, **values: Any) -> int:
    """Same as ``TaskRecord.objects.filter(pk=pk).update(**values)``: rows updated."""
    connection = connections[router.db_for_write(TaskRecord)]
    key = (connection.alias, connection.vendor, "update", tuple(values))
    try:
        statement = _statements[key]
    except KeyError:
        meta = TaskRecord._meta
        fields = [meta.get_field(name) for name in values]

        def write_sql() -> str:
            quote = connection.ops.quote_name
            table = quote(meta.db_table)
            assignments = ", ".join(f"{quote(_column(field))} = %s" for field in fields)  # type: ignore[arg-type]
            assert meta.pk is not None
            return f"UPDATE {table} SET {assignments} WHERE {table}.{quote(_column(meta.pk))} = %s"

        statement = _statements[key] = _statement(connection, fields, write_sql)
    if statement is None:
        return TaskRecord.objects.filter(pk=pk).update(**values)
    params = statement.params(list(values.values()), connection)
    pk_field = TaskRecord._meta.pk
    assert pk_field is not None
    params.append(pk_field.get_db_prep_value(pk, connection, prepared=False))
    with transaction.mark_for_rollback_on_error(connection.alias), connection.cursor() as cursor:
        cursor.execute(statement.sql, params)
        return int(cursor.rowcount)
