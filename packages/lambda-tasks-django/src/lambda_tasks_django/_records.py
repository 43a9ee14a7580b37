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

from typing import Any

from django.db import connections, router, transaction
from django.db.models import Field, signals

from lambda_tasks_django.models import TaskRecord

__all__ = ["insert", "update"]

# Backends whose single-row INSERT and UPDATE the ORM writes with plain %s placeholders.
_VENDORS = frozenset({"sqlite", "postgresql", "mysql", "oracle"})
_MODEL_SIGNALS = (signals.pre_init, signals.post_init, signals.pre_save, signals.post_save)
_statements: dict[tuple[str, str, str, tuple[str, ...]], str] = {}


def _column(field: Field[Any, Any]) -> str:
    assert field.column is not None  # concrete fields have one
    return field.column


def _plain(fields: list[Field[Any, Any]]) -> bool:
    return not any(
        hasattr(field, "get_placeholder") or hasattr(field, "get_placeholder_sql")
        for field in fields
    )


def insert(pk: Any, values: dict[str, Any]) -> None:
    """Same as ``TaskRecord.objects.create(pk=pk, **values)``; IntegrityError on a duplicate pk."""
    fields: list[Field[Any, Any]] = list(TaskRecord._meta.concrete_fields)
    if (
        router.routers
        or any(signal.has_listeners(TaskRecord) for signal in _MODEL_SIGNALS)
        or not _plain(fields)
    ):
        TaskRecord.objects.create(pk=pk, **values)
        return
    connection = connections[router.db_for_write(TaskRecord)]
    if connection.vendor not in _VENDORS:
        TaskRecord.objects.create(pk=pk, **values)
        return
    key = (connection.alias, connection.vendor, "insert", ())
    sql = _statements.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        sql = _statements[key] = (
            f"INSERT INTO {quote(TaskRecord._meta.db_table)} "
            f"({', '.join(quote(_column(field)) for field in fields)}) "
            f"VALUES ({', '.join(['%s'] * len(fields))})"
        )
    params = []
    for field in fields:
        if field.primary_key:
            value = pk
        elif field.attname in values:
            value = values[field.attname]
        else:
            value = field.get_default()
        params.append(field.get_db_prep_save(value, connection))
    with transaction.mark_for_rollback_on_error(connection.alias), connection.cursor() as cursor:
        cursor.execute(sql, params)


def update(pk: Any, **values: Any) -> int:
    """Same as ``TaskRecord.objects.filter(pk=pk).update(**values)``: rows updated."""
    meta = TaskRecord._meta
    fields = [meta.get_field(name) for name in values]
    connection = connections[router.db_for_write(TaskRecord)]
    if connection.vendor not in _VENDORS or not all(
        isinstance(field, Field) and field.concrete for field in fields
    ):
        return TaskRecord.objects.filter(pk=pk).update(**values)
    concrete: list[Field[Any, Any]] = [field for field in fields if isinstance(field, Field)]
    if not _plain(concrete):
        return TaskRecord.objects.filter(pk=pk).update(**values)
    pk_field = meta.pk
    assert pk_field is not None
    key = (connection.alias, connection.vendor, "update", tuple(values))
    sql = _statements.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        table = quote(meta.db_table)
        assignments = ", ".join(f"{quote(_column(field))} = %s" for field in concrete)
        sql = _statements[key] = (
            f"UPDATE {table} SET {assignments} WHERE {table}.{quote(_column(pk_field))} = %s"
        )
    params = [
        field.get_db_prep_save(value, connection)
        for field, value in zip(concrete, values.values(), strict=True)
    ]
    params.append(pk_field.get_db_prep_value(pk, connection, prepared=False))
    with transaction.mark_for_rollback_on_error(connection.alias), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)
