"""Redis locks for singleton tasks (SPEC §4 step 3)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured

from lambda_tasks_core import SingletonLocked

__all__ = ["check_singleton_cache", "singleton_lock"]


def _redis_client(alias: str) -> Any:
    """The redis-py client behind a cache alias (Django's RedisCache or django-redis)."""
    try:
        import redis  # noqa: F401  (only to name the missing extra clearly)
    except ImportError:
        raise ImproperlyConfigured(
            "Singleton tasks need redis: pip install 'lambda-tasks-django[redis]'"
        ) from None
    try:
        cache: Any = caches[alias]
    except Exception as exc:
        raise ImproperlyConfigured(
            f"LAMBDA_TASKS_SINGLETON_CACHE = {alias!r} is not a cache alias in CACHES"
        ) from exc
    if hasattr(cache, "client") and hasattr(cache.client, "get_client"):
        # django-redis: DefaultClient.get_client(write=True)
        return cache.client.get_client(write=True)
    if hasattr(cache, "_cache") and hasattr(cache._cache, "get_client"):
        # django.core.cache.backends.redis.RedisCache
        return cache._cache.get_client(None, write=True)
    raise ImproperlyConfigured(
        f"LAMBDA_TASKS_SINGLETON_CACHE = {alias!r} must be a Redis cache "
        "(django.core.cache.backends.redis.RedisCache or django_redis.cache.RedisCache), "
        f"not {type(cache).__module__}.{type(cache).__qualname__}"
    )


def check_singleton_cache(alias: str) -> None:
    """Raise ``ImproperlyConfigured`` unless ``alias`` names a usable Redis cache."""
    _redis_client(alias)


@contextmanager
def singleton_lock(alias: str, task_name: str, timeout: float) -> Iterator[None]:
    """Hold ``lambda_tasks.singleton_lock.<task_name>``, or raise ``SingletonLocked`` at once.

    The lock expires after ``timeout`` seconds (the hard timeout), so a run that
    died cannot block the task forever.
    """
    client = _redis_client(alias)
    lock = client.lock(
        f"lambda_tasks.singleton_lock.{task_name}",
        timeout=math.ceil(timeout),
        blocking=False,
    )
    if not lock.acquire(blocking=False):
        raise SingletonLocked(f"task {task_name} is already running (singleton lock held)")
    try:
        yield
    finally:
        from redis.exceptions import LockError

        # LockError: the lock expired while we ran (the task outlived its hard
        # timeout), so there is nothing left to release.
        with contextlib.suppress(LockError):
            lock.release()
