"""Exceptions raised by wedmetrics (all subclass the builtin a caller expects)."""
from __future__ import annotations

__all__ = ["WedmetricsError", "InvalidPointError", "LatePointError", "UnknownSeriesError",
           "CardinalityError", "EngineClosedError"]


class WedmetricsError(Exception):
    """Base of every wedmetrics-specific error."""


class InvalidPointError(WedmetricsError, ValueError):
    """A value or timestamp that cannot be recorded (NaN, inf, wrong type,
    a counter increment below zero)."""


class LatePointError(WedmetricsError, ValueError):
    """A point for a bucket that has already closed (``late="raise"``)."""


class UnknownSeriesError(WedmetricsError, KeyError):
    """A series id or name the engine does not know."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want prose
        return str(self.args[0]) if self.args else ""


class CardinalityError(WedmetricsError, ValueError):
    """A new label set beyond the configured cap for its metric name."""


class EngineClosedError(WedmetricsError, RuntimeError):
    """A point recorded after ``MetricsEngine.close()`` (``invalid="raise"``)."""
