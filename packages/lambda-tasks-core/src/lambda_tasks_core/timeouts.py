"""Soft and hard time limits enforced with SIGALRM (SPEC §4)."""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from lambda_tasks_core.exceptions import HardTimeLimitExceeded, SoftTimeLimitExceeded

__all__ = ["time_limits"]

# Re-arming a previous alarm whose moment has already passed: fire it at once
# rather than silently dropping it (0 would disarm the timer).
_MIN_REARM_SECONDS = 1e-6


@contextmanager
def time_limits(soft: float | None, hard: float | None) -> Iterator[None]:
    """Raise ``SoftTimeLimitExceeded`` after ``soft`` s, ``HardTimeLimitExceeded`` after ``hard``.

    Seconds may be fractions. ``None`` disables a limit. Only the main thread
    can receive signals, so elsewhere this raises ``RuntimeError``. On exit the
    timer is cancelled, the previous SIGALRM handler is restored and a previous
    alarm is re-armed for whatever time it had left; an alarm that lands after
    the body finished is ignored.
    """
    if soft is None and hard is None:
        yield
        return
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("time_limits() needs the main thread: only it receives SIGALRM")
    for name, limit in (("soft", soft), ("hard", hard)):
        # setitimer(0) disarms the timer: a 0 limit would silently mean no limit.
        if limit is not None and not 0 < limit < math.inf:
            raise ValueError(f"{name} limit must be a positive number of seconds, got {limit!r}")
    if soft is not None and hard is not None and soft >= hard:
        raise ValueError(f"soft limit ({soft} s) must be below the hard limit ({hard} s)")

    pending_soft = soft is not None
    active = True

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        nonlocal pending_soft
        if not active:
            return
        if pending_soft:
            pending_soft = False
            if hard is not None:
                assert soft is not None
                signal.setitimer(signal.ITIMER_REAL, hard - soft)
            raise SoftTimeLimitExceeded(f"soft time limit of {soft} s exceeded")
        raise HardTimeLimitExceeded(f"hard time limit of {hard} s exceeded")

    previous_handler = signal.signal(signal.SIGALRM, on_alarm)
    # None: the previous handler was not installed from Python; the default is the
    # closest we can restore.
    restore = signal.SIG_DFL if previous_handler is None else previous_handler
    first = soft if soft is not None else hard
    assert first is not None
    try:
        # setitimer returns the alarm it replaces; when arming fails (e.g. an
        # absurdly large value) that alarm is untouched.
        previous_delay, previous_interval = signal.setitimer(signal.ITIMER_REAL, first)
    except BaseException:
        signal.signal(signal.SIGALRM, restore)
        raise
    started = time.monotonic()
    try:
        yield
    finally:
        active = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, restore)
        if previous_delay > 0:
            left = previous_delay - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, _MIN_REARM_SECONDS), previous_interval)
