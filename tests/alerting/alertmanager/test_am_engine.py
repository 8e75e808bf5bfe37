"""An alertmanager.yml driving wedmetrics' own rule alerts, end to end through AlertEngine.

Routing by ``alertname`` and ``severity``, per-integration deduplication
(``send_resolved``), time intervals without ranges, receiver names, the
webhook body, and email / Slack receivers delivering to real local servers.
"""
from __future__ import annotations

import textwrap

import pytest

import wedmetrics as wm
from wedmetrics.alerting.alertmanager_config import ConfigError, channel_id, load_alertmanager_config
from wedmetrics.alerting.notification import Notification
from wedmetrics.alerting.routing import Dispatcher

from am_peers import wait_until  # noqa: E402

T0 = 1_780_000_000.0
SLOW = {"kind": "threshold", "name": "Slow", "metric": "api.latency", "stat": "max", "window": "1m",
        "op": ">", "threshold": 1.0, "severity": "warning"}
DOWN = {"kind": "threshold", "name": "Down", "metric": "api.errors", "stat": "max", "window": "1m",
        "op": ">", "threshold": 0.5, "severity": "critical"}


def engine_with(config: str, **kw):
    clock = wm.ManualClock(T0)
    engine = wm.MetricsEngine(clock=clock)
    alerts = wm.AlertEngine(engine, config=config, **kw)
    return clock, engine, alerts


def test_rule_alerts_route_by_alertname_and_severity(hook):
    config = textwrap.dedent(f"""
        route:
          receiver: default
          group_by: [alertname]
          group_wait: 0s
          routes:
            - matchers: ['alertname="Slow"']
              receiver: slow-team
            - matchers: ['severity="critical"']
              receiver: pager
        receivers:
          - name: default
            webhook_configs: [{{url: "{hook.url}/default"}}]
          - name: slow-team
            webhook_configs: [{{url: "{hook.url}/slow"}}]
          - name: pager
            webhook_configs: [{{url: "{hook.url}/pager"}}]
    """)
    clock, engine, alerts = engine_with(config)
    try:
        engine.series("api.latency", labels={"route": "/rsvp"}).record(3.0)
        engine.series("api.errors", labels={"route": "/rsvp"}).record(1.0)
        # the user's own severity is never overwritten: this one stays sev3 and is not paged
        engine.series("api.errors", labels={"route": "/photos", "severity": "sev3"}).record(1.0)
        alerts.add_rule(SLOW)
        alerts.add_rule(DOWN)
        alerts.evaluate()
        assert alerts.delivery.flush(10)
        slow, pager, default = hook.to("/slow"), hook.to("/pager"), hook.to("/default")
        assert [b["groupLabels"] for b in slow] == [{"alertname": "Slow"}]
        assert slow[0]["alerts"][0]["labels"] == {"alertname": "Slow", "route": "/rsvp", "severity": "warning"}
        assert [(b["groupLabels"], [a["labels"]["route"] for a in b["alerts"]]) for b in pager] == [
            ({"alertname": "Down"}, ["/rsvp"])]
        assert [(b["receiver"], [a["labels"]["severity"] for a in b["alerts"]]) for b in default] == [
            ("default", ["sev3"])]
        # no calendar: no wedding label, exactly Alertmanager's labels
        assert all("wedding_severity" not in a["labels"] for b in hook.bodies for a in b["alerts"])
    finally:
        alerts.close()
        engine.close()


def test_wedding_level_is_its_own_label_and_routable(hook):
    import datetime as dt

    saturday = dt.datetime(2026, 6, 13, 14, 0, tzinfo=dt.timezone.utc).timestamp()
    cal = wm.WeddingCalendar([wm.Wedding(id="w1", org_id="acme", date="2026-06-13", timezone="Europe/London",
                                         guest_count=100, start_time="14:00", end_time="23:00")])
    config = textwrap.dedent(f"""
        route:
          receiver: default
          group_by: [alertname]
          group_wait: 0s
          routes:
            - matchers: ['wedding_severity=~"critical|page"']
              receiver: pager
        receivers:
          - name: default
            webhook_configs: [{{url: "{hook.url}/default"}}]
          - name: pager
            webhook_configs: [{{url: "{hook.url}/pager"}}]
    """)
    clock = wm.ManualClock(saturday)
    engine = wm.MetricsEngine(clock=clock)
    alerts = wm.AlertEngine(engine, config=config, calendar=cal)
    try:
        engine.series("api.latency", labels={"wedding_id": "w1"}).record(3.0)
        alerts.add_rule(SLOW)
        alerts.evaluate()
        assert alerts.delivery.flush(10)
        (body,) = hook.to("/pager")
        assert body["alerts"][0]["labels"] == {"alertname": "Slow", "severity": "warning",
                                               "wedding_severity": "critical", "wedding_id": "w1"}
    finally:
        alerts.close()
        engine.close()


# -- send_resolved per integration (notify.DedupStage.needsUpdate) ---------------------

TWO_INTEGRATIONS = """
route:
  receiver: team
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 1h
receivers:
  - name: team
    webhook_configs: [{url: "http://127.0.0.1:9/hook"}]          # send_resolved: true (default)
    email_configs: [{to: a@example.org, from: am@example.org, smarthost: "127.0.0.1:25",
                     require_tls: false}]                          # send_resolved: false (default)
"""


def fired(alert_id: str, at: float = T0) -> Notification:
    return Notification(alert_id, "R", "firing", "warning", labels={"alertname": "R", "i": alert_id}, starts_at=at)


def test_an_integration_without_send_resolved_is_not_told_again_when_one_alert_resolves():
    cfg = load_alertmanager_config(TWO_INTEGRATIONS)
    d = Dispatcher(cfg.routing, integrations={n: [(t, sr) for t, _, sr in r.integrations]
                                              for n, r in cfg.receivers.items()})
    (first,) = d.process([fired("a1"), fired("a2")], T0)
    assert first.group.targets is None and len(first.alerts) == 2          # both integrations
    resolved = Notification("a1", "R", "resolved", "warning", labels={"alertname": "R", "i": "a1"},
                            starts_at=T0, ends_at=T0 + 10)
    d.update(resolved, T0 + 10)
    (update,) = d.tick(T0 + 60)
    assert update.group.targets == {"webhook_configs[0]"}                   # email: nothing new to say
    assert [a.status for a in update.alerts] == ["firing", "resolved"]
    # the email integration's repeat_interval counts from its own last message (T0) ...
    out = []
    t = T0 + 60
    while t < T0 + 3600:
        t += 60
        out += d.tick(t)
    assert [(n.at, n.group.targets, n.reason) for n in out] == [(T0 + 3600, {"email_configs[0]"}, "repeat")]
    # ... and the webhook's from its own (T0 + 60)
    assert [(n.group.targets, n.reason) for n in d.tick(T0 + 3660)] == [({"webhook_configs[0]"}, "repeat")]


def test_receiver_delivers_only_to_the_targets_of_a_message():
    cfg = load_alertmanager_config(TWO_INTEGRATIONS)
    receiver = cfg.receivers["team"]
    sent = []
    for _, n, _ in receiver.integrations:
        n.send = lambda group, n=n: sent.append(n.kind)
    from wedmetrics.alerting.notification import NotificationGroup

    g = NotificationGroup((fired("a1"),), group_key="k", targets={"webhook_configs[0]"})
    for target in receiver.targets():
        receiver.deliver(g, target)
    assert sent == ["webhook"] and receiver.deduplicated == 1


def test_email_and_slack_from_the_config_reach_real_servers_and_are_not_repeated(hook):
    try:
        from tests.alerting.conftest_servers import SMTPServer
    except ImportError:   # run from tests/alerting
        from conftest_servers import SMTPServer  # type: ignore[no-redef]
    smtp = SMTPServer()
    config = textwrap.dedent(f"""
        global:
          smtp_smarthost: "127.0.0.1:{smtp.port}"
          smtp_from: alerts@example.org
          smtp_require_tls: false
        route:
          receiver: team
          group_by: [alertname]
          group_wait: 0s
          group_interval: 1m
          repeat_interval: 4h
        receivers:
          - name: team
            email_configs: [{{to: oncall@example.org}}]
            slack_configs: [{{api_url: "{hook.url}/slack", channel: "#ops"}}]
            webhook_configs: [{{url: "{hook.url}/webhook"}}]
    """)
    clock, engine, alerts = engine_with(config)
    try:
        rsvp = engine.series("api.latency", labels={"route": "/rsvp"})
        photos = engine.series("api.latency", labels={"route": "/photos"})
        rsvp.record(3.0)
        photos.record(3.0)
        alerts.add_rule(SLOW)
        alerts.evaluate()
        assert alerts.delivery.flush(10)
        (mail,) = smtp.wait_for(1)
        assert tuple(mail.rcpt_tos) == ("oncall@example.org",) and b"[FIRING:2] Slow" in mail.content
        assert len(hook.to("/slack")) == 1 and len(hook.to("/webhook")) == 1
        # one alert resolves: the webhook (send_resolved: true by default) is told,
        # email and Slack (false by default) get nothing, as in Alertmanager
        clock.advance(120)
        photos.record(3.0)
        rsvp.record(0.1)
        alerts.evaluate()
        clock.advance(60)
        photos.record(3.0)
        alerts.evaluate()
        assert alerts.delivery.flush(10)
        assert [[a["status"] for a in b["alerts"]] for b in hook.to("/webhook")] == [
            ["firing", "firing"], ["firing", "resolved"]]
        assert len(smtp.messages) == 1 and len(hook.to("/slack")) == 1
        assert alerts.alertmanager_config.receivers["team"].deduplicated == 2   # email and Slack
    finally:
        alerts.close()
        engine.close()
        smtp.close()


# -- time intervals without ranges ----------------------------------------------------------

def test_a_time_interval_without_ranges_never_mutes_and_is_never_active():
    cfg = load_alertmanager_config("""
        route:
          receiver: r
          group_wait: 0s
          routes:
            - matchers: [route=muted]
              mute_time_intervals: [empty]
            - matchers: [route=active]
              active_time_intervals: [empty, missing]
        time_intervals:
          - name: empty
            time_intervals: []
          - name: missing
        receivers: [{name: r}]
    """)
    d = Dispatcher(cfg.routing)
    out = d.process([Notification("m", "R", "firing", "info", labels={"route": "muted"}, starts_at=T0),
                     Notification("a", "R", "firing", "info", labels={"route": "active"}, starts_at=T0)], T0)
    # mute interval that never holds: sent; active intervals that never hold: held back
    assert [[a.alert_id for a in n.alerts] for n in out] == [["m"]]
    assert d.stats()["muted"] == 1


# -- receiver names ---------------------------------------------------------------------------

def test_receiver_names_are_kept_and_map_to_distinct_channels(hook):
    config = textwrap.dedent(f"""
        route:
          receiver: "team X"
          group_by: [alertname]
          group_wait: 0s
          routes:
            - matchers: [route=/photos]
              receiver: team_X
        receivers:
          - name: "team X"
            webhook_configs: [{{url: "{hook.url}/space"}}]
          - name: team_X
            webhook_configs: [{{url: "{hook.url}/underscore"}}]
          - name: {"r" * 70}
    """)
    cfg = load_alertmanager_config(config)
    assert sorted(cfg.receivers) == sorted(["team X", "team_X", "r" * 70])
    assert len({r.name for r in cfg.receivers.values()}) == 3
    assert cfg.routing.route.receiver == "team X"
    clock, engine, alerts = engine_with(config)
    try:
        engine.series("api.latency", labels={"route": "/rsvp"}).record(3.0)
        engine.series("api.latency", labels={"route": "/photos"}).record(3.0)
        alerts.add_rule(SLOW)
        alerts.evaluate()
        assert alerts.delivery.flush(10)
        assert [b["receiver"] for b in hook.to("/space")] == ["team X"]
        assert [b["receiver"] for b in hook.to("/underscore")] == ["team_X"]
        assert {g["receiver"] for g in alerts.dispatcher.groups()} == {"team X", "team_X"}
    finally:
        alerts.close()
        engine.close()


def test_receiver_names_colliding_on_a_channel_id_are_an_error():
    other = channel_id("team X")
    with pytest.raises(ConfigError, match="same delivery channel id"):
        load_alertmanager_config(f"route: {{receiver: a}}\nreceivers:\n- name: 'team X'\n- name: '{other}'\n"
                                 "- name: a\n")


def test_webhook_receiver_name_is_quoted_as_alertmanager_does():
    cfg = load_alertmanager_config('route: {receiver: "ops.eu+1"}\nreceivers:\n'
                                   '- name: "ops.eu+1"\n  webhook_configs: [{url: "http://127.0.0.1:9/"}]\n')
    (_, webhook, _), = cfg.receivers["ops.eu+1"].integrations
    from wedmetrics.alerting.notification import NotificationGroup

    body = webhook.build_payload(NotificationGroup((fired("a1"),), group_key="k"))
    assert body["receiver"] == "ops\\.eu\\+1"   # template.Data: regexp.QuoteMeta(receiver)


# -- the webhook body: notify/webhook Message ----------------------------------------------------

MESSAGE_KEYS = ["receiver", "status", "alerts", "groupLabels", "commonLabels", "commonAnnotations",
                "externalURL", "version", "groupKey", "truncatedAlerts"]
ALERT_KEYS = ["status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"]


def test_webhook_body_is_alertmanagers_message(hook):
    config = textwrap.dedent(f"""
        route:
          receiver: hook
          group_by: [alertname, venue]
          group_wait: 0s
        receivers:
          - name: hook
            webhook_configs: [{{url: "{hook.url}/wm", max_alerts: 1}}]
    """)
    clock, engine, alerts = engine_with(config, external_url="https://wedmetrics.example")
    try:
        alerts.receive_alerts([
            {"labels": {"alertname": "VenueDown", "venue": "kew", "i": str(i)}, "annotations": {"summary": "down"},
             "generatorURL": "http://prometheus.example/graph?g0.expr=up"} for i in (1, 2)])
        assert alerts.delivery.flush(10)
        (body,) = hook.to("/wm")
        assert list(body) == MESSAGE_KEYS and list(body["alerts"][0]) == ALERT_KEYS
        assert body["groupLabels"] == {"alertname": "VenueDown", "venue": "kew"}
        assert body["commonLabels"] == {"alertname": "VenueDown", "venue": "kew"}
        assert body["commonAnnotations"] == {"summary": "down"}            # no generatorURL in there
        assert body["externalURL"] == "https://wedmetrics.example"
        assert body["version"] == "4" and body["truncatedAlerts"] == 1 and len(body["alerts"]) == 1
        (a,) = body["alerts"]
        assert a["generatorURL"] == "http://prometheus.example/graph?g0.expr=up"
        assert a["annotations"] == {"summary": "down"} and a["endsAt"] == "0001-01-01T00:00:00Z"
    finally:
        alerts.close()
        engine.close()


# -- loading -------------------------------------------------------------------------------------

def test_any_existing_file_is_read_as_a_file(tmp_path, monkeypatch):
    (tmp_path / "am.conf").write_text("route: {receiver: r}\nreceivers: [{name: r}]\n")
    monkeypatch.chdir(tmp_path)
    assert list(load_alertmanager_config("am.conf").receivers) == ["r"]
    assert list(load_alertmanager_config(str(tmp_path / "am.conf")).receivers) == ["r"]
    with pytest.raises(ConfigError, match="'nope.conf' not found"):
        load_alertmanager_config("nope.conf")
