"""Soft and hard time limits enforced with SIGALRM (SPEC §4 "Timeouts").

Every test runs with a recording SIGALRM handler and a disarmed timer (the
autouse fixture), and the state found before the test (pytest-timeout uses
SIGALRM too) is put back afterwards. Limits are fractions of a second so the
whole module stays fast; busy loops always have a deadline so a broken
implementation fails instead of hanging.
"""

from __future__ import annotations

import contextlib
import math
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from types import FrameType

import pytest

from lambda_tasks_core import HardTimeLimitExceeded, SoftTimeLimitExceeded, time_limits

#: Slack for timer delivery on a loaded machine (upper bounds only).
SLACK = 0.5


class Recorder:
    """A SIGALRM handler that counts calls: the 'previous' handler of each test."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.calls += 1


@pytest.fixture(autouse=True)
def previous() -> Iterator[Recorder]:
    saved_handler = signal.getsignal(signal.SIGALRM)
    saved_delay, saved_interval = signal.setitimer(signal.ITIMER_REAL, 0)
    started = time.monotonic()
    recorder = Recorder()
    signal.signal(signal.SIGALRM, recorder)
    try:
        yield recorder
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, saved_handler)
        if saved_delay > 0:
            left = max(saved_delay - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, saved_interval)


def spin(seconds: float) -> None:
    """Busy-wait in Python bytecode (interruptible by a signal handler)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


def timer() -> tuple[float, float]:
    return signal.getitimer(signal.ITIMER_REAL)


def assert_untouched(recorder: Recorder) -> None:
    assert signal.getsignal(signal.SIGALRM) is recorder
    assert timer() == (0.0, 0.0)


# --- soft and hard limits ---------------------------------------------------------------------


@pytest.mark.parametrize("soft", [0.05, 0.1, 0.3])
def test_soft_limit_raises_on_time(soft: float) -> None:
    start = time.monotonic()

    with pytest.raises(SoftTimeLimitExceeded), time_limits(soft, None):
        spin(5)

    elapsed = time.monotonic() - start
    assert soft - 0.005 <= elapsed < soft + SLACK


def test_soft_limit_is_catchable_as_exception(previous: Recorder) -> None:
    caught: list[Exception] = []

    with time_limits(0.05, None):
        try:
            spin(5)
        except Exception as exc:  # what task cleanup code does
            caught.append(exc)

    assert len(caught) == 1
    assert isinstance(caught[0], SoftTimeLimitExceeded)
    assert_untouched(previous)


@pytest.mark.parametrize("hard", [0.05, 0.2])
def test_hard_limit_cannot_be_swallowed_by_except_exception(hard: float) -> None:
    swallowed: list[Exception] = []

    def task() -> None:
        try:
            spin(5)
        except Exception as exc:
            swallowed.append(exc)

    start = time.monotonic()
    with pytest.raises(HardTimeLimitExceeded), time_limits(None, hard):
        task()

    assert swallowed == []
    assert hard - 0.005 <= time.monotonic() - start < hard + SLACK


def test_soft_then_hard_when_the_task_swallows_soft() -> None:
    soft_at: list[float] = []

    def task() -> None:
        try:
            spin(5)
        except SoftTimeLimitExceeded:
            soft_at.append(time.monotonic() - start)
        spin(5)  # cleanup that overruns

    start = time.monotonic()
    with pytest.raises(HardTimeLimitExceeded), time_limits(0.05, 0.2):
        task()

    hard_at = time.monotonic() - start
    assert len(soft_at) == 1
    assert 0.045 <= soft_at[0] < 0.05 + SLACK
    assert 0.195 <= hard_at < 0.2 + SLACK


def test_soft_without_hard_raises_once() -> None:
    with time_limits(0.05, None):
        with pytest.raises(SoftTimeLimitExceeded):
            spin(5)
        spin(0.15)  # no second alarm, no hard limit


def test_only_hard_limit_raises_no_soft() -> None:
    def task() -> None:
        try:
            spin(5)
        except SoftTimeLimitExceeded:
            pytest.fail("no soft limit was set")

    with pytest.raises(HardTimeLimitExceeded), time_limits(None, 0.05):
        task()


def test_hard_limit_interrupts_sleep() -> None:
    start = time.monotonic()

    with pytest.raises(HardTimeLimitExceeded), time_limits(None, 0.05):
        time.sleep(5)

    assert time.monotonic() - start < 0.05 + SLACK


def test_fast_body_is_not_interrupted(previous: Recorder) -> None:
    with time_limits(0.2, 0.3):
        total = sum(range(1000))

    assert total == 499500
    assert_untouched(previous)


def test_infinite_python_loop_is_interrupted() -> None:
    # In a subprocess: a broken implementation would hang pytest itself.
    script = textwrap.dedent(
        """
        import time
        from lambda_tasks_core import HardTimeLimitExceeded, SoftTimeLimitExceeded, time_limits

        start = time.monotonic()
        try:
            with time_limits(0.1, 0.3):
                try:
                    while True:
                        pass
                except SoftTimeLimitExceeded:
                    print("soft", flush=True)
                while True:
                    try:
                        while True:
                            pass
                    except Exception:
                        print("swallowed", flush=True)
        except HardTimeLimitExceeded:
            print("hard", time.monotonic() - start, flush=True)
        """
    )

    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )

    lines = result.stdout.split()
    assert lines[:2] == ["soft", "hard"], result.stdout + result.stderr
    assert 0.295 <= float(lines[2]) < 0.3 + SLACK


# --- no-op and argument checks ------------------------------------------------------------------


def test_no_limits_is_a_no_op(previous: Recorder) -> None:
    signal.setitimer(signal.ITIMER_REAL, 0.05)

    with time_limits(None, None):
        handler_inside = signal.getsignal(signal.SIGALRM)
        spin(0.1)
        # The pending alarm was neither replaced nor suspended.
        assert previous.calls == 1

    assert handler_inside is previous
    assert signal.getsignal(signal.SIGALRM) is previous


@pytest.mark.parametrize(("soft", "hard"), [(1, 1), (2, 1), (0.3, 0.2)])
def test_soft_not_below_hard_is_rejected(soft: float, hard: float, previous: Recorder) -> None:
    with pytest.raises(ValueError, match="soft"), time_limits(soft, hard):
        pytest.fail("body must not run")

    assert_untouched(previous)


@pytest.mark.parametrize(
    ("soft", "hard"),
    [(0, None), (None, 0), (0, 1), (-1, None), (None, -0.5), (math.nan, None), (None, math.inf)],
)
def test_non_positive_or_non_finite_limits_are_rejected(
    soft: float | None, hard: float | None, previous: Recorder
) -> None:
    # setitimer(0) disarms: a 0 limit must not silently mean "no limit".
    with pytest.raises(ValueError, match="limit"), time_limits(soft, hard):
        pytest.fail("body must not run")

    assert_untouched(previous)


def test_limits_need_the_main_thread(previous: Recorder) -> None:
    outcome: list[BaseException | None] = []

    def worker() -> None:
        try:
            with time_limits(0.1, 0.2):
                pass
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)
        # Without limits there is nothing to arm: fine in any thread.
        with time_limits(None, None):
            outcome.append(None)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(10)

    assert len(outcome) == 2
    assert isinstance(outcome[0], RuntimeError)
    assert "main thread" in str(outcome[0])
    assert outcome[1] is None
    assert_untouched(previous)


# --- restoring the previous state ---------------------------------------------------------------


def test_previous_handler_restored_after_normal_exit(previous: Recorder) -> None:
    with time_limits(0.1, 0.2):
        assert signal.getsignal(signal.SIGALRM) is not previous

    assert_untouched(previous)


def test_previous_handler_restored_after_soft_limit(previous: Recorder) -> None:
    with pytest.raises(SoftTimeLimitExceeded), time_limits(0.05, 0.1):
        spin(5)

    assert_untouched(previous)


def test_previous_handler_restored_after_hard_limit(previous: Recorder) -> None:
    def task() -> None:
        for _ in range(3):
            with contextlib.suppress(SoftTimeLimitExceeded):
                spin(5)

    with pytest.raises(HardTimeLimitExceeded), time_limits(0.05, 0.1):
        task()

    assert_untouched(previous)


def test_previous_handler_restored_after_task_error(previous: Recorder) -> None:
    with pytest.raises(KeyError), time_limits(0.1, 0.2):
        raise KeyError("boom")

    assert_untouched(previous)


@pytest.mark.parametrize("handler", [signal.SIG_IGN, signal.SIG_DFL])
def test_previous_builtin_disposition_restored(handler: signal.Handlers) -> None:
    signal.signal(signal.SIGALRM, handler)

    with time_limits(0.1, 0.2):
        pass

    assert signal.getsignal(signal.SIGALRM) == handler
    assert timer() == (0.0, 0.0)


def test_pending_previous_alarm_is_rearmed_with_its_remaining_time(previous: Recorder) -> None:
    signal.setitimer(signal.ITIMER_REAL, 0.4)

    with time_limits(None, 5):
        time.sleep(0.1)

    remaining, interval = timer()
    assert 0.2 <= remaining <= 0.31
    assert interval == 0.0
    assert previous.calls == 0
    time.sleep(remaining + 0.1)
    assert previous.calls == 1


def test_previous_interval_timer_keeps_its_interval(previous: Recorder) -> None:
    signal.setitimer(signal.ITIMER_REAL, 0.3, 0.25)

    with time_limits(0.1, 0.2):
        pass

    remaining, interval = timer()
    assert 0.2 <= remaining <= 0.3
    assert interval == pytest.approx(0.25, abs=0.001)


def test_previous_alarm_due_during_the_block_fires_promptly_after(previous: Recorder) -> None:
    signal.setitimer(signal.ITIMER_REAL, 0.05)

    with time_limits(None, 5):
        spin(0.15)
        assert previous.calls == 0  # suspended: our limit owns the timer

    exited = time.monotonic()
    while previous.calls == 0 and time.monotonic() - exited < 1:
        pass
    assert previous.calls == 1
    assert time.monotonic() - exited < 0.05
    assert timer() == (0.0, 0.0)


def test_previous_alarm_due_during_a_timed_out_block_fires_after(previous: Recorder) -> None:
    signal.setitimer(signal.ITIMER_REAL, 0.05)

    with pytest.raises(HardTimeLimitExceeded), time_limits(None, 0.1):
        spin(5)

    spin(0.05)
    assert previous.calls == 1


@pytest.mark.parametrize(("soft", "hard"), [(0.05, 0.1), (None, 0.05), (0.05, None)])
def test_no_stray_alarm_after_normal_exit(
    soft: float | None, hard: float | None, previous: Recorder
) -> None:
    with time_limits(soft, hard):
        pass

    assert_untouched(previous)
    spin(0.15)  # past both limits: nothing may be raised
    assert previous.calls == 0


def test_no_stray_hard_alarm_after_soft_limit_exit(previous: Recorder) -> None:
    # The soft handler arms the hard limit; leaving the block must cancel it.
    with pytest.raises(SoftTimeLimitExceeded), time_limits(0.05, 0.1):
        spin(5)

    assert_untouched(previous)
    spin(0.15)
    assert previous.calls == 0


def test_no_stray_alarm_after_task_error(previous: Recorder) -> None:
    with pytest.raises(ZeroDivisionError), time_limits(0.05, 0.1):
        _ = 1 / 0

    spin(0.15)
    assert previous.calls == 0
    assert_untouched(previous)


def test_consecutive_blocks_are_independent(previous: Recorder) -> None:
    for _ in range(3):
        with pytest.raises(SoftTimeLimitExceeded), time_limits(0.03, 0.06):
            spin(5)
        with time_limits(0.03, 0.06):
            pass

    spin(0.1)
    assert previous.calls == 0
    assert_untouched(previous)
