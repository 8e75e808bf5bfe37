"""Window queries over the bucket core: sliding "last 5m" windows and bucket listings."""
from __future__ import annotations

import math

import numpy as np

from ._kernels import Handle
from .clock import parse_duration
from .errors import UnknownSeriesError

__all__ = ["AggregationEngine", "WindowStats", "Columns"]


class WindowStats:
    """Statistics of the points in one window.

    ``count``, ``sum``, ``min`` and ``max`` are exact.  Percentiles come
    from the merged sketch (relative error at most ``alpha``), or are exact
    when ``exact`` is true (series in exact mode whose raw ring still holds
    the whole window).  Percentiles follow numpy's ``method="lower"``: the
    value of rank ``floor(q (n - 1))``.  Empty windows give NaN statistics
    and ``count == 0``.
    """

    __slots__ = ("count", "sum", "min", "max", "start", "end", "exact", "_sketch", "_sorted")

    def __init__(self, count, total, lo, hi, start, end, sketch=None, sorted_values=None):
        self.count = int(count)
        self.sum = float(total) if count else 0.0
        self.min = float(lo) if count else math.nan
        self.max = float(hi) if count else math.nan
        self.start = start
        self.end = end
        self._sketch = sketch
        self._sorted = sorted_values
        self.exact = sorted_values is not None

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else math.nan

    @property
    def alpha(self) -> float:
        """Relative error bound of the percentiles (0 when exact)."""
        if self.exact:
            return 0.0
        return self._sketch.alpha if self._sketch is not None else math.nan

    @property
    def sketch(self):
        """The merged sketch of the window (``None`` for exact windows)."""
        return self._sketch

    def quantile(self, q: float) -> float:
        if not self.count:
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"quantile must be in [0, 1], got {q!r}")
            return math.nan
        if self._sorted is not None:
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"quantile must be in [0, 1], got {q!r}")
            return float(self._sorted[int(math.floor(q * (self.count - 1)))])
        return self._sketch.quantile(q)

    @property
    def p50(self) -> float:
        return self.quantile(0.5)

    @property
    def p95(self) -> float:
        return self.quantile(0.95)

    @property
    def p99(self) -> float:
        return self.quantile(0.99)

    def get(self, stat: str) -> float:
        """A statistic by name: count, sum, min, max, mean, p50, p95, p99,
        or ``pNN``/``pNN.N`` for any percentile."""
        if stat in ("count", "sum", "min", "max", "mean", "p50", "p95", "p99"):
            return float(getattr(self, stat))
        if stat.startswith("p"):
            try:
                q = float(stat[1:]) / 100.0
            except ValueError:
                pass
            else:
                if 0.0 <= q <= 1.0:
                    return self.quantile(q)
        raise ValueError(f"unknown statistic {stat!r}: use count, sum, min, max, mean or pNN")

    def to_dict(self) -> dict:
        return {"count": self.count, "sum": self.sum, "min": self.min, "max": self.max,
                "mean": self.mean, "p50": self.p50, "p95": self.p95, "p99": self.p99,
                "start": self.start, "end": self.end, "exact": self.exact}

    def __repr__(self) -> str:
        return (f"WindowStats(count={self.count}, mean={self.mean:.6g}, p50={self.p50:.6g}, "
                f"p95={self.p95:.6g}, p99={self.p99:.6g}, max={self.max:.6g})")


class Columns(dict):
    """Named numpy columns; attribute access and ``to_frame()`` for pandas users."""

    __getattr__ = dict.__getitem__

    def __len__(self) -> int:  # rows, not columns
        first = next(iter(self.values()), None)
        return 0 if first is None else int(len(first))

    def to_frame(self):
        import pandas as pd  # optional, imported only when asked for

        return pd.DataFrame({k: v for k, v in self.items()})


class AggregationEngine:
    """Answers window and bucket queries for a :class:`~wedmetrics.MetricsEngine`.

    Reached as ``engine.aggregation``; the engine's ``query`` and ``buckets``
    delegate here.
    """

    def __init__(self, core, registry, now, resolutions: list[tuple[str, float]],
                 exact_ids: set) -> None:
        self._core = core
        self._exact_ids = exact_ids
        self._registry = registry
        self._now = now
        self.resolutions = list(resolutions)          # [(name, width seconds)]
        self._width0 = resolutions[0][1]
        # per level: (ratio to the finest, width, buckets of it a window may start back)
        self._held = [(ratio, self._width0 * ratio,
                       retention - math.ceil(core.lateness / (self._width0 * ratio)) - 2)
                      for ratio, retention in zip(core.ratios, core.retention)]

    # -- resolving ------------------------------------------------------
    def handles(self, target, labels=None) -> list:
        """Series handles a query target stands for."""
        if type(target) is Handle:
            return [self._registry.by_id(target.id)]
        if isinstance(target, str):
            return self._registry.matching(target, labels)
        if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
            return [self._registry.by_id(int(target))]
        if hasattr(target, "id") and hasattr(target, "record"):
            return [self._registry.by_id(target.id)]
        if isinstance(target, (list, tuple)):
            out = []
            for t in target:
                out.extend(self.handles(t, labels))
            return out
        raise TypeError(f"query target must be a handle, series id or metric name, got {target!r}")

    def level_of(self, resolution) -> tuple[int, float]:
        """Index and width of a resolution given as "1m", 60 or "60s"."""
        width = parse_duration(resolution)
        for i, (_, w) in enumerate(self.resolutions):
            if w == width:
                return i, w
        names = ", ".join(n for n, _ in self.resolutions)
        raise ValueError(f"no {resolution!r} resolution; this engine keeps {names}")

    # -- queries ----------------------------------------------------------
    def window(self, target, last="1m", labels=None, *, end=None) -> WindowStats:
        """Statistics over the window ``(end - last, end]``.

        The window is made of whole finest buckets: the ``ceil(last / w)``
        buckets of width ``w`` ending with the one that holds ``end``
        (default: now).  A window reaching past the finest resolution's
        retention starts at the boundary of the finest resolution that still
        holds its start; ``WindowStats.start`` says where it began.
        """
        span = parse_duration(last)
        if span <= 0:
            raise ValueError(f"window length must be > 0, got {last!r}")
        now = self._now() if end is None else float(end)
        w0 = self._width0
        hi = math.floor(now / w0) + 1
        lo = self._held_start(hi - max(1, math.ceil(span / w0 - 1e-9)), now)
        sids = [h.id for h in self.handles(target, labels)]
        count, total, mn, mx, sketch = self._core.window(sids, lo, hi)
        exact = self._exact(sids, lo * w0, hi * w0) if count else None
        return WindowStats(count, total, mn, mx, lo * w0, hi * w0, sketch, exact)

    def read_windows(self, groups, lo, hi, end, qs):
        """Merge, in one core call, window ``i``: the finest buckets
        ``lo[i] <= idx < hi[i]`` of the series ids ``groups[i]``, its start
        aligned as in :meth:`window` for ``end[i]``, and answer its quantiles
        ``qs[i]``.  The batch form the alert engine uses: no target
        resolution, no exact-mode check.  Returns ``(count, sum, min, max,
        quantiles)``: columns, and every window's quantiles flat in turn."""
        return self._core.windows(groups, self._held_start_many(lo, end), hi, qs)

    def is_exact(self, sid: int) -> bool:
        """Whether the series keeps raw points (``exact=N``)."""
        return sid in self._exact_ids

    def _held_start(self, lo: int, now: float) -> int:
        """Align a window start older than the finest retention to the finest
        resolution still holding it (the window grows by under one of its
        buckets rather than silently losing its oldest edge)."""
        for ratio, width, back in self._held:
            if lo // ratio >= math.floor(now / width) - back:
                return (lo // ratio) * ratio
        return lo

    def _held_start_many(self, lo, now) -> np.ndarray:
        """:meth:`_held_start` of arrays ``lo`` and ``now``."""
        lo = np.asarray(lo, dtype=np.int64)
        now = np.asarray(now, dtype=np.float64)
        out = lo.copy()
        todo = np.ones(lo.shape, dtype=bool)
        for ratio, width, back in self._held:
            start = lo // ratio
            held = todo & (start >= np.floor(now / width) - back)
            out[held] = start[held] * ratio
            todo &= ~held
            if not todo.any():
                break
        return out

    def _exact(self, sids, lo_ts, hi_ts):
        """Sorted raw values of the window when every series holds them all."""
        if not self._exact_ids or not all(s in self._exact_ids for s in sids):
            return None
        parts = []
        for sid in sids:
            # exact rings are kept at bucket granularity, like the window
            ts, vals, complete = self._core.exact_values(sid, lo_ts - 1e-9 * abs(lo_ts), hi_ts)
            if not complete:
                return None
            parts.append(vals[(ts >= lo_ts) & (ts < hi_ts)])
        return np.sort(np.concatenate(parts))

    def buckets(self, target, resolution="1m", start=None, end=None, labels=None) -> Columns:
        """Buckets of one resolution that overlap ``[start, end)``: the one
        holding ``start`` (which may begin before it) up to the last one
        beginning before ``end``, so the points of a span are all in the
        buckets listed for it, at every resolution.

        Closed buckets come from memory; buckets still open are built from
        finer data and marked ``closed=False``.  With several series the
        buckets are merged per bucket start.
        """
        level, width = self.level_of(resolution)
        now = self._now()
        end = now if end is None else float(end)
        start = end - 3600.0 if start is None else float(start)
        lo = math.floor(start / width)
        hi = math.ceil(end / width) if end != now else math.floor(now / width) + 1
        handles = self.handles(target, labels)
        parts = [self._core.buckets(h.id, level, lo, hi) for h in handles]
        if len(parts) == 1:
            idx, count, total, mn, mx, closed, sketches = parts[0]
        else:
            idx, count, total, mn, mx, closed, sketches = _merge_bucket_lists(parts)
        qs = np.array([s.quantiles((0.5, 0.95, 0.99)) for s in sketches],
                      dtype=np.float64).reshape(len(sketches), 3)
        return Columns(start=idx * width, count=count, sum=total, min=mn, max=mx,
                       p50=qs[:, 0], p95=qs[:, 1], p99=qs[:, 2], closed=closed,
                       sketch=np.array(sketches, dtype=object))


def _merge_bucket_lists(parts):
    merged: dict[int, list] = {}
    for idx, count, total, mn, mx, closed, sketches in parts:
        for i in range(len(idx)):
            j = int(idx[i])
            row = merged.get(j)
            if row is None:
                merged[j] = [int(count[i]), float(total[i]), float(mn[i]), float(mx[i]),
                             bool(closed[i]), sketches[i].copy()]
            else:
                row[0] += int(count[i])
                row[1] += float(total[i])
                row[2] = min(row[2], float(mn[i]))
                row[3] = max(row[3], float(mx[i]))
                row[4] = row[4] and bool(closed[i])
                row[5].merge(sketches[i])
    keys = sorted(merged)
    rows = [merged[k] for k in keys]
    return (np.array(keys, dtype=np.int64), np.array([r[0] for r in rows], dtype=np.int64),
            np.array([r[1] for r in rows], dtype=np.float64),
            np.array([r[2] for r in rows], dtype=np.float64),
            np.array([r[3] for r in rows], dtype=np.float64),
            np.array([r[4] for r in rows], dtype=bool), [r[5] for r in rows])
