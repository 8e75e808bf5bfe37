"""``python -m wedmetrics demo``: the whole pipeline on simulated wedding traffic.

Simulated traffic (with injected incidents) and this process's own metrics
(through a :class:`~wedmetrics.Collector`) flow into a
:class:`~wedmetrics.MetricsEngine` on a simulated clock running ``speed``
times faster than the wall clock; alert rules are evaluated on every step,
notifications go to the log channel, and closed buckets and alert events
are flushed to a SQLite file.  A live view shows per-series rates, P95s and
firing alerts; the summary compares the alerts with the injected incidents.

Every run starts a fresh file: a file an earlier demo run wrote is replaced
(another file is never touched: the demo refuses it).  ``continue_db=True``
(``--continue``) keeps the file and continues its simulated day where the
stored data ends, so the file holds one day, never two copies of one hour.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import sqlite3
import time

import numpy as np

from .clock import parse_duration

DEMO_RULES = [
    {"kind": "threshold", "name": "SlowUploads", "metric": "api.latency",
     "match": ['route="/photos/upload"'], "stat": "p95", "window": "1m", "op": ">",
     "threshold": 1.5, "recovery_threshold": 1.0, "for": "1m", "severity": "warning",
     "annotations": {"summary": "{{ labels.route }} p95 is {{ value }} s"}},
    {"kind": "threshold", "name": "SlowApi", "metric": "api.latency",
     "match": ['route!="/photos/upload"'], "stat": "p95", "window": "1m", "op": ">",
     "threshold": 0.5, "recovery_threshold": 0.35, "for": "1m", "severity": "warning",
     "annotations": {"summary": "{{ labels.route }} p95 is {{ value }} s"}},
    {"kind": "threshold", "name": "ErrorBurst", "metric": "api.errors", "stat": "sum",
     "window": "1m", "op": ">", "threshold": 150, "severity": "critical",
     "annotations": {"summary": "{{ labels.route }}: {{ value }} errors in the last minute"}},
    {"kind": "threshold", "name": "SlowVendor", "metric": "vendor.latency", "stat": "p95",
     "window": "1m", "op": ">", "threshold": 4.0, "for": "1m", "severity": "warning"},
    {"kind": "absence", "name": "VendorSilent", "metric": "vendor.latency", "window": "2m",
     "severity": "critical",
     "annotations": {"summary": "no calls reached {{ labels.vendor }} for 2 minutes"}},
]

# SQLite's application_id of files the demo wrote ("WMDM"): only those are replaced
DEMO_APPLICATION_ID = 0x574D444D

# which rules answer which kind of injected incident
_CATCHES = {"latency_spike": ("SlowUploads", "SlowApi", "SlowVendor"),
            "error_burst": ("ErrorBurst",), "vendor_silent": ("VendorSilent",)}


def run_demo(*, duration: float = 30.0, weddings: int = 6, seed: int = 7, speed: float = 120.0,
             rate_scale: float = 20.0, db: str = "wedmetrics-demo.db", quiet: bool = False,
             out=None, step: float = 0.25, continue_db: bool = False,
             serve: int | None = None) -> int:
    import wedmetrics as wm
    from wedmetrics.alerting import AlertEngine, LogNotifier
    from wedmetrics.collect import Collector
    from wedmetrics.collect.simulate import WeddingTraffic, wedding_calendar

    if not (duration > 0 and speed > 0 and rate_scale > 0 and weddings >= 0):
        raise ValueError("duration, speed and rate-scale must be > 0 and weddings >= 0")
    out = out if out is not None else __import__("sys").stdout
    live = not quiet and out.isatty()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logger = logging.getLogger("wedmetrics.demo.alerts")
    logger.setLevel(logging.INFO)

    calendar = wedding_calendar(seed, days=2, weddings_per_saturday=float(weddings))
    traffic = WeddingTraffic(seed, calendar, rate_scale=rate_scale, incident_rate=4.0)
    begin = _prepare_file(db, continue_db) or traffic.start
    clock = wm.ManualClock(begin)
    storage = wm.SQLiteBackend(db)
    _mark_demo_file(db)
    # the simulated clock jumps step * speed seconds at a time; the collector's
    # samples, stamped just before a jump, must not count as late
    lateness = max(5.0, 4.0 * step * speed)
    engine = wm.MetricsEngine(clock=clock, storage=storage, lateness=lateness,
                              retention={"1s": max(600.0, 2 * lateness + 120.0)})
    ids = traffic.register(engine)
    alerts = AlertEngine(engine, calendar=calendar, notifiers=[LogNotifier(logger)],
                         rules=DEMO_RULES)
    collector = Collector(engine, interval=1.0)
    try:
        from wedmetrics.collect import ProcessSource

        collector.add(ProcessSource())
    except ImportError:
        pass  # psutil is optional ([system] extra): the demo runs without self-metrics
    hub = _serve(engine, alerts, calendar, serve, out) if serve is not None else None
    points = 0
    sim = begin
    started = time.perf_counter()
    last_view = 0.0
    interrupted = False
    collector.start()
    try:
        while True:
            elapsed = time.perf_counter() - started
            if elapsed >= duration:
                break
            # never jump more than one step of simulated time, even after a
            # stall: the lateness is sized for one step
            target = min(begin + min(elapsed + step, duration) * speed,
                         sim + step * speed)
            if target > sim:
                batch = traffic.window(sim, target)
                engine.record_many(ids[batch.ids], batch.ts, batch.values)
                points += len(batch)
                sim = target
                clock.set(sim)
                alerts.evaluate()
            if time.perf_counter() - last_view >= (1.0 if live else 5.0) and not quiet:
                last_view = time.perf_counter()
                _view(out, engine, alerts, points, elapsed, sim, traffic.start, live)
            time.sleep(max(0.0, started + elapsed + step - time.perf_counter()))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if hub is not None:
            hub.stop()
        collector.stop()
        wall = time.perf_counter() - started
        alerts.close()
        fired = [e for e in alerts.history() if e.status == "firing"]
        table = _series_table(engine, "5m")
        engine.close()
    incidents = traffic.incidents(begin, sim)
    caught = [i for i in incidents if _caught(i, fired)]
    size = os.path.getsize(db) if os.path.exists(db) else 0
    stats = engine.stats()
    print(f"\n== wedmetrics demo {'(interrupted) ' if interrupted else ''}summary", file=out)
    print(f"simulated       {(sim - begin) / 60:.1f} min of a wedding Saturday in "
          f"{wall:.1f} s ({len(calendar)} weddings, {len(engine.series_list())} series)", file=out)
    print(f"points          {points:,} from the simulator + {stats['accepted'] - points:,} "
          f"from the collector, {points / max(wall, 1e-9):,.0f} points/s", file=out)
    print(f"dropped         {sum(stats['dropped'].values())} "
          f"({', '.join(f'{k}={v}' for k, v in stats['dropped'].items() if v) or 'none'})",
          file=out)
    print(f"alerts fired    {len(fired)} notifications; injected incidents caught: "
          f"{len(caught)}/{len(incidents)}", file=out)
    for inc in incidents:
        label = ",".join(f"{k}={v}" for k, v in inc.labels.items())
        mark = "caught" if inc in caught else "missed"
        print(f"  {mark:6} {inc.kind:14} {inc.name}{{{label}}} at "
              f"+{(inc.start - traffic.start) / 60:.1f} min", file=out)
    print("latency, last 5 simulated minutes:", file=out)
    print("\n".join("  " + line for line in table), file=out)
    flushed = stats.get("storage", {})
    print(f"storage         {os.path.abspath(db)} ({size / 1024:.0f} KiB, "
          f"{flushed.get('written', 0):,} buckets written)", file=out)
    if continue_db and begin > traffic.start:
        print(f"                continued the file's simulated day at "
              f"+{(begin - traffic.start) / 60:.1f} min; earlier runs' rows are kept", file=out)
    else:
        print("                a fresh file: earlier runs are not in it (--continue keeps them)",
              file=out)
    return 0


def _serve(engine, alerts, calendar, port: int, out):
    """The hub over the demo's live engine, on 127.0.0.1 (no tokens: local only)."""
    from wedmetrics.http import create_app
    from wedmetrics.http.serve import BackgroundServer

    server = BackgroundServer(create_app(engine, alerts=alerts, calendar=calendar), port=port)
    if not server.wait_started():
        server.stop()
        raise RuntimeError(f"the hub did not start on port {port}")
    print(f"serving the live demo on {server.url}/ (API under {server.url}/api/metrics/)",
          file=out, flush=True)
    return server


def _demo_file_state(db: str) -> tuple[bool, float | None]:
    """(whether ``db`` is a file the demo wrote, where its stored 1 s buckets end)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        (app_id,) = conn.execute("PRAGMA application_id").fetchone()
        if app_id != DEMO_APPLICATION_ID:
            return False, None
        (end,) = conn.execute("SELECT max(start + width) FROM wm_buckets WHERE width = 1.0"
                              ).fetchone()
    return True, end


def _prepare_file(db: str, continue_db: bool) -> float | None:
    """Remove an earlier demo run's file, or, continuing, return where its data ends."""
    if not os.path.exists(db):
        return None
    try:
        ours, end = _demo_file_state(db)
    except sqlite3.DatabaseError:
        ours, end = False, None
    if not ours:
        raise FileExistsError(f"{db} exists and was not written by the demo; the demo "
                              f"replaces only its own files: pass another --db")
    if continue_db:
        return end
    for path in (db, db + "-wal", db + "-shm"):
        if os.path.exists(path):
            os.remove(path)
    return None


def _mark_demo_file(db: str) -> None:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute(f"PRAGMA application_id = {DEMO_APPLICATION_ID}")


def _caught(incident, fired) -> bool:
    rules = _CATCHES[incident.kind]
    for e in fired:
        if e.rule in rules and incident.start <= e.ts <= incident.end + 300 and \
                all(e.labels.get(k) == v for k, v in incident.labels.items()):
            return True
    return False


def _series_table(engine, last: str) -> list[str]:
    """Rate and percentiles of every latency series over the last ``last``."""
    seconds = parse_duration(last)
    lines = [f"{'series':38} {'rate/s':>9} {'p50 s':>9} {'p95 s':>9} {'p99 s':>9}"]
    for name in ("api.latency", "vendor.latency"):
        for h in engine.series_list(name):
            s = engine.query(h, last=last)
            label = ",".join(f"{k}={v}" for k, v in h.labels.items())
            cells = "".join(f" {'-':>9}" if math.isnan(x) else f" {x:9.3f}"
                            for x in (s.p50, s.p95, s.p99))
            lines.append(f"{name + '{' + label + '}':38} {s.count / seconds:9.1f}{cells}")
    return lines


def _view(out, engine, alerts, points, elapsed, sim, start, live) -> None:
    lines = [f"wedmetrics demo: {elapsed:5.1f} s wall, simulated +{(sim - start) / 60:5.1f} min, "
             f"{points:,} points ({points / max(elapsed, 1.0):,.0f}/s)"]
    if live:
        lines.extend(_series_table(engine, "1m"))
        firing = [a for a in alerts.active() if a.state == "firing"]
        lines.append(f"firing alerts: {len(firing)}")
        for a in firing[:8]:
            lines.append(f"  {a.severity:8} {a.rule:14} "
                         f"{','.join(f'{k}={v}' for k, v in a.labels.items())}")
        out.write("\x1b[2J\x1b[H" + "\n".join(lines) + "\n")
    else:
        firing = sum(1 for a in alerts.active() if a.state == "firing")
        out.write(f"{lines[0]}, firing alerts: {firing}\n")
    out.flush()
