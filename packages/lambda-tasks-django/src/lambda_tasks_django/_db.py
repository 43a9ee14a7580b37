"""Database connections across the tasks of one batch (SPEC §4, issue: CONN_MAX_AGE = 0).

Django's ``close_old_connections()`` is the rule for the end of a *request*:
with Django's default ``CONN_MAX_AGE = 0`` it closes every connection each
time it runs. Called between the records of one SQS batch (or the tasks of
one burst in a local worker) it would open a new connection per task — a TCP
connect and authentication per message on PostgreSQL. Between tasks the
runners call :func:`close_broken_connections` instead, and
``close_old_connections()`` once when the batch (or burst) ends.
"""

from __future__ import annotations

from django.db import connections

__all__ = ["close_broken_connections"]


def close_broken_connections() -> None:
    """Between two tasks of a batch: close connections a task broke or that outlived their age.

    Does what ``close_old_connections()`` does — a connection whose autocommit
    was left changed, or that saw an error and no longer works, is closed;
    a persistent one (``CONN_MAX_AGE > 0``) past its age is closed — except
    that a connection of ``CONN_MAX_AGE = 0`` stays open for the next task:
    its age ends with the batch, not with each task.
    """
    for connection in connections.all(initialized_only=True):
        if connection.connection is None:
            continue
        if connection.settings_dict["CONN_MAX_AGE"] != 0:
            connection.close_if_unusable_or_obsolete()
            continue
        # close_at is the public deadline connect() sets (now + CONN_MAX_AGE);
        # without it the same checks run and only the age check is skipped.
        close_at, connection.close_at = connection.close_at, None
        try:
            connection.close_if_unusable_or_obsolete()
        finally:
            if connection.connection is not None:
                connection.close_at = close_at
