"""The series one tenant sees, across the live engine and the stores, and their numbers.

A series is identified by ``(name, labels)`` wherever it lives.  The live
engine answers from memory; each store answers from the buckets a fleet
flushed (rows of every writer merged, sketches merged), leaving out the rows
the live engine itself wrote, which memory already holds.  Both parts of one
series merge into one window: counts and sums add, min/max combine, sketches
merge, so a fleet's P95 is the P95 of all its points within alpha.

Only public APIs are used: ``engine.series_list/query/buckets/stats``,
``store.series_keys/read_buckets`` and :func:`wedmetrics.storage.base.merge_rows`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..aggregation import WindowStats
from ..buckets import SeriesKey
from ..storage.base import merge_rows
from .tenancy import ORG_LABEL, WEDDING_LABEL, Tenant

__all__ = ["Catalog", "SeriesRef", "STORE_WIDTHS"]

#: bucket widths read from stores for windows: whole minutes where the
#: writers have closed them, seconds at the edges
STORE_WIDTHS = (1.0, 60.0)
_QS = (0.5, 0.95, 0.99)
#: how long after a minute ends its 1 m bucket is surely stored (lateness + flush)
_SETTLE = 15.0


@dataclass
class SeriesRef:
    """One visible series: where its points are (a live handle, stores)."""

    name: str
    labels: dict
    kind: str
    handle: object = None
    stores: list = field(default_factory=list)

    @property
    def sort_key(self):
        return (self.name, sorted(self.labels.items()))


class Catalog:
    """Lists and reads the series of one hub for a tenant."""

    def __init__(self, hub) -> None:
        self.hub = hub

    # -- visibility ----------------------------------------------------------
    def wedding_org(self, labels: dict) -> str | None:
        wedding_id = labels.get(WEDDING_LABEL)
        calendar = self.hub.calendar
        if not wedding_id or calendar is None or wedding_id not in calendar:
            return None
        try:
            return calendar.get(wedding_id).org_id
        except KeyError:
            return None

    def labels_visible(self, tenant: Tenant, labels: dict, store_org: str | None = None) -> bool:
        """A tenant sees what carries its org, names one of its weddings, or was
        stored under its org."""
        if tenant.operator:
            return True
        return tenant.org in (labels.get(ORG_LABEL), store_org, self.wedding_org(labels))

    # -- selection -----------------------------------------------------------
    def select(self, tenant: Tenant, name: str | None, matchers=(), *,
               limit: int = 10_000) -> tuple[list[SeriesRef], bool]:
        """Visible series of ``name`` (or of every name) matching every matcher,
        sorted; and whether more than ``limit`` matched."""
        found: dict[tuple, SeriesRef] = {}
        engine = self.hub.engine
        if engine is not None:
            for h in engine.series_list(name) if name is not None else engine.series_list():
                labels = h.labels
                if self.labels_visible(tenant, labels) and _matches(matchers, labels):
                    key = (h.name, tuple(sorted(labels.items())))
                    found[key] = SeriesRef(h.name, dict(labels), h.kind, handle=h)
        for org, store in self.hub.stores.items():
            # every store is read: another org's store may still hold series labelled
            # with this tenant's org or weddings (one service writing for several)
            for key in store.series_keys(name):
                labels = dict(key.labels)
                if not self.labels_visible(tenant, labels, org) or not _matches(matchers, labels):
                    continue
                ref = found.get((key.name, key.labels))
                if ref is None:
                    ref = found[(key.name, key.labels)] = SeriesRef(key.name, labels, key.kind)
                ref.stores.append(store)
        refs = sorted(found.values(), key=lambda r: r.sort_key)
        return refs[:limit], len(refs) > limit

    # -- windows ---------------------------------------------------------------
    def windows(self, refs: list[SeriesRef], seconds: float, now: float) -> list[tuple]:
        """``(count, sum, min, max, p50, p95, p99, alpha)`` of each series over the last
        ``seconds``.  Series only the live engine holds are read in one batch call of
        the engine (``aggregation.read_windows``, as the alert engine reads its rules'
        windows); the others merge their live and stored parts one by one."""
        out: list = [None] * len(refs)
        live = [i for i, r in enumerate(refs) if r.handle is not None and not r.stores]
        if live:
            engine = self.hub.engine
            width = engine.resolutions[0][1]
            hi = math.floor(now / width) + 1
            lo = hi - max(1, math.ceil(seconds / width - 1e-9))
            n = len(live)
            count, total, mins, maxs, qs = engine.aggregation.read_windows(
                [[refs[i].handle.id] for i in live], np.full(n, lo, dtype=np.int64),
                np.full(n, hi, dtype=np.int64), np.full(n, now, dtype=np.float64),
                [_QS] * n)
            qs = np.asarray(qs, dtype=np.float64).reshape(n, len(_QS))
            for j, i in enumerate(live):
                out[i] = (int(count[j]), float(total[j]), float(mins[j]), float(maxs[j]),
                          *qs[j].tolist(), engine.alpha)
        for i, r in enumerate(refs):
            if out[i] is None:
                w = self.window(r, seconds, now)
                out[i] = (w.count, w.sum, w.min, w.max, w.p50, w.p95, w.p99, w.alpha)
        return out

    def window(self, ref: SeriesRef, seconds: float, now: float) -> WindowStats:
        """Statistics of the last ``seconds`` of one series, live and stored merged."""
        parts = []
        if ref.handle is not None:
            parts.append(self.hub.engine.query(ref.handle, last=seconds))
        if ref.stores:
            key = SeriesKey.of(ref.name, ref.labels, ref.kind)
            for store in ref.stores:
                parts.append(self._stored_window(store, key, now - seconds, now))
        return _merge_windows(parts, now - seconds, now)

    def _stored_window(self, store, key: SeriesKey, start: float, end: float) -> WindowStats:
        fine, coarse = STORE_WIDTHS
        # whole minutes that every writer has surely closed and flushed, seconds elsewhere
        lo = math.ceil(start / coarse) * coarse
        hi = max(lo, math.floor((end - _SETTLE) / coarse) * coarse)
        pieces = [(fine, start, lo), (coarse, lo, hi), (fine, hi, end + fine)]
        count, total, mins, maxs, sketches = [], [], [], [], []
        skip = self.hub.live_writer
        for width, a, b in pieces:
            if b <= a:
                continue
            batch = store.read_buckets(key, width, a, b, exclude_writer=skip)
            count.extend(batch.count.tolist())
            total.extend(batch.sum.tolist())
            mins.extend(batch.min.tolist())
            maxs.extend(batch.max.tolist())
            sketches.extend(batch.sketch)
        return merge_rows(count, total, mins, maxs, sketches, start, end)

    # -- buckets ---------------------------------------------------------------
    def buckets(self, ref: SeriesRef, width: float, start: float, end: float) -> list[dict]:
        """Buckets of one series and width with ``start <= bucket start < end``,
        live and stored rows of one start merged."""
        rows: dict[float, list] = {}

        def add(s, count, total, lo, hi, sketch):
            row = rows.setdefault(s, [0, 0.0, math.inf, -math.inf, None])
            row[0] += count
            row[1] += total
            if count:       # a row without points has no meaningful min/max
                row[2], row[3] = min(row[2], lo), max(row[3], hi)
                row[4] = sketch if row[4] is None else row[4].merge(sketch)

        if ref.handle is not None and width in self.hub.live_widths:
            cols = self.hub.engine.buckets(ref.handle, width, start, end)
            for i in range(len(cols)):
                add(float(cols["start"][i]), int(cols["count"][i]), float(cols["sum"][i]),
                    float(cols["min"][i]), float(cols["max"][i]), cols["sketch"][i].copy())
        if ref.stores:
            from .. import Sketch

            key = SeriesKey.of(ref.name, ref.labels, ref.kind)
            for store in ref.stores:
                batch = store.read_buckets(key, width, start, end,
                                           exclude_writer=self.hub.live_writer)
                for i in range(len(batch)):
                    add(float(batch.start[i]), int(batch.count[i]), float(batch.sum[i]),
                        float(batch.min[i]), float(batch.max[i]),
                        Sketch.from_bytes(batch.sketch[i]))
        out = []
        for s in sorted(rows):
            count, total, lo, hi, sketch = rows[s]
            qs = sketch.quantiles((0.5, 0.95, 0.99)) if count and sketch is not None \
                else (math.nan,) * 3
            out.append({"start": s, "count": count, "sum": total,
                        "min": lo if count else None, "max": hi if count else None,
                        "mean": total / count if count else None,
                        "p50": qs[0], "p95": qs[1], "p99": qs[2]})
        return out


def _matches(matchers, labels: dict) -> bool:
    return all(m.matches(labels) for m in matchers)


def _merge_windows(parts: list[WindowStats], start: float, end: float) -> WindowStats:
    parts = [p for p in parts if p.count]
    if not parts:
        return WindowStats(0, 0.0, math.nan, math.nan, start, end, None)
    if len(parts) == 1:
        return parts[0]
    sketch = None
    for p in parts:
        if p.sketch is not None:
            sketch = p.sketch.copy() if sketch is None else sketch.merge(p.sketch)
    return WindowStats(sum(p.count for p in parts), sum(p.sum for p in parts),
                       min(p.min for p in parts), max(p.max for p in parts), start, end, sketch)
