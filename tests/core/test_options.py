"""Task options and their decoration-time validation (SPEC §2)."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import pytest

from lambda_tasks_core import (
    LambdaTasksError,
    SingletonLocked,
    TaskDefinitionError,
    TaskOptions,
    resolve_timeouts,
)
from lambda_tasks_core.options import validate_delay, validate_fifo_group

TASK = "shop.tasks.send_receipt"
IN_TASK = re.escape(f"task {TASK}:")


class AppError(Exception):
    pass


class NetworkError(AppError):
    pass


class SubLocked(SingletonLocked):
    pass


def build(**options: Any) -> TaskOptions:
    return TaskOptions.build(TASK, **options)


def assert_names(error: BaseException, *words: str) -> None:
    message = str(error)
    assert TASK in message, message
    for word in words:
        assert word in message, message


# --- defaults and unknown options -----------------------------------------------------


def test_defaults() -> None:
    options = TaskOptions.build(TASK)

    assert options == TaskOptions(
        task_name=TASK,
        queue="default",
        soft_timeout=None,
        hard_timeout=None,
        retry_on=(),
        ignore_errors=(),
        retry_delay=0,
        delay=0,
        singleton=False,
        retry_singleton=True,
        fifo_group=None,
    )


def test_all_options_accepted_together() -> None:
    options = build(
        queue="emails",
        soft_timeout=10,
        hard_timeout=12.5,
        retry_on=(NetworkError,),
        ignore_errors=(KeyError,),
        retry_delay=60,
        delay=5,
        singleton=True,
        retry_singleton=False,
        fifo_group="tenant-42",
    )

    assert options.queue == "emails"
    assert (options.soft_timeout, options.hard_timeout) == (10, 12.5)
    assert options.retry_on == (NetworkError,)
    assert options.ignore_errors == (KeyError,)
    assert (options.retry_delay, options.delay) == (60, 5)
    assert (options.singleton, options.retry_singleton) == (True, False)
    assert options.fifo_group == "tenant-42"


@pytest.mark.parametrize("name", ["retries", "timeout", "task_name_", "max_retries"])
def test_unknown_option_is_rejected(name: str) -> None:
    with pytest.raises(TaskDefinitionError) as info:
        build(**{name: 1})

    assert isinstance(info.value, TypeError)
    assert_names(info.value, name)


def test_options_are_frozen() -> None:
    options = build()

    with pytest.raises(dataclasses.FrozenInstanceError):
        options.delay = 5  # type: ignore[misc]


@pytest.mark.parametrize("queue", ["", None, 1, b"default"])
def test_queue_must_be_a_non_empty_string(queue: object) -> None:
    with pytest.raises(TypeError) as info:
        build(queue=queue)

    assert_names(info.value, "queue")


# --- timeouts ---------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["soft_timeout", "hard_timeout"])
@pytest.mark.parametrize("value", [0.001, 0.5, 1, 30, 899.99, 900, 900.0])
def test_timeout_accepts_positive_seconds_up_to_900(option: str, value: float) -> None:
    options = build(**{option: value})

    assert getattr(options, option) == value


@pytest.mark.parametrize("option", ["soft_timeout", "hard_timeout"])
@pytest.mark.parametrize("value", [0, 0.0, -1, -0.5, 900.01, 901, 3600, math.inf, math.nan])
def test_timeout_out_of_range_is_rejected(option: str, value: float) -> None:
    with pytest.raises(ValueError, match=IN_TASK) as info:
        build(**{option: value})

    assert_names(info.value, option)


@pytest.mark.parametrize("option", ["soft_timeout", "hard_timeout"])
@pytest.mark.parametrize("value", [True, False, "30", b"30", [30], 1j])
def test_timeout_of_wrong_type_is_rejected(option: str, value: object) -> None:
    with pytest.raises(TypeError) as info:
        build(**{option: value})

    assert_names(info.value, option)


@pytest.mark.parametrize(("soft", "hard"), [(10, 10), (20, 10), (10.5, 10), (900, 900)])
def test_soft_timeout_must_be_below_hard_timeout(soft: float, hard: float) -> None:
    with pytest.raises(ValueError, match=IN_TASK) as info:
        build(soft_timeout=soft, hard_timeout=hard)

    assert_names(info.value, "soft_timeout", "hard_timeout")


@pytest.mark.parametrize(("soft", "hard"), [(9.99, 10), (1, 900), (0.1, 0.2)])
def test_soft_timeout_below_hard_timeout_is_fine(soft: float, hard: float) -> None:
    options = build(soft_timeout=soft, hard_timeout=hard)

    assert (options.soft_timeout, options.hard_timeout) == (soft, hard)


def test_a_single_timeout_is_not_compared_at_decoration() -> None:
    # The other one comes from settings, checked at first use (resolve_timeouts).
    assert build(soft_timeout=800).soft_timeout == 800
    assert build(hard_timeout=1).hard_timeout == 1


# --- retry_on / ignore_errors -------------------------------------------------------------


@pytest.mark.parametrize("option", ["retry_on", "ignore_errors"])
def test_exception_options_accept_a_single_class(option: str) -> None:
    assert getattr(build(**{option: AppError}), option) == (AppError,)


@pytest.mark.parametrize("option", ["retry_on", "ignore_errors"])
@pytest.mark.parametrize("value", [(AppError, KeyError), [AppError, KeyError]])
def test_exception_options_accept_sequences_as_tuples(option: str, value: object) -> None:
    assert getattr(build(**{option: value}), option) == (AppError, KeyError)


@pytest.mark.parametrize("option", ["retry_on", "ignore_errors"])
@pytest.mark.parametrize(
    "value",
    [
        "ValueError",
        ValueError("boom"),
        int,
        object,
        None,
        (ValueError, "KeyError"),
        (ValueError, int),
        (ValueError(),),
        [None],
    ],
)
def test_exception_options_accept_exception_types_only(option: str, value: object) -> None:
    with pytest.raises(TypeError) as info:
        build(**{option: value})

    assert_names(info.value, option)


@pytest.mark.parametrize(
    ("retry_on", "ignore_errors"),
    [
        (AppError, AppError),  # the same class
        (NetworkError, AppError),  # retried is a subclass of ignored
        (AppError, NetworkError),  # ignored is a subclass of retried
        ((KeyError, NetworkError), (ZeroDivisionError, Exception)),
        (LookupError, (TypeError, KeyError)),
    ],
)
def test_retry_on_and_ignore_errors_must_not_overlap(
    retry_on: object, ignore_errors: object
) -> None:
    with pytest.raises(TypeError) as info:
        build(retry_on=retry_on, ignore_errors=ignore_errors)

    assert_names(info.value, "retry_on", "ignore_errors")


def test_unrelated_retry_on_and_ignore_errors_are_fine() -> None:
    options = build(retry_on=(NetworkError, KeyError), ignore_errors=(ZeroDivisionError,))

    assert options.retry_on == (NetworkError, KeyError)
    assert options.ignore_errors == (ZeroDivisionError,)


# --- retry_delay and delay ------------------------------------------------------------------


@pytest.mark.parametrize("value", [1, 30, 899, 900])
def test_retry_delay_with_retry_on(value: int) -> None:
    assert build(retry_on=AppError, retry_delay=value).retry_delay == value


def test_retry_delay_zero_needs_no_retry_on() -> None:
    assert build(retry_delay=0).retry_delay == 0


def test_nonzero_retry_delay_requires_retry_on() -> None:
    with pytest.raises(ValueError, match=IN_TASK) as info:
        build(retry_delay=10)

    assert_names(info.value, "retry_delay", "retry_on")


@pytest.mark.parametrize("option", ["retry_delay", "delay"])
@pytest.mark.parametrize("value", [-1, 901, 3600])
def test_delays_out_of_range_are_rejected(option: str, value: int) -> None:
    with pytest.raises(ValueError, match=IN_TASK) as info:
        build(retry_on=AppError, **{option: value})

    assert_names(info.value, option)


@pytest.mark.parametrize("option", ["retry_delay", "delay"])
@pytest.mark.parametrize("value", [1.0, 1.5, True, False, "5", None])
def test_delays_must_be_whole_seconds(option: str, value: object) -> None:
    with pytest.raises(TypeError) as info:
        build(retry_on=AppError, **{option: value})

    assert_names(info.value, option)


@pytest.mark.parametrize("value", [0, 1, 450, 900])
def test_delay_accepts_0_to_900(value: int) -> None:
    assert build(delay=value).delay == value


# --- singleton ------------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["singleton", "retry_singleton"])
@pytest.mark.parametrize("value", [1, 0, "yes", None, "False"])
def test_singleton_flags_must_be_bools(option: str, value: object) -> None:
    with pytest.raises(TypeError) as info:
        build(**{option: value})

    assert_names(info.value, option)


@pytest.mark.parametrize(
    "retry_on",
    [
        SingletonLocked,
        LambdaTasksError,
        Exception,
        BaseException,
        (AppError, SingletonLocked),
        [KeyError, Exception],
    ],
)
def test_singleton_rejects_retry_on_that_catches_lock_contention(retry_on: object) -> None:
    with pytest.raises(TypeError) as info:
        build(singleton=True, retry_on=retry_on)

    assert_names(info.value, "retry_on", "SingletonLocked")


@pytest.mark.parametrize("retry_on", [AppError, (KeyError, NetworkError), SubLocked])
def test_singleton_accepts_retry_on_unrelated_to_lock_contention(retry_on: object) -> None:
    assert build(singleton=True, retry_on=retry_on).singleton is True


@pytest.mark.parametrize("retry_on", [SingletonLocked, Exception, BaseException])
def test_retry_on_base_classes_are_fine_without_singleton(retry_on: type[BaseException]) -> None:
    assert build(retry_on=retry_on).retry_on == (retry_on,)


# --- fifo_group -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "group",
    ["a", "tenant-42", "x" * 128, "A.b_c:d/e", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"],
)
def test_fifo_group_accepts_sqs_message_group_ids(group: str) -> None:
    assert build(fifo_group=group).fifo_group == group


@pytest.mark.parametrize(
    "group",
    ["", "x" * 129, "with space", "tab\there", "ümlaut", "line\n", "\nline", "a\r"],
)
def test_fifo_group_rejects_invalid_message_group_ids(group: str) -> None:
    with pytest.raises(ValueError, match=IN_TASK) as info:
        build(fifo_group=group)

    assert_names(info.value, "fifo_group")


@pytest.mark.parametrize("group", [5, b"group", ["g"]])
def test_fifo_group_must_be_a_string(group: object) -> None:
    with pytest.raises((TypeError, ValueError)) as info:
        build(fifo_group=group)

    assert_names(info.value, "fifo_group")


# --- resolve_timeouts -------------------------------------------------------------------------


def test_resolve_uses_settings_defaults_when_the_task_sets_none() -> None:
    assert resolve_timeouts(build(), 270, 300) == (270, 300)


def test_resolve_task_values_win_over_defaults() -> None:
    assert resolve_timeouts(build(soft_timeout=10, hard_timeout=20), 270, 300) == (10, 20)
    assert resolve_timeouts(build(soft_timeout=10), 270, 300) == (10, 300)
    assert resolve_timeouts(build(hard_timeout=600), 270, 300) == (270, 600)
    assert resolve_timeouts(build(soft_timeout=0.5, hard_timeout=1.5), 270, 300) == (0.5, 1.5)


def test_resolve_rejects_task_hard_timeout_below_default_soft() -> None:
    with pytest.raises(ValueError, match=IN_TASK) as info:
        resolve_timeouts(build(hard_timeout=60), 270, 300)

    assert_names(info.value, "DEFAULT_SOFT_TIMEOUT", "hard_timeout", "270", "60")
    assert "DEFAULT_HARD_TIMEOUT" not in str(info.value)


def test_resolve_rejects_task_soft_timeout_above_default_hard() -> None:
    with pytest.raises(ValueError, match=IN_TASK) as info:
        resolve_timeouts(build(soft_timeout=400), 270, 300)

    assert_names(info.value, "soft_timeout", "DEFAULT_HARD_TIMEOUT")
    assert "DEFAULT_SOFT_TIMEOUT" not in str(info.value)


@pytest.mark.parametrize(("soft", "hard"), [(300, 300), (301, 300)])
def test_resolve_rejects_defaults_with_soft_not_below_hard(soft: float, hard: float) -> None:
    with pytest.raises(ValueError, match=IN_TASK) as info:
        resolve_timeouts(build(), soft, hard)

    assert_names(info.value, "DEFAULT_SOFT_TIMEOUT", "DEFAULT_HARD_TIMEOUT")


@pytest.mark.parametrize(
    ("soft", "hard", "culprit"),
    [
        (0, 300, "DEFAULT_SOFT_TIMEOUT"),
        (-5, 300, "DEFAULT_SOFT_TIMEOUT"),
        (270, 901, "DEFAULT_HARD_TIMEOUT"),
        (270, math.nan, "DEFAULT_HARD_TIMEOUT"),
    ],
)
def test_resolve_rejects_out_of_range_defaults(soft: float, hard: float, culprit: str) -> None:
    with pytest.raises(ValueError, match=IN_TASK) as info:
        resolve_timeouts(build(), soft, hard)

    assert_names(info.value, culprit)


@pytest.mark.parametrize(
    ("soft", "hard", "culprit"),
    [(True, 300, "DEFAULT_SOFT_TIMEOUT"), (270, "300", "DEFAULT_HARD_TIMEOUT")],
)
def test_resolve_rejects_defaults_of_wrong_type(soft: Any, hard: Any, culprit: str) -> None:
    with pytest.raises(TypeError) as info:
        resolve_timeouts(build(), soft, hard)

    assert_names(info.value, culprit)


def test_resolve_does_not_blame_a_default_that_the_task_overrides() -> None:
    # An invalid default is irrelevant when the task sets its own value.
    assert resolve_timeouts(build(soft_timeout=10, hard_timeout=20), 0, 1000) == (10, 20)


# --- per-call validators (used for _delay and _group) ---------------------------------------


def test_validate_delay_names_what_is_checked() -> None:
    assert validate_delay(0, "_delay") == 0
    assert validate_delay(900, "_delay") == 900
    with pytest.raises(ValueError, match=r"^_delay .*901"):
        validate_delay(901, "_delay")
    with pytest.raises(TypeError, match=r"^_delay .*True"):
        validate_delay(True, "_delay")


def test_validate_fifo_group_names_what_is_checked() -> None:
    assert validate_fifo_group("g-1", "_group") == "g-1"
    with pytest.raises(ValueError, match=r"^_group "):
        validate_fifo_group("g\n", "_group")
