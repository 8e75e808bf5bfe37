"""Cache (TTL, per tenant, one computation for concurrent misses), rate limits, CORS, mounting."""
from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from fastapi import FastAPI
from hubserver import BLISS, FOREVER, OPS, TOKENS, auth, live_server

from wedmetrics.http import create_app


def _cache(app) -> dict:
    return app.state.wedmetrics_hub.metrics.snapshot()["cache"]


def test_identical_requests_within_the_ttl_are_hits(world):
    app = create_app(world.engine, alerts=world.alerts, cache_ttl="300ms")
    params = {"name": "api.latency", "window": "5m"}
    with live_server(app) as base, httpx.Client(base_url=base) as c:
        first = c.get("/api/metrics/real-time", params=params)
        second = c.get("/api/metrics/real-time", params=params)
        assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("miss", "hit")
        assert second.content == first.content
        other = c.get("/api/metrics/real-time", params={**params, "window": "1m"})
        assert other.headers["X-Cache"] == "miss"
        time.sleep(0.4)                            # past the TTL: computed again
        assert c.get("/api/metrics/real-time", params=params).headers["X-Cache"] == "miss"
    assert _cache(app)["hits"] == 1 and _cache(app)["misses"] == 3
    assert app.state.wedmetrics_hub.metrics.cache_hit_ratio() == pytest.approx(0.25)


def test_concurrent_identical_misses_compute_once(world):
    app = create_app(world.engine, alerts=world.alerts, cache_ttl="1h")
    hub = app.state.wedmetrics_hub
    computed = []
    original = hub.catalog.select

    def counting_select(*args, **kwargs):
        computed.append(1)
        return original(*args, **kwargs)

    hub.catalog.select = counting_select

    async def storm(base):
        async with httpx.AsyncClient(base_url=base) as c:
            replies = await asyncio.gather(*[c.get("/api/metrics/series") for _ in range(40)])
        return replies

    with live_server(app) as base:
        replies = asyncio.run(storm(base))
    assert all(r.status_code == 200 for r in replies)
    assert len({r.content for r in replies}) == 1
    assert len(computed) == 1
    snap = _cache(app)
    assert snap["misses"] == 1 and snap["hits"] + snap["coalesced"] == 39


def test_errors_are_not_cached(world):
    app = create_app(world.engine, cache_ttl="1h")
    with live_server(app) as base, httpx.Client(base_url=base) as c:
        for _ in range(2):
            r = c.get("/api/metrics/real-time", params={"name": "not.yet"})
            assert r.status_code == 404
        world.engine.series("not.yet").record(1.0)
        assert c.get("/api/metrics/real-time", params={"name": "not.yet"}).status_code == 200


def test_rate_limit_per_token_with_retry_after(world):
    app = create_app(world.engine, alerts=world.alerts, tokens=TOKENS, rate_limit="3/minute")
    with live_server(app) as base, httpx.Client(base_url=base) as c:
        codes = [c.get("/api/metrics/series", headers=auth(BLISS)).status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        r = c.get("/api/metrics/alerts", headers=auth(BLISS))
        assert r.status_code == 429
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        assert r.json()["error"]["parameter"] == "Authorization"
        assert c.get("/api/metrics/series", headers=auth(FOREVER)).status_code == 200
        assert c.get("/healthz").status_code == 200          # health is never limited
    assert app.state.wedmetrics_hub.metrics.snapshot()["rate_limited"] == 3


def test_rate_limit_by_client_address_without_tokens(world):
    app = create_app(world.engine, rate_limit="2/minute")
    with live_server(app) as base, httpx.Client(base_url=base) as c:
        codes = [c.get("/api/metrics/series").status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_bad_rate_limit_and_redis_url_are_refused(world):
    with pytest.raises(ValueError, match="rate_limit"):
        create_app(world.engine, rate_limit="lots")
    with pytest.raises(ValueError, match="redis_url"):
        create_app(world.engine, redis_url="http://127.0.0.1:6379")


def test_cors_allows_listed_origins_and_answers_preflight(world):
    app = create_app(world.engine, tokens=TOKENS, cors_origins=["https://dash.example"])
    with live_server(app) as base, httpx.Client(base_url=base) as c:
        pre = c.options("/api/metrics/real-time", headers={
            "Origin": "https://dash.example", "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization"})
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == "https://dash.example"
        assert "authorization" in pre.headers["access-control-allow-headers"].lower()
        evil = c.options("/api/metrics/real-time", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
        assert evil.status_code == 400
        assert "access-control-allow-origin" not in evil.headers
        r = c.get("/api/metrics/series", headers={"Origin": "https://dash.example", **auth(OPS)})
        assert r.headers["access-control-allow-origin"] == "https://dash.example"
        r = c.get("/api/metrics/series", headers={"Origin": "https://evil.example", **auth(OPS)})
        assert "access-control-allow-origin" not in r.headers


def test_mounted_in_a_service_app_with_the_versioned_alias(world):
    service = FastAPI()

    @service.get("/hello")
    async def hello():
        return {"hello": "world"}

    service.mount("/monitoring", create_app(world.engine, alerts=world.alerts, tokens=TOKENS))
    with live_server(service) as base, httpx.Client(base_url=base) as c:
        assert c.get("/hello").json() == {"hello": "world"}
        r = c.get("/monitoring/api/metrics/series", headers=auth(BLISS))
        assert r.status_code == 200 and r.json()["names"] == ["api.latency", "api.requests"]
        v1 = c.get("/monitoring/api/v1/metrics/series", headers=auth(BLISS))
        assert v1.json() == r.json()
        assert c.get("/monitoring/api/metrics/series").status_code == 401
        assert c.get("/monitoring/healthz").json() == {"status": "ok"}
