"""Sustained load: simulator + collector + engine + alert evaluation + SQLite flush.

Run: ``python benchmarks/bench_collect.py [seconds]`` (default 60), or through
pytest: ``python -m pytest benchmarks/bench_collect.py -s``.
Target (issue 5): at least 1,000,000 points/s sustained on one core with
peak RSS under 500 MB.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time

import wedmetrics as wm
from wedmetrics.alerting import AlertEngine
from wedmetrics.collect import Collector, ProcessSource
from wedmetrics.collect.simulate import WeddingTraffic, wedding_calendar
from wedmetrics.demo import DEMO_RULES


def sustained(seconds: float = 60.0, rate_scale: float = 200.0, chunk: float = 10.0) -> dict:
    calendar = wedding_calendar(7, days=2, weddings_per_saturday=6.0)
    traffic = WeddingTraffic(7, calendar, rate_scale=rate_scale, incident_rate=4.0)
    clock = wm.ManualClock(traffic.start)
    with tempfile.TemporaryDirectory() as tmp:
        # the simulated clock jumps `chunk` seconds per step; collector samples
        # stamped just before a jump must not count as late
        engine = wm.MetricsEngine(clock=clock, lateness=2 * chunk,
                                  storage=wm.SQLiteBackend(os.path.join(tmp, "b.db")))
        ids = traffic.register(engine)
        alerts = AlertEngine(engine, calendar=calendar, rules=DEMO_RULES)
        collector = Collector(engine, interval=1.0)
        collector.add(ProcessSource())
        collector.start()
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        sim, points, ticks = traffic.start, 0, 0
        while time.perf_counter() - start < seconds:
            batch = traffic.window(sim, sim + chunk)
            engine.record_many(ids[batch.ids], batch.ts, batch.values)
            points += len(batch)
            sim += chunk
            clock.set(sim)
            alerts.evaluate()
            ticks += 1
        wall = time.perf_counter() - start
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        collector.stop()
        alerts.close()
        engine.close()
        st = engine.stats()
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {"points": points, "wall_s": wall, "points_per_s": points / wall,
            "cpu_s": cpu, "cores_used": cpu / wall,
            "points_per_cpu_s": points / cpu, "peak_rss_mb": cpu1.ru_maxrss / 1024,
            "simulated_s": sim - traffic.start, "alert_ticks": ticks,
            "buckets_written": st["storage"]["written"], "dropped": st["dropped"],
            "compiled": wm.HAVE_COMPILED}


def test_sustained_load():
    fig = sustained(float(os.environ.get("WEDMETRICS_SUSTAIN_S", "60")))
    print("\n" + json.dumps(fig, indent=2))
    assert sum(fig["dropped"].values()) == 0
    if wm.HAVE_COMPILED:
        assert fig["points_per_s"] >= 1_000_000 and fig["peak_rss_mb"] < 500


if __name__ == "__main__":
    print(json.dumps(sustained(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0), indent=2))
