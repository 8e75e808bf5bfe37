"""The Collector: gathers from sources on intervals and feeds the engine.

Threads, all named ``wedmetrics-collector-*`` and all stopped by
:meth:`Collector.stop`:

* the **scheduler** decides which source is due, starts its collection and
  times it out;
* one **worker** per source runs its ``collect()``; a source that hangs
  therefore holds up only itself;
* an **asyncio loop** thread, started only if some source is async, where
  async sources run and where a timed-out one is really cancelled;
* the **drain** thread takes batches from the bounded buffer and hands them
  to the engine with ``record_many``.

Every sample is accounted for: ``collected == delivered + sum(dropped) +
pending`` (see :meth:`Collector.stats`).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import math
import queue
import threading
import time
from typing import Any, Mapping

import numpy as np

from .buffer import BoundedBuffer, Sample
from .sources import Source, as_source, to_samples

__all__ = ["Collector", "CollectorSelfSource"]

_THREAD_PREFIX = "wedmetrics-collector"


class _Call:
    """One run of one source's ``collect()``."""

    __slots__ = ("ts", "deadline", "state", "lock", "finished", "async_future")

    def __init__(self, ts: float, deadline: float) -> None:
        self.ts = ts                  # metrics-clock time the samples are stamped with
        self.deadline = deadline      # time.monotonic() after which it is abandoned
        self.state = "running"        # -> "delivering" | "abandoned", then "done"
        self.lock = threading.Lock()
        self.finished = threading.Event()
        self.async_future: "concurrent.futures.Future | None" = None

    def abandon(self) -> bool:
        """Give up on the call; False if it already started delivering."""
        with self.lock:
            if self.state != "running":
                return False
            self.state = "abandoned"
            fut = self.async_future
        if fut is not None:
            fut.cancel()
        return True


class _SourceState:
    """A registered source, its worker thread and its counters."""

    def __init__(self, source: Source, interval: float, timeout: float) -> None:
        self.source = source
        self.interval = interval
        self.timeout = timeout
        self.next_due = 0.0
        self.inflight: "_Call | None" = None
        self.worker: "threading.Thread | None" = None
        self.jobs: "queue.SimpleQueue" = queue.SimpleQueue()
        self.counts = {"runs": 0, "ok": 0, "errors": 0, "timeouts": 0, "skipped_busy": 0,
                       "samples": 0, "late_samples_discarded": 0}
        self.last_error: "str | None" = None


class Collector:
    """Gather metrics from sources in the background and feed an engine.

    Parameters
    ----------
    engine : MetricsEngine
        Where samples go, through ``engine.series(...)`` handles and
        ``engine.record_many``; ``engine.now()`` stamps collection times.
    interval : float
        Default seconds between two collections of a source (5 s).
    timeout : float or None
        Default seconds a collection may take before it is abandoned and
        counted as a timeout; ``None`` means the source's interval.
    buffer_size : int
        Capacity of the buffer between sources and engine (10,000).
    overflow : str
        ``"drop_oldest"`` (default), ``"drop_newest"`` or ``"block"``; see
        :class:`~wedmetrics.collect.buffer.BoundedBuffer`.
    block_timeout : float
        Under ``"block"``, how long a source waits for room per sample.
    batch_size : int
        Most samples handed to the engine in one ``record_many``.
    system, process : bool
        Register :class:`~wedmetrics.collect.sources.SystemSource` /
        :class:`~wedmetrics.collect.sources.ProcessSource` (needs psutil).
    self_metrics : bool
        Also collect the collector's own counters as a source named
        ``"wedmetrics.collector"`` (see :class:`CollectorSelfSource`), so
        alert rules can watch drops, errors and timeouts.

    Examples
    --------
    >>> import wedmetrics as wm
    >>> engine = wm.MetricsEngine(clock=wm.ManualClock(0.0))
    >>> collector = Collector(engine, interval=10)
    >>> source = collector.add(lambda: 3, name="mail.queue.depth")
    >>> collector.collect_once()
    1
    >>> collector.stop()
    >>> engine.query("mail.queue.depth", last="1m").max
    3.0

    In a service, run it in the background instead:
    ``with Collector(engine, process=True) as collector: serve_forever()``.
    """

    def __init__(self, engine: Any, *, interval: float = 5.0, timeout: "float | None" = None,
                 buffer_size: int = 10_000, overflow: str = "drop_oldest",
                 block_timeout: float = 1.0, batch_size: int = 4096,
                 system: bool = False, process: bool = False,
                 self_metrics: bool = False) -> None:
        for field, value in (("interval", interval), ("timeout", timeout)):
            if value is not None and not (isinstance(value, (int, float))
                                          and not isinstance(value, bool) and value > 0
                                          and value < float("inf")):
                raise ValueError(f"Collector {field} must be a positive number of seconds, "
                                 f"got {value!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"Collector batch_size must be an int >= 1, got {batch_size!r}")
        self.engine = engine
        self.interval = float(interval)
        self.timeout = None if timeout is None else float(timeout)
        self.batch_size = batch_size
        self.buffer = BoundedBuffer(buffer_size, overflow, block_timeout)
        self._lock = threading.Lock()
        self._sources: dict[str, _SourceState] = {}
        self._handles: dict[tuple, int] = {}
        self._delivered = 0
        self._late = 0
        self._rejected = 0
        self._invalid = 0
        self._engine_errors: list[str] = []
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._scheduler: "threading.Thread | None" = None
        self._drain: "threading.Thread | None" = None
        self._loop: "asyncio.AbstractEventLoop | None" = None
        self._loop_thread: "threading.Thread | None" = None
        self._state = "new"     # -> "running" -> "stopped"
        self._hung: list[str] = []
        if system:
            from .sources import SystemSource
            self.add(SystemSource())
        if process:
            from .sources import ProcessSource
            self.add(ProcessSource())
        if self_metrics:
            self.add(CollectorSelfSource(self))

    # ------------------------------------------------------------------ registry

    def add(self, source: Any, *, name: "str | None" = None, interval: "float | None" = None,
            timeout: "float | None" = None, labels: "Mapping[str, str] | None" = None,
            kind: str = "gauge") -> Source:
        """Register a :class:`Source` or a sync/async callable; returns the source.

        Options other than ``source`` apply to callables (they become a
        :class:`~wedmetrics.collect.sources.CallableSource`).
        """
        opts = {k: v for k, v in (("name", name), ("interval", interval), ("timeout", timeout),
                                  ("labels", labels)) if v is not None}
        if kind != "gauge":
            opts["kind"] = kind
        src = as_source(source, **opts)
        every = src.interval or self.interval
        state = _SourceState(src, every, src.timeout or self.timeout or every)
        with self._lock:
            if self._state == "stopped":
                raise RuntimeError("Collector is stopped; create a new one")
            if src.name in self._sources:
                raise ValueError(f"a source named {src.name!r} is already registered")
            state.next_due = time.monotonic()
            self._sources[src.name] = state
        self._wake.set()
        return src

    def remove(self, name: str) -> None:
        """Stop collecting from the source ``name`` (a running call finishes first)."""
        with self._lock:
            state = self._sources.pop(name, None)
        if state is None:
            raise KeyError(f"no source named {name!r}; registered: {sorted(self._sources)}")
        if state.worker is not None:
            state.jobs.put(None)

    @property
    def sources(self) -> list[Source]:
        """The registered sources, in registration order."""
        with self._lock:
            return [s.source for s in self._sources.values()]

    def submit(self, name: str, value: float, labels: "Mapping[str, str] | None" = None,
               kind: str = "gauge", ts: "float | None" = None) -> bool:
        """Push one sample from application code through the buffer.

        Returns False when the overflow policy refused it (it is counted).
        """
        s = Sample.of(name, value, labels, kind, ts)
        if s.ts is None:
            s = Sample(s.name, s.value, s.labels, s.kind, float(self.engine.now()))
        return self.buffer.put(s)

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> "Collector":
        """Start the background threads; returns self."""
        with self._lock:
            if self._state != "new":
                raise RuntimeError(f"Collector can start once; it is {self._state}")
            self._state = "running"
        self._drain = threading.Thread(target=self._drain_loop, daemon=True,
                                       name=f"{_THREAD_PREFIX}-drain")
        self._scheduler = threading.Thread(target=self._schedule_loop, daemon=True,
                                           name=f"{_THREAD_PREFIX}-scheduler")
        self._drain.start()
        self._scheduler.start()
        return self

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._state == "running"

    def stop(self, join_timeout: float = 5.0) -> None:
        """Stop collecting, deliver what is buffered, stop every thread.

        The scheduler wakes at once (it never sleeps through a stop).
        Collections still running are abandoned: async ones are cancelled,
        sync ones that do not return within ``join_timeout`` are left to
        finish on their own (daemon threads; their names are reported under
        ``"hung_sources"`` in :meth:`stats` and their late results dropped
        and counted).  Safe to call more than once.
        """
        with self._lock:
            was = self._state
            self._state = "stopped"
        if was == "stopped":
            return
        self._stopping.set()
        self._wake.set()
        if self._scheduler is not None:
            self._scheduler.join()
        deadline = time.monotonic() + join_timeout
        with self._lock:
            states = list(self._sources.values())
        for st in states:
            if st.inflight is not None and not st.inflight.finished.is_set():
                st.inflight.abandon()
            if st.worker is not None:
                st.jobs.put(None)
        for st in states:
            if st.worker is not None:
                st.worker.join(max(0.0, deadline - time.monotonic()))
                if st.worker.is_alive():
                    self._hung.append(st.source.name)
        self.buffer.close()
        if self._drain is not None:
            self._drain.join()
        else:
            self._deliver_all()
        self._stop_loop()

    def __enter__(self) -> "Collector":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --------------------------------------------------------------- collecting

    def collect_once(self) -> int:
        """Collect every source once, wait for them, deliver; returns samples delivered.

        For scripts and tests on a collector that is not started: sources run
        on their workers with their timeouts exactly as in the background,
        then the buffer is drained in the calling thread.  Under
        ``"block"`` no one drains while sources run, so a source producing
        more than the buffer holds waits ``block_timeout`` per extra sample.
        """
        if self._state != "new":
            raise RuntimeError("collect_once() is for a collector that is not started")
        with self._lock:
            states = list(self._sources.values())
        for st in states:
            if st.inflight is not None and not st.inflight.finished.is_set():
                with self._lock:
                    st.counts["skipped_busy"] += 1
            else:
                self._start_call(st)
        for st in states:
            call = st.inflight
            if call is None:
                continue
            call.finished.wait(max(0.0, call.deadline - time.monotonic()))
            if not call.finished.is_set():
                self._time_out(st, call)
                # a cancelled async call or a sync call that delivered meanwhile
                # settles quickly; a hung sync call stays in flight
                call.finished.wait(0.2)
            if call.finished.is_set():
                st.inflight = None
        before = self._delivered
        self._deliver_all()
        return self._delivered - before

    def _schedule_loop(self) -> None:
        while not self._stopping.is_set():
            # cleared before looking, so a source added meanwhile re-runs the loop
            self._wake.clear()
            now = time.monotonic()
            wake_at = now + 3600.0
            with self._lock:
                states = list(self._sources.values())
            for st in states:
                call = st.inflight
                if call is not None:
                    if call.finished.is_set():
                        st.inflight = call = None
                    elif call.state == "running" and now >= call.deadline:
                        self._time_out(st, call)
                    elif call.state == "running":
                        wake_at = min(wake_at, call.deadline)
                if now >= st.next_due:
                    # keep the phase, but never try to catch up on missed ticks
                    st.next_due = max(st.next_due + st.interval, now + 1e-3)
                    if call is not None:
                        with self._lock:
                            st.counts["skipped_busy"] += 1
                    else:
                        self._start_call(st)
                        if st.inflight is not None:
                            wake_at = min(wake_at, st.inflight.deadline)
                wake_at = min(wake_at, st.next_due)
            self._wake.wait(max(0.0, wake_at - time.monotonic()))

    def _start_call(self, st: _SourceState) -> None:
        call = _Call(float(self.engine.now()), time.monotonic() + st.timeout)
        with self._lock:
            st.counts["runs"] += 1
        st.inflight = call
        if st.worker is None:
            st.worker = threading.Thread(target=self._worker_loop, args=(st,), daemon=True,
                                         name=f"{_THREAD_PREFIX}-source-{st.source.name}")
            st.worker.start()
        st.jobs.put(call)

    def _time_out(self, st: _SourceState, call: _Call) -> None:
        if call.abandon():
            with self._lock:
                st.counts["timeouts"] += 1
                st.last_error = f"timed out after {st.timeout:g} s"

    def _worker_loop(self, st: _SourceState) -> None:
        while True:
            call = st.jobs.get()
            if call is None:
                return
            try:
                self._run_call(st, call)
            finally:
                call.finished.set()
                self._wake.set()

    def _run_call(self, st: _SourceState, call: _Call) -> None:
        src = st.source
        error: "str | None" = None
        samples: list[Sample] = []
        try:
            result = src.collect()
            if inspect.isawaitable(result):
                result = self._await(result, call)
            samples = to_samples(result, src)
        except (concurrent.futures.CancelledError, asyncio.CancelledError):
            error = "cancelled"
        except Exception as exc:  # a failing source must never stop the others
            error = f"{type(exc).__name__}: {exc}"
        with call.lock:
            abandoned = call.state == "abandoned"
            if not abandoned:
                call.state = "delivering"
        if abandoned:
            # counted as a timeout already; what it brings now is too late
            with self._lock:
                st.counts["late_samples_discarded"] += len(samples)
                self._late += len(samples)
            return
        if error is not None:
            with self._lock:
                st.counts["errors"] += 1
                st.last_error = error
            return
        ts = call.ts
        stamped = [s if s.ts is not None else Sample(s.name, s.value, s.labels, s.kind, ts)
                   for s in samples]
        with self._lock:
            st.counts["ok"] += 1
            st.counts["samples"] += len(stamped)
        self.buffer.put_many(stamped)

    def _await(self, awaitable: Any, call: _Call) -> Any:
        loop = self._event_loop()
        if asyncio.iscoroutine(awaitable):
            coro = awaitable
        else:
            async def coro_of(aw):
                return await aw
            coro = coro_of(awaitable)
        with call.lock:
            if call.state == "abandoned":
                coro.close()  # never scheduled: close it so it is not reported unawaited
                raise concurrent.futures.CancelledError()
            # a Task cancelled before its first step closes the coroutine cleanly
            fut = asyncio.run_coroutine_threadsafe(coro, loop)
            call.async_future = fut
        return fut.result()

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._loop_thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                                     name=f"{_THREAD_PREFIX}-asyncio")
                self._loop_thread.start()
            return self._loop

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._loop_thread
        if loop is None or thread is None:
            return

        async def cancel_rest():
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in rest:
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(cancel_rest(), loop).result(2.0)
        except concurrent.futures.TimeoutError:
            pass  # an async source blocks the loop itself; it is reported below
        loop.call_soon_threadsafe(loop.stop)
        thread.join(2.0)
        if thread.is_alive():
            self._hung.append("<asyncio loop>")
        else:
            loop.close()

    # ---------------------------------------------------------------- delivering

    def _drain_loop(self) -> None:
        while True:
            batch = self.buffer.get_batch(self.batch_size, timeout=None)
            if batch:
                self._deliver(batch)
            elif self.buffer.closed:
                return

    def _deliver_all(self) -> None:
        while True:
            batch = self.buffer.get_batch(self.batch_size, timeout=0)
            if not batch:
                return
            self._deliver(batch)

    def _deliver(self, batch: list[Sample]) -> None:
        ids, ts, values = [], [], []
        invalid = rejected = 0
        for s in batch:
            # checked here so one bad sample cannot make the engine refuse a
            # whole batch (record_many validates all-or-nothing)
            if not (math.isfinite(s.value) and math.isfinite(s.ts)) or (
                    s.kind == "counter" and s.value < 0):
                invalid += 1
                self._note_engine_error(f"{s.name} {dict(s.labels)}: invalid {s.kind} value "
                                        f"{s.value!r} at ts {s.ts!r}")
                continue
            key = (s.name, s.labels, s.kind)
            sid = self._handles.get(key)
            if sid is None:
                try:
                    handle = self.engine.series(s.name, labels=dict(s.labels), kind=s.kind)
                except (ValueError, TypeError, KeyError) as exc:
                    handle, why = None, str(exc)
                else:
                    why = "the engine's cardinality policy dropped the label set"
                if handle is None:
                    rejected += 1
                    self._note_engine_error(f"{s.name} {dict(s.labels)}: {why}")
                    continue
                sid = self._handles[key] = handle.id
            ids.append(sid)
            ts.append(s.ts)
            values.append(s.value)
        delivered = 0
        if ids:
            arrays = (np.asarray(ids, dtype=np.int64), np.asarray(ts, dtype=np.float64),
                      np.asarray(values, dtype=np.float64))
            try:
                self.engine.record_many(*arrays)
                delivered = len(ids)
            except (ValueError, TypeError, KeyError):
                # find the offenders one by one so the good samples still land
                for i in range(len(ids)):
                    try:
                        self.engine.record_many(*(a[i:i + 1] for a in arrays))
                        delivered += 1
                    except (ValueError, TypeError, KeyError) as exc:
                        rejected += 1
                        self._note_engine_error(f"sample for series id {ids[i]}: {exc}")
        with self._lock:
            self._delivered += delivered
            self._rejected += rejected
            self._invalid += invalid

    def _note_engine_error(self, text: str) -> None:
        with self._lock:
            self._engine_errors = (self._engine_errors + [text])[-10:]

    # --------------------------------------------------------------------- stats

    def stats(self) -> dict:
        """Counters of the collector, all exact.

        ``collected`` (samples produced by sources, ``submit`` included) ==
        ``delivered`` (handed to ``engine.record_many``) + sum of ``dropped``
        + ``pending``.  ``dropped`` reasons: the buffer's (``drop_oldest``,
        ``drop_newest``, ``block_timeout``, ``closed``), ``late_result``
        (returned by a collection after its timeout), ``invalid`` (NaN or
        infinite value or timestamp, negative counter increment) and
        ``rejected`` (the engine refused the series or the point; see
        ``engine_errors`` for the last ten reasons).
        What the engine itself drops after accepting (late points, NaN) is in
        ``engine.stats()``.
        """
        buf = self.buffer.stats()
        with self._lock:
            dropped = dict(buf["dropped"], late_result=self._late, invalid=self._invalid,
                           rejected=self._rejected)
            return {
                "collected": buf["offered"] + self._late,
                "delivered": self._delivered,
                "dropped": dropped,
                "pending": (buf["pending"] + buf["taken"] - self._delivered - self._rejected
                            - self._invalid),
                "buffer": buf,
                "sources": {name: dict(st.counts, last_error=st.last_error)
                            for name, st in self._sources.items()},
                "hung_sources": list(self._hung),
                "engine_errors": list(self._engine_errors),
                "state": self._state,
            }

    def __repr__(self) -> str:
        return (f"Collector({len(self._sources)} sources, interval={self.interval:g}s, "
                f"{self._state})")


class CollectorSelfSource(Source):
    """A collector's own counters, as increments since the previous collection.

    Counters ``wedmetrics.collector.collected``,
    ``wedmetrics.collector.delivered``,
    ``wedmetrics.collector.dropped{reason}``, and per source
    ``wedmetrics.collector.source_errors{source}``,
    ``wedmetrics.collector.source_timeouts{source}`` and
    ``wedmetrics.collector.source_skipped{source}``; gauge
    ``wedmetrics.collector.pending``.  Only non-zero increments are
    returned.  Its own samples travel through the buffer like any other,
    so they are counted in the next collection's figures.
    """

    def __init__(self, collector: "Collector", *, name: str = "wedmetrics.collector",
                 **kwargs) -> None:
        super().__init__(name, **kwargs)
        self.collector = collector
        self._last: dict = {}

    def collect(self) -> list[Sample]:
        st = self.collector.stats()
        figures = [("wedmetrics.collector.collected", {}, st["collected"]),
                   ("wedmetrics.collector.delivered", {}, st["delivered"])]
        figures += [("wedmetrics.collector.dropped", {"reason": r}, n)
                    for r, n in st["dropped"].items()]
        for src, c in st["sources"].items():
            figures += [("wedmetrics.collector.source_errors", {"source": src}, c["errors"]),
                        ("wedmetrics.collector.source_timeouts", {"source": src}, c["timeouts"]),
                        ("wedmetrics.collector.source_skipped", {"source": src},
                         c["skipped_busy"])]
        out = [Sample.of("wedmetrics.collector.pending", st["pending"])]
        for name, labels, total in figures:
            key = (name, tuple(labels.items()))
            inc = total - self._last.get(key, 0)
            self._last[key] = total
            if inc > 0:
                out.append(Sample.of(name, inc, labels, "counter"))
        return out
