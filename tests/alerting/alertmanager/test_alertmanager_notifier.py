"""wedmetrics in front of a real Alertmanager 0.25: AlertmanagerNotifier posts, amtool sees, the webhook gets it."""
from __future__ import annotations

import json
import subprocess
import textwrap
import time
import urllib.request

import pytest

from wedmetrics.alerting.alertmanager_config import label_fingerprint
from wedmetrics.alerting.alertmanager_notifier import AlertmanagerNotifier
from wedmetrics.alerting.notification import Notification, NotificationGroup

from am_peers import free_port, require_binary, wait_until  # noqa: E402


@pytest.fixture
def alertmanager(tmp_path, hook):
    binary = require_binary("prometheus-alertmanager")
    port = free_port()
    (tmp_path / "am.yml").write_text(textwrap.dedent(f"""
        route:
          receiver: hook
          group_by: [alertname]
          group_wait: 0s
          group_interval: 1s
        receivers:
          - name: hook
            webhook_configs: [{{url: "{hook.url}/am", send_resolved: true}}]
    """))
    log = open(tmp_path / "alertmanager.log", "w")
    proc = subprocess.Popen([binary, f"--config.file={tmp_path / 'am.yml'}", f"--storage.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
                             "--log.level=warn"], stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"

    def ready():
        try:
            with urllib.request.urlopen(url + "/-/ready", timeout=1) as r:
                return r.status == 200
        except OSError:
            return proc.poll() is not None and pytest.fail("alertmanager exited")
    try:
        wait_until(ready, timeout=30)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def test_alert_reaches_alertmanager_amtool_and_its_webhook_then_resolves(alertmanager, hook):
    amtool = require_binary("amtool")
    started = time.time() - 60
    notifier = AlertmanagerNotifier(alertmanager, generator_url="http://wedmetrics.local/alerts/a1")
    firing = Notification("a1", "GuestUploadsSlow", "firing", "critical", summary="uploads slow",
                          labels={"wedding_id": "w1", "severity": "critical"}, starts_at=started)
    notifier.send(NotificationGroup((firing,), group_key="g"))

    def amtool_query():
        out = subprocess.run([amtool, f"--alertmanager.url={alertmanager}", "alert", "query", "-o", "json"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)
    (seen,) = wait_until(amtool_query)
    assert seen["labels"] == {"alertname": "GuestUploadsSlow", "wedding_id": "w1", "severity": "critical"}
    assert seen["generatorURL"] == "http://wedmetrics.local/alerts/a1"
    assert seen["fingerprint"] == label_fingerprint(seen["labels"])   # Alertmanager's own fingerprint
    assert seen["annotations"]["summary"] == "uploads slow"
    body = wait_until(lambda: [b for b in hook.bodies if b["status"] == "firing"])[0]
    assert body["alerts"][0]["labels"]["alertname"] == "GuestUploadsSlow"

    resolved = Notification("a1", "GuestUploadsSlow", "resolved", "critical", summary="uploads slow",
                            labels={"wedding_id": "w1", "severity": "critical"}, starts_at=started,
                            ends_at=time.time() - 1)
    notifier.send(NotificationGroup((resolved,), group_key="g"))
    done = wait_until(lambda: [b for b in hook.bodies if b["status"] == "resolved"])[0]
    assert done["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
    wait_until(lambda: amtool_query() == [])


def test_firing_alert_carries_ends_at_of_its_resend_window():
    n = AlertmanagerNotifier("http://127.0.0.1:1", resend_window=120, clock=lambda: 1_000_000.0)
    a = Notification("a1", "R", "firing", "warning", labels={"x": "y"}, starts_at=999_000.0)
    (item,) = n.build_payload(NotificationGroup((a,), group_key="g"))
    assert item["startsAt"] == "1970-01-12T13:30:00.000Z" and item["endsAt"] == "1970-01-12T13:48:40.000Z"
    assert item["labels"] == {"x": "y", "alertname": "R", "severity": "warning"}
    plain = AlertmanagerNotifier("http://127.0.0.1:1")
    assert "endsAt" not in plain.build_payload(NotificationGroup((a,), group_key="g"))[0]


def amtool_alerts(amtool: str, url: str) -> list[dict]:
    out = subprocess.run([amtool, f"--alertmanager.url={url}", "alert", "query", "-o", "json"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_rule_alerts_of_an_alert_engine_reach_alertmanager_with_alertname_severity_and_wedding_level(alertmanager):
    """AlertmanagerNotifier driven by an AlertEngine with a calendar: amtool shows the rule's
    alertname, its severity where the user wrote none, the user's own severity otherwise, and
    the wedding-raised level as wedding_severity."""
    import datetime as dt

    import wedmetrics as wm

    amtool = require_binary("amtool")
    now = time.time()
    today = dt.datetime.fromtimestamp(now, tz=dt.timezone.utc).date().isoformat()
    cal = wm.WeddingCalendar([wm.Wedding(id="w1", org_id="acme", date=today, timezone="UTC", guest_count=120,
                                         start_time="00:00", end_time="23:59")])
    engine = wm.MetricsEngine(clock=wm.ManualClock(now))
    notifier = AlertmanagerNotifier(alertmanager, generator_url="http://wedmetrics.local/alerts")
    alerts = wm.AlertEngine(engine, calendar=cal, notifiers=[notifier],
                            route={"receiver": "alertmanager", "group_by": ["..."], "group_wait": 0})
    try:
        engine.series("api.latency", labels={"wedding_id": "w1", "route": "/rsvp"}).record(3.0)
        engine.series("api.latency", labels={"wedding_id": "w1", "route": "/photos", "severity": "sev3"}).record(3.0)
        alerts.add_rule({"kind": "threshold", "name": "SlowUploads", "metric": "api.latency", "stat": "max",
                         "window": "1m", "op": ">", "threshold": 1.0, "severity": "warning"})
        alerts.evaluate()
        assert alerts.delivery.flush(10)
        seen = wait_until(lambda: len(amtool_alerts(amtool, alertmanager)) == 2
                          and amtool_alerts(amtool, alertmanager))
        by_route = {a["labels"]["route"]: a["labels"] for a in seen}
        assert by_route == {
            "/rsvp": {"alertname": "SlowUploads", "severity": "warning", "wedding_severity": "critical",
                      "wedding_id": "w1", "route": "/rsvp"},
            "/photos": {"alertname": "SlowUploads", "severity": "sev3", "wedding_severity": "critical",
                        "wedding_id": "w1", "route": "/photos"}}
        assert {a["generatorURL"] for a in seen} == {"http://wedmetrics.local/alerts"}
    finally:
        alerts.close()
        engine.close()


def test_same_alerts_give_the_same_webhook_body_from_alertmanager_and_from_wedmetrics(alertmanager, hook):
    """The webhook body of wedmetrics (as Alertmanager) against the real Alertmanager 0.25's,
    for the same posted alerts and the same alertmanager.yml."""
    import wedmetrics as wm

    started = time.time() - 30
    posted = [{"labels": {"alertname": "VenueDown", "venue": "kew", "instance": f"ap{i}"},
               "annotations": {"summary": "down", "runbook": f"r{i}"}, "startsAt": _iso(started + i),
               "generatorURL": f"http://prometheus.example/graph?g0.expr=up{i}"} for i in (1, 2)]
    data = json.dumps(posted).encode()
    req = urllib.request.Request(alertmanager + "/api/v2/alerts", data=data,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
    config = textwrap.dedent(f"""
        route:
          receiver: hook
          group_by: [alertname]
          group_wait: 0s
          group_interval: 1s
        receivers:
          - name: hook
            webhook_configs: [{{url: "{hook.url}/wm", send_resolved: true}}]
    """)
    engine = wm.MetricsEngine()
    alerts = wm.AlertEngine(engine, config=config, external_url="http://wedmetrics.example")
    try:
        alerts.receive_alerts(posted)
        assert alerts.delivery.flush(10)
        theirs = wait_until(lambda: [b for b in hook.to("/am") if len(b["alerts"]) == 2])[0]
        (ours,) = hook.to("/wm")
    finally:
        alerts.close()
        engine.close()
    assert list(ours) == list(theirs)
    for body in (ours, theirs):
        body["alerts"].sort(key=lambda a: a["fingerprint"])
    assert [list(a) for a in ours["alerts"]] == [list(a) for a in theirs["alerts"]]
    same = ("receiver", "status", "groupLabels", "commonLabels", "commonAnnotations", "version", "truncatedAlerts")
    assert {k: ours[k] for k in same} == {k: theirs[k] for k in same}
    assert ours["groupLabels"] == {"alertname": "VenueDown"}
    assert ours["alerts"] == theirs["alerts"]      # labels, annotations, times, generatorURL, fingerprint
    # route keys differ by design (positions here, matchers there); externalURL is each one's own
    assert theirs["groupKey"] == '{}:{alertname="VenueDown"}' and ours["groupKey"] == 'root:{alertname="VenueDown"}'
    assert ours["externalURL"] == "http://wedmetrics.example"


def _iso(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
