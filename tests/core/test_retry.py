"""Retry policy (SPEC §4 step 5): delay with jitter, max retries."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_tasks_core import retry_delay_seconds, should_retry


@settings(deadline=None)  # timing varies on loaded CI machines
@given(retry_delay=st.integers(0, 900), seed=st.integers())
def test_retry_delay_is_the_task_delay_plus_1_to_5_s_capped_at_900(
    retry_delay: int, seed: int
) -> None:
    delay = retry_delay_seconds(retry_delay, random.Random(seed))

    assert type(delay) is int
    assert min(retry_delay + 1, 900) <= delay <= min(retry_delay + 5, 900)


@settings(deadline=None)  # timing varies on loaded CI machines
@given(seed=st.integers())
def test_retry_delay_is_reproducible_with_a_seeded_rng(seed: int) -> None:
    assert retry_delay_seconds(30, random.Random(seed)) == retry_delay_seconds(
        30, random.Random(seed)
    )


def test_jitter_spreads_over_the_whole_1_to_5_s_range() -> None:
    rng = random.Random(1234)

    seen = {retry_delay_seconds(0, rng) for _ in range(500)}

    assert seen == {1, 2, 3, 4, 5}


def test_cap_applies_near_the_sqs_maximum() -> None:
    rng = random.Random(0)

    assert {retry_delay_seconds(900, rng) for _ in range(50)} == {900}
    assert {retry_delay_seconds(897, rng) for _ in range(200)} == {898, 899, 900}


def test_default_rng_stays_in_bounds_and_varies() -> None:
    delays = [retry_delay_seconds(60) for _ in range(200)]

    assert set(delays) <= {61, 62, 63, 64, 65}
    assert len(set(delays)) > 1


@pytest.mark.parametrize(
    ("n_retries", "max_retries", "expected"),
    [
        (0, 0, False),  # retries disabled
        (0, 1, True),
        (1, 1, False),  # the attempt numbered max_retries is the last one
        (2, 1, False),
        (0, 2880, True),
        (2879, 2880, True),
        (2880, 2880, False),
    ],
)
def test_should_retry(n_retries: int, max_retries: int, expected: bool) -> None:
    assert should_retry(n_retries, max_retries) is expected


@settings(deadline=None)  # timing varies on loaded CI machines
@given(max_retries=st.integers(0, 5000))
def test_attempts_are_bounded_by_max_retries(max_retries: int) -> None:
    # Following next attempts from 0 runs exactly max_retries + 1 attempts.
    attempts = 1
    n = 0
    while should_retry(n, max_retries):
        n += 1
        attempts += 1

    assert attempts == max_retries + 1
