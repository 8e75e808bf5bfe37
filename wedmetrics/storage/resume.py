"""Restart: a new engine on an existing store picks up where the last one stopped.

Two steps, both at engine start:

* :func:`claim_writer` decides which writer the engine is.  Every engine
  holds a lease on its writer id in the store (``wm_writers``: host, pid,
  start time, heartbeat).  An engine without a fixed ``writer_id`` (and
  without a write-ahead log, which keeps its own) first looks for the lease
  of a writer that crashed: its process is gone (same host) or its heartbeat
  is older than :data:`~wedmetrics.storage.base.LEASE_TIMEOUT` (another
  host).  It adopts one such lease, atomically (two engines starting at once
  never adopt the same one), and writes as that writer from then on.
* :func:`resume_open_buckets` puts back, from the store, the buckets this
  writer stored under coarse buckets it never stored complete: the open
  minute, five minutes and hour of a process that was killed, and the
  buckets ``close()`` stored early, marked partial.  Those coarse buckets
  then close complete, and the partial rows are replaced by the fuller ones
  (the store replaces a writer's partial row with its later row of the same
  bucket).  What a ``kill -9`` then loses is only what had not reached the
  store at the finest level: the open and the unflushed 1 s buckets (at most
  the lateness plus the flush interval).

Resuming relies on two facts.  A writer stores a bucket complete only once
it is closed; and the flusher writes closed buckets in the order they
closed, children before their parent, so per series the stored rows of one
writer are a prefix of what it closed, with its partial rows (written last,
at ``close()``) at the end: every row at a level after the newest complete
row one level up belongs to a parent never stored complete.  Only this
writer's rows are read, with one query per resolution over the series it
stored (``wm_writer_series``): another live writer's open buckets are its
own, and taking them would count them twice.
"""
from __future__ import annotations

import logging
import math
import time

from .._kernels import Sketch
from .base import LEASE_TIMEOUT, lease_is_dead, new_writer_id, this_process

__all__ = ["claim_writer", "resume_open_buckets", "RESUME_LOOKBACK"]

#: How far back (seconds) a restart looks for coarse buckets left open.
RESUME_LOOKBACK = 86_400.0

log = logging.getLogger("wedmetrics.storage")


def claim_writer(storage, keep_id: int | None = None, timeout: float = LEASE_TIMEOUT) -> dict:
    """Take this engine's writer lease; returns a report (``writer_id``,
    ``adopted``: the crashed writer's id taken over, ``token``, ``error``).

    ``keep_id``: the id is given (a write-ahead log's); otherwise a backend
    whose ``writer_id`` was not fixed adopts one dead lease if there is any.
    Backends without leases (third-party ones) are left as they are.
    """
    report = {"writer_id": storage.writer_id, "adopted": None, "token": None, "error": None}
    if not hasattr(storage, "hold_lease"):
        return report
    if keep_id is not None:
        storage.writer_id = keep_id
    host, pid, token = this_process()
    now = time.time()
    try:
        if keep_id is None and not getattr(storage, "fixed_writer", True):
            dead = [lease for lease in storage.read_leases() if lease_is_dead(lease, now, timeout)]
            # the likeliest predecessor first: this host's, then the latest heartbeat
            dead.sort(key=lambda x: (x.host != host, -x.heartbeat))
            for lease in dead:
                if storage.hold_lease(lease.writer_id, host, pid, token, now, adopt=lease):
                    storage.writer_id = lease.writer_id
                    report["adopted"] = lease.writer_id
                    log.info("wedmetrics: adopted the lease of crashed writer %d (%s pid %d)",
                             lease.writer_id, lease.host, lease.pid)
                    break
        if report["adopted"] is None:
            storage.hold_lease(storage.writer_id, host, pid, token, now)
        report["token"] = token
    except Exception as exc:     # the database is down: start anyway, say so
        report["error"] = f"lease: {exc!r}"
        log.warning("wedmetrics: could not take a writer lease (%r); starting as writer %d",
                    exc, storage.writer_id)
    report["writer_id"] = storage.writer_id
    return report


def resume_open_buckets(engine, lookback: float = RESUME_LOOKBACK,
                        since: float | None = None, *, renew_id: bool = False) -> dict:
    """Restore, from this writer's stored rows, the buckets under every coarse
    bucket it left open or stored partial; returns a report (``buckets``
    restored by resolution, ``series`` touched, ``skipped`` beyond the
    cardinality cap, ``queries``, ``error``).

    Call once at start, before any point; then move the core to
    ``report["stored_until"]`` plus the lateness, so that a point for a
    bucket already stored is late, never stored twice.  The coarse buckets
    whose end has passed then close (and are stored by the flusher); the
    others stay open and keep filling.  The series resumed become live
    series of the engine (they are this writer's own).

    ``since`` reaches further back than ``lookback`` (a write-ahead log's
    oldest point).  ``report["covered"][key]`` is, per series key, the time
    before which this writer's store holds everything: a logged point older
    than that is already stored.  ``renew_id``: if the store cannot be
    read, write under a fresh writer id rather than risk replacing rows
    this writer cannot see.
    """
    names = [n for n, _ in engine.resolutions]
    report = {"buckets": dict.fromkeys(names, 0), "series": 0, "skipped": 0, "queries": 0,
              "error": None}
    storage, core = engine.storage, engine._core
    widths = [w for _, w in engine.resolutions]
    own = storage.writer_id
    now = engine.clock.now()
    top = len(widths) - 1
    lo = math.floor((now - lookback) / widths[-1]) * widths[-1]
    if since is not None and since < lo:
        lo = math.floor(since / widths[-1]) * widths[-1]
    hi = max(now, lo) + 1e9          # finite: every backend's time type holds it
    covered: dict = {}
    restore: dict = {}               # key -> per level [(start, sketch bytes)]
    report["stored_until"] = None
    report["covered"] = covered
    if not hasattr(storage, "read_writer_rows"):
        return report
    try:
        bounds = {key: lo for key in storage.writer_series(own)}
        report["queries"] += 1
        for level in range(top, -1, -1):        # coarse first
            if not bounds:
                break
            rows = storage.read_writer_rows(own, widths[level], lo, hi, since=bounds)
            report["queries"] += 1
            w = widths[level]
            for key, got in rows.items():
                done = -math.inf            # end of the newest complete row at this level
                newest = -math.inf          # end of the newest row (at the finest level)
                keep = []
                for start, sketch, partial in got:
                    if level == 0 or not partial:
                        keep.append((start, sketch))
                        newest = max(newest, start + w)
                    if not partial:
                        done = max(done, start + w)
                if level < top and keep:
                    restore.setdefault(key, [[] for _ in widths])[level] = keep
                covered[key] = max(covered.get(key, -math.inf), newest)
                if done > bounds[key]:
                    bounds[key] = done
            # the level below holds what its parents at this level have not stored
            # complete: rows from the end of the newest complete one on
    except Exception as exc:     # a store that fails mid-way: nothing is half restored
        report["error"] = f"resume: {exc!r}"
        covered.clear()
        if renew_id:
            storage.writer_id = new_writer_id()
        log.warning("wedmetrics: resuming the open buckets failed (%r); they start empty%s",
                    exc, " under a new writer id" if renew_id else "")
        return report
    newest_end = -math.inf
    for key, per_level in restore.items():
        h = engine._registry.adopt(key.name, dict(key.labels), key.kind)
        if h is None:
            report["skipped"] += 1
            continue
        for level in range(top - 1, -1, -1):     # coarse first, oldest first
            for start, blob in per_level[level]:
                core.restore(h.id, level, int(round(start / widths[level])),
                             Sketch.from_bytes(blob))
                newest_end = max(newest_end, start + widths[level])
                report["buckets"][names[level]] += 1
        report["series"] += 1
    if report["skipped"]:
        log.warning("wedmetrics: %d series of this writer were not resumed (cardinality cap "
                    "or a kind clash)", report["skipped"])
    # the old run's horizon had passed every stored bucket; the engine moves
    # its own there (after replaying a write-ahead log, whose points one
    # series' stored prefix must not make late for another)
    report["stored_until"] = newest_end if newest_end > -math.inf else None
    return report
