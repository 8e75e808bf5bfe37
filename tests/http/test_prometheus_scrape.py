"""A real Prometheus 2.42 scrapes a running hub: its HTTP API answers what the engine holds.

Two scrape jobs hit the same hub: one negotiates OpenMetrics (Prometheus asks
for it first), one asks for the text format 0.0.4 with ``?format=text``.
"""
from __future__ import annotations

import httpx
import pytest

import wedmetrics as wm
from wedmetrics.http import create_app

from hubserver import live_server
from peers import prometheus, wait_for

HOSTILE = ['say "hi"', "C:\\temp\\", "two\nlines", "\\n", "{x=\"y\"}", "ünï ☃"]


class AcceptLog:
    """The app as it is, noting the Accept header of every /metrics request."""

    def __init__(self, app) -> None:
        self.app = app
        self.seen: list[tuple[str, str]] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/metrics":
            headers = dict(scope["headers"])
            self.seen.append((scope.get("query_string", b"").decode(),
                              headers.get(b"accept", b"").decode()))
        await self.app(scope, receive, send)


def query(base: str, promql: str) -> list[dict]:
    r = httpx.get(base + "/api/v1/query", params={"query": promql}, timeout=10.0)
    r.raise_for_status()
    return r.json()["data"]["result"]


def test_prometheus_scrapes_the_hub_and_answers_the_engines_numbers(clock, tmp_path):
    engine = wm.MetricsEngine(clock=clock)
    latency = {}
    for i, route in enumerate(HOSTILE):
        h = engine.series("api.latency", {"route": route})
        for j in range(50):
            h.record(0.001 * (j + 1) * (i + 1))
        latency[route] = h
    engine.counter("photos.uploaded", {"org_id": "bliss-events"}).inc(42)
    engine.gauge("queue.depth").set(17.0)
    clock.advance(2.0)        # the clock is manual: every scrape sees the same numbers
    app = AcceptLog(create_app(engine))
    with live_server(app) as hub:
        target = hub.removeprefix("http://")
        jobs = [{"job": "om", "target": target},
                {"job": "text", "target": target, "params": {"format": "text"}}]
        with prometheus(jobs, tmp_path) as prom:
            def both_scraped():
                # the hub counts a request once it has answered it, so its own
                # /metrics count shows from a job's second scrape on
                up = query(prom, "up")
                fresh = query(prom, "count by (job) (api_latency_count)")
                served = query(prom, 'count by (job) '
                                     '(wedmetrics_hub_requests_total{route="/metrics"})')
                return (len(up) == 2 and all(r["value"][1] == "1" for r in up)
                        and len(fresh) == 2 and len(served) == 2)
            wait_for(both_scraped, timeout=40.0)
            targets = httpx.get(prom + "/api/v1/targets").json()["data"]["activeTargets"]
            assert [t["lastError"] for t in targets] == ["", ""]
            for job in ("om", "text"):
                for route, h in latency.items():
                    stats = engine.query(h, last="5m")
                    got = {}
                    for r in query(prom, f'{{job="{job}",__name__=~"api_latency.*"}}'):
                        if r["metric"]["route"] == route:     # hostile values round-trip
                            name = r["metric"]["__name__"]
                            got[(name, r["metric"].get("quantile"))] = float(r["value"][1])
                    assert got == {("api_latency", "0.5"): stats.p50,
                                   ("api_latency", "0.95"): stats.p95,
                                   ("api_latency", "0.99"): stats.p99,
                                   ("api_latency_count", None): stats.count,
                                   ("api_latency_sum", None): stats.sum}
                total = query(prom, f'photos_uploaded_total{{job="{job}"}}')
                assert [(r["metric"]["org_id"], float(r["value"][1])) for r in total] == \
                    [("bliss-events", 42.0)]
                assert float(query(prom, f'queue_depth{{job="{job}"}}')[0]["value"][1]) == 17.0
                served = query(prom, f'wedmetrics_hub_requests_total{{job="{job}",'
                                     f'route="/metrics"}}')
                assert served and float(served[0]["value"][1]) >= 1
            metadata = httpx.get(prom + "/api/v1/metadata",
                                 params={"metric": "api_latency"}).json()["data"]
            assert metadata["api_latency"][0]["type"] == "summary"
    # Prometheus asked for OpenMetrics first; the text job named its format
    assert any(q == "" and a.startswith("application/openmetrics-text") for q, a in app.seen)
    assert any(q == "format=text" for q, _ in app.seen)
    engine.close()
