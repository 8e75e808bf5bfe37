"""Alerting speed: tick cost of 10,000 threshold rules, and point-to-webhook latency.

Run: ``python -m pytest benchmarks/bench_alerting.py --benchmark-only -s -p no:cacheprovider``
(``-s`` prints the figures; ``WEDMETRICS_BENCH_JSON=path`` also writes them as JSON).

* Tick cost is measured against a peer in the same run: the obvious
  evaluation, one ``engine.query`` per rule.  The grouped tick must beat it
  by the ratio asserted below.  The issue's 20 ms figure is asserted for
  10,000 rules over shared series (the case grouping is for); 10,000 rules
  over 2,000 distinct (series, window) pairs is reported, not asserted: there
  the cost is the core's sketch merges, one per pair.
* Latency is wall-clock by nature: a real engine on the wall clock, the
  background thread at a 50 ms tick, a webhook to a ThreadingHTTPServer on
  127.0.0.1; each trial times one offending point from ``record`` to the
  server receiving the POST.  Saturday escalation: the time from the moment
  an escalation falls due (the clock reaching it) to the escalated page
  arriving, with delays halved by the Saturday policy.
"""
from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import time

import numpy as np
import pytest

import wedmetrics as wm
from wedmetrics.alerting import AlertEngine, WebhookNotifier
from wedmetrics.weddings import Wedding, WeddingCalendar

from figures import FIGURES, report

T0 = dt.datetime(2026, 6, 16, 13, 0, tzinfo=dt.timezone.utc).timestamp()      # a Tuesday
SATURDAY = dt.datetime(2026, 6, 13, 13, 0, tzinfo=dt.timezone.utc).timestamp()
STATS = ("p50", "p95", "p99", "max", "mean")




# --------------------------------------------------------------------------- tick cost


def _rules_engine(n_series: int, rules_per_series: int):
    """An engine with a minute of traffic on ``n_series`` series and 10,000 rules over them."""
    clock = wm.ManualClock(T0)
    engine = wm.MetricsEngine(clock=clock)
    handles = [engine.series("api.latency", labels={"route": f"/r{i}"}) for i in range(n_series)]
    ids = np.array([h.id for h in handles], dtype=np.int64)
    rng = np.random.default_rng(7)
    for k in range(300):
        clock.set(T0 + k)
        engine.record_many(np.repeat(ids, 3), np.full(3 * n_series, T0 + k),
                           rng.exponential(0.1, 3 * n_series))
    rules = []
    for i in range(n_series):
        for j in range(rules_per_series):
            rules.append({"kind": "threshold", "name": f"r{i}-{j}", "metric": "api.latency",
                          "match": {"route": f"/r{i}"}, "stat": STATS[j % len(STATS)],
                          "window": ("1m", "5m")[(j // len(STATS)) % 2], "op": ">",
                          "threshold": 0.6 + 0.1 * (j // 10)})
    alerts = AlertEngine(engine)
    alerts.add_rules(rules)
    alerts.evaluate()                   # plans once; later ticks reuse the plan
    return clock, engine, alerts, handles, rules


def _naive_tick(engine, handles_by_route, rules):
    """The peer: every rule asks the engine for its own window."""
    fired = 0
    for r in rules:
        h = handles_by_route[r["match"]["route"]]
        # the same buckets the alert engine reads: all those overlapping the window
        last = wm.parse_duration(r["window"]) + 1.0
        fired += engine.query(h, last=last).get(r["stat"]) > r["threshold"]
    return fired


@pytest.mark.parametrize("n_series, per_series", [(200, 50), (1000, 10)],
                         ids=["200-series", "1000-series"])
def test_tick_of_10k_threshold_rules(benchmark, n_series, per_series):
    clock, engine, alerts, handles, rules = _rules_engine(n_series, per_series)
    assert len(rules) == 10_000
    try:
        # a tick per second, as live: the clock moves between rounds
        result = benchmark.pedantic(alerts.evaluate, setup=lambda: clock.advance(1) and None, rounds=15,
                                    iterations=1, warmup_rounds=2)
        assert len(result) == 10_000
        tick_ms = benchmark.stats.stats.median * 1e3
        by_route = {h.labels["route"]: h for h in handles}
        naive_ms = float("inf")
        for _ in range(3):       # best of three, as the tick's median is of fifteen
            t = time.perf_counter()
            fired = _naive_tick(engine, by_route, rules)
            naive_ms = min(naive_ms, (time.perf_counter() - t) * 1e3)
        assert fired == result.count("firing") + result.count("pending")
        firing = result.count("firing")
        queries = len(alerts._queries)
        report(f"tick_10k_rules_{n_series}_series", tick_ms=tick_ms, naive_ms=naive_ms,
               speedup=naive_ms / tick_ms, window_queries=queries,
               us_per_query=tick_ms * 1e3 / queries, firing=firing, compiled=wm.HAVE_COMPILED)
        benchmark.extra_info.update(FIGURES[f"tick_10k_rules_{n_series}_series"])
        # grouping shares one merge among 25 rules (200 series) or 5 (1000 series);
        # the per-rule peer is this library's own query, which got cheaper too
        # (2026-11-30: 9-16x left for 200 series, 2.9-5.1x for 1000), hence floors
        # well below the sharing factors
        assert naive_ms / tick_ms > (8.0 if n_series == 200 else 2.5)
        if wm.HAVE_COMPILED:
            assert tick_ms < 20.0, f"10,000 rules over {queries} windows took {tick_ms:.1f} ms"
    finally:
        alerts.close()
        engine.close()


# --------------------------------------------------------------------------- latency


class _Receiver(http.server.ThreadingHTTPServer):
    daemon_threads = False

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.arrivals: dict[str, float] = {}
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def wait(self, key: str, timeout: float = 10.0) -> float:
        with self.cond:
            assert self.cond.wait_for(lambda: key in self.arrivals, timeout), f"no POST for {key}"
            return self.arrivals[key]

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(5)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 - http.server naming
        arrived = time.perf_counter()
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.cond:
            for a in body["alerts"]:
                key = f"{self.path}:{a['labels']['route']}:{a['status']}"
                self.server.arrivals.setdefault(key, arrived)
            self.server.cond.notify_all()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()

    def log_message(self, *args):
        pass


def _percentiles(samples_ms):
    a = np.asarray(samples_ms)
    return {"n": len(a), "p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
            "p99_ms": float(np.percentile(a, 99)), "max_ms": float(a.max())}


def test_point_to_webhook_latency_at_a_50ms_tick():
    trials = 200
    server = _Receiver()
    try:
        with wm.MetricsEngine() as engine:
            handles = [engine.series("api.latency", labels={"route": f"/t{i}"})
                       for i in range(trials)]
            with AlertEngine(engine, notifiers=[WebhookNotifier(server.url("/hook"))],
                             interval=0.05) as alerts:
                alerts.add_rule({"kind": "threshold", "name": "Slow", "metric": "api.latency",
                                 "stat": "max", "window": "1s", "op": ">", "threshold": 0.5})
                alerts.evaluate()                        # plan before the clocks start
                alerts.start()
                samples = []
                phase = np.random.default_rng(3).uniform(0.0, 0.05, trials)
                for i, h in enumerate(handles):
                    # points arrive at any phase of the tick, not just after one
                    time.sleep(phase[i])
                    t = time.perf_counter()
                    h.record(0.9)
                    samples.append((server.wait(f"/hook:/t{i}:firing") - t) * 1e3)
    finally:
        server.stop()
    figures = _percentiles(samples)
    report("point_to_webhook_latency", tick_s=0.05, **figures)
    assert figures["p99_ms"] < 100.0


def test_saturday_escalation_latency():
    trials = 40
    server = _Receiver()
    calendar = WeddingCalendar([Wedding(id="w1", org_id="acme", date="2026-06-13",
                                        timezone="Europe/London", guest_count=150)])
    clock = wm.ManualClock(SATURDAY)
    escalation = [{"name": "oncall", "levels": [{"receivers": ["primary"], "delay": "10m"},
                                                {"receivers": ["secondary"]}]}]
    route = {"receiver": "primary", "group_by": ["route"], "group_wait": 0,
             "group_interval": "1s", "escalation": "oncall"}
    samples, delays = [], []
    phase = np.random.default_rng(5).uniform(0.0, 0.05, trials)
    try:
        with wm.MetricsEngine(clock=clock) as engine:
            handles = [engine.series("api.latency", labels={"route": f"/s{i}", "wedding_id": "w1"})
                       for i in range(trials)]
            notifiers = [WebhookNotifier(server.url("/primary"), name="primary"),
                         WebhookNotifier(server.url("/secondary"), name="secondary")]
            with AlertEngine(engine, calendar=calendar, notifiers=notifiers, route=route,
                             escalation=escalation, interval=0.05) as alerts:
                alerts.add_rule({"kind": "threshold", "name": "Slow", "metric": "api.latency",
                                 "stat": "max", "window": "1h", "op": ">", "threshold": 0.5})
                alerts.start()
                for i, h in enumerate(handles):
                    paged_at = clock.now()
                    h.record(0.9)
                    server.wait(f"/primary:/s{i}:firing")
                    fired = [e for e in alerts.history(status="notified")
                             if e.labels.get("route") == f"/s{i}"][0].ts
                    due = fired + 300.0                     # 10 min halved on a Saturday
                    time.sleep(phase[i])
                    clock.set(due)
                    t = time.perf_counter()
                    samples.append((server.wait(f"/secondary:/s{i}:firing") - t) * 1e3)
                    (esc,) = [e for e in alerts.history(status="escalated")
                              if e.labels.get("route") == f"/s{i}"]
                    delays.append(esc.ts - fired)
                    assert paged_at <= fired
                    clock.set(due + 1)
    finally:
        server.stop()
    figures = _percentiles(samples)
    report("saturday_escalation_latency", tick_s=0.05, escalation_delay_s=float(np.median(delays)),
           **figures)
    assert set(delays) == {300.0}
    assert figures["p99_ms"] < 100.0
