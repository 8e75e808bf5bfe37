"""What a :class:`~wedmetrics.collect.Collector` gathers from.

A source is anything with a ``name``, an optional ``interval``/``timeout``
and a ``collect()`` method returning samples (or an awaitable of them).
:class:`CallableSource` wraps any user function, sync or async;
:class:`SystemSource` and :class:`ProcessSource` read the machine and this
process through psutil (the ``[system]`` extra, imported only when used).

What ``collect()`` (or a wrapped function) may return:

* ``None`` -- nothing this time;
* a number -- one sample named after the source;
* a mapping ``{suffix: number}`` -- one sample per key, named
  ``"<source name>.<suffix>"``;
* an iterable of :class:`~wedmetrics.collect.buffer.Sample`.

Anything else is a bad result: the collector counts it as an error of that
source, with the reason, and carries on.
"""
from __future__ import annotations

import gc
import math
import os
from numbers import Real
from typing import Any, Callable, Mapping

from .buffer import Sample

__all__ = ["Source", "CallableSource", "SystemSource", "ProcessSource", "to_samples",
           "as_source"]


class Source:
    """Base of collection sources.

    Parameters
    ----------
    name : str
        Names the source in stats and prefixes the metrics it returns as
        plain numbers or mappings.
    interval : float or None
        Seconds between collections; ``None`` takes the collector's default.
    timeout : float or None
        Seconds one collection may take before it is abandoned and counted
        as a timeout; ``None`` takes the collector's default.
    labels : mapping or None
        Labels put on samples built from plain numbers and mappings.
    kind : str
        Series kind of samples built from plain numbers and mappings.
    """

    def __init__(self, name: str, *, interval: "float | None" = None,
                 timeout: "float | None" = None, labels: "Mapping[str, str] | None" = None,
                 kind: str = "gauge") -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"source name must be a non-empty string, got {name!r}")
        for field, value in (("interval", interval), ("timeout", timeout)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, Real)
                                      or not math.isfinite(value) or value <= 0):
                raise ValueError(f"source {name!r}: {field} must be a positive number of "
                                 f"seconds, got {value!r}")
        Sample.of(name, 0.0, labels, kind)  # validates kind and labels early, with the name
        self.name = name
        self.interval = None if interval is None else float(interval)
        self.timeout = None if timeout is None else float(timeout)
        self.labels = dict(labels or {})
        self.kind = kind

    def collect(self) -> Any:
        """Return this collection's samples (see the module docstring)."""
        raise TypeError(f"{type(self).__name__} must override collect()")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class CallableSource(Source):
    """A user function as a source; ``async def`` functions work too.

    >>> src = CallableSource(lambda: {"depth": 3}, name="queue", labels={"queue": "mail"})
    >>> to_samples(src.collect(), src)
    [Sample(name='queue.depth', value=3.0, labels=(('queue', 'mail'),), kind='gauge', ts=None)]
    """

    def __init__(self, fn: Callable[[], Any], name: "str | None" = None, **kwargs) -> None:
        if not callable(fn):
            raise TypeError(f"CallableSource needs a callable, got {fn!r}")
        if name is None:
            name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
            if not name or name.endswith("<lambda>"):
                raise ValueError("CallableSource: name the source (name=...) when the "
                                 "callable has no usable __name__")
        super().__init__(name, **kwargs)
        self.fn = fn

    def collect(self) -> Any:
        return self.fn()


def as_source(obj: Any, **kwargs) -> Source:
    """``obj`` itself if it is a :class:`Source`, else a :class:`CallableSource`."""
    if isinstance(obj, Source):
        if kwargs:
            raise TypeError(f"options {sorted(kwargs)} only apply when registering a callable; "
                            f"set them on {obj!r} instead")
        return obj
    return CallableSource(obj, **kwargs)


def to_samples(result: Any, source: Source) -> list[Sample]:
    """Normalise what a source returned into samples.

    Raises
    ------
    TypeError
        When the result is none of the accepted shapes; the message names
        the source and the offending value.
    """
    if result is None:
        return []
    if isinstance(result, Sample):
        return [result]
    if isinstance(result, Real) and not isinstance(result, bool):
        return [Sample.of(source.name, result, source.labels, source.kind)]
    if isinstance(result, Mapping):
        out = []
        for key, value in result.items():
            if isinstance(value, bool) or not isinstance(value, Real):
                raise TypeError(f"source {source.name!r} returned a non-numeric value "
                                f"{value!r} for key {key!r}")
            out.append(Sample.of(f"{source.name}.{key}", value, source.labels, source.kind))
        return out
    if isinstance(result, (str, bytes)):
        raise TypeError(f"source {source.name!r} returned {result!r}; expected None, a number, "
                        f"a mapping of numbers or an iterable of Sample")
    try:
        items = list(result)
    except TypeError:
        raise TypeError(f"source {source.name!r} returned {result!r}; expected None, a number, "
                        f"a mapping of numbers or an iterable of Sample") from None
    for item in items:
        if not isinstance(item, Sample):
            raise TypeError(f"source {source.name!r} returned an iterable holding {item!r}; "
                            f"iterables must hold Sample objects")
    return items


def _require_psutil(who: str):
    try:
        import psutil
    except ImportError:
        raise ImportError(f"{who} needs psutil; install the extra: pip install 'wedmetrics[system]'"
                          ) from None
    return psutil


class _Deltas:
    """Turns cumulative OS counters into increments between collections.

    The first reading only sets the baseline.  A reading below the previous
    one (counter reset, NIC re-created) restarts the baseline and is counted
    in ``resets`` instead of producing a negative increment.
    """

    def __init__(self) -> None:
        self._last: dict = {}
        self.resets = 0

    def step(self, key, value: float) -> "float | None":
        prev = self._last.get(key)
        self._last[key] = value
        if prev is None:
            return None
        if value < prev:
            self.resets += 1
            return None
        return float(value - prev)


class SystemSource(Source):
    """CPU, memory, disk and network I/O of the machine, through psutil.

    Gauges ``system.cpu.percent``, ``system.memory.used_bytes``,
    ``system.memory.available_bytes``, ``system.memory.percent``,
    ``system.disk.usage_percent`` (label ``path``); counters (increments
    since the previous collection) ``system.disk.read_bytes``,
    ``system.disk.write_bytes``, ``system.net.bytes_sent``,
    ``system.net.bytes_recv``.  Counters whose OS figures are unavailable
    (some containers) are left out rather than reported as zero.
    """

    def __init__(self, *, name: str = "system", disk_path: str = "/", **kwargs) -> None:
        super().__init__(name, **kwargs)
        self._psutil = _require_psutil("SystemSource")
        self.disk_path = disk_path
        self._deltas = _Deltas()
        # cpu_percent(None) compares with the previous call; prime it so the
        # first collection reports a real figure, not a meaningless 0.0.
        self._psutil.cpu_percent(interval=None)
        self.collect()  # sets the counter baselines

    @property
    def counter_resets(self) -> int:
        return self._deltas.resets

    def collect(self) -> list[Sample]:
        ps = self._psutil
        out = [Sample.of("system.cpu.percent", ps.cpu_percent(interval=None), self.labels)]
        vm = ps.virtual_memory()
        out += [Sample.of("system.memory.used_bytes", vm.used, self.labels),
                Sample.of("system.memory.available_bytes", vm.available, self.labels),
                Sample.of("system.memory.percent", vm.percent, self.labels),
                Sample.of("system.disk.usage_percent", ps.disk_usage(self.disk_path).percent,
                          {**self.labels, "path": self.disk_path})]
        readings = []
        disk = ps.disk_io_counters()
        if disk is not None:
            readings += [("system.disk.read_bytes", disk.read_bytes),
                         ("system.disk.write_bytes", disk.write_bytes)]
        net = ps.net_io_counters()
        if net is not None:
            readings += [("system.net.bytes_sent", net.bytes_sent),
                         ("system.net.bytes_recv", net.bytes_recv)]
        for metric, value in readings:
            inc = self._deltas.step(metric, value)
            if inc is not None:
                out.append(Sample.of(metric, inc, self.labels, "counter"))
        return out


class ProcessSource(Source):
    """This process (or ``pid``): memory, open files, threads, CPU and GC.

    Gauges ``process.memory.rss_bytes``, ``process.open_fds`` (open file
    descriptors; open files on Windows), ``process.threads``,
    ``process.cpu.percent``; counters ``process.gc.collections`` and
    ``process.gc.collected`` with label ``generation`` (only for this
    process: another process's GC is not observable).
    """

    def __init__(self, *, pid: "int | None" = None, name: str = "process", **kwargs) -> None:
        super().__init__(name, **kwargs)
        psutil = _require_psutil("ProcessSource")
        self._proc = psutil.Process(pid)
        self._own = pid is None or pid == os.getpid()
        self._deltas = _Deltas()
        self._proc.cpu_percent(interval=None)
        self.collect()

    def collect(self) -> list[Sample]:
        p, labels = self._proc, self.labels
        with p.oneshot():
            fds = p.num_fds() if hasattr(p, "num_fds") else len(p.open_files())
            out = [Sample.of("process.memory.rss_bytes", p.memory_info().rss, labels),
                   Sample.of("process.open_fds", fds, labels),
                   Sample.of("process.threads", p.num_threads(), labels),
                   Sample.of("process.cpu.percent", p.cpu_percent(interval=None), labels)]
        if self._own:
            for gen, st in enumerate(gc.get_stats()):
                for field in ("collections", "collected"):
                    inc = self._deltas.step((field, gen), st[field])
                    if inc is not None:
                        out.append(Sample.of(f"process.gc.{field}", inc,
                                             {**labels, "generation": str(gen)}, "counter"))
        return out
