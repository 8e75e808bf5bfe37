"""The server-sent event stream, and the demo served while it runs."""
from __future__ import annotations

import io
import json
import threading
import time

import httpx
import pytest
from hubserver import BLISS, FOREVER, TOKENS, World, auth, live_server

from wedmetrics.http import create_app


def _events(lines, count: int, deadline: float):
    """The next ``count`` (event, data) pairs from an SSE response's line iterator,
    within ``deadline`` s."""
    out, event, data = [], None, []
    stop = time.monotonic() + deadline
    for line in lines:
        if time.monotonic() > stop:
            break
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and event is not None:
            out.append((event, json.loads("\n".join(data))))
            event, data = None, []
            if len(out) == count:
                break
    return out


@pytest.fixture
def served():
    w = World()
    app = create_app(w.engine, alerts=w.alerts, tokens=TOKENS, stream_interval="100ms",
                     cache_ttl="50ms")
    with live_server(app) as base:
        yield w, base, app
    w.close()


def test_stream_sends_the_real_time_view_and_alert_changes(served):
    world, base, app = served
    with httpx.Client(base_url=base, timeout=10.0) as c:
        with c.stream("GET", "/api/metrics/stream", params={"name": "api.latency"},
                      headers=auth(BLISS)) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            lines = r.iter_lines()
            first = _events(lines, 3, 10.0)
            kinds = [e for e, _ in first]
            assert kinds[:2] == ["realtime", "alerts"] and kinds[2] == "realtime"
            view = first[0][1]
            assert {s["labels"].get("wedding_id") or s["labels"].get("org_id")
                    for s in view["series"]} == {"w-bliss", "bliss-events"}
            (alert,) = first[1][1]["alerts"]
            assert alert["acked_by"] is None
            assert app.state.wedmetrics_hub.metrics.snapshot()["stream_clients"] == 1
            world.alerts.ack(alert["id"], by="ana")      # a change: the next alerts event
            later = [d for e, d in _events(lines, 30, 10.0) if e == "alerts"]
            assert later and later[0]["alerts"][0]["acked_by"] == "ana"
    deadline = time.monotonic() + 5.0
    while app.state.wedmetrics_hub.metrics.snapshot()["stream_clients"] and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    assert app.state.wedmetrics_hub.metrics.snapshot()["stream_clients"] == 0


def test_stream_is_per_tenant_and_checks_its_input_first(served):
    world, base, _ = served
    with httpx.Client(base_url=base, timeout=10.0) as c:
        with c.stream("GET", "/api/metrics/stream", headers=auth(FOREVER)) as r:
            text = json.dumps(_events(r.iter_lines(), 2, 10.0))
        assert "w-forever" in text and "bliss" not in text
        assert c.get("/api/metrics/stream", params={"name": "internal.gc"},
                     headers=auth(BLISS)).status_code == 404
        bad = c.get("/api/metrics/stream", params={"window": "forever"}, headers=auth(BLISS))
        assert bad.status_code == 400 and bad.json()["error"]["parameter"] == "window"
        assert c.get("/api/metrics/stream").status_code == 401


def test_demo_serves_its_live_data_while_it_runs(tmp_path):
    from wedmetrics.demo import run_demo

    out = io.StringIO()
    result = {}
    runner = threading.Thread(target=lambda: result.setdefault("rc", run_demo(
        duration=4.0, quiet=True, db=str(tmp_path / "demo.db"), serve=0, out=out)))
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while "serving the live demo on " not in out.getvalue():
            assert time.monotonic() < deadline and runner.is_alive(), out.getvalue()
            time.sleep(0.05)
        url = out.getvalue().split("serving the live demo on ")[1].split("/ ")[0]
        body = {}
        while not body.get("series") and time.monotonic() < deadline:
            body = httpx.get(url + "/api/metrics/real-time",
                             params={"name": "api.latency", "window": "1m"}).json()
        assert body["series"] and all(s["count"] > 0 for s in body["series"])
        assert body["engine"]["accepted"] > 0
        assert httpx.get(url + "/api/metrics/alerts").status_code == 200
    finally:
        runner.join(60)
    assert result["rc"] == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/healthz", timeout=2.0)     # the hub stopped with the demo
