"""Tenant isolation: hostile tokens, ids and matchers never reach another org's data."""
from __future__ import annotations

import json

import httpx
import pytest
from hubserver import BLISS, FOREVER, OPS, TOKENS, auth, live_server

from wedmetrics.http import create_app

# values of forever-planners' series are all >= 10, bliss-events' all < 1
FOREVER_MARKERS = ("w-forever", "forever-planners", "Chateau Rose")


@pytest.fixture(scope="module")
def base(world):
    with live_server(create_app(world.engine, alerts=world.alerts, tokens=TOKENS)) as url:
        yield url


def _no_forever(text: str) -> None:
    for marker in FOREVER_MARKERS:
        assert marker not in text


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer"}, {"Authorization": "Bearer  x"},
    {"Authorization": "Basic dG9rOnRvaw=="}, {"Authorization": "Bearer tok-bliss-012345678"},
    {"Authorization": "Bearer tok-bliss-0123456789x"}, {"Authorization": "Bearer *"},
    {"Authorization": "Bearer bliss-events"}, {"Authorization": "bearer\ttok-ops-0123456789"},
    {"Authorization": "Bearer " + "A" * 3000},
])
def test_hostile_tokens_get_401(client, headers):
    r = client.get("/api/metrics/real-time", headers=headers)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["parameter"] == "Authorization"
    assert "WWW-Authenticate" in r.headers
    _no_forever(r.text)
    assert "api.latency" not in r.text


def test_scheme_is_case_insensitive(client):
    r = client.get("/api/metrics/series", headers={"Authorization": f"bearer {BLISS}"})
    assert r.status_code == 200


def test_a_tenant_sees_only_its_series(client, world):
    body = client.get("/api/metrics/real-time", headers=auth(BLISS)).json()
    assert body["engine"] is None
    got = sorted((s["name"], json.dumps(s["labels"], sort_keys=True)) for s in body["series"])
    assert got == sorted([
        ("api.latency", json.dumps({"route": "/photos", "wedding_id": "w-bliss"}, sort_keys=True)),
        ("api.latency", json.dumps({"org_id": "bliss-events", "route": "/rsvp"}, sort_keys=True)),
        ("api.requests", json.dumps({"org_id": "bliss-events"}, sort_keys=True)),
    ])
    assert all(s["max"] < 1 for s in body["series"] if s["name"] == "api.latency")
    _no_forever(json.dumps(body))
    series = client.get("/api/metrics/series", headers=auth(FOREVER)).json()
    assert series["names"] == ["api.latency"]
    assert all("bliss" not in json.dumps(s) for s in series["series"])


@pytest.mark.parametrize("match", [
    'wedding_id="w-forever"', 'org_id="forever-planners"', 'wedding_id=~".*"',
    'org_id!="bliss-events"', '{wedding_id=~"w-.*",route=~".+"}', 'route=~"/photos|/rsvp"',
    'org_id=~"forever.*"', '__name__="api.latency"',
])
def test_hostile_matchers_select_only_own_series(client, match):
    for path in ("/api/metrics/real-time", "/api/metrics/series"):
        r = client.get(path, params={"name": "api.latency", "match": match}, headers=auth(BLISS))
        assert r.status_code in (200, 400), r.text
        _no_forever(r.text)
        if r.status_code == 200:
            assert all(s.get("max", 0) is None or s.get("max", 0) < 1
                       for s in r.json()["series"])
    r = client.get("/api/metrics/range", params={"name": "api.latency", "match": match,
                                                 "resolution": "1m"}, headers=auth(BLISS))
    assert r.status_code in (200, 400)
    _no_forever(r.text)


def test_another_tenants_series_name_is_unknown(client):
    r = client.get("/api/metrics/real-time", params={"name": "internal.gc"}, headers=auth(BLISS))
    assert r.status_code == 404 and r.json()["error"]["parameter"] == "name"
    ops = client.get("/api/metrics/real-time", params={"name": "internal.gc"}, headers=auth(OPS))
    assert ops.status_code == 200


@pytest.mark.parametrize("wedding_id", [
    "w-forever", "w-nope", "W-FOREVER", "w-forever ", "..%2Fw-forever", "w-forever%00",
    "%2A", "*", "w-bliss/../w-forever",
])
def test_another_tenants_wedding_is_a_404_like_a_missing_one(client, wedding_id):
    r = client.get(f"/api/metrics/wedding/{wedding_id}", headers=auth(BLISS))
    assert r.status_code == 404, r.text
    assert list(r.json()) == ["error"]           # the id echoed back, nothing of the wedding
    for marker in ("Chateau Rose", "forever-planners", "Europe/Paris", "300"):
        assert marker not in r.text
    if r.json()["error"]["parameter"] == "wedding_id":
        assert r.json()["error"]["message"].startswith("no wedding with id ")


def test_alerts_and_history_are_per_tenant(client, world):
    mine = client.get("/api/metrics/alerts", headers=auth(BLISS)).json()["alerts"]
    assert [a["labels"].get("org_id") for a in mine] == ["bliss-events"]
    theirs = client.get("/api/metrics/alerts", headers=auth(FOREVER)).json()["alerts"]
    assert sorted(a["rule"] for a in theirs) == ["SlowPhotos", "SlowRsvp"]
    hist = client.get("/api/metrics/alerts", params={"history": 1}, headers=auth(BLISS))
    _no_forever(hist.text)
    assert hist.json()["events"]


def test_no_cross_tenant_actions(client, world):
    theirs = world.alert_id("SlowPhotos", wedding_id="w-forever")
    for path, body in ((f"/api/metrics/alerts/{theirs}/ack", {"by": "mallory"}),
                       (f"/api/metrics/alerts/{theirs}/feedback", {"false_positive": True})):
        r = client.post(path, json=body, headers=auth(BLISS))
        assert r.status_code == 404, r.text
    assert all(a.acked_by is None for a in world.alerts.active())
    assert world.alerts.rule_state("SlowPhotos").get("false_positives", 0) == 0
    for matchers in (['wedding_id="w-forever"'], ['org_id="forever-planners"'],
                     ['route=~".*"'], ['wedding_id=~"w-bliss|w-forever"'],
                     ['org_id!="bliss-events"']):
        r = client.post("/api/metrics/silences", json={"matchers": matchers, "duration": "1h",
                                                       "created_by": "mallory"},
                        headers=auth(BLISS))
        assert r.status_code in (400, 403), (matchers, r.text)
        assert r.json()["error"]["parameter"] == "matchers"
    assert world.alerts.dispatcher.silences.active(world.engine.now()) == []
    s = world.alerts.silence(['wedding_id="w-forever"'], "1h", by="forever-ops")
    try:
        assert client.get("/api/metrics/silences", headers=auth(BLISS)).json()["silences"] == []
        r = client.delete(f"/api/metrics/silences/{s.id}", headers=auth(BLISS))
        assert r.status_code == 404
        assert world.alerts.dispatcher.silences.get(s.id).ends_at == s.ends_at
        listed = client.get("/api/metrics/silences", headers=auth(FOREVER)).json()["silences"]
        assert [x["id"] for x in listed] == [s.id]
    finally:
        world.alerts.dispatcher.silences.expire(s.id, world.engine.now())


def test_hub_counters_are_for_operators(client):
    assert client.get("/api/metrics/hub", headers=auth(BLISS)).status_code == 403
    body = client.get("/api/metrics/hub", headers=auth(OPS)).json()
    assert body["requests"] > 0


def test_cache_is_per_tenant(world):
    app = create_app(world.engine, alerts=world.alerts, tokens=TOKENS, cache_ttl="1h")
    with live_server(app) as base, httpx.Client(base_url=base) as c:
        ops = c.get("/api/metrics/series", headers=auth(OPS))
        assert ops.headers["X-Cache"] == "miss"
        bliss = c.get("/api/metrics/series", headers=auth(BLISS))
        assert bliss.headers["X-Cache"] == "miss"          # not the operator's answer
        assert "w-forever" in ops.text
        _no_forever(bliss.text)
        again = c.get("/api/metrics/series", headers=auth(BLISS))
        assert again.headers["X-Cache"] == "hit" and again.text == bliss.text
