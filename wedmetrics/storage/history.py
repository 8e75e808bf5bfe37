"""History: buckets from storage merged with those the engine still holds in memory."""
from __future__ import annotations

import math

import numpy as np

from .._kernels import Sketch
from ..aggregation import Columns
from ..buckets import BucketBatch, SeriesKey

__all__ = ["merge_history", "history_columns", "fleet_window", "FLEET_SETTLE"]


def merge_history(stored: BucketBatch, memory: BucketBatch) -> BucketBatch:
    """Rows of ``stored`` and ``memory``; on the same (series key, width, start)
    the memory row wins (it is the same bucket, possibly still growing).

    Series are matched by :class:`~wedmetrics.SeriesKey`, never by id: the two
    batches come from different id spaces.  The result uses ``memory``'s ids
    (and new ids for series only in storage) and is sorted by key order of
    appearance, then start.
    """
    keys: dict[SeriesKey, int] = {}
    for sid, key in memory.keys.items():
        keys.setdefault(key, int(sid))
    next_id = max(keys.values(), default=-1) + 1
    for key in stored.keys.values():
        if key not in keys:
            keys[key] = next_id
            next_id += 1
    rows: dict[tuple, tuple] = {}
    for batch, wins in ((stored, False), (memory, True)):
        for i in range(len(batch)):
            key = batch.keys[int(batch.series[i])]
            ident = (keys[key], float(batch.width[i]), float(batch.start[i]))
            if wins or ident not in rows:
                rows[ident] = (int(batch.count[i]), float(batch.sum[i]), float(batch.min[i]),
                               float(batch.max[i]), batch.sketch[i])
    order = sorted(rows)
    n = len(order)
    if not n:
        return BucketBatch.empty()
    vals = [rows[k] for k in order]
    return BucketBatch(
        np.array([k[0] for k in order], dtype=np.int64),
        np.array([k[1] for k in order], dtype=np.float64),
        np.array([k[2] for k in order], dtype=np.float64),
        np.array([v[0] for v in vals], dtype=np.int64),
        np.array([v[1] for v in vals], dtype=np.float64),
        np.array([v[2] for v in vals], dtype=np.float64),
        np.array([v[3] for v in vals], dtype=np.float64),
        [v[4] for v in vals],
        {sid: key for key, sid in keys.items() if sid in {k[0] for k in order}})


def history_columns(engine, target, resolution, start, end,
                    memory: Columns | None, labels: dict | None = None) -> Columns:
    """``engine.history``: stored buckets of ``target`` merged with ``memory``.

    Merging happens per series first (memory wins over this engine's own
    stored row of the same bucket start, since a bucket still in memory is at
    least as complete as its stored copy; rows other writers stored for that
    bucket are added to it), then across series per bucket start, merging
    sketches.  A metric
    name also covers label sets only storage knows (written by another
    process or an earlier run); ``memory`` is ``None`` for a name the engine
    has no series of.  Stored rows are ``closed=True``.
    """
    _, width = engine.aggregation.level_of(resolution)
    hi = engine.now() if end is None else float(end)
    lo = hi - 3600.0 if start is None else float(start)
    lo = math.floor(lo / width) * width      # the bucket holding the start, as engine.buckets
    from ..errors import UnknownSeriesError
    from .base import labels_match

    try:
        handles = engine.aggregation.handles(target, labels)
    except UnknownSeriesError:
        if not isinstance(target, str):
            raise
        handles = []
    per_key: dict[SeriesKey, Columns | None] = {}
    if len(handles) == 1 and memory is not None:
        h = handles[0]
        per_key[SeriesKey.of(h.name, h.labels, h.kind)] = memory
    else:
        for h in handles:
            per_key[SeriesKey.of(h.name, h.labels, h.kind)] = engine.aggregation.buckets(
                h, resolution, start, end)
    if isinstance(target, str):
        for key in engine.storage.series_keys(target):
            if labels_match(key.labels, labels):
                per_key.setdefault(key, None)
        if not per_key:
            raise UnknownSeriesError(f"no series named {target!r}, live or stored")
    own = getattr(engine.storage, "writer_id", None)
    merged: dict[float, list] = {}
    for key, mem in per_key.items():
        stored = engine.storage.read_buckets(key, width, lo, hi)
        in_memory = set(mem["start"].tolist()) if mem is not None else set()
        if in_memory and own is not None and len(stored):
            # a bucket still in memory replaces this engine's own stored row of
            # it, never the rows other writers (processes) stored for it
            others = engine.storage.read_buckets(key, width, lo, hi, exclude_writer=own)
            others = others.take(np.isin(others.start, list(in_memory)))
            kept = stored.take(~np.isin(stored.start, list(in_memory)))
            stored = BucketBatch.concat([kept, others])
        elif in_memory:
            stored = stored.take(~np.isin(stored.start, list(in_memory)))
        for i in range(len(stored)):
            _add(merged, float(stored.start[i]), int(stored.count[i]), float(stored.sum[i]),
                 float(stored.min[i]), float(stored.max[i]), True,
                 Sketch.from_bytes(stored.sketch[i]))
        if mem is not None:
            for i in range(len(mem)):
                _add(merged, float(mem["start"][i]), int(mem["count"][i]),
                     float(mem["sum"][i]), float(mem["min"][i]), float(mem["max"][i]),
                     bool(mem["closed"][i]), mem["sketch"][i].copy())
    starts = sorted(merged)
    rows = [merged[s] for s in starts]
    sketches = [r[5] for r in rows]
    qs = np.array([s.quantiles((0.5, 0.95, 0.99)) for s in sketches],
                  dtype=np.float64).reshape(len(rows), 3)
    sketch_col = np.empty(len(rows), dtype=object)
    sketch_col[:] = sketches
    return Columns(start=np.array(starts, dtype=np.float64),
                   count=np.array([r[0] for r in rows], dtype=np.int64),
                   sum=np.array([r[1] for r in rows], dtype=np.float64),
                   min=np.array([r[2] for r in rows], dtype=np.float64),
                   max=np.array([r[3] for r in rows], dtype=np.float64),
                   p50=qs[:, 0], p95=qs[:, 1], p99=qs[:, 2],
                   closed=np.array([r[4] for r in rows], dtype=bool), sketch=sketch_col)


def _add(merged: dict, start: float, count: int, total: float, lo: float, hi: float,
         closed: bool, sketch) -> None:
    row = merged.get(start)
    if row is None:
        merged[start] = [count, total, lo, hi, closed, sketch]
        return
    row[0] += count
    row[1] += total
    row[2] = min(row[2], lo)
    row[3] = max(row[3], hi)
    row[4] = row[4] and closed
    row[5].merge(sketch)


#: how long after a minute ends another writer's 1 m row of it is surely stored
#: (its lateness plus a flush): until then its seconds are read instead
FLEET_SETTLE = 15.0


def fleet_window(engine, target, last, labels, end) -> "WindowStats":
    """``engine.query(..., scope="fleet")``: the window over every writer of the store.

    Other writers' points come from the store (their 1 s rows at the edges of
    the window and in the last :data:`FLEET_SETTLE` seconds, their 1 m rows
    in between); this engine's own points come from the store up to the
    horizon its flusher has stored everything through, and from memory after
    it, so none is counted twice and its unflushed points are included.
    Counts, sums, min and max are exact; percentiles merge the sketches
    (within alpha).  The window is aligned as :meth:`AggregationEngine.window`
    aligns it.
    """
    from ..aggregation import WindowStats
    from ..clock import parse_duration
    from ..errors import UnknownSeriesError
    from .base import labels_match, merge_rows

    span = parse_duration(last)
    if span <= 0:
        raise ValueError(f"window length must be > 0, got {last!r}")
    w0 = engine.resolutions[0][1]
    now = engine.now() if end is None else float(end)
    hi_idx = math.floor(now / w0) + 1
    lo_idx = hi_idx - max(1, math.ceil(span / w0 - 1e-9))
    lo, hi = lo_idx * w0, hi_idx * w0
    try:
        handles = engine.aggregation.handles(target, labels)
    except UnknownSeriesError:
        if not isinstance(target, str):
            raise
        handles = []
    keys = {SeriesKey.of(h.name, h.labels, h.kind) for h in handles}
    store = engine.storage
    if isinstance(target, str):
        keys.update(k for k in store.series_keys(target) if labels_match(k.labels, labels))
    if not keys:
        raise UnknownSeriesError(f"no series named {target!r}, live or stored")
    own = store.writer_id
    through = engine._fleet_split()
    split = min(hi, max(lo, math.floor(through / w0) * w0)) if through > -math.inf else lo
    count, total, mins, maxs, sketches = [], [], [], [], []

    def take(batch):
        count.extend(batch.count.tolist())
        total.extend(batch.sum.tolist())
        mins.extend(batch.min.tolist())
        maxs.extend(batch.max.tolist())
        sketches.extend(batch.sketch)

    coarse = engine.resolutions[1][1] if len(engine.resolutions) > 1 else w0
    others_until = math.floor((hi - FLEET_SETTLE) / coarse) * coarse
    for key in keys:
        for width, a, b in _pieces(lo, hi, others_until, w0, coarse):
            take(store.read_buckets(key, width, a, b, exclude_writer=own))
        if split > lo:
            own_until = math.floor(split / coarse) * coarse
            for width, a, b in _pieces(lo, split, own_until, w0, coarse):
                take(store.read_buckets(key, width, a, b, only_writer=own))
    stored = merge_rows(count, total, mins, maxs, sketches, lo, hi)
    parts = [stored]
    if handles and split < hi:
        # exactly the finest buckets from the split on (no alignment to a coarser
        # level, which would reach back into what the store answered)
        c, t, mn, mx, sk = engine._core.window([h.id for h in handles],
                                               int(round(split / w0)), hi_idx)
        parts.append(WindowStats(c, t, mn, mx, split, hi, sk))
    n = sum(p.count for p in parts)
    if not n:
        return WindowStats(0, 0.0, math.nan, math.nan, lo, hi, None)
    sketch = None
    for p in parts:
        if p.count and p.sketch is not None:
            sketch = p.sketch.copy() if sketch is None else sketch.merge(p.sketch)
    with_points = [p for p in parts if p.count]
    return WindowStats(n, sum(p.sum for p in parts), min(p.min for p in with_points),
                       max(p.max for p in with_points), lo, hi, sketch)


def _pieces(lo: float, hi: float, coarse_until: float, fine: float, coarse: float) -> list:
    """``[lo, hi)`` as fine buckets at the edges and whole coarse ones (up to
    ``coarse_until``) in between: ``(width, start, end)`` pieces."""
    a = math.ceil(lo / coarse) * coarse
    b = max(a, min(coarse_until, math.floor(hi / coarse) * coarse))
    if a >= hi:
        return [(fine, lo, hi)]
    return [p for p in ((fine, lo, a), (coarse, a, b), (fine, b, hi)) if p[2] > p[1]]
