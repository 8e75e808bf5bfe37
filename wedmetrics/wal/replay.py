"""Replay at start: the points an earlier engine logged and the store does not hold yet."""
from __future__ import annotations

import math

import numpy as np

from ..buckets import SeriesKey

__all__ = ["replay"]


def replay(engine, logged, covered: dict, report: dict) -> None:
    """Record again, in log order, every logged point the store does not hold.

    ``logged`` is what :meth:`WriteAheadLog.recorded` yields; ``covered`` maps
    a series key to the time before which this writer's store holds all of
    it (``resume_open_buckets``): older points are counted ``already_stored``
    and skipped, so nothing is counted twice.  Call with the log off (the
    old segments stay until the store holds their points) and before the
    watermark moves past the restored buckets.  Counts go to ``report``.
    """
    core = engine._core
    report.setdefault("refused", 0)
    for keys_by_id, recs in logged:
        old_ids = recs["sid"].astype(np.int64)
        uniq = np.unique(old_ids)
        new_of = np.full(len(uniq), -1, dtype=np.int64)
        since_of = np.full(len(uniq), math.inf)
        for i, old in enumerate(uniq.tolist()):
            key = keys_by_id.get(old)
            if key is None:
                continue           # no series line for it: hostile or corrupted, counted
            name, labels, kind = key
            h = engine._registry.adopt(name, labels, kind)
            if h is None:
                continue
            new_of[i] = h.id
            since_of[i] = covered.get(SeriesKey.of(name, labels, kind), -math.inf)
        pos = np.searchsorted(uniq, old_ids)
        ids, since = new_of[pos], since_of[pos]
        known = ids >= 0
        fresh = known & (recs["ts"] >= since)
        report["unknown_series"] += int((~known).sum())
        report["already_stored"] += int((known & ~fresh).sum())
        if fresh.any():
            counts = core.record_many(ids[fresh], np.ascontiguousarray(recs["ts"][fresh]),
                                      np.ascontiguousarray(recs["value"][fresh]))
            report["replayed"] += int(counts[0])
            report["refused"] += int(sum(counts[1:]))
