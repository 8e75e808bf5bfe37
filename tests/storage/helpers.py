"""Synthetic closed buckets for storage tests (real sketches of known values)."""
from __future__ import annotations

import numpy as np

import wedmetrics as wm
from wedmetrics.buckets import BucketBatch, SeriesKey


def make_batch(rows, keys: dict) -> BucketBatch:
    """``rows``: (local id, width, start, values list); ``keys``: local id -> SeriesKey."""
    sketches, count, total, lo, hi = [], [], [], [], []
    for _, _, _, values in rows:
        s = wm.Sketch(0.01)
        for v in values:
            s.add(v)
        sketches.append(s.to_bytes())
        count.append(len(values))
        total.append(float(sum(values)))
        lo.append(float(min(values)))
        hi.append(float(max(values)))
    return BucketBatch(np.array([r[0] for r in rows], dtype=np.int64),
                       np.array([r[1] for r in rows], dtype=np.float64),
                       np.array([r[2] for r in rows], dtype=np.float64),
                       np.array(count, dtype=np.int64), np.array(total, dtype=np.float64),
                       np.array(lo, dtype=np.float64), np.array(hi, dtype=np.float64),
                       sketches, dict(keys))


def minute_batch(key: SeriesKey, start: float, n: int, seed: int = 0, local_id: int = 0,
                 width: float = 60.0) -> tuple[BucketBatch, np.ndarray]:
    """``n`` consecutive buckets of ``key`` with 5 random values each; returns the values too."""
    rng = np.random.default_rng(seed)
    values = rng.lognormal(0.0, 1.0, size=(n, 5))
    rows = [(local_id, width, start + i * width, values[i].tolist()) for i in range(n)]
    return make_batch(rows, {local_id: key}), values
