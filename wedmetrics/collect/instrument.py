"""Instrumentation for service code: timers, timed functions, counters, gauges.

Everything records through series handles (``engine.series(...)``), so a
helper costs one handle method call per event.  Durations are measured with
``time.perf_counter`` (a stopwatch, not a reading of "now"); the point is
stamped by the engine's own clock when it is recorded.

>>> import wedmetrics as wm
>>> engine = wm.MetricsEngine(clock=wm.ManualClock(0.0))
>>> with Timer(engine, "db.query", labels={"table": "guests"}):
...     rows = sorted(range(100))
>>> @timed(engine, "photos.resize")
... async def resize(photo):
...     return photo
>>> engine.query("db.query", last="1m").count
1
"""
from __future__ import annotations

import functools
import inspect
import threading
import time
from typing import Any, Callable, Mapping

__all__ = ["Timer", "timed", "counted", "InProgress"]


def _handle(target: Any, name: "str | None", labels: "Mapping[str, str] | None",
            kind: str, who: str) -> Any:
    """A series handle from an engine (plus name) or a handle itself."""
    if hasattr(target, "series") and callable(target.series):
        if not isinstance(name, str) or not name:
            raise ValueError(f"{who}: give the metric name when passing an engine, got {name!r}")
        return target.series(name, labels=dict(labels or {}), kind=kind)
    if name is not None or labels is not None:
        raise TypeError(f"{who}: name and labels only apply when passing an engine; "
                        f"{target!r} is already a series handle")
    if getattr(target, "kind", kind) != kind:
        raise ValueError(f"{who} needs a {kind!r} series, got a {target.kind!r} handle "
                         f"({getattr(target, 'name', target)!r})")
    return target


class Timer:
    """Context manager recording how long its block took, in seconds.

    Parameters
    ----------
    target : MetricsEngine or series handle
        An engine (then ``name`` is required and a ``"distribution"``
        series is created or reused) or a distribution handle.
    name : str, optional
        Metric name when ``target`` is an engine.
    labels : mapping, optional
        Labels of the series when ``target`` is an engine.

    Notes
    -----
    The duration is recorded also when the block raises (a failed query
    took time too); the exception propagates unchanged.  A timer may be
    reused, but not entered again while it is running (use one per thread).
    ``elapsed`` holds the last duration.
    """

    __slots__ = ("handle", "elapsed", "_start")

    def __init__(self, target: Any, name: "str | None" = None,
                 labels: "Mapping[str, str] | None" = None) -> None:
        self.handle = _handle(target, name, labels, "distribution", "Timer")
        self.elapsed: "float | None" = None
        self._start: "float | None" = None

    def __enter__(self) -> "Timer":
        if self._start is not None:
            raise RuntimeError("Timer is already running; create one Timer per concurrent block")
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.elapsed = time.perf_counter() - self._start
        self._start = None
        self.handle.record(self.elapsed)

    def __repr__(self) -> str:
        return f"Timer({getattr(self.handle, 'name', self.handle)!r}, elapsed={self.elapsed!r})"


def _default_name(fn: Callable) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def _check_plain_function(fn: Any, who: str) -> None:
    if not callable(fn):
        raise TypeError(f"{who} decorates functions, got {fn!r}")
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        # the call only builds the generator; timing it would time nothing
        raise TypeError(f"{who} cannot time generator function {fn.__qualname__}: "
                        f"time the loop that consumes it with Timer instead")


def timed(target: Any, name: "str | None" = None,
          labels: "Mapping[str, str] | None" = None) -> Callable[[Callable], Callable]:
    """Decorator recording each call's duration; sync and ``async def`` alike.

    Parameters
    ----------
    target : MetricsEngine or series handle
        As for :class:`Timer`.
    name : str, optional
        Metric name; with an engine it defaults to the decorated function's
        ``module.qualname``.
    labels : mapping, optional
        Labels of the series.

    Notes
    -----
    For ``async def`` functions the time is from the first step to the
    result, awaits included: what a caller waits.  Calls that raise are
    recorded too.
    """
    def decorate(fn: Callable) -> Callable:
        _check_plain_function(fn, "timed")
        use_name = name
        if use_name is None and hasattr(target, "series"):
            use_name = _default_name(fn)
        handle = _handle(target, use_name, labels, "distribution", "timed")
        record = handle.record

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args, **kwargs):
                t0 = time.perf_counter()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    record(time.perf_counter() - t0)
            async_wrapper.series = handle
            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                record(time.perf_counter() - t0)
        wrapper.series = handle
        return wrapper

    return decorate


def counted(target: Any, name: "str | None" = None, labels: "Mapping[str, str] | None" = None,
            *, errors: "str | None" = None) -> Callable[[Callable], Callable]:
    """Decorator counting calls of a sync or async function.

    Parameters
    ----------
    target : MetricsEngine or counter handle
        An engine (``name`` defaults to ``module.qualname + ".calls"``) or
        a ``"counter"`` handle.
    errors : str, optional
        With an engine: name of a second counter incremented when the call
        raises (same labels).  The call counter counts every call.
    """
    def decorate(fn: Callable) -> Callable:
        _check_plain_function(fn, "counted")
        use_name = name
        if use_name is None and hasattr(target, "series"):
            use_name = _default_name(fn) + ".calls"
        calls = _handle(target, use_name, labels, "counter", "counted")
        failed = None
        if errors is not None:
            if not hasattr(target, "series"):
                raise TypeError("counted(errors=...) needs an engine to create the error counter")
            failed = _handle(target, errors, labels, "counter", "counted")

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args, **kwargs):
                calls.inc()
                try:
                    return await fn(*args, **kwargs)
                except BaseException:
                    if failed is not None:
                        failed.inc()
                    raise
            async_wrapper.series = calls
            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            calls.inc()
            try:
                return fn(*args, **kwargs)
            except BaseException:
                if failed is not None:
                    failed.inc()
                raise
        wrapper.series = calls
        return wrapper

    return decorate


class InProgress:
    """Gauge of how many blocks are running right now (requests in flight).

    >>> import wedmetrics as wm
    >>> engine = wm.MetricsEngine(clock=wm.ManualClock(0.0))
    >>> inflight = InProgress(engine, "http.inflight")
    >>> with inflight:
    ...     inflight.level
    1
    >>> inflight.level, engine.query("http.inflight", last="1m").max
    (0, 1.0)

    The level is kept here under a lock and written with ``set`` on every
    entry and exit, so concurrent threads never lose an update.
    """

    __slots__ = ("handle", "_level", "_lock")

    def __init__(self, target: Any, name: "str | None" = None,
                 labels: "Mapping[str, str] | None" = None) -> None:
        self.handle = _handle(target, name, labels, "gauge", "InProgress")
        self._level = 0
        self._lock = threading.Lock()

    @property
    def level(self) -> int:
        return self._level

    def __enter__(self) -> "InProgress":
        with self._lock:
            self._level += 1
            self.handle.set(self._level)
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._level -= 1
            self.handle.set(self._level)
