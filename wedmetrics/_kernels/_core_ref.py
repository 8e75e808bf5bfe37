"""Pure-Python twin of the compiled bucket core (``csrc/core.c``).

The core owns, for every series, a ring of closed buckets per resolution
(finest first) and the finest buckets still open.  A point touches only its
open finest bucket; when "now" minus the allowed lateness passes a bucket's
end it closes, is frozen into a compact sketch body, and is merged into the
open bucket of the next coarser resolution (the roll-up cascade).

Everything is indexed in bucket units: a bucket of width ``w`` has index
``floor(ts / w)``.  Each width must be a whole multiple of the previous one.
"""
from __future__ import annotations

import bisect
import math
import threading

import numpy as np

from .. import errors
from . import _points
from ._sketch_ref import Sketch

# Outcome codes of ``record``; the engine maps them to policy and counters.
OK = 0
LATE = 1
BAD_VALUE = 2
BAD_TS = 3
UNKNOWN_SERIES = 4
NEGATIVE_INCREMENT = 5
CLOSED = 6
WAL_FULL = -4          # a full write-ahead log segment (csrc/wal.h); never counted
REASONS = ("ok", "late", "invalid_value", "invalid_timestamp", "unknown_series",
           "negative_increment", "closed")

# Bucket indices beyond +-2**52 are refused as BAD_TS (the compiled core keeps
# indices in int64) and horizons are clamped to +-2**62 for the same reason.
IDX_LIMIT = 1 << 52
_IDX_CLAMP = 1 << 62


def _horizon_idx(horizon: float, width: float) -> int:
    return max(-_IDX_CLAMP, min(_IDX_CLAMP, math.floor(horizon / width)))


# Bytes the compiled core spends per stored bucket slot (see csrc/core.h);
# the reference reports the same figure so stats read alike.
SLOT_BYTES = 48


class _Bucket:
    __slots__ = ("idx", "count", "sum", "min", "max", "sketch")

    def __init__(self, idx: int, sketch: Sketch) -> None:
        self.idx = idx
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.sketch = sketch

    def add(self, v: float) -> None:
        self.count += 1
        self.sum += v
        if v < self.min:
            self.min = v
        if v > self.max:
            self.max = v
        self.sketch._add(v)

    def absorb(self, count: int, total: float, lo: float, hi: float, sk: Sketch) -> None:
        self.count += count
        self.sum += total
        if lo < self.min:
            self.min = lo
        if hi > self.max:
            self.max = hi
        self.sketch.merge(sk)


class _Ring:
    """Closed buckets of one resolution, oldest first, only non-empty ones."""

    __slots__ = ("idx", "count", "sum", "min", "max", "body", "collapses", "head", "gone")

    def __init__(self) -> None:
        self.idx: list[int] = []
        self.count: list[int] = []
        self.sum: list[float] = []
        self.min: list[float] = []
        self.max: list[float] = []
        self.body: list[bytes] = []
        self.collapses: list[int] = []
        self.head = 0
        self.gone = -(1 << 62)     # every bucket with idx <= gone has been evicted

    def __len__(self) -> int:
        return len(self.idx) - self.head

    def push(self, b: _Bucket) -> None:
        self.idx.append(b.idx)
        self.count.append(b.count)
        self.sum.append(b.sum)
        self.min.append(b.min)
        self.max.append(b.max)
        self.body.append(b.sketch.body_bytes())
        self.collapses.append(b.sketch.collapses)

    def evict_through(self, idx: int) -> None:
        """Drop every bucket with index <= idx."""
        if idx > self.gone:
            self.gone = idx
        h = self.head
        n = len(self.idx)
        while h < n and self.idx[h] <= idx:
            h += 1
        self.head = h
        if h > 64 and h * 2 > n:
            for name in ("idx", "count", "sum", "min", "max", "body", "collapses"):
                del getattr(self, name)[:h]
            self.head = 0

    def span(self, lo: int, hi: int) -> range:
        """Positions of buckets with lo <= idx < hi."""
        a = bisect.bisect_left(self.idx, lo, self.head)
        b = bisect.bisect_left(self.idx, hi, a)
        return range(a, b)

    def nbytes(self) -> int:
        return len(self) * SLOT_BYTES + sum(len(b) for b in self.body[self.head:])


class _Series:
    __slots__ = ("sid", "rings", "open0", "accs", "closed_until", "exact_cap", "exact_ts",
                 "exact_val", "exact_n", "exact_head", "last_value", "last_ts")

    def __init__(self, sid: int, levels: int, exact_cap: int) -> None:
        self.sid = sid
        self.rings = [_Ring() for _ in range(levels)]
        self.open0: dict[int, _Bucket] = {}
        self.accs: list = [None] * levels        # accs[0] unused
        self.closed_until = -(1 << 62)           # finest idx below which all is closed
        self.exact_cap = exact_cap
        self.exact_ts = np.empty(exact_cap, dtype=np.float64)
        self.exact_val = np.empty(exact_cap, dtype=np.float64)
        self.exact_n = 0                         # points ever written to the exact ring
        self.exact_head = 0
        self.last_value = math.nan
        self.last_ts = math.nan


class Core:
    """All series of one engine: buckets, roll-ups, windows and the outbox.

    Parameters
    ----------
    widths : sequence of float
        Bucket width of each resolution in seconds, finest first; each a
        whole multiple of the previous.
    retention : sequence of int
        Closed buckets kept in memory per resolution.
    lateness : float
        Seconds a bucket stays open after its end.
    alpha, max_bins :
        Sketch accuracy and bins bound.
    """

    def __init__(self, widths, retention, lateness: float = 5.0,
                 alpha: float = 0.01, max_bins: int = 2048) -> None:
        widths = [float(w) for w in widths]
        retention = [int(r) for r in retention]
        if not widths or len(widths) != len(retention):
            raise ValueError("widths and retention must be non-empty and of equal length")
        lateness = float(lateness)
        if not (math.isfinite(lateness) and lateness >= 0):
            raise ValueError(f"lateness must be >= 0, got {lateness!r}")
        for i, w in enumerate(widths):
            if not (math.isfinite(w) and w > 0):
                raise ValueError(f"bucket width must be > 0, got {w!r}")
            if i and (w / widths[i - 1] != round(w / widths[i - 1]) or w <= widths[i - 1]):
                raise ValueError(f"width {w} is not a whole multiple of {widths[i - 1]}")
        for i, r in enumerate(retention):
            if r < 1:
                raise ValueError(f"retention must be >= 1 bucket, got {r}")
            # an open coarse bucket is answered from its finer children,
            # so those must outlive it
            if i + 1 < len(widths) and r * widths[i] < widths[i + 1] + lateness + widths[i]:
                raise ValueError(
                    f"retention of the {widths[i]:g}s resolution ({r} buckets) must cover one "
                    f"{widths[i + 1]:g}s bucket plus the lateness")
        Sketch(alpha, max_bins)  # validates both
        self.widths = widths
        self.retention = retention
        self.ratios = [int(round(w / widths[0])) for w in widths]
        self.lateness = float(lateness)
        self.alpha = float(alpha)
        self.max_bins = int(max_bins)
        self.watermark = -math.inf
        self._series: list[_Series] = []
        self._outbox: list = []
        self.outbox_enabled = False
        self.lock = threading.RLock()
        self.outcomes = [0] * len(REASONS)   # accepted and drops by reason code
        self.closed = False
        self._swept = None        # (horizon index, series count) of the last full sweep
        self._wal = None                     # a SegmentWriter while the log is on
        self.on_wal_full = None

    def close(self) -> None:
        """Refuse every later point (``CLOSED``); reads keep working."""
        with self.lock:
            self.closed = True

    # -- write-ahead log ------------------------------------------------------
    def set_wal(self, buffer, pos: int = 0, salt: int = 0) -> None:
        """Append every accepted point to ``buffer`` (a writable mapped segment)
        from byte ``pos``, records checked with ``salt``; ``None`` turns the log
        off.  When it fills, ``on_wal_full()`` is called to set the next one."""
        from ..wal._format import SegmentWriter

        with self.lock:
            old, self._wal = self._wal, None
            if old is not None:
                old.release()
            if buffer is not None:
                self._wal = SegmentWriter(buffer, pos, salt)

    def wal_state(self) -> tuple[int, float]:
        """``(next byte offset, newest timestamp logged in this segment)``."""
        w = self._wal
        return (0, -math.inf) if w is None else (w.pos, w.max_ts)

    def _wal_full(self) -> None:
        if self.on_wal_full is None:
            raise RuntimeError("write-ahead log segment full and no on_wal_full to roll it")
        self.on_wal_full()

    def _record_logged(self, sid: int, v: float, ts: float) -> int:
        code = self._record(sid, v, ts)
        if code == WAL_FULL:
            self._wal_full()
            code = self._record(sid, v, ts)
            if code == WAL_FULL:
                raise RuntimeError("write-ahead log: a new segment has no room for a record")
        return code

    def count_drop(self, code: int, n: int = 1) -> None:
        with self.lock:
            self.outcomes[code] += n

    # -- series ---------------------------------------------------------
    def add_series(self, exact_capacity: int = 0) -> int:
        exact_capacity = int(exact_capacity)
        if exact_capacity < 0:
            raise ValueError("exact_capacity must be >= 0")
        with self.lock:
            self._series.append(_Series(len(self._series), len(self.widths), exact_capacity))
            return len(self._series) - 1

    @property
    def n_series(self) -> int:
        return len(self._series)

    def _new_sketch(self) -> Sketch:
        return Sketch(self.alpha, self.max_bins)

    # -- recording --------------------------------------------------------
    def record(self, sid: int, value: float, ts: float) -> int:
        with self.lock:
            code = CLOSED if self.closed else self._record_logged(sid, value, ts)
            self.outcomes[code] += 1
            return code

    def _record(self, sid: int, v: float, ts: float) -> int:
        if not 0 <= sid < len(self._series):
            return UNKNOWN_SERIES
        if not math.isfinite(v):
            return BAD_VALUE
        if not math.isfinite(ts):
            return BAD_TS
        idx = math.floor(ts / self.widths[0])
        if abs(idx) > IDX_LIMIT:
            return BAD_TS
        if ts > self.watermark:
            self.watermark = ts
        horizon = self.watermark - self.lateness
        if idx < _horizon_idx(horizon, self.widths[0]):
            return LATE
        # logged once accepted, before it lands: an acknowledged point is in the log
        if self._wal is not None and not self._wal.append(sid, ts, v):
            return WAL_FULL
        s = self._series[sid]
        b = s.open0.get(idx)
        if b is None:
            b = s.open0[idx] = _Bucket(idx, self._new_sketch())
        b.add(v)
        s.last_value, s.last_ts = v, ts
        if s.exact_cap:
            pos = s.exact_head
            s.exact_ts[pos] = ts
            s.exact_val[pos] = v
            s.exact_head = (pos + 1) % s.exact_cap
            s.exact_n += 1
        self._advance_series(s, horizon)
        return OK

    def record_many(self, sids, ts, values) -> tuple[int, int, int, int, int]:
        """Record parallel arrays; returns counts (ok, late, bad value, bad ts, unknown)."""
        sids = np.ascontiguousarray(sids, dtype=np.int64)
        ts = np.ascontiguousarray(ts, dtype=np.float64)
        values = np.ascontiguousarray(values, dtype=np.float64)
        if not (sids.shape == ts.shape == values.shape) or sids.ndim != 1:
            raise ValueError("ids, ts and values must be 1-d arrays of the same length")
        counts = [0, 0, 0, 0, 0]
        with self.lock:
            for i in range(sids.shape[0]):
                counts[self._record_logged(int(sids[i]), float(values[i]), float(ts[i]))] += 1
            for code, n in enumerate(counts):
                self.outcomes[code] += n
        return tuple(counts)

    def first_invalid(self, sids, ts, values) -> tuple[int, int]:
        """Index and code of the first point ``record_many`` would refuse
        for a reason other than lateness, or ``(-1, OK)``."""
        n = len(self._series)
        for i in range(len(sids)):
            if not 0 <= int(sids[i]) < n:
                return i, UNKNOWN_SERIES
            if not math.isfinite(float(values[i])):
                return i, BAD_VALUE
            if not math.isfinite(float(ts[i])) or \
                    abs(math.floor(float(ts[i]) / self.widths[0])) > IDX_LIMIT:
                return i, BAD_TS
        return -1, OK

    # -- closing ----------------------------------------------------------
    def advance(self, now: float) -> None:
        """Move the watermark to ``now`` (never back) and close what is due."""
        now = float(now)
        if not math.isfinite(now):
            raise ValueError(f"advance needs a finite time, got {now!r}")
        with self.lock:
            if now > self.watermark:
                self.watermark = now
            horizon = self.watermark - self.lateness
            # nothing can have fallen due since the last sweep at this horizon
            # (a series added since has nothing open): a tick per query stays cheap
            swept = (_horizon_idx(horizon, self.widths[0]), len(self._series))
            if swept == self._swept:
                return
            for s in self._series:
                self._advance_series(s, horizon)
            self._swept = swept

    def _advance_series(self, s: _Series, horizon: float) -> None:
        w0 = self.widths[0]
        until = _horizon_idx(horizon, w0) if math.isfinite(horizon) else s.closed_until
        if until <= s.closed_until:
            return
        s.closed_until = until
        if s.open0:
            for idx in sorted(i for i in s.open0 if i < until):
                self._close(s, 0, s.open0.pop(idx))
        for level in range(1, len(self.widths)):
            acc = s.accs[level]
            if acc is not None and (acc.idx + 1) * self.ratios[level] <= until:
                s.accs[level] = None
                self._close(s, level, acc)

    def _close(self, s: _Series, level: int, b: _Bucket, emit: bool = True) -> None:
        ring = s.rings[level]
        ring.push(b)
        ring.evict_through(b.idx - self.retention[level])
        if emit and self.outbox_enabled:
            self._outbox.append((s, level, b))
        up = level + 1
        if up < len(self.widths):
            parent = (b.idx * self.ratios[level]) // self.ratios[up]
            acc = s.accs[up]
            if acc is not None and acc.idx != parent:
                s.accs[up] = None
                self._close(s, up, acc)
                acc = None
            if acc is None:
                acc = s.accs[up] = _Bucket(parent, self._new_sketch())
            acc.absorb(b.count, b.sum, b.min, b.max, b.sketch)

    # -- restart ----------------------------------------------------------
    def restore(self, sid: int, level: int, idx: int, sketch: Sketch) -> None:
        """Put back a bucket an earlier run stored: closed, not re-emitted.

        ``sketch`` (count, sum, min, max and bins of the bucket) must have
        the core's alpha and max_bins.  Call coarse levels first, oldest
        first, before any point of the series; ``ValueError`` otherwise.
        A coarse bucket the restored one completes closes as usual.
        """
        if not isinstance(sketch, Sketch):
            raise TypeError(f"sketch must be a Sketch, got {type(sketch).__name__}")
        if sketch.base_alpha != self.alpha or sketch.max_bins != self.max_bins:
            raise ValueError(f"sketch has alpha={sketch.base_alpha!r}, max_bins="
                             f"{sketch.max_bins}; the core has {self.alpha!r}, {self.max_bins}")
        sid, level, idx = int(sid), int(level), int(idx)
        with self.lock:
            ok = 0 <= sid < len(self._series) and 0 <= level < len(self.widths) \
                and sketch.count > 0 and abs(idx) <= IDX_LIMIT
            if ok:
                s = self._series[sid]
                ring = s.rings[level]
                ok = not (len(ring) and ring.idx[-1] >= idx) and s.accs[level] is None \
                    and not (level == 0 and s.open0)
            if not ok:
                raise ValueError(f"cannot restore bucket {idx} of level {level} into series "
                                 f"{sid}: bad id or level, empty, or not newer than what the "
                                 "level holds")
            b = _Bucket(idx, sketch.copy())
            b.count, b.sum, b.min, b.max = sketch.count, sketch.sum, sketch.min, sketch.max
            self._close(s, level, b, emit=False)
            self._swept = None    # the open bucket may be due already: the next advance sweeps

    # -- reading ----------------------------------------------------------
    def window(self, sids, lo: int, hi: int):
        """Merge of every point in finest buckets ``lo <= idx < hi`` of the
        given series: ``(count, sum, min, max, Sketch)``."""
        with self.lock:
            acc = _Bucket(0, self._new_sketch())
            for sid in sids:
                sid = int(sid)
                if not 0 <= sid < len(self._series):
                    raise KeyError(f"unknown series id {sid}")
                s = self._series[sid]
                self._advance_series(s, self.watermark - self.lateness)
                self._cover(s, len(self.widths) - 1, lo, hi, acc)
            return acc.count, acc.sum, acc.min, acc.max, acc.sketch

    def windows(self, groups, lo, hi, qs):
        """Many :meth:`window` calls at once: ``(count, sum, min, max,
        quantiles)`` columns, the quantiles ``qs[i]`` of each window flat in
        turn (see the compiled twin)."""
        lo = np.asarray(lo, dtype=np.int64)
        hi = np.asarray(hi, dtype=np.int64)
        n = len(groups)
        if lo.shape != (n,) or hi.shape != (n,) or len(qs) != n:
            raise ValueError(f"groups, lo, hi and qs must have one entry per window, got "
                             f"{n}, {lo.shape[0]}, {hi.shape[0]}, {len(qs)}")
        counts = np.zeros(n, dtype=np.int64)
        sums, mins, maxs = np.empty(n), np.empty(n), np.empty(n)
        quants = []
        for i in range(n):
            counts[i], sums[i], mins[i], maxs[i], sketch = self.window(groups[i], int(lo[i]),
                                                                       int(hi[i]))
            quants.extend(sketch.quantile(q) for q in qs[i])
        return counts, sums, mins, maxs, np.array(quants, dtype=np.float64)

    def _cover(self, s: _Series, level: int, lo: int, hi: int, acc: _Bucket) -> None:
        if lo >= hi:
            return
        if level == 0:
            ring = s.rings[0]
            for p in ring.span(lo, min(hi, s.closed_until)):
                self._absorb_slot(ring, p, acc)
            for idx in sorted(s.open0):
                if lo <= idx < hi:
                    b = s.open0[idx]
                    acc.absorb(b.count, b.sum, b.min, b.max, b.sketch)
            return
        r = self.ratios[level]
        first = -((-lo) // r)       # first whole bucket of this level
        last = hi // r              # one past the last whole bucket
        if first >= last:
            self._cover(s, level - 1, lo, hi, acc)
            return
        self._cover(s, level - 1, lo, first * r, acc)
        closed = min(last, s.closed_until // r)   # buckets < closed are closed
        ring = s.rings[level]
        kept_from = ring.gone + 1
        # closed buckets still held at this level answer for themselves;
        # the rest (open, or evicted here) is asked of the finer level.
        j = first
        if j < max(kept_from, first):
            self._cover(s, level - 1, j * r, min(max(kept_from, first), last) * r, acc)
            j = max(kept_from, first)
        if j < closed:
            for p in ring.span(j, closed):
                self._absorb_slot(ring, p, acc)
            j = closed
        if j < last:
            self._cover(s, level - 1, j * r, last * r, acc)
        self._cover(s, level - 1, last * r, hi, acc)

    def _absorb_slot(self, ring: _Ring, p: int, acc: _Bucket) -> None:
        acc.absorb(ring.count[p], ring.sum[p], ring.min[p], ring.max[p],
                   self._slot_sketch(ring, p))

    def _slot_sketch(self, ring: _Ring, p: int) -> Sketch:
        sk = self._new_sketch()
        sk._load_body(ring.body[p], 0, ring.collapses[p], ring.count[p], strict_end=True)
        sk.count, sk.sum, sk.min, sk.max = ring.count[p], ring.sum[p], ring.min[p], ring.max[p]
        return sk

    def buckets(self, sid: int, level: int, lo: int, hi: int):
        """Buckets of ``level`` with ``lo <= idx < hi``: closed ones from the
        ring, then the still-open ones (built from finer data).

        Returns ``(idx, count, sum, min, max, closed, sketches)``: numpy
        columns plus a list of :class:`Sketch`.
        """
        with self.lock:
            if not 0 <= sid < len(self._series):
                raise KeyError(f"unknown series id {sid}")
            s = self._series[sid]
            self._advance_series(s, self.watermark - self.lateness)
            r = self.ratios[level]
            closed = s.closed_until // r
            rows = []
            ring = s.rings[level]
            for p in ring.span(lo, min(hi, closed)):
                rows.append((ring.idx[p], ring.count[p], ring.sum[p], ring.min[p], ring.max[p],
                             True, self._slot_sketch(ring, p)))
            newest = max(s.open0) if s.open0 else s.closed_until - 1
            top = min(hi, newest // r + 1)
            for j in range(max(lo, closed), top):
                acc = _Bucket(j, self._new_sketch())
                self._cover(s, max(level - 1, 0), j * r, (j + 1) * r, acc)
                if acc.count:
                    rows.append((j, acc.count, acc.sum, acc.min, acc.max, False, acc.sketch))
            return _columns(rows)

    # -- exact mode, gauges -------------------------------------------------
    def exact_values(self, sid: int, lo_ts: float, hi_ts: float):
        """Raw points with ``lo_ts < ts <= hi_ts`` kept by the exact ring,
        in arrival order, and whether the ring still holds every such point."""
        with self.lock:
            s = self._series[sid]
            n = min(s.exact_n, s.exact_cap)
            order = (np.arange(n) + (s.exact_head - n)) % s.exact_cap if s.exact_cap else \
                np.empty(0, dtype=np.int64)
            ts = s.exact_ts[order]
            vals = s.exact_val[order]
            complete = s.exact_n <= s.exact_cap or (n > 0 and ts.min() <= lo_ts)
            mask = (ts > lo_ts) & (ts <= hi_ts)
            return ts[mask].copy(), vals[mask].copy(), bool(complete)

    def last(self, sid: int) -> tuple[float, float]:
        s = self._series[sid]
        return s.last_value, s.last_ts

    # -- outbox -------------------------------------------------------------
    def drain(self):
        """Closed buckets since the last drain (when the outbox is enabled).

        Returns ``(sid, level, idx, count, sum, min, max, sketch_bytes)``:
        numpy columns and a list of full sketch serialisations.
        """
        with self.lock:
            items, self._outbox = self._outbox, []
        n = len(items)
        sid = np.empty(n, dtype=np.int64)
        level = np.empty(n, dtype=np.int32)
        idx = np.empty(n, dtype=np.int64)
        count = np.empty(n, dtype=np.int64)
        tot = np.empty(n, dtype=np.float64)
        lo = np.empty(n, dtype=np.float64)
        hi = np.empty(n, dtype=np.float64)
        blobs = []
        for i, (s, lv, b) in enumerate(items):
            sid[i], level[i], idx[i], count[i] = s.sid, lv, b.idx, b.count
            tot[i], lo[i], hi[i] = b.sum, b.min, b.max
            blobs.append(b.sketch.to_bytes())
        return sid, level, idx, count, tot, lo, hi, blobs

    def memory_bytes(self) -> int:
        total = 0
        for s in self._series:
            total += 64 + s.exact_cap * 16
            for ring in s.rings:
                total += ring.nbytes()
            total += sum(SLOT_BYTES + 4 * b.sketch.num_bins for b in s.open0.values())
        return total


def _columns(rows):
    n = len(rows)
    idx = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
    count = np.fromiter((r[1] for r in rows), dtype=np.int64, count=n)
    tot = np.fromiter((r[2] for r in rows), dtype=np.float64, count=n)
    lo = np.fromiter((r[3] for r in rows), dtype=np.float64, count=n)
    hi = np.fromiter((r[4] for r in rows), dtype=np.float64, count=n)
    closed = np.fromiter((r[5] for r in rows), dtype=bool, count=n)
    return idx, count, tot, lo, hi, closed, [r[6] for r in rows]


class Handle:
    """Recording handle of one series (pure-Python twin of ``_core.Handle``).

    Made by ``MetricsEngine.series``; the engine is the only caller of the
    constructor.  ``max_future`` bounds how far a timestamp may run ahead
    of the clock; ``refused`` is the engine's list, by outcome code, of
    points refused with an exception (the core counts every refusal, so
    what was dropped silently is the difference).
    """

    __slots__ = ("_core", "id", "name", "labels", "kind", "_clock", "_raise_invalid",
                 "_raise_late", "_max_future", "_refused_counts", "__weakref__")

    def __init__(self, core: Core, sid: int, name: str, labels: dict, kind: str, clock,
                 raise_invalid: bool, raise_late: bool, max_future: float = math.inf,
                 refused: list | None = None) -> None:
        self._core = core
        self.id = sid
        self.name = name
        self.labels = labels
        self.kind = kind
        self._clock = clock
        self._raise_invalid = raise_invalid
        self._raise_late = raise_late
        self._max_future = float(max_future)
        self._refused_counts = refused if refused is not None else [0] * len(REASONS)

    def record(self, value, ts=None) -> None:
        """Record ``value`` at ``ts`` (default: the engine's now, the later
        of its clock and the newest timestamp recorded)."""
        core = self._core
        v = value if type(value) is float else _points.real_value(value)
        if v is None:
            self._refuse(BAD_VALUE, _points.value_problem(value))
            return
        if ts is None:
            t = self._clock.now()
            if t < core.watermark:
                t = core.watermark
        else:
            t = ts if type(ts) is float else _points.seconds(ts)
            if t is None:
                self._refuse(BAD_TS, _points.timestamp_problem(ts))
                return
            # a point no newer than the newest accepted one cannot be too far ahead
            if t > core.watermark and self._max_future != math.inf and \
                    t > self._clock.now() + self._max_future:
                self._refuse(BAD_TS, f"timestamp {t!r} is more than max_future="
                                     f"{self._max_future:g}s ahead of the clock")
                return
        if self.kind == "counter" and v < 0.0:
            code = NEGATIVE_INCREMENT
            core.count_drop(code)
        else:
            code = core.record(self.id, v, t)
        if code:
            self._refused(code, v, t)

    def _refuse(self, code: int, problem: str) -> None:
        """A point refused before the core saw it: counted, raised by policy."""
        self._core.count_drop(code)
        if self._raise_invalid:
            self._count_raised(code)
            raise errors.InvalidPointError(f"{self.name}: {problem}")

    def _count_raised(self, code: int) -> None:
        with self._core.lock:
            self._refused_counts[code] += 1

    def _refused(self, code: int, v: float, t: float) -> None:
        if code == LATE:
            if self._raise_late:
                self._count_raised(code)
                raise errors.LatePointError(late_message(self.name, t, self._core))
        elif self._raise_invalid:
            self._count_raised(code)
            if code == CLOSED:
                raise errors.EngineClosedError(
                    f"{self.name}: the engine is closed and records nothing more")
            what = {BAD_VALUE: f"value must be finite, got {v!r}",
                    BAD_TS: f"timestamp must be finite and in range, got {t!r}",
                    NEGATIVE_INCREMENT: f"counter increments must be >= 0, got {v!r}"}[code]
            raise errors.InvalidPointError(f"{self.name}: {what}")

    def inc(self, n=1.0, ts=None) -> None:
        """Counter increment (``n >= 0``)."""
        self.record(n, ts)

    def set(self, value, ts=None) -> None:
        """Gauge update: records ``value`` and keeps it as the current value."""
        self.record(value, ts)

    @property
    def value(self) -> float:
        """Last recorded value (NaN before the first point)."""
        return self._core.last(self.id)[0]

    def __repr__(self) -> str:
        labels = ",".join(f"{k}={v!r}" for k, v in sorted(self.labels.items()))
        return f"<{self.kind} {self.name}{{{labels}}} id={self.id}>"


def late_message(name: str, t: float, core) -> str:
    """Why a point was late, in the words both twins use."""
    return (f"{name}: point at ts={t!r} is too old: its bucket already closed "
            f"(more than lateness={core.lateness:g}s behind now={core.watermark!r})")


class LabelIndex:
    """``(name, labels dict) -> handle`` for per-call label resolution
    (pure-Python twin of ``_core.LabelIndex``).

    Label order does not matter.  ``find`` answers ``None`` for anything it
    has not been given with ``add``, including labels that are not a dict
    or hold unhashable values: the caller's slow path validates those.
    """

    __slots__ = ("_map",)

    def __init__(self) -> None:
        self._map: dict = {}

    def find(self, name, labels):
        if labels and type(labels) is not dict:
            return None
        try:
            return self._map.get((name, frozenset(labels.items()) if labels else frozenset()))
        except TypeError:           # unhashable name or value: never added
            return None

    def add(self, name, labels, handle) -> None:
        self._map[(name, frozenset(labels.items()) if labels else frozenset())] = handle

    def __len__(self) -> int:
        return len(self._map)
