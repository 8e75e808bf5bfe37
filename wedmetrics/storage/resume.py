"""Restart: a new engine on an existing store picks up where the last one stopped.

Two steps, both at engine start:

* :func:`adopt_stored_series` registers every series the store holds for the
  engine's org, so ``query``, ``history``, ``buckets``, ``series_list`` and
  ``names`` answer for them by name before they are recorded again.  They
  are ordinary series of the engine (ids come from the same core, so they
  never collide with live ones) and keep their stored kind.
* :func:`resume_open_buckets` puts back, for each of those series, the
  buckets this writer stored under coarse buckets it never stored (the open
  minute, five minutes and hour of a process that was killed), so that
  those coarse buckets close complete.  What a ``kill -9`` then loses is
  only what had not reached the store at the finest level: the open and the
  unflushed 1 s buckets (at most the lateness plus the flush interval).

Resuming relies on two facts.  A writer stores a bucket only once it is
closed, so a stored row is complete; and the flusher writes closed buckets
in the order they closed, children before their parent, so per series the
stored rows of one writer are a prefix of what it closed: every row at a
level after the newest stored row one level up belongs to a parent never
stored.  Only this writer's rows are read (``only_writer``): another live
writer's open buckets are its own, and taking them would count them twice.
"""
from __future__ import annotations

import logging
import math

from .._kernels import Sketch
from ..buckets import SeriesKey

__all__ = ["adopt_stored_series", "resume_open_buckets", "RESUME_LOOKBACK"]

#: How far back (seconds) a restart looks for coarse buckets left open.
RESUME_LOOKBACK = 86_400.0

log = logging.getLogger("wedmetrics.storage")


def adopt_stored_series(engine) -> dict:
    """Register the stored series of ``engine.storage``; returns a report.

    Series beyond ``max_series_per_name`` of one name, or clashing with a
    series the engine already has (another kind), are left out and counted
    as ``skipped``: their history stays readable by name, since
    ``engine.history(name)`` also asks the store for its label sets.  A
    store that cannot be read is reported (``error``), never fatal: the
    engine starts empty and the flusher retries writes as usual.
    """
    report = {"series": 0, "skipped": 0, "error": None}
    try:
        keys = engine.storage.series_keys()
    except Exception as exc:   # the database is down: start anyway, say so
        report["error"] = f"series_keys: {exc!r}"
        log.warning("wedmetrics: could not read the stored series (%r); starting without them",
                    exc)
        return report
    for key in keys:
        if engine._registry.adopt(key.name, dict(key.labels), key.kind) is None:
            report["skipped"] += 1
        else:
            report["series"] += 1
    if report["skipped"]:
        log.warning("wedmetrics: %d stored series were not registered (cardinality cap or a "
                    "kind clash); their history stays readable by name", report["skipped"])
    return report


def resume_open_buckets(engine, lookback: float = RESUME_LOOKBACK,
                        since: float | None = None) -> dict:
    """Restore, from this writer's stored rows, the buckets under every coarse
    bucket it left open; returns a report (``buckets`` restored by
    resolution, ``series`` touched, ``error``).

    Call once at start, after :func:`adopt_stored_series` and before any
    point; then move the core to ``report["stored_until"]`` plus the
    lateness, so that a point for a bucket already stored is late, never
    stored twice.  The coarse buckets whose end has passed then close (and
    are stored by the flusher); the others stay open and keep filling.

    ``since`` reaches further back than ``lookback`` (a write-ahead log's
    oldest point).  ``report["covered"][key]`` is, per series key
    examined, the time before which this writer's store holds everything:
    a logged point older than that is already stored.
    """
    names = [n for n, _ in engine.resolutions]
    report = {"buckets": dict.fromkeys(names, 0), "series": 0, "error": None}
    covered: dict = {}
    storage, core = engine.storage, engine._core
    widths = [w for _, w in engine.resolutions]
    own = storage.writer_id
    now = engine.clock.now()
    top = widths[-1]
    lo = math.floor((now - lookback) / top) * top
    if since is not None and since < lo:
        lo = math.floor(since / top) * top
    hi = max(now, lo) + 1e9          # finite: every backend's time type holds it
    newest_end = -math.inf
    for h in engine.series_list():
        key = SeriesKey.of(h.name, h.labels, h.kind)
        try:
            per_level, covered[key] = _rows_to_restore(storage, key, widths, lo, hi, own)
        except Exception as exc:     # a store that fails mid-way: report, keep the rest
            report["error"] = f"read_buckets({key.name!r}): {exc!r}"
            log.warning("wedmetrics: resuming %r failed (%r); its open buckets start empty",
                        key.name, exc)
            continue
        touched = False
        for level in range(len(widths) - 2, -1, -1):     # coarse first, oldest first
            rows = per_level[level]
            for i in range(len(rows)):
                core.restore(h.id, level, int(round(rows.start[i] / widths[level])),
                             Sketch.from_bytes(rows.sketch[i]))
                newest_end = max(newest_end, float(rows.start[i]) + widths[level])
                report["buckets"][names[level]] += 1
                touched = True
        report["series"] += touched
    # the old run's horizon had passed every stored bucket; the engine moves
    # its own there (after replaying a write-ahead log, whose points one
    # series' stored prefix must not make late for another)
    report["stored_until"] = newest_end if newest_end > -math.inf else None
    report["covered"] = covered
    return report


def _rows_to_restore(storage, key: SeriesKey, widths: list, lo: float, hi: float,
                     own: int) -> list:
    """Per level below the coarsest, this writer's rows whose parent it never
    stored: those after the newest stored row one level up (the prefix rule);
    and the time before which everything of this writer is stored."""
    out = [None] * len(widths)
    since = lo
    for level in range(len(widths) - 1, -1, -1):
        rows = storage.read_buckets(key, widths[level], since, hi, only_writer=own)
        if level < len(widths) - 1:
            out[level] = rows
        if len(rows):
            since = max(since, float(rows.start[-1]) + widths[level])
    return out, since
