"""create_app as a factory: health, readiness, errors as JSON, guards, self-metrics."""
from __future__ import annotations

import httpx
import pytest

import wedmetrics as wm
from wedmetrics.http import ROUTERS, create_app

from hubserver import live_server


def test_healthz_readyz_and_the_routers_listed(engine, tmp_path):
    store = wm.SQLiteBackend(tmp_path / "m.db", org_id="bliss-events")
    app = create_app(engine, storage=store)
    assert "health" in ROUTERS
    with live_server(app) as base:
        assert httpx.get(base + "/healthz").json() == {"status": "ok"}
        ready = httpx.get(base + "/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ok",
                                "checks": {"engine": "ok", "store:bliss-events": "ok"}}
        store.close()       # a store that cannot answer: not ready
        ready = httpx.get(base + "/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable"
        assert ready.json()["checks"]["store:bliss-events"] != "ok"


def test_two_apps_share_nothing(engine):
    a, b = create_app(engine), create_app(engine)
    assert a.state.wedmetrics_hub is not b.state.wedmetrics_hub
    assert a.state.wedmetrics_hub.metrics is not b.state.wedmetrics_hub.metrics


def test_unknown_path_huge_query_and_body_answer_json(engine):
    app = create_app(engine)
    with live_server(app) as base:
        r = httpx.get(base + "/no/such/thing")
        assert r.status_code == 404
        assert r.json()["error"]["parameter"] == "path"
        r = httpx.get(base + "/healthz", params={"x": "y" * 5000})
        assert r.status_code == 414
        assert r.json()["error"]["parameter"] == "query"
        r = httpx.post(base + "/healthz", content=b"x" * (70 * 1024))
        assert r.status_code == 413
        assert r.json()["error"]["parameter"] == "body"
        r = httpx.post(base + "/healthz")
        assert r.status_code == 405
        assert "Traceback" not in r.text


def test_requests_are_counted_by_route_template(engine):
    app = create_app(engine)
    hub = app.state.wedmetrics_hub
    with live_server(app) as base:
        for _ in range(3):
            httpx.get(base + "/healthz")
        httpx.get(base + "/nowhere")
    samples = {(name, tuple(sorted(labels.items()))): v
               for fam in hub.metrics.families() for name, labels, v in fam.samples}
    key = ("wedmetrics_hub_requests_total",
           (("method", "GET"), ("route", "/healthz"), ("status", "200")))
    assert samples[key] == 3.0
    assert samples[("wedmetrics_hub_request_seconds_count", (("route", "/healthz"),))] == 3.0
    assert any(name == "wedmetrics_hub_requests_total" and dict(lab)["route"] == "unmatched"
               for name, lab in samples)


def test_tokens_must_be_long_enough(engine):
    with pytest.raises(ValueError, match="8 characters"):
        create_app(engine, tokens={"short": "bliss"})
