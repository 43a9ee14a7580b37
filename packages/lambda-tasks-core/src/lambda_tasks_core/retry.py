"""Retry policy as pure functions."""

from __future__ import annotations

import random

from lambda_tasks_core.limits import MAX_DELAY_SECONDS

__all__ = ["retry_delay_seconds", "should_retry"]


def retry_delay_seconds(retry_delay: int, rng: random.Random | None = None) -> int:
    """Delay before a retry: the task's ``retry_delay`` plus 1–5 s of jitter, capped at 900 s.

    The jitter spreads retries of tasks that failed together (a downstream outage).
    """
    uniform = (rng or random).uniform
    return min(retry_delay + round(uniform(1, 5)), MAX_DELAY_SECONDS)


def should_retry(n_retries: int, max_retries: int) -> bool:
    """Whether an attempt numbered ``n_retries`` (0 for the first) may be retried."""
    return n_retries < max_retries
