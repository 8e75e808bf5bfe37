"""Flusher: moves closed buckets from the engine to a backend in batches, in its own thread."""
from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from typing import Callable

import numpy as np

from ..buckets import BucketBatch
from .base import InvalidKeyError, PermanentWriteError, key_problem

__all__ = ["Flusher", "OVERFLOW_POLICIES"]

log = logging.getLogger("wedmetrics.storage")

OVERFLOW_POLICIES = ("drop_oldest", "drop_newest", "block")


class Flusher:
    """Drains closed buckets from ``source`` and writes them to ``backend``.

    Every ``interval`` seconds the flusher pulls what the engine has closed
    into a bounded buffer and writes the buffer in batches of at most
    ``batch_rows``.  A failed write (database slow or down) leaves the batch
    in the buffer and is retried with exponential back-off; writes are
    idempotent in every backend, so a batch that partly committed before the
    failure is not duplicated by the retry.

    Parameters
    ----------
    source : callable
        Returns a :class:`~wedmetrics.BucketBatch` of buckets not yet handed
        out (``MetricsEngine.drain_closed``).
    backend : StorageBackend
        Where the rows go.
    interval : float
        Seconds between pulls.
    buffer_rows : int
        Capacity of the buffer in rows.  Within it nothing is lost while
        the database is down.
    overflow : {"drop_oldest", "drop_newest", "block"}
        What happens beyond capacity.  ``drop_oldest``/``drop_newest``
        discard rows, counted in ``stats()["dropped"]["overflow"]`` (the engine's
        ``stats()["storage"]["dropped"]["overflow"]``) and
        logged; ``block`` stops pulling, so closed buckets wait in the
        engine (nothing is dropped, the engine's memory grows instead).
    batch_rows : int
        Rows per write.
    backoff, max_backoff : float
        First retry delay and its cap, in seconds; the delay doubles after
        each consecutive failure.
    thread : bool
        Start the background thread (``False``: call :meth:`flush` yourself).
    on_caught_up : callable, optional
        Called (under the write lock) each time the buffer has been written
        out: every row pulled so far is stored.  The engine's write-ahead log
        forgets what is stored here.
    on_tick : callable, optional
        Called after each pull and write (the engine renews its writer
        lease here); an exception is logged and counted, never fatal.

    Notes
    -----
    Rows whose series key no backend can store (a NUL character, a lone
    surrogate) are split off before writing and counted as
    ``dropped["invalid_key"]`` with the reason in ``last_error``: they could
    never be written, and must not hold back the rows that can.
    A write the backend refuses for good (:class:`PermanentWriteError`: a
    value the database cannot hold, a server limit) is no outage and is not
    retried: the batch is halved until the refused rows stand alone; those
    are counted as ``dropped["rejected"]`` (reason in ``last_error``) and
    every other row is written.
    """

    def __init__(self, source: Callable[[], BucketBatch], backend, interval: float = 1.0,
                 buffer_rows: int = 1_000_000, overflow: str = "drop_oldest",
                 batch_rows: int = 100_000, backoff: float = 0.5, max_backoff: float = 30.0,
                 thread: bool = True, on_caught_up: Callable[[], None] | None = None,
                 on_tick: Callable[[], None] | None = None) -> None:
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {OVERFLOW_POLICIES}, got {overflow!r}")
        for name, v in (("interval", interval), ("backoff", backoff),
                        ("max_backoff", max_backoff)):
            if not v > 0:
                raise ValueError(f"{name} must be > 0, got {v!r}")
        if int(buffer_rows) < 1 or int(batch_rows) < 1:
            raise ValueError(f"buffer_rows and batch_rows must be >= 1, got "
                             f"{buffer_rows!r}, {batch_rows!r}")
        self.source = source
        self.on_caught_up = on_caught_up
        self.on_tick = on_tick
        #: rows ending after this are written as partial (the engine's
        #: ``close()`` sets it to its natural horizon before closing early)
        self.partial_after = math.inf
        self.backend = backend
        self.interval = float(interval)
        self.buffer_rows = int(buffer_rows)
        self.overflow = overflow
        self.batch_rows = int(batch_rows)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self._buffer: deque[BucketBatch] = deque()
        self._buffered = 0
        self._lock = threading.Lock()          # buffer and counters
        self._write_lock = threading.Lock()    # one writer at a time
        self._pull_lock = threading.Lock()     # drain + buffer of one pull
        self._failures = 0                     # consecutive, drives the back-off
        self._next_attempt = 0.0
        self._stats = {"written": 0, "duplicates": 0, "retried": 0, "batches": 0,
                       "dropped": {"overflow": 0, "invalid_key": 0, "invalid_batch": 0,
                                   "rejected": 0, "close_timeout": 0},
                       "source_errors": 0, "last_error": None}
        self._stop = threading.Event()
        self._closed = False
        self._thread = None
        if thread:
            self._thread = threading.Thread(target=self._run, name="wedmetrics-flusher",
                                             daemon=True)
            self._thread.start()

    # -- pulling ------------------------------------------------------------
    def _pull(self) -> None:
        # a pull is drained and buffered as one step, so that a writer finding
        # the buffer empty under this lock knows every pull so far is stored
        with self._pull_lock:
            self._pull_locked()

    def _pull_locked(self) -> None:
        with self._lock:
            if self.overflow == "block" and self._buffered >= self.buffer_rows:
                return
        try:
            batch = self.source()
        except Exception as exc:  # the engine's problem, reported, never fatal to the thread
            with self._lock:
                self._stats["source_errors"] += 1
                self._stats["last_error"] = f"source: {exc!r}"
            log.exception("wedmetrics flusher: reading closed buckets failed")
            return
        if not len(batch):
            return
        batch = self._without_invalid_keys(batch)
        with self._lock:
            self._buffer.append(batch)
            self._buffered += len(batch)
            self._enforce_capacity()

    def _without_invalid_keys(self, batch: BucketBatch) -> BucketBatch:
        bad = {sid: why for sid, key in batch.keys.items()
               if (why := key_problem(key)) is not None}
        if not bad:
            return batch
        mask = np.isin(batch.series, np.array(list(bad), dtype=np.int64))
        n = int(mask.sum())
        with self._lock:
            self._stats["dropped"]["invalid_key"] += n
            self._stats["last_error"] = f"invalid series key: {next(iter(bad.values()))}"
        log.error("wedmetrics flusher: dropped %d rows whose series key storage refuses: %s",
                  n, "; ".join(bad.values()))
        return batch.take(~mask)

    def _enforce_capacity(self) -> None:
        excess = self._buffered - self.buffer_rows
        if excess <= 0 or self.overflow == "block":
            return
        dropped = 0
        while excess > 0 and self._buffer:
            victim_left = self.overflow == "drop_oldest"
            batch = self._buffer[0] if victim_left else self._buffer[-1]
            n = len(batch)
            if n <= excess:
                self._buffer.popleft() if victim_left else self._buffer.pop()
                cut = n
            else:
                cut = excess
                trimmed = batch.take(slice(cut, None)) if victim_left else batch.take(
                    slice(0, n - cut))
                if victim_left:
                    self._buffer[0] = trimmed
                else:
                    self._buffer[-1] = trimmed
            excess -= cut
            dropped += cut
        self._buffered -= dropped
        self._stats["dropped"]["overflow"] += dropped
        log.warning("wedmetrics flusher: buffer full (%d rows), dropped %d rows (%s)",
                    self.buffer_rows, dropped, self.overflow)

    # -- writing --------------------------------------------------------------
    def _take_chunk(self) -> BucketBatch | None:
        with self._lock:
            if not self._buffer:
                return None
            head = self._buffer.popleft()
            if len(head) > self.batch_rows:
                self._buffer.appendleft(head.take(slice(self.batch_rows, None)))
                head = head.take(slice(0, self.batch_rows))
            self._buffered -= len(head)
            return head

    def _put_back(self, chunk: BucketBatch) -> None:
        with self._lock:
            self._buffer.appendleft(chunk)
            self._buffered += len(chunk)

    def _write_all(self) -> bool:
        """Write the buffer until it is empty (True) or a write fails (False)."""
        with self._write_lock:
            while True:
                chunk = self._take_chunk()
                if chunk is None:
                    if self.on_caught_up is not None:
                        with self._pull_lock:
                            if not self._buffered:   # every row pulled so far is stored
                                self.on_caught_up()
                    return True
                try:
                    if self.partial_after < math.inf:
                        new = self.backend.write_buckets(chunk, partial_after=self.partial_after)
                    else:
                        new = self.backend.write_buckets(chunk)
                except ValueError as exc:
                    # a batch the backend refuses (an unstorable key the shared
                    # check let through, inconsistent columns) would fail the
                    # same way forever: count it, report it, keep going
                    reason = "invalid_key" if isinstance(exc, InvalidKeyError) else "invalid_batch"
                    with self._lock:
                        self._stats["dropped"][reason] += len(chunk)
                        self._stats["last_error"] = f"{reason}: {exc}"
                    log.error("wedmetrics flusher: backend refused %d rows: %s", len(chunk), exc)
                    continue
                except PermanentWriteError as exc:
                    self._narrow_down(chunk, exc)
                    continue
                except Exception as exc:
                    self._put_back(chunk)
                    with self._lock:
                        self._failures += 1
                        self._stats["retried"] += 1
                        self._stats["last_error"] = repr(exc)
                        delay = min(self.max_backoff, self.backoff * 2 ** (self._failures - 1))
                        self._next_attempt = time.monotonic() + delay
                    log.warning("wedmetrics flusher: write of %d rows failed (%r); retrying "
                                "in %.3gs", len(chunk), exc, delay)
                    return False
                with self._lock:
                    # the write is idempotent, so after it every row of the chunk
                    # is stored, also those an earlier attempt committed before
                    # failing: ``new`` counts only the rows inserted this time
                    self._failures = 0
                    self._stats["written"] += len(chunk)
                    self._stats["duplicates"] += len(chunk) - int(new)
                    self._stats["batches"] += 1

    def _narrow_down(self, chunk: BucketBatch, exc: PermanentWriteError) -> None:
        """A write no retry can cure: halve the batch until the refused rows
        stand alone, and drop only those (``dropped["rejected"]``)."""
        if len(chunk) > 1:
            half = len(chunk) // 2
            with self._lock:
                self._buffer.appendleft(chunk.take(slice(half, None)))
                self._buffer.appendleft(chunk.take(slice(0, half)))
                self._buffered += len(chunk)
            return
        with self._lock:
            self._stats["dropped"]["rejected"] += 1
            self._stats["last_error"] = f"rejected: {exc}"
        log.error("wedmetrics flusher: the database refused a row for good: %s", exc)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._pull()
            if time.monotonic() >= self._next_attempt:
                self._write_all()
            self._tick()

    def _tick(self) -> None:
        if self.on_tick is not None:
            try:
                self.on_tick()
            except Exception as exc:   # a heartbeat that fails is retried next tick
                with self._lock:
                    self._stats["last_error"] = f"tick: {exc!r}"
                log.warning("wedmetrics flusher: %r", exc)

    # -- public -------------------------------------------------------------------
    def flush(self) -> bool:
        """Pull what the engine has closed and write everything now.

        Returns ``True`` when the buffer is empty afterwards; on a failed
        write the rows stay buffered and ``stats()["last_error"]`` says why.
        """
        self._pull()
        done = self._write_all()
        self._tick()
        return done

    def close(self, timeout: float = 30.0) -> dict:
        """Stop the thread and write everything left, retrying until ``timeout``.

        Rows still unwritten at the deadline are counted as
        ``dropped["close_timeout"]`` and logged.  Returns :meth:`stats`.
        """
        if self._closed:
            return self.stats()
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        deadline = time.monotonic() + float(timeout)
        self._pull()
        while True:
            self._write_all()
            if self.overflow == "block":
                self._pull()   # what waited in the engine while the buffer was full
            with self._lock:
                if not self._buffered:
                    break
            now = time.monotonic()
            if now >= deadline:
                break
            time.sleep(max(0.0, min(self._next_attempt, deadline) - now))
        with self._lock:
            left = self._buffered
            if left:
                self._stats["dropped"]["close_timeout"] += left
                self._buffer.clear()
                self._buffered = 0
        if left:
            log.error("wedmetrics flusher: closed after %.3gs with %d rows unwritten (%s)",
                      timeout, left, self._stats["last_error"])
        return self.stats()

    def stats(self) -> dict:
        """Counts of bucket rows, the engine's ``stats()["storage"]``.

        ``written``: rows in the store after a successful write (each row
        once, however many attempts it took); ``duplicates``: of those, rows
        the store already held under this writer's key (an earlier attempt
        that committed before it failed, or a bucket this writer id stored
        before, whose first row is kept); ``retried``: failed attempts;
        ``batches``, ``buffered``; ``dropped`` by reason (``overflow``,
        ``invalid_key``, ``invalid_batch``, ``rejected``, ``close_timeout``);
        ``source_errors`` and ``last_error``.
        """
        with self._lock:
            out = dict(self._stats)
            out["dropped"] = dict(self._stats["dropped"])
            out["buffered"] = self._buffered
        return out

    def __repr__(self) -> str:
        return f"<Flusher buffered={self._buffered} backend={self.backend!r}>"
