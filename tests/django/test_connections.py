"""``close_broken_connections``: one connection for a batch, a broken one replaced."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from lambda_tasks_django._db import close_broken_connections

pytestmark = pytest.mark.django_db(transaction=True)


def open_connection() -> None:
    connection.close()
    connection.ensure_connection()
    assert connection.connection is not None


def test_a_healthy_connection_of_conn_max_age_0_stays_open() -> None:
    assert connection.settings_dict["CONN_MAX_AGE"] == 0
    open_connection()
    raw = connection.connection

    close_broken_connections()

    assert connection.connection is raw
    assert connection.close_at is not None  # its age still ends with the batch


def test_a_connection_that_saw_an_error_and_no_longer_works_is_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    open_connection()
    # What a dropped server connection looks like to Django (SQLite's is_usable
    # is always true, so the check's answer is given here).
    connection.errors_occurred = True
    monkeypatch.setattr(connection, "is_usable", lambda: False)

    close_broken_connections()

    assert connection.connection is None


def test_a_connection_left_with_autocommit_changed_is_closed() -> None:
    open_connection()
    connection.set_autocommit(False)

    close_broken_connections()

    assert connection.connection is None


def test_a_persistent_connection_past_its_age_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
    open_connection()
    connection.close_at = time.monotonic() - 1

    close_broken_connections()

    assert connection.connection is None


def test_a_persistent_connection_within_its_age_stays_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
    open_connection()
    raw = connection.connection

    close_broken_connections()

    assert connection.connection is raw
