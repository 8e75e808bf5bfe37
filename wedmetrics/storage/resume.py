"""Restart: a new engine on an existing store picks up where the last one stopped.

Two steps, both at engine start:

* :func:`adopt_stored_series` registers every series the store holds for the
  engine's org, so ``query``, ``history``, ``buckets``, ``series_list`` and
  ``names`` answer for them by name before they are recorded again.  They
  are ordinary series of the engine (ids come from the same core, so they
  never collide with live ones) and keep their stored kind.
"""
from __future__ import annotations

import logging

__all__ = ["adopt_stored_series"]

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
