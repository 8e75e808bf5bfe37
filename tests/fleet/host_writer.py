"""One "host" of a fleet test: an engine recording a known stream into a shared PostgreSQL schema.

Run as ``python host_writer.py DSN SCHEMA ORG HOST SEED T0``; the test
regenerates the same points with :func:`points` to check what the store says.
"""
from __future__ import annotations

import sys

import numpy as np

HOURS = 2
POINTS = 6000


def points(seed: int, t0: float) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps and latencies of one host: ``POINTS`` over ``HOURS`` hours."""
    rng = np.random.default_rng(seed)
    ts = np.sort(t0 + rng.uniform(0, HOURS * 3600, POINTS))
    values = rng.lognormal(-3 + 0.3 * (seed % 3), 0.7, POINTS)
    return ts, values


def main(dsn: str, schema: str, org: str, host: str, seed: int, t0: float) -> None:
    import wedmetrics as wm

    ts, values = points(seed, t0)
    clock = wm.ManualClock(t0)
    storage = wm.TimescaleBackend(dsn, org, schema=schema, layout="plain")
    with wm.MetricsEngine(clock=clock, storage=storage, flush_interval=0.2) as engine:
        h = engine.series("api.latency", {"host": host})
        ids = np.full(len(ts), h.id, dtype=np.int64)
        for chunk in np.array_split(np.arange(len(ts)), 12):   # time passes in steps
            engine.record_many(ids[chunk], ts[chunk], values[chunk])
            clock.set(float(ts[chunk][-1]))
    # leaving the block closes the engine: every point is stored at every resolution


if __name__ == "__main__":
    dsn, schema, org, host, seed, t0 = sys.argv[1:]
    main(dsn, schema, org, host, int(seed), float(t0))
