"""Reading the Lambda context object defensively (the poller passes its own)."""

from __future__ import annotations

import math

__all__ = ["remaining_ms"]


def remaining_ms(context: object) -> float | None:
    """``context.get_remaining_time_in_millis()``, or ``None`` when it cannot tell."""
    get = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(get):
        return None
    try:
        value = get()
    except Exception:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)
