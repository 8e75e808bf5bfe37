"""Every dashboard endpoint against a real uvicorn server, compared with the engine itself."""
from __future__ import annotations

import math

import httpx
import numpy as np
import pytest
from hubserver import BLISS, FOREVER, OPS, T0, TOKENS, World, auth, live_server

from wedmetrics.http import create_app


@pytest.fixture(scope="module")
def base(world):
    app = create_app(world.engine, alerts=world.alerts, tokens=TOKENS, cache_ttl=0)
    with live_server(app) as url:
        yield url


def test_real_time_matches_the_engine(client, world):
    r = client.get("/api/metrics/real-time", params={"name": "api.latency", "window": "5m"},
                   headers=auth(OPS))
    assert r.status_code == 200
    body = r.json()
    assert body["now"] == T0 and body["window"] == 300.0 and body["truncated"] is False
    assert len(body["series"]) == 4
    for s in body["series"]:
        want = world.engine.query("api.latency", last="5m", labels=s["labels"])
        vals = world.values[("api.latency", tuple(sorted(s["labels"].items())))]
        assert s["count"] == want.count == len(vals)
        assert s["rate"] == pytest.approx(len(vals) / 300.0)
        assert s["min"] == pytest.approx(vals.min()) and s["max"] == pytest.approx(vals.max())
        assert s["mean"] == pytest.approx(vals.mean())
        for q, key in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
            exact = np.quantile(vals, q, method="lower")
            assert abs(s[key] - exact) <= 0.01 * exact + 1e-12
            assert s[key] == pytest.approx(want.quantile(q))
        assert s["alpha"] == pytest.approx(0.01)
    stats = world.engine.stats()
    assert body["engine"]["accepted"] == stats["accepted"]
    assert body["engine"]["dropped"] == stats["dropped"]


def test_real_time_matchers_counters_and_every_name(client):
    r = client.get("/api/metrics/real-time",
                   params={"name": "api.latency", "match": ['{route="/rsvp",org_id=~"bliss.*"}']},
                   headers=auth(OPS))
    assert [s["labels"] for s in r.json()["series"]] == [{"route": "/rsvp", "org_id": "bliss-events"}]
    r = client.get("/api/metrics/real-time", params={"name": "api.requests", "window": "1m"},
                   headers=auth(OPS))
    (counter,) = r.json()["series"]
    assert counter["kind"] == "counter"
    assert counter["rate"] == pytest.approx(60 / 60.0)      # 30 increments of 2 in a minute
    everything = client.get("/api/metrics/real-time", headers=auth(OPS)).json()["series"]
    assert {s["name"] for s in everything} == {"api.latency", "api.requests", "internal.gc"}
    limited = client.get("/api/metrics/real-time", params={"limit": 2}, headers=auth(OPS)).json()
    assert len(limited["series"]) == 2 and limited["truncated"] is True
    none = client.get("/api/metrics/real-time",
                      params={"name": "api.latency", "match": 'route="/nowhere"'}, headers=auth(OPS))
    assert none.status_code == 200 and none.json()["series"] == []


def test_series_lists_names_and_label_sets(client):
    body = client.get("/api/metrics/series", headers=auth(OPS)).json()
    assert body["names"] == ["api.latency", "api.requests", "internal.gc"]
    assert all(s["live"] and not s["stored"] for s in body["series"])
    body = client.get("/api/metrics/series", params={"match": 'route="/photos"'},
                      headers=auth(OPS)).json()
    assert sorted(s["labels"]["wedding_id"] for s in body["series"]) == ["w-bliss", "w-forever"]


def test_range_buckets_match_the_engine(client, world):
    params = {"name": "api.latency", "match": 'wedding_id="w-bliss"', "resolution": "1s",
              "start": str(T0 - 60), "end": str(T0 + 1)}
    body = client.get("/api/metrics/range", params=params, headers=auth(OPS)).json()
    (series,) = body["series"]
    cols = world.engine.buckets(world.engine.series("api.latency", series["labels"]), "1s",
                                T0 - 60, T0 + 1)
    assert [b["start"] for b in series["buckets"]] == cols["start"].tolist()
    assert [b["count"] for b in series["buckets"]] == cols["count"].tolist()
    assert [b["p95"] for b in series["buckets"]] == pytest.approx(cols["p95"].tolist())
    assert sum(b["count"] for b in series["buckets"]) == 400
    iso = client.get("/api/v1/metrics/range",
                     params=dict(params, start="2026-06-13T14:59:00Z", end="2026-06-13T15:00:01"),
                     headers=auth(OPS)).json()
    assert iso["series"] == body["series"]


def test_wedding_view(client, world):
    r = client.get("/api/metrics/wedding/w-bliss", headers=auth(BLISS))
    assert r.status_code == 200
    body = r.json()
    assert body["wedding"]["org_id"] == "bliss-events"
    assert body["wedding"]["guest_count"] == 120 and body["wedding"]["venue"] == "Kew Gardens"
    assert body["priority"] == {"wedding_day": True, "saturday": True, "level": "wedding_day"}
    assert [s["labels"] for s in body["series"]] == [{"route": "/photos", "wedding_id": "w-bliss"}]
    assert body["series"][0]["count"] == 400
    assert body["alerts"] == []          # nothing of w-bliss fires
    forever = client.get("/api/metrics/wedding/w-forever", headers=auth(FOREVER)).json()
    assert [a["rule"] for a in forever["alerts"]] == ["SlowPhotos"]


def test_alerts_active_and_history(client, world):
    mine = client.get("/api/metrics/alerts", headers=auth(BLISS)).json()["alerts"]
    assert [(a["rule"], a["labels"]) for a in mine] == [
        ("SlowRsvp", {"route": "/rsvp", "org_id": "bliss-events"})]
    assert mine[0]["state"] == "firing" and mine[0]["value"] == pytest.approx(
        world.values[("api.latency", (("org_id", "bliss-events"), ("route", "/rsvp")))].max())
    everyone = client.get("/api/metrics/alerts", headers=auth(OPS)).json()["alerts"]
    assert len(everyone) == 3
    hist = client.get("/api/metrics/alerts", params={"history": 1, "status": "firing"},
                      headers=auth(OPS)).json()["events"]
    assert {e["rule"] for e in hist} == {"SlowRsvp", "SlowPhotos"}
    assert all(e["status"] == "firing" for e in hist)
    by_rule = client.get("/api/metrics/alerts", params={"history": "true", "rule": "SlowPhotos"},
                         headers=auth(OPS)).json()["events"]
    assert by_rule and all(e["rule"] == "SlowPhotos" for e in by_rule)


@pytest.mark.parametrize("params, parameter, status", [
    ({"name": "no.such.series"}, "name", 404),
    ({"window": "5 parsecs"}, "window", 400),
    ({"window": "0s"}, "window", 400),
    ({"window": "400d"}, "window", 400),
    ({"window": "-5m"}, "window", 400),
    ({"match": 'route=~"(a+)+$"'}, "match", 400),
    ({"match": 'route=~"(x|xx)*"'}, "match", 400),
    ({"match": 'route=~"["'}, "match", 400),
    ({"match": 'not a matcher'}, "match", 400),
    ({"match": '{a="1",b="2'}, "match", 400),
    ({"match": ["a=1"] * 21}, "match", 400),
    ({"match": 'r=~"' + "a" * 300 + '"'}, "match", 400),
    ({"limit": 0}, "limit", 422),
    ({"limit": "many"}, "limit", 422),
])
def test_real_time_bad_input(client, world, params, parameter, status):
    before = world.engine.stats()
    r = client.get("/api/metrics/real-time", params=params, headers=auth(OPS))
    assert r.status_code == status, r.text
    assert r.json()["error"]["parameter"] == parameter
    assert r.json()["error"]["status"] == status
    assert "Traceback" not in r.text
    assert world.engine.stats() == before and world.engine.series_count() == 6


@pytest.mark.parametrize("params, parameter", [
    ({"name": "api.latency", "start": str(T0), "end": str(T0 - 10)}, "start"),
    ({"name": "api.latency", "resolution": "1s", "start": "0", "end": str(T0)}, "resolution"),
    ({"name": "api.latency", "resolution": "7s"}, "resolution"),
    ({"name": "api.latency", "start": "yesterday-ish"}, "start"),
    ({"name": "api.latency", "end": "1e300"}, "end"),
    ({"name": "api.latency", "end": "nan"}, "end"),
    ({"name": "api.latency", "start": "-5"}, "start"),
    ({"name": "nope"}, "name"),
    ({}, "name"),
])
def test_range_bad_input(client, world, params, parameter):
    before = world.engine.stats()
    r = client.get("/api/metrics/range", params=params, headers=auth(OPS))
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["error"]["parameter"] == parameter
    assert world.engine.stats() == before


def test_other_bad_input(client, world):
    r = client.get("/api/metrics/alerts", params={"history": 1, "status": "exploded"},
                   headers=auth(OPS))
    assert r.status_code == 400 and r.json()["error"]["parameter"] == "status"
    r = client.get("/api/metrics/alerts", params={"history": 1, "since": str(T0), "until": "5"},
                   headers=auth(OPS))
    assert r.status_code == 400 and r.json()["error"]["parameter"] == "since"
    r = client.get("/api/metrics/wedding/w-nope", headers=auth(OPS))
    assert r.status_code == 404 and r.json()["error"]["parameter"] == "wedding_id"
    r = client.post("/api/metrics/silences", content=b'{"matchers": [', headers={
        **auth(OPS), "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["parameter"] == "body"
    assert "malformed JSON" in r.json()["error"]["message"]
    r = client.post("/api/metrics/silences", json={"matchers": [], "created_by": "x",
                                                   "duration": "1h"}, headers=auth(OPS))
    assert r.status_code == 422 and r.json()["error"]["parameter"] == "matchers"
    r = client.post("/api/metrics/silences", json={"matchers": ['a="1"'], "created_by": "x",
                                                   "duration": "1h", "extra": 1}, headers=auth(OPS))
    assert r.status_code == 422 and r.json()["error"]["parameter"] == "extra"
    r = client.get("/api/metrics/real-time", params={"name": "x" * 3000}, headers=auth(OPS))
    assert r.status_code == 422 and r.json()["error"]["parameter"] == "name"
    r = client.get("/api/metrics/real-time", params={"name": "x" * 5000}, headers=auth(OPS))
    assert r.status_code == 414 and r.json()["error"]["parameter"] == "query"
    assert world.alerts.dispatcher.silences.active(T0) == []


def test_openapi_describes_every_endpoint(client):
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path in ("/api/metrics/real-time", "/api/metrics/series", "/api/metrics/range",
                 "/api/metrics/wedding/{wedding_id}", "/api/metrics/alerts",
                 "/api/metrics/alerts/{alert_id}/ack", "/api/metrics/alerts/{alert_id}/feedback",
                 "/api/metrics/silences", "/api/metrics/silences/{silence_id}",
                 "/api/metrics/stream", "/healthz", "/readyz"):
        assert path in paths, path
    assert set(paths["/api/metrics/silences"]) == {"get", "post"}
    ok = paths["/api/metrics/real-time"]["get"]["responses"]["200"]["content"]
    assert ok["application/json"]["schema"]["$ref"].endswith("/RealTime")


# -- what changes state: each test on its own world --------------------------------------
@pytest.fixture
def fresh():
    w = World()
    app = create_app(w.engine, alerts=w.alerts, tokens=TOKENS, cache_ttl=0)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10.0) as c:
        yield w, c
    w.close()


def test_ack_feedback_and_silences(fresh):
    world, c = fresh
    mine = world.alert_id("SlowRsvp", org_id="bliss-events")
    r = c.post(f"/api/metrics/alerts/{mine}/ack", json={"by": "ana"}, headers=auth(BLISS))
    assert r.status_code == 200 and r.json()["acked_by"] == "ana"
    assert [a.acked_by for a in world.alerts.active() if a.id == mine] == ["ana"]
    assert c.post("/api/metrics/alerts/0000000000000000/ack", json={"by": "ana"},
                  headers=auth(BLISS)).status_code == 404
    assert c.post(f"/api/metrics/alerts/{mine}/ack", json={}, headers=auth(BLISS)).status_code == 422

    r = c.post(f"/api/metrics/alerts/{mine}/feedback", json={"false_positive": True, "by": "ana"},
               headers=auth(BLISS))
    assert r.status_code == 200
    assert r.json() == {"alert_id": mine, "rule": "SlowRsvp", "threshold": 1.0,
                        "false_positives": 1, "confirmed": 0}
    assert world.alerts.rule_state("SlowRsvp")["threshold"] == 1.0

    r = c.post("/api/metrics/silences", json={"matchers": ['org_id="bliss-events"',
                                                           'route=~"/rs.*"'],
                                              "duration": "2h", "created_by": "ana",
                                              "comment": "venue wifi swap"}, headers=auth(BLISS))
    assert r.status_code == 201, r.text
    silence = r.json()
    assert silence["ends_at"] == T0 + 7200 and silence["created_by"] == "ana"
    listed = c.get("/api/metrics/silences", headers=auth(BLISS)).json()["silences"]
    assert [s["id"] for s in listed] == [silence["id"]]
    store = world.alerts.dispatcher.silences
    assert store.silenced_by({"org_id": "bliss-events", "route": "/rsvp"}, T0) == [silence["id"]]
    assert store.silenced_by({"org_id": "forever-planners", "route": "/rsvp"}, T0) == []
    r = c.delete(f"/api/metrics/silences/{silence['id']}", headers=auth(BLISS))
    assert r.status_code == 200, r.text
    assert r.json()["ends_at"] == T0
    assert c.get("/api/metrics/silences", headers=auth(BLISS)).json()["silences"] == []
    assert c.delete("/api/metrics/silences/nope", headers=auth(BLISS)).status_code == 404


def test_silence_input_checks(fresh):
    world, c = fresh
    base = {"matchers": ['org_id="bliss-events"'], "created_by": "ana"}
    for body, parameter in (({**base}, "duration"),
                            ({**base, "duration": "1h", "ends_at": T0 + 10}, "duration"),
                            ({**base, "ends_at": T0 - 10}, "ends_at"),
                            ({**base, "duration": "eleventy"}, "duration"),
                            ({**base, "matchers": ['x=~"(a*)*"'], "duration": "1h"}, "matchers")):
        r = c.post("/api/metrics/silences", json=body, headers=auth(OPS))
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["parameter"] == parameter
    assert world.alerts.dispatcher.silences.active(T0) == []
    acked = world.alert_id("SlowPhotos")
    world.alerts.ack(acked, by="ops")
    pending = c.post("/api/metrics/alerts/nope/feedback", json={"false_positive": "maybe"},
                     headers=auth(OPS))
    assert pending.status_code == 422 and pending.json()["error"]["parameter"] == "false_positive"
