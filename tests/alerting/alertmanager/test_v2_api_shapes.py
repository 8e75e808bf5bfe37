"""The v2 API's shapes and rules (api/v2/openapi.yaml), served by the hub's create_app."""
from __future__ import annotations


import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

import wedmetrics as wm  # noqa: E402
from wedmetrics.http.app import create_app  # noqa: E402

from am_peers import serve  # noqa: E402

CONFIG = """
route:
  receiver: ops
  group_by: [venue]
  group_wait: 1h
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
receivers: [{name: ops}, {name: pager}]
inhibit_rules:
  - source_matchers: [alertname=VenueDown]
    target_matchers: [alertname=SlowUploads]
    equal: [venue]
"""
ALERT_KEYS = {"labels", "annotations", "receivers", "fingerprint", "startsAt", "updatedAt", "endsAt", "status",
              "generatorURL"}
SILENCE_KEYS = {"id", "status", "updatedAt", "matchers", "startsAt", "endsAt", "createdBy", "comment", "annotations"}


@pytest.fixture
def hub():
    clock = wm.ManualClock(1_780_000_000.0)
    engine = wm.MetricsEngine(clock=clock)
    alerts = wm.AlertEngine(engine, config=CONFIG)
    app = create_app(engine, alerts=alerts, tokens={"op-token": "*", "org-token": "acme"})
    with serve(app) as base:
        with httpx.Client(base_url=base + "/api/v2", headers={"Authorization": "Bearer op-token"},
                          timeout=10) as client:
            yield client, clock
    alerts.close()
    engine.close()


def iso(ts):
    import datetime as dt
    return dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc).isoformat().replace("+00:00", "Z")


def test_alerts_groups_inhibition_and_status(hub):
    client, clock = hub
    now = clock.now()
    bad = client.post("/alerts", json=[{"labels": {}}])
    assert bad.status_code == 400 and "at least one label" in bad.json()
    ok = client.post("/alerts", json=[
        {"labels": {"alertname": "VenueDown", "venue": "kew", "severity": "critical"},
         "annotations": {"summary": "down"}, "startsAt": iso(now - 60), "generatorURL": "http://prom/graph"},
        {"labels": {"alertname": "SlowUploads", "venue": "kew"}, "startsAt": iso(now - 30),
         "endsAt": iso(now + 600)}])
    assert ok.status_code == 200
    got = {a["labels"]["alertname"]: a for a in client.get("/alerts").json()}
    assert set(got) == {"VenueDown", "SlowUploads"} and all(set(a) >= ALERT_KEYS for a in got.values())
    down, slow = got["VenueDown"], got["SlowUploads"]
    assert down["receivers"] == [{"name": "pager"}] and down["status"]["state"] == "active"
    assert down["generatorURL"] == "http://prom/graph" and down["startsAt"] == iso(now - 60).replace("Z", ".000Z")
    assert slow["status"] == {"state": "suppressed", "silencedBy": [], "inhibitedBy": [down["fingerprint"]],
                              "mutedBy": []}
    assert slow["endsAt"] == iso(now + 600).replace("Z", ".000Z")
    assert [a["labels"]["alertname"] for a in client.get("/alerts", params={"inhibited": "false"}).json()] == [
        "VenueDown"]
    assert [a["labels"]["alertname"] for a in client.get("/alerts", params={"filter": 'alertname=~"Slow.*"'}).json()
            ] == ["SlowUploads"]
    groups = client.get("/alerts/groups").json()
    assert sorted((g["receiver"]["name"], g["labels"]["venue"], len(g["alerts"])) for g in groups) == [
        ("ops", "kew", 1), ("pager", "kew", 1)]
    status = client.get("/status").json()
    assert status["cluster"]["status"] == "disabled" and "route:" in status["config"]["original"]
    assert set(status["versionInfo"]) == {"version", "revision", "branch", "buildUser", "buildDate", "goVersion"}
    assert client.get("/receivers").json() == [{"name": "ops"}, {"name": "pager"}]
    # the alert without endsAt resolves after resolve_timeout (5m default), as in Alertmanager
    clock.advance(301)
    assert [a["labels"]["alertname"] for a in client.get("/alerts").json()] == ["SlowUploads"]


def test_silence_create_update_replace_expire(hub):
    client, clock = hub
    now = clock.now()
    body = {"matchers": [{"name": "venue", "value": "kew", "isRegex": False, "isEqual": True}],
            "startsAt": iso(now), "endsAt": iso(now + 3600), "createdBy": "ana", "comment": "wifi"}
    sid = client.post("/silences", json=body).json()["silenceID"]
    one = client.get(f"/silence/{sid}").json()
    assert set(one) == SILENCE_KEYS and one["status"]["state"] == "active"
    same = client.post("/silences", json=dict(body, id=sid, endsAt=iso(now + 7200))).json()["silenceID"]
    assert same == sid                                       # a longer end updates in place
    other = client.post("/silences", json=dict(body, id=sid, matchers=[
        {"name": "venue", "value": "ely", "isRegex": False, "isEqual": True}])).json()["silenceID"]
    assert other != sid                                      # new matchers: a new silence
    clock.advance(1)
    states = {s["id"]: s["status"]["state"] for s in client.get("/silences").json()}
    assert states == {sid: "expired", other: "active"}
    empty = client.post("/silences", json=dict(body, matchers=[
        {"name": "venue", "value": ".*", "isRegex": True, "isEqual": True}]))
    assert empty.status_code == 400 and "must not match the empty string" in empty.json()
    assert client.post("/silences", json=dict(body, id="nope")).status_code == 404
    assert client.delete(f"/silence/{other}").status_code == 200
    clock.advance(1)
    assert client.get(f"/silence/{other}").json()["status"]["state"] == "expired"
    assert client.delete("/silence/unknown").status_code == 404
    assert [s["id"] for s in client.get("/silences", params={"filter": 'venue="ely"'}).json()] == [other]


def test_org_tokens_are_refused(hub):
    client, _ = hub
    r = client.get("/alerts", headers={"Authorization": "Bearer org-token"})
    assert r.status_code == 403
    assert client.get("/alerts", headers={"Authorization": "Bearer wrong"}).status_code == 401
