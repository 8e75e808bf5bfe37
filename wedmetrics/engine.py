"""MetricsEngine: the registry of series, the recording API and its lifecycle."""
from __future__ import annotations

import math
import threading
import time
from collections import namedtuple

import numpy as np

from . import _kernels
from .aggregation import AggregationEngine, Columns, WindowStats
from .buckets import BucketBatch
from .clock import Clock, WallClock, parse_duration
from .errors import EngineClosedError, InvalidPointError, LatePointError, UnknownSeriesError
from .feeds import ClosedFeeds
from .series import SeriesRegistry

__all__ = ["MetricsEngine", "IngestResult", "DEFAULT_RESOLUTIONS", "DEFAULT_RETENTION"]

DEFAULT_RESOLUTIONS = ("1s", "1m", "5m", "1h")
#: In-memory retention per resolution; storage keeps the long history.
DEFAULT_RETENTION = {"1s": "10m", "1m": "6h", "5m": "1d", "1h": "7d"}
#: Seconds between heartbeats of an engine's writer lease.
_LEASE_RENEWAL = 10.0

IngestResult = namedtuple(
    "IngestResult", "accepted late invalid_value invalid_timestamp unknown_series "
    "negative_increment closed", defaults=(0, 0))
IngestResult.__doc__ = ("Outcome counts of one ``record_many`` call, in the order of the "
                        "core's outcome codes.")


class MetricsEngine:
    """Records points in-process and answers multi-resolution window queries.

    Parameters
    ----------
    clock : Clock, optional
        Source of "now" (default: the wall clock).  Use
        :class:`~wedmetrics.ManualClock` for tests and replays.
    storage : StorageBackend, optional
        Where closed buckets go; a background flusher writes them in batches.
        A new engine on an existing store knows its series at once (they
        are registered at start, see docs/storage.md, "Restarts").
    resolutions : sequence of str or float
        Bucket widths, finest first, each a whole multiple of the previous.
    retention : dict, optional
        In-memory retention per resolution, e.g. ``{"1s": "10m"}``; the rest
        keep :data:`DEFAULT_RETENTION` (or 100 buckets for other widths).
    lateness : float or str
        How long a bucket stays open after its end (default 5 s).
    alpha : float
        Relative error of percentiles (default 1 %).
    max_bins : int
        Bins bound of each sketch; beyond it the sketch collapses and
        reports its degraded alpha.
    invalid : {"raise", "drop"}
        NaN/inf values, wrong types and negative counter increments raise
        :class:`~wedmetrics.errors.InvalidPointError` or are counted drops.
    late : {"drop", "raise"}
        Points for closed buckets are counted (``late`` in :meth:`stats`) or
        raise :class:`~wedmetrics.errors.LatePointError`.
    max_series_per_name, cardinality :
        Cap on label sets per metric name and what happens beyond it
        (``"raise"`` a :class:`~wedmetrics.errors.CardinalityError`, or
        ``"drop"``: counted, the point is ignored).
    durability : {"store", "wal"}
        ``"store"`` (default): what reached the store survives a crash, and a
        restart resumes its open coarse buckets (docs/storage.md,
        "Restarts").  ``"wal"``: every accepted point is also logged to
        ``wal_dir`` before ``record`` returns and replayed at the next start,
        so a ``kill -9`` loses no acknowledged point (needs ``storage``).
    wal_dir : str or os.PathLike, optional
        Directory of the write-ahead log (one live engine per directory).
    wal_options : dict, optional
        ``sync`` (``"none"`` or ``"interval"``), ``sync_interval`` (seconds),
        ``segment_bytes``; see :class:`wedmetrics.wal.log.WriteAheadLog`.
    max_future : float or str, optional
        Points more than this ahead of the clock are refused as invalid
        timestamps.  Default: 5 minutes with the wall clock, unlimited
        with other clocks (replays are ahead of a manual clock by design).

    Examples
    --------
    >>> import wedmetrics as wm
    >>> engine = wm.MetricsEngine(clock=wm.ManualClock(1000.0))
    >>> h = engine.series("api.latency", labels={"route": "/photos"})
    >>> for v in (0.1, 0.2, 0.3):
    ...     h.record(v)
    >>> engine.query(h, last="1m").count
    3
    """

    def __init__(self, *, clock: Clock | None = None, storage=None,
                 resolutions=DEFAULT_RESOLUTIONS, retention: dict | None = None,
                 lateness="5s", alpha: float = 0.01, max_bins: int = 2048,
                 invalid: str = "raise", late: str = "drop",
                 max_series_per_name: int = 10_000, cardinality: str = "raise",
                 max_future=None, flush_interval: float = 1.0,
                 flush_options: dict | None = None, durability: str = "store",
                 wal_dir=None, wal_options: dict | None = None) -> None:
        if invalid not in ("raise", "drop"):
            raise ValueError(f"invalid policy must be 'raise' or 'drop', got {invalid!r}")
        if late not in ("drop", "raise"):
            raise ValueError(f"late policy must be 'drop' or 'raise', got {late!r}")
        if durability not in ("store", "wal"):
            raise ValueError(f"durability must be 'store' or 'wal', got {durability!r}")
        if durability == "wal" and (storage is None or wal_dir is None):
            raise ValueError("durability='wal' needs a storage backend and a wal_dir: the log "
                             "holds points until the store has them")
        if durability != "wal" and (wal_dir is not None or wal_options):
            raise ValueError("wal_dir and wal_options need durability='wal'")
        if durability == "wal" and (flush_options or {}).get("overflow", "block") != "block":
            # a row dropped from a full buffer is neither stored nor kept in the
            # log: under the log nothing may be dropped (docs/storage.md)
            raise ValueError("durability='wal' needs flush_options overflow='block' (got "
                             f"{flush_options['overflow']!r}): the log may forget only what "
                             "the store holds")
        self.clock = clock if clock is not None else WallClock()
        if not isinstance(self.clock, Clock) and not callable(getattr(self.clock, "now", None)):
            raise TypeError(f"clock must have a now() method, got {clock!r}")
        self.invalid = invalid
        self.late = late
        widths = [parse_duration(r) for r in resolutions]
        names = [_resolution_name(w) for w in widths]
        keep = _retention_counts(names, widths, retention or {})
        self.lateness = parse_duration(lateness)
        self._core = _kernels.Core(widths, keep, self.lateness, alpha, max_bins)
        self.alpha = float(alpha)
        self.resolutions = list(zip(names, widths))
        self.retention = dict(zip(names, keep))
        if max_future is None:
            self.max_future = 300.0 if getattr(self.clock, "is_wall", False) else math.inf
        else:
            self.max_future = parse_duration(max_future)
        # points refused with an exception, by outcome code; the core counts
        # every refusal, so those dropped silently are the difference
        self._refused = [0] * len(_kernels.REASONS)
        self._exact_ids: set[int] = set()
        self._registry = SeriesRegistry(self._make_handle, max_series_per_name, cardinality)
        self._find_labeled = self._registry.lookup
        self.aggregation = AggregationEngine(self._core, self._registry, self.now,
                                             self.resolutions, self._exact_ids)
        self._closed = False
        self._lock = threading.Lock()
        self.storage = storage
        self._flusher = None
        # every consumer of closed buckets (the flusher, exporters) takes them
        # through its own feed, so none steals them from another
        self._feeds = ClosedFeeds(self._drain_core)
        self._primary_feed = None
        self._wal = None
        self._pulled_until = -math.inf     # horizon of the flusher's last pull
        self._drained_until = -math.inf    # horizon of the last drain, by any feed
        self._next_wal_sync = 0.0
        self._restart = None
        self._lease = None                 # this engine's writer lease (a report)
        self._next_renewal = 0.0
        self._stored_through = -math.inf   # every own bucket ending by then is stored
        if storage is not None:
            self._core.outbox_enabled = True
            self._primary_feed = self._feeds.subscribe(after_take=self._note_flusher_pull)
            # before the clock moves the horizon (below, and the flusher's
            # thread): a replayed point must not be late for a horizon this
            # start has not reached yet; it closes when the horizon passes
            self._restart = self._start_from_storage(wal_dir, wal_options)
        # "now" is the later of the clock and the newest point from the start:
        # a first point older than the clock's now minus the lateness is late
        self._core.advance(self.clock.now())
        # every point of this life is at or after it (a replayed one is not
        # stored before the flusher's first catch-up, which moves the split)
        self._started_at = self._core.watermark - self.lateness \
            if self._core.watermark > -math.inf else -math.inf
        if storage is not None:
            from .storage.flusher import Flusher

            options = dict(flush_options or {})
            if durability == "wal":
                options["overflow"] = "block"
            self._flusher = Flusher(self.drain_closed, storage, interval=flush_interval,
                                    on_caught_up=self._stored_up_to_last_pull,
                                    on_tick=self._renew_lease, **options)

    def _start_from_storage(self, wal_dir, wal_options) -> dict:
        from .storage.resume import claim_writer, resume_open_buckets

        wal = None
        if wal_dir is not None:
            from .wal.log import WriteAheadLog

            wal = WriteAheadLog(wal_dir, **(wal_options or {}))
        # which writer this engine is: the log's (its points are that writer's),
        # a crashed writer's whose lease it adopts, or its backend's own
        self._lease = claim_writer(self.storage, keep_id=wal.writer_id if wal else None)
        if wal is not None and wal.writer_id is None:
            wal.claim(self.storage.writer_id)
        report = {"writer": {k: v for k, v in self._lease.items() if k != "token"}}
        logged = list(wal.recorded()) if wal is not None else []
        oldest = min((float(r["ts"].min()) for _, r in logged), default=None)
        report["resumed"] = resumed = resume_open_buckets(
            self, since=oldest, renew_id=wal is None and not self._lease["adopted"]
            and not getattr(self.storage, "fixed_writer", True))
        covered = resumed.pop("covered")
        if wal is not None:
            from .wal.replay import replay

            replay(self, logged, covered, wal.report)
            report["wal"] = wal.report
        if resumed["stored_until"] is not None:
            self._core.advance(resumed["stored_until"] + self.lateness)
        if wal is not None:
            wal.start(self._core, self._registry.all())
            self._wal = wal
        return report

    def _renew_lease(self) -> None:
        """Heartbeat of this engine's writer lease (from the flusher's thread)."""
        lease = self._lease
        if lease is None or lease["token"] is None:
            return
        now = time.monotonic()
        if now < self._next_renewal:
            return
        self._next_renewal = now + _LEASE_RENEWAL
        if not self.storage.renew_lease(self.storage.writer_id, lease["token"], time.time()):
            lease["lost"] = lease.get("lost", 0) + 1
            import logging

            logging.getLogger("wedmetrics.storage").error(
                "wedmetrics: another engine took the lease of writer %d: this engine was "
                "taken for dead (no heartbeat for the lease timeout)", self.storage.writer_id)

    def _stored_up_to_last_pull(self) -> None:
        # the flusher has stored every row it pulled: so every 1 s bucket that
        # had closed by then is in the store, and the log may forget it
        self._stored_through = self._pulled_until
        if self._wal is not None:
            self._wal.truncate(self._pulled_until, self.resolutions[0][1])

    def sync_wal(self) -> None:
        """Force the write-ahead log to disk now (``msync``/``fsync``): call it before
        acknowledging points to a client when a machine crash must not lose them."""
        if self._wal is not None:
            self._wal.sync_now()

    # -- series ---------------------------------------------------------
    def _make_handle(self, name, labels, kind, exact):
        sid = self._core.add_series(int(exact))
        if exact:
            self._exact_ids.add(sid)
        if self._wal is not None:
            self._wal.log_series(sid, name, labels, kind)
        return _kernels.Handle(self._core, sid, name, labels, kind, self.clock,
                               self.invalid == "raise", self.late == "raise",
                               self.max_future, self._refused)

    def series(self, name: str, labels: dict | None = None, kind: str = "distribution",
               exact: int = 0):
        """The handle of a series, created on first use.

        Parameters
        ----------
        name : str
            Metric name, e.g. ``"api.latency"``.
        labels : dict of str to str, optional
            Label set; each distinct set is its own series.
        kind : {"distribution", "counter", "gauge"}
            Counters take ``inc(n)`` with ``n >= 0``; gauges keep their last
            value in ``handle.value``.  All three keep the same buckets.
        exact : int
            Keep the last ``exact`` raw points too, so windows they cover get
            exact percentiles (``WindowStats.exact``).

        Returns
        -------
        SeriesHandle
            ``record(v, ts=None)``, ``inc``, ``set``, ``value``, ``id``.
            ``None`` only when the cardinality cap drops a new label set
            (``cardinality="drop"``).
        """
        return self._registry.get_or_create(name, labels, kind, exact)

    def series_list(self, name: str | None = None) -> list:
        """Every handle, or those of one metric name."""
        return self._registry.all() if name is None else self._registry.by_name(name)

    def series_count(self) -> int:
        """Number of series (cheap: no list is built)."""
        return len(self._registry)

    def names(self) -> list[str]:
        return self._registry.names()

    # -- recording --------------------------------------------------------
    def record(self, name: str, value, labels: dict | None = None, ts=None) -> None:
        """Record one point, resolving ``name`` + ``labels`` to a series
        (created as a distribution on first use).  ``ts`` (default: the
        engine's :meth:`now`) is epoch seconds or a ``numpy.datetime64``;
        values and timestamps are checked as ``handle.record`` checks them."""
        h = self._find_labeled(name, labels)
        if h is None:
            h = self._registry.get_or_create(name, labels, self._kind_of(name))
            if h is None:
                return  # counted by the registry's cardinality policy
            self._registry.remember(name, labels, h)
        h.record(value, ts)

    def _kind_of(self, name: str) -> str:
        existing = self._registry.by_name(name)
        return existing[0].kind if existing else "distribution"

    def record_many(self, ids, ts, values) -> IngestResult:
        """Record parallel arrays of series ids, timestamps and values.

        ``ids`` must be an integer array, ``values`` an integer or floating
        one (strings, complex numbers and other objects are refused whole),
        ``ts`` float epoch seconds or ``datetime64`` (``NaT`` is an invalid
        timestamp).  Under ``invalid="raise"`` a bad point (unknown id,
        NaN/inf value, bad or too-future timestamp, negative counter
        increment) raises before anything is recorded and the bad points
        are counted in ``stats()["refused"]``; under ``"drop"`` they are
        counted drops.  Late points are always counted (see the result).
        """
        ids_in = np.asarray(ids)
        ts_in = _seconds_array(ts)
        values_in = np.asarray(values)
        if ids_in.ndim != 1 or ids_in.shape != ts_in.shape or ids_in.shape != values_in.shape:
            raise ValueError(f"ids, ts and values must be 1-d and of equal length, got "
                             f"{ids_in.shape}, {ts_in.shape}, {values_in.shape}")
        n = ids_in.shape[0]
        if n:
            for arr, kinds, code, what in (
                    (ids_in, "iu", _kernels.UNKNOWN_SERIES, "series ids must be integers"),
                    (values_in, "iuf", _kernels.BAD_VALUE,
                     "values must be real numbers (an integer or floating array)"),
                    (ts_in, "iuf", _kernels.BAD_TS,
                     "timestamps must be epoch seconds or datetime64")):
                if arr.dtype.kind not in kinds:
                    return self._refuse_batch(code, n, f"{what}, got dtype {arr.dtype}; "
                                                       f"nothing was recorded")
        ids = np.ascontiguousarray(ids_in, dtype=np.int64)
        ts = np.ascontiguousarray(ts_in, dtype=np.float64)
        values = np.ascontiguousarray(values_in, dtype=np.float64)
        future = None
        if n and math.isfinite(self.max_future):
            future = ts > self.clock.now() + self.max_future
            if not future.any():
                future = None
        counters = self._counter_ids()
        negative = None
        if counters is not None and n:
            negative = (values < 0) & np.isin(ids, counters)
            if not negative.any():
                negative = None
        with self._lock:   # close() takes it too: nothing slips in behind the final flush
            if self._closed:
                return self._refuse_batch(_kernels.CLOSED, n, "the engine is closed and "
                                          "records nothing more")
            if self.invalid == "raise":
                i, _ = self._core.first_invalid(ids, ts, values)
                if i >= 0 or future is not None or negative is not None:
                    self._refuse_points(ids, ts, values, future, negative)
            n_negative = 0
            if future is not None:
                ts = np.where(future, np.nan, ts)   # counted by the core as bad timestamps
            if negative is not None:
                n_negative = int(negative.sum())
                self._core.count_drop(_kernels.NEGATIVE_INCREMENT, n_negative)
                keep = ~negative
                ids, ts, values = ids[keep], ts[keep], values[keep]
            counts = self._core.record_many(ids, ts, values)
        return IngestResult(*counts, negative_increment=n_negative)

    def _refuse_batch(self, code: int, n: int, problem: str) -> IngestResult:
        """A whole ``record_many`` batch refused: counted, raised by policy."""
        self._core.count_drop(code, n)
        if self.invalid == "raise":
            self._count_refused(code, n)
            if code == _kernels.CLOSED:
                raise EngineClosedError(problem)
            raise InvalidPointError(problem)
        counts = [0] * len(_kernels.REASONS)
        counts[code] = n
        return IngestResult(*counts)

    def _refuse_points(self, ids, ts, values, future, negative) -> None:
        """Count every bad point of a batch under its reason and raise,
        naming the first one (``invalid="raise"``)."""
        unknown = (ids < 0) | (ids >= self._core.n_series)
        bad_value = ~unknown & ~np.isfinite(values)
        with np.errstate(all="ignore"):
            out_of_range = np.abs(np.floor(ts / self.resolutions[0][1])) > _kernels.IDX_LIMIT
        bad_ts = ~np.isfinite(ts) | out_of_range
        if future is not None:
            bad_ts |= future
        bad_ts &= ~unknown & ~bad_value
        neg = np.zeros(len(ids), dtype=bool) if negative is None else \
            negative & ~unknown & ~bad_value & ~bad_ts
        reasons = ((_kernels.UNKNOWN_SERIES, unknown), (_kernels.BAD_VALUE, bad_value),
                   (_kernels.BAD_TS, bad_ts), (_kernels.NEGATIVE_INCREMENT, neg))
        for code, mask in reasons:
            k = int(mask.sum())
            if k:
                self._core.count_drop(code, k)
                self._count_refused(code, k)
        i = int(np.argmax(unknown | bad_value | bad_ts | neg))
        if unknown[i]:
            what = f"unknown series id {int(ids[i])}"
        elif bad_value[i]:
            what = f"value must be finite, got {float(values[i])!r}"
        elif future is not None and future[i]:
            what = (f"timestamp {float(ts[i])!r} is more than max_future="
                    f"{self.max_future:g}s ahead of the clock")
        elif bad_ts[i]:
            what = f"timestamp must be finite and in range, got {float(ts[i])!r}"
        else:
            what = f"counter increments must be >= 0, got {float(values[i])!r}"
        bad = sum(int(m.sum()) for _, m in reasons)
        raise InvalidPointError(f"point {i}: {what} ({bad} bad point(s) of {len(ids)}); "
                                f"nothing was recorded")

    def _count_refused(self, code: int, n: int = 1) -> None:
        with self._core.lock:
            self._refused[code] += n

    def _counter_ids(self):
        ids = [h.id for h in self._registry.all() if h.kind == "counter"]
        return np.array(ids, dtype=np.int64) if ids else None

    # -- time and queries ---------------------------------------------------
    def now(self) -> float:
        """The later of the clock and the newest timestamp recorded."""
        now = self.clock.now()
        wm = self._core.watermark
        return now if now > wm else wm

    def advance(self, now: float | None = None) -> None:
        """Close every bucket that is due at ``now`` (default: the engine's now)."""
        self._core.advance(self.now() if now is None else float(now))

    def query(self, target, last="1m", labels: dict | None = None, *, end=None,
              scope: str | None = None) -> WindowStats:
        """Statistics of ``target`` over the last ``last`` seconds.

        ``target`` is a handle, a series id, or a metric name (merged over
        every label set, or those matching ``labels``).

        ``scope`` (engines with storage): ``"local"`` answers from this
        process' memory only (fast: what alert rules read); ``"fleet"``
        merges what the store holds from every writer (other processes and
        hosts, earlier runs) with this engine's live points, counting none
        twice (docs/architecture.md, "Local and fleet reads").  The default
        is ``"local"`` for a target this engine records, and ``"fleet"`` for
        a metric name only the store knows (never a silent 0).
        """
        self._tick()
        if self._fleet_scope(target, scope, labels):
            from .storage.history import fleet_window

            return fleet_window(self, target, last, labels, end)
        return self.aggregation.window(target, last, labels, end=end)

    def buckets(self, target, resolution="1m", start=None, end=None,
                labels: dict | None = None, *, scope: str | None = None) -> Columns:
        """Columns of the buckets of ``resolution`` that overlap ``[start, end)``
        (the first may begin before ``start``).  ``scope`` as in :meth:`query`:
        ``"fleet"`` is :meth:`history` (stored rows of every writer merged with
        this engine's buckets in memory)."""
        self._tick()
        if self._fleet_scope(target, scope, labels):
            from .storage.history import history_columns

            if self._flusher is not None:
                self._flusher.flush()
            return history_columns(self, target, resolution, start, end, None, labels=labels)
        return self.aggregation.buckets(target, resolution, start, end, labels)

    def _fleet_scope(self, target, scope, labels) -> bool:
        if scope not in (None, "local", "fleet"):
            raise ValueError(f"scope must be 'local' or 'fleet', got {scope!r}")
        if self.storage is None:
            if scope == "fleet":
                raise ValueError("scope='fleet' needs an engine with storage")
            return False
        if scope is not None:
            return scope == "fleet"
        # a name this engine has no series of, which the store may hold
        return isinstance(target, str) and not self._registry.by_name(target)

    def _fleet_split(self) -> float:
        """The time before which the store holds every point of this writer that
        memory may not (a fleet read takes the store's rows before it, memory's
        after): the flusher's stored-through horizon, at least this engine's
        start (earlier runs of the same writer are only in the store)."""
        return max(self._stored_through, self._started_at)

    def _tick(self) -> None:
        # not only when the clock passed the watermark: a point may have moved
        # the watermark without closing what fell due in the other series
        self._core.advance(self.clock.now())

    def history(self, target, resolution="1m", start=None, end=None) -> Columns:
        """Buckets from storage merged with those still in memory.

        A metric name only storage knows (written by other processes of the
        fleet, or an earlier run) is answered from storage alone.
        """
        if self.storage is None:
            return self.buckets(target, resolution, start, end)
        return self.buckets(target, resolution, start, end, scope="fleet")

    # -- draining and stats ---------------------------------------------------
    def drain_closed(self) -> BucketBatch:
        """Closed buckets not yet handed out to the primary consumer: the storage
        flusher (buckets are only collected with storage or a :meth:`closed_feed`)."""
        if self._primary_feed is None:
            self._primary_feed = self._feeds.subscribe()
        return self._primary_feed()

    def closed_feed(self):
        """A new, independent feed of closed buckets (what an exporter pulls).

        Returns a function giving the buckets closed since its last call; every
        feed, and :meth:`drain_closed`, receives every bucket drained after the
        feed was made.  The batches are shared between feeds: read them, do not
        modify them.  Call the function regularly: what it has not taken waits
        in memory.
        """
        self._core.outbox_enabled = True
        return self._feeds.subscribe()

    def _drain_core(self) -> BucketBatch:
        self._tick()
        if self._wal is not None:
            self._wal_housekeeping()
        else:
            watermark = self._core.watermark
            if watermark > -math.inf:
                # every series swept at this horizon: each 1 s bucket ending
                # by it is in this drain (or an earlier one)
                self._drained_until = watermark - self.lateness
        sid, level, idx, count, total, lo, hi, blobs = self._core.drain()
        widths = np.array([w for _, w in self.resolutions], dtype=np.float64)
        width = widths[level] if len(level) else np.empty(0, dtype=np.float64)
        keys = {int(i): self._registry.key_of(int(i)) for i in np.unique(sid)}
        return BucketBatch(sid, width, idx * width, count, total, lo, hi, blobs, keys)

    def _note_flusher_pull(self) -> None:
        # an exporter's drain leaves the flusher's share in its feed, not yet
        # pulled: the log may forget only what the flusher itself has taken
        self._pulled_until = self._drained_until

    def _wal_housekeeping(self) -> None:
        # close what is due in every series (a quiet one too), so that every
        # 1 s bucket ending before the horizon is in this drain: stored once
        # the flusher catches up, when the log may forget it
        watermark = self._core.watermark
        if watermark > -math.inf:
            self._core.advance(watermark)
            self._drained_until = watermark - self.lateness
        wal = self._wal
        if wal.sync == "interval":
            now = time.monotonic()
            if now >= self._next_wal_sync:
                wal.sync_now()
                self._next_wal_sync = now + wal.sync_interval

    def stats(self) -> dict:
        """Counts of points and the engine's size.

        ``accepted``; ``dropped``: points discarded without an exception,
        by reason; ``refused``: points refused with an exception (the
        ``"raise"`` policies), by the same reasons; ``series``,
        ``memory_bytes``, ``compiled``; with storage, ``storage``: the
        flusher's counts of bucket rows (see :meth:`Flusher.stats`).
        """
        outcomes = list(self._core.outcomes)
        refused_counts = list(self._refused)
        reasons = _kernels.REASONS
        dropped = {reasons[c]: outcomes[c] - refused_counts[c] for c in range(1, len(reasons))}
        refused = {reasons[c]: refused_counts[c] for c in range(1, len(reasons))}
        over_cap = self._registry.cardinality_dropped
        raised = self._registry.cardinality == "raise"
        dropped["cardinality"] = 0 if raised else over_cap
        refused["cardinality"] = over_cap if raised else 0
        out = {"accepted": outcomes[0], "dropped": dropped, "refused": refused,
               "series": len(self._registry), "memory_bytes": self._core.memory_bytes(),
               "compiled": _kernels.HAVE_COMPILED}
        if self._flusher is not None:
            out["storage"] = self._flusher.stats()
        if self._restart is not None:
            out["restart"] = self._restart
            if self._lease is not None and self._lease.get("lost"):
                self._restart["writer"]["lost"] = self._lease["lost"]
        return out

    # -- instrumentation --------------------------------------------------------
    def timer(self, name: str, labels: dict | None = None):
        """Context manager recording the duration of its block in seconds."""
        from .collect.instrument import Timer

        return Timer(self, name, labels)

    def timed(self, name: str, labels: dict | None = None):
        """Decorator recording each call's duration (sync or async functions)."""
        from .collect.instrument import timed

        return timed(self, name, labels)

    def counter(self, name: str, labels: dict | None = None):
        return self.series(name, labels, kind="counter")

    def gauge(self, name: str, labels: dict | None = None):
        return self.series(name, labels, kind="gauge")

    # -- lifecycle ----------------------------------------------------------------
    def close(self, timeout: float = 30.0) -> None:
        """Close every open bucket, flush it all to storage, stop the flusher."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._core.close()   # later points are refused, by the invalid policy
        # everything recorded so far is final: move the horizon past it.  The
        # buckets that closes before their end are stored as partial: this
        # writer's next engine resumes them and stores them again, fuller
        widest = self.resolutions[-1][1]
        natural = self.now() - self.lateness
        if self._flusher is not None:
            # a bucket that closed by itself ended by this horizon: never partial
            self._flusher.partial_after = natural
        self._core.advance(self.now() + self.lateness + widest)
        if self._flusher is not None:
            left = self._flusher.close(timeout=timeout)
            everything = not left["buffered"] and not left["dropped"]["close_timeout"]
            if self._wal is not None:
                # a clean stop empties the log; rows left unwritten keep it for the next start
                self._wal.close(everything_stored=everything)
            if everything and self._lease is not None and self._lease["token"] is not None:
                # a lease left live (rows unwritten) is adopted by the next engine
                try:
                    self.storage.renew_lease(self.storage.writer_id, self._lease["token"],
                                             time.time(), state="closed")
                except Exception:   # the store went away at the last moment: the lease stays live
                    pass
        if self.storage is not None:
            self.storage.close()

    def __enter__(self) -> "MetricsEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        res = ",".join(n for n, _ in self.resolutions)
        return (f"<MetricsEngine series={len(self._registry)} resolutions={res} "
                f"compiled={_kernels.HAVE_COMPILED}>")


def _resolution_name(width: float) -> str:
    for unit, size in (("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if width >= size and width % size == 0:
            return f"{int(width // size)}{unit}"
    return f"{width:g}s"


def _retention_counts(names, widths, retention: dict) -> list[int]:
    given = {}
    for key, span in retention.items():
        w = parse_duration(key)
        if w not in widths:
            raise ValueError(f"retention given for {key!r}, which is not a resolution")
        given[w] = parse_duration(span)
    out = []
    for name, w in zip(names, widths):
        span = given.get(w)
        if span is None:
            default = DEFAULT_RETENTION.get(name)
            span = parse_duration(default) if default else 100 * w
        out.append(max(1, math.ceil(span / w)))
    return out


def _seconds_array(ts) -> np.ndarray:
    """Epoch seconds of a float or ``datetime64`` array (``NaT`` is NaN);
    other dtypes are returned as they are, for the caller to refuse."""
    arr = np.asarray(ts)
    if np.issubdtype(arr.dtype, np.datetime64):
        out = arr.astype("datetime64[ns]").astype(np.int64) / 1e9
        out[np.isnat(arr)] = np.nan
        return out
    return arr


# re-exported for type checkers and docs
SeriesHandle = _kernels.Handle
__all__ += ["SeriesHandle", "UnknownSeriesError", "LatePointError"]
