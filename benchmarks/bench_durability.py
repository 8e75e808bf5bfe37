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


_CHILD = """
import sys
import wedmetrics as wm
clock = wm.ManualClock(%r)
engine = wm.MetricsEngine(clock=clock, storage=wm.SQLiteBackend(sys.argv[1]),
                          flush_options={"thread": False})
h = engine.series("orders")
for i in range(%d):
    t = %r + i / %d
    clock.set(t)
    h.record(1.0, ts=t)
    if i %% %d == 0:
        engine._flusher.flush()          # the flusher's 1 s interval
print("done", flush=True)
sys.stdin.read()                         # until killed
"""


def _child_killed_then_restarted(path, points_per_s=10, seconds=2000) -> dict:
    """The default configuration (random writer id, no log) in a real child
    process killed with SIGKILL; a new engine in this process restarts on the store."""
    import os
    import signal
    import subprocess
    import sys

    n = seconds * points_per_s
    env = dict(os.environ, PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))
    child = subprocess.Popen([sys.executable, "-c", _CHILD % (T0, n, T0, points_per_s,
                                                                 points_per_s), str(path)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout.readline() == "done\n"
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)        # closes the pipes
    after = wm.MetricsEngine(clock=wm.ManualClock(T0 + seconds), storage=SQLiteBackend(path),
                             flush_options={"thread": False})
    adopted = after.stats()["restart"]["writer"]["adopted"] is not None
    after.close()
    store = SQLiteBackend(path)
    out = {"points": n, "adopted": adopted}
    for w in WIDTHS:
        out[f"stored_{w:g}s"] = store.read_merged("orders", w, 0, 2e10).count
    store.close()
    return out


def test_what_a_kill_loses_by_default(tmp_path):
    report("kill -9 of a child (default: random writer id), restart by default",
           **_child_killed_then_restarted(tmp_path / "a.db"))
    report("kill -9, restart as the same fixed writer id (resumed)",
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
