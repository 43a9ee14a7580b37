"""Singleton tasks take a Redis lock (SPEC §4 step 3), with a real redis-server.

Both supported cache backends are exercised: Django's built-in RedisCache and
django-redis.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from typing import Any
from unittest.mock import ANY

import pytest
from django.core.exceptions import ImproperlyConfigured
from pytest_django.fixtures import Settings as SettingsWrapper

from lambda_tasks_core import TaskMessage, new_invocation_id, record_id
from lambda_tasks_django.executor import Outcome, execute
from lambda_tasks_django.models import TaskRecord
from lambda_tasks_django.singleton import singleton_lock
from tests.testapp.tasks import SINGLETON_PROBE_KEY, singleton_no_retry, singleton_probe

pytestmark = pytest.mark.django_db

Status = TaskRecord.TaskStatus
NO_RETRY_KEY = f"lambda_tasks.singleton_lock.{singleton_no_retry.name}"
PIP_HINT = "pip install 'lambda-tasks-django[redis]'"


@pytest.fixture(
    params=["django.core.cache.backends.redis.RedisCache", "django_redis.cache.RedisCache"],
    ids=["django-rediscache", "django-redis"],
)
def lock_cache(request: pytest.FixtureRequest, settings: SettingsWrapper, redis_url: str) -> str:
    """CACHES with a LocMem default and a Redis ``locks`` alias used for singleton locks."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "locks": {"BACKEND": request.param, "LOCATION": redis_url},
    }
    settings.LAMBDA_TASKS_SINGLETON_CACHE = "locks"
    return redis_url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[Any]:
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def run(task_name: str, **kwargs: Any) -> tuple[Outcome, TaskRecord]:
    """Execute one first attempt as the handler would (timeouts enforced)."""
    message = TaskMessage(task_name=task_name, kwargs=kwargs)
    invocation_id = new_invocation_id()
    outcome = execute(message, invocation_id)
    return outcome, TaskRecord.objects.get(pk=record_id(invocation_id, 0))


def configuration_error_of_a_run() -> str:
    """Run a singleton task whose lock cannot be taken; the error text the operator gets.

    Either the executor raises the ImproperlyConfigured, or it records the attempt
    FAILED with it; in neither case does the task body run.
    """
    message = TaskMessage(task_name=singleton_no_retry.name, kwargs={"seconds": 0})
    try:
        outcome = execute(message, new_invocation_id())
    except ImproperlyConfigured as exc:
        return str(exc)
    record = TaskRecord.objects.get(pk=outcome.record_id)
    assert record.status == Status.FAILED
    assert record.result is None
    assert "ImproperlyConfigured" in (record.traceback or "")
    return record.traceback or ""


def test_lock_is_held_during_the_run_with_the_hard_timeout_as_expiry(
    lock_cache: str, redis_client: Any
) -> None:
    outcome, record = run(singleton_probe.name, redis_url=lock_cache)

    assert outcome.status == Status.SUCCEEDED
    seen = record.result
    assert isinstance(seen, dict)
    assert seen["exists"] == 1
    _soft, hard = singleton_probe.timeouts()
    assert hard * 1000 - 1500 < seen["ttl_ms"] <= hard * 1000
    assert redis_client.exists(SINGLETON_PROBE_KEY) == 0  # released after the run


def test_lock_is_released_after_a_failed_run(lock_cache: str, redis_client: Any) -> None:
    outcome, record = run(singleton_probe.name, redis_url=lock_cache, fail=True)

    assert outcome.status == Status.FAILED
    assert "singleton probe failed on purpose" in (record.traceback or "")
    assert redis_client.exists(SINGLETON_PROBE_KEY) == 0
    # ... so the next run gets the lock.
    outcome, _record = run(singleton_probe.name, redis_url=lock_cache)
    assert outcome.status == Status.SUCCEEDED


def test_a_held_lock_makes_the_run_retry(lock_cache: str, redis_client: Any) -> None:
    holder = redis_client.lock(SINGLETON_PROBE_KEY, timeout=60)
    assert holder.acquire(blocking=False)

    message = TaskMessage(task_name=singleton_probe.name, kwargs={"redis_url": lock_cache})
    invocation_id = new_invocation_id()
    outcome = execute(message, invocation_id)
    record = TaskRecord.objects.get(pk=outcome.record_id)

    assert outcome.status == Status.RETRIED
    assert record.status == Status.RETRIED
    assert record.result is None  # the task body did not run
    assert "SingletonLocked" in (record.traceback or "")
    assert outcome.retry is not None
    assert outcome.retry.invocation_id == invocation_id
    assert outcome.retry.message.n_retries == 1
    assert outcome.retry.message.kwargs == message.kwargs
    # Someone else's lock is left alone.
    assert holder.owned()
    assert 55_000 < redis_client.pttl(SINGLETON_PROBE_KEY) <= 60_000

    holder.release()
    retried = execute(outcome.retry.message, invocation_id)
    assert retried.status == Status.SUCCEEDED
    assert TaskRecord.objects.get(pk=retried.record_id).result == {"exists": 1, "ttl_ms": ANY}
    assert redis_client.exists(SINGLETON_PROBE_KEY) == 0


def test_a_held_lock_without_retry_singleton_is_recorded_as_ignored(
    lock_cache: str, redis_client: Any
) -> None:
    holder = redis_client.lock(NO_RETRY_KEY, timeout=60)
    assert holder.acquire(blocking=False)

    outcome, record = run(singleton_no_retry.name, seconds=0)

    assert outcome.status == Status.SUCCEEDED
    assert outcome.retry is None
    assert record.result is None  # "ran" was not returned: the body did not run
    assert "SingletonLocked" in (record.traceback or "")
    assert holder.owned()
    holder.release()


def test_lock_key_and_timeout_through_the_context_manager(
    lock_cache: str, redis_client: Any
) -> None:
    from lambda_tasks_core import SingletonLocked

    key = "lambda_tasks.singleton_lock.some.task"
    with singleton_lock("locks", "some.task", 2.2):
        assert 2000 < redis_client.pttl(key) <= 3000  # rounded up to whole seconds
        with (
            pytest.raises(SingletonLocked, match=r"some\.task"),
            singleton_lock("locks", "some.task", 2),
        ):
            pytest.fail("a second holder got the lock")
        assert redis_client.exists(key) == 1  # the failed attempt did not release it
    assert redis_client.exists(key) == 0


def test_missing_redis_package_names_the_extra(
    settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    monkeypatch.setitem(sys.modules, "redis", None)

    with (
        pytest.raises(ImproperlyConfigured, match=re.escape(PIP_HINT)),
        singleton_lock("default", "some.task", 5),
    ):
        pytest.fail("locked without redis")

    assert PIP_HINT in configuration_error_of_a_run()


def test_a_cache_that_is_not_redis_is_refused(settings: SettingsWrapper) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.LAMBDA_TASKS_SINGLETON_CACHE = "default"

    with (
        pytest.raises(ImproperlyConfigured, match=r"LAMBDA_TASKS_SINGLETON_CACHE.*LocMemCache"),
        singleton_lock("default", "some.task", 5),
    ):
        pytest.fail("locked on LocMemCache")

    assert "LAMBDA_TASKS_SINGLETON_CACHE" in configuration_error_of_a_run()


def test_an_unknown_cache_alias_is_refused(settings: SettingsWrapper) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    with (
        pytest.raises(ImproperlyConfigured, match=r"LAMBDA_TASKS_SINGLETON_CACHE = 'nope'"),
        singleton_lock("nope", "some.task", 5),
    ):
        pytest.fail("locked on a missing cache")
