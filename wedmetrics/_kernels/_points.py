"""What a recording handle accepts as a value and a timestamp (shared by both twins).

Only the handles' slow paths come here: a plain ``float`` or ``int`` value
and a ``float`` timestamp never do.
"""
from __future__ import annotations

import numpy as np

__all__ = ["real_value", "value_problem", "seconds", "timestamp_problem"]

_REAL = (int, np.integer, np.floating)


def real_value(value) -> float | None:
    """``value`` as a float, or ``None`` unless it is a floating or integer
    number (Python's or numpy's) that fits a float: strings, bools, complex
    numbers, fractions, decimals and objects that merely define
    ``__float__`` are refused, as ``record_many`` refuses such arrays."""
    if isinstance(value, float):          # numpy's float64 too
        return float(value)
    if isinstance(value, bool) or not isinstance(value, _REAL):
        return None
    try:
        v = float(value)
    except OverflowError:                 # an int beyond the float range
        return None
    return v


def value_problem(value) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"value is an int of {value.bit_length()} bits, beyond the float range"
    return f"value must be a real number (an int or a float), got {type(value).__name__}"


def seconds(ts) -> float | None:
    """Epoch seconds of ``ts`` (a real number or a ``numpy.datetime64``;
    ``NaT`` is NaN), or ``None`` when it is neither."""
    if isinstance(ts, np.datetime64):
        if np.isnat(ts):
            return float("nan")
        return float(ts.astype("datetime64[ns]").astype(np.int64)) / 1e9
    return real_value(ts)


def timestamp_problem(ts) -> str:
    if isinstance(ts, int) and not isinstance(ts, bool):
        return f"timestamp is an int of {ts.bit_length()} bits, beyond the float range"
    return f"timestamp must be epoch seconds or a numpy.datetime64, got {type(ts).__name__}"
