"""History: buckets from storage merged with those the engine still holds in memory."""
from __future__ import annotations

import math

import numpy as np

from .._kernels import Sketch
from ..aggregation import Columns
from ..buckets import BucketBatch, SeriesKey

__all__ = ["merge_history", "history_columns"]


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
                    memory: Columns | None) -> Columns:
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
    handles = engine.aggregation.handles(target, None) if memory is not None else []
    per_key: dict[SeriesKey, Columns | None] = {}
    if len(handles) == 1:
        h = handles[0]
        per_key[SeriesKey.of(h.name, h.labels, h.kind)] = memory
    else:
        for h in handles:
            per_key[SeriesKey.of(h.name, h.labels, h.kind)] = engine.buckets(
                h, resolution, start, end)
    if isinstance(target, str):
        for key in engine.storage.series_keys(target):
            per_key.setdefault(key, None)
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
