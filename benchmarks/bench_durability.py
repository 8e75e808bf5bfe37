"""What a kill -9 loses, and what the write-ahead log costs per point.

Run: ``PYTHONPATH=$PWD python -m pytest -q -s benchmarks/bench_durability.py -p no:cacheprovider``.
"""
from __future__ import annotations

import time

import numpy as np

import wedmetrics as wm
from wedmetrics.storage import SQLiteBackend

from figures import report

T0 = 1_699_999_200.0          # a whole hour
WIDTHS = (1.0, 60.0, 300.0, 3600.0)


def _killed_then_restarted(path, same_writer: bool, points_per_s=10, seconds=2000) -> dict:
    clock = wm.ManualClock(T0)
    engine = wm.MetricsEngine(clock=clock, storage=SQLiteBackend(path, writer_id=7),
                              flush_options={"thread": False})
    h = engine.series("orders")
    n = seconds * points_per_s
    for i in range(n):
        t = T0 + i / points_per_s
        clock.set(t)
        h.record(1.0, ts=t)
        if i % points_per_s == 0:
            engine._flusher.flush()          # the flusher's 1 s interval
    # kill -9: this engine does nothing more
    after = wm.MetricsEngine(clock=wm.ManualClock(T0 + seconds),
                             storage=SQLiteBackend(path, writer_id=7 if same_writer else None),
                             flush_options={"thread": False})
    after.close()
    store = SQLiteBackend(path)
    out = {"points": n}
    for w in WIDTHS:
        out[f"stored_{w:g}s"] = store.read_merged("orders", w, 0, 2e10).count
    store.close()
    return out


def test_what_a_kill_loses_by_default(tmp_path):
    report("kill -9, restart as a new writer",
           **_killed_then_restarted(tmp_path / "a.db", same_writer=False))
    report("kill -9, restart as the same writer (resumed)",
           **_killed_then_restarted(tmp_path / "b.db", same_writer=True))


N = 200_000


def _best_ns_side_by_side(loops: dict, number: int, rounds: int = 9) -> dict:
    """Best per-point ns of each loop, taking turns round after round so that both
    see the same moments of a noisy machine."""
    best = dict.fromkeys(loops, float("inf"))
    for _ in range(rounds):
        for name, loop in loops.items():
            t = time.perf_counter()
            loop()
            best[name] = min(best[name], time.perf_counter() - t)
    return {name: t / number * 1e9 for name, t in best.items()}


def _record_loop(h, values):
    rec = h.record

    def run():
        for v in values:
            rec(v)
    return run


def test_wal_record_cost_vs_default(tmp_path):
    """h.record(v) with durability="wal" against the default, both on SQLite with
    the wall clock and the flusher running; the target is a ratio within 1.5."""
    values = np.random.default_rng(1).lognormal(-3, 1, N).tolist()
    plain = wm.MetricsEngine(storage=SQLiteBackend(tmp_path / "plain.db"))
    logged = wm.MetricsEngine(storage=SQLiteBackend(tmp_path / "wal.db"), durability="wal",
                              wal_dir=tmp_path / "wal")
    hp = plain.series("api.latency", labels={"route": "/photos"})
    hw = logged.series("api.latency", labels={"route": "/photos"})
    best = _best_ns_side_by_side({"default": _record_loop(hp, values),
                                  "wal": _record_loop(hw, values)}, N)
    plain.close()
    logged.close()
    ratio = best["wal"] / best["default"]
    report("h.record, durability='wal' vs default", default_ns=best["default"],
           wal_ns=best["wal"], ratio=ratio)
    if wm.HAVE_COMPILED:
        assert ratio <= 1.5
