"""Clocks and durations.

One clock flows through everything: wall time in production, a
:class:`ManualClock` in tests and backtests.  Nothing else in the library
reads ``time.time()``.
"""
from __future__ import annotations

import abc
import math
import re
import threading
import time

__all__ = ["Clock", "WallClock", "ManualClock", "parse_duration"]


class Clock(abc.ABC):
    """Source of "now" in float seconds since the epoch."""

    #: True when ``now()`` is ``time.time()``; the compiled core then reads
    #: the wall clock in C instead of calling back into Python.
    is_wall = False

    @abc.abstractmethod
    def now(self) -> float:
        """Current time in float seconds since the epoch."""


class WallClock(Clock):
    """The real clock: ``time.time()``."""

    is_wall = True

    def now(self) -> float:
        return time.time()

    def __repr__(self) -> str:
        return "WallClock()"


class ManualClock(Clock):
    """A clock that moves only when told to.

    >>> c = ManualClock(100.0)
    >>> c.advance(5).now()
    105.0
    """

    def __init__(self, start: float = 0.0) -> None:
        self._t = _finite(start, "start")
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._t

    def set(self, t: float) -> "ManualClock":
        """Jump to ``t`` (may go backwards; the engine never does)."""
        self._t = _finite(t, "t")
        return self

    def advance(self, dt: float) -> "ManualClock":
        """Move forward by ``dt`` seconds (``dt >= 0``)."""
        dt = _finite(dt, "dt")
        if dt < 0:
            raise ValueError(f"ManualClock.advance needs dt >= 0, got {dt!r}")
        with self._lock:
            self._t += dt
        return self

    def __repr__(self) -> str:
        return f"ManualClock({self._t!r})"


def _finite(x: float, name: str) -> float:
    try:
        x = float(x)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number of seconds, got {x!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {x!r}")
    return x


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_PARSED: dict[str, float] = {}   # a program names few durations; a query re-parses one per call
_PARSED_MAX = 1024


def parse_duration(value: "float | int | str") -> float:
    """Seconds from a number or a string such as ``"90s"``, ``"5m"``, ``"1h30m"``.

    >>> parse_duration("1h30m"), parse_duration(15), parse_duration("250ms")
    (5400.0, 15.0, 0.25)
    """
    if type(value) is str:
        seconds = _PARSED.get(value)
        if seconds is not None:
            return seconds
    if isinstance(value, bool):
        raise TypeError(f"duration must be seconds or a string like '5m', got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        pos, seconds = 0, 0.0
        for m in _DURATION.finditer(text):
            if m.start() != pos:
                break
            seconds += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if pos != len(text) or not text:
            raise ValueError(
                f"cannot parse duration {value!r}: use seconds or forms like '30s', '5m', '1h30m'")
    else:
        raise TypeError(f"duration must be seconds or a string like '5m', got {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"duration must be finite and >= 0, got {value!r}")
    if type(value) is str and len(_PARSED) < _PARSED_MAX:
        _PARSED[value] = seconds
    return seconds
