"""Loading alertmanager.yml: Alertmanager's validation errors (config/config_test.go) and the whole file."""
from __future__ import annotations

import datetime as dt
import textwrap

import pytest

import wedmetrics as wm
from wedmetrics.alerting.alertmanager_config import (AlertmanagerWebhookNotifier, ConfigError, Receiver,
                                                     label_fingerprint, load_alertmanager_config)
from wedmetrics.alerting.notifiers import EmailNotifier, LogNotifier, SlackNotifier

BAD = [
    ("TestLoadEmptyString", "", "no route provided in config"),
    ("TestDefaultReceiverExists", "route:\n   group_wait: 30s\n", "root route must specify a default receiver"),
    ("TestReceiverNameIsUnique", "route:\n  receiver: team-X\nreceivers:\n- name: 'team-X'\n- name: 'team-X'\n",
     'notification config name "team-X" is not unique'),
    ("TestReceiverExists", "route:\n  receiver: team-X\nreceivers:\n- name: 'team-Y'\n",
     'undefined receiver "team-X" used in route'),
    ("TestReceiverExistsForDeepSubRoute", """route:
  receiver: team-X
  routes:
    - match: {foo: bar}
      routes:
      - match: {foo: bar}
        receiver: nonexistent
receivers:
- name: 'team-X'
""", 'undefined receiver "nonexistent" used in route'),
    ("TestReceiverHasName", "route:\nreceivers:\n- name: ''\n", "missing name in receiver"),
    ("TestMuteTimeExists", """route:
  receiver: team-Y
  routes:
  - match: {severity: critical}
    mute_time_intervals: [business_hours]
receivers:
- name: 'team-Y'
""", 'undefined time interval "business_hours" used in route'),
    ("TestActiveTimeExists", """route:
  receiver: team-Y
  routes:
  - match: {severity: critical}
    active_time_intervals: [business_hours]
receivers:
- name: 'team-Y'
""", 'undefined time interval "business_hours" used in route'),
    ("TestTimeIntervalHasName", """time_intervals:
- name:
  time_intervals:
  - times: [{start_time: '09:00', end_time: '17:00'}]
receivers:
- name: 'team-X-mails'
route:
  receiver: 'team-X-mails'
  routes:
  - match: {severity: critical}
    mute_time_intervals: [business_hours]
""", "missing name in time interval"),
    ("TestMuteTimeNoDuplicates", """mute_time_intervals:
- name: duplicate
  time_intervals: [{times: [{start_time: '09:00', end_time: '17:00'}]}]
- name: duplicate
  time_intervals: [{times: [{start_time: '10:00', end_time: '14:00'}]}]
receivers:
- name: 'team-X-mails'
route:
  receiver: 'team-X-mails'
  routes:
  - match: {severity: critical}
    mute_time_intervals: [business_hours]
""", 'mute time interval "duplicate" is not unique'),
    ("TestGroupByHasNoDuplicatedLabels", """route:
  group_by: ['alertname', 'cluster', 'service', 'cluster']
receivers:
- name: 'team-X-mails'
""", 'duplicated label "cluster" in group_by'),
    ("TestWildcardGroupByWithOtherGroupByLabels", """route:
  group_by: ['alertname', 'cluster', '...']
  receiver: team-X-mails
receivers:
- name: 'team-X-mails'
""", "cannot have wildcard group_by (`...`) and other labels at the same time"),
    ("TestGroupByInvalidLabel", "route:\n  group_by: ['-invalid-']\n  receiver: team-X-mails\nreceivers:\n"
     "- name: 'team-X-mails'\n", 'invalid label name "-invalid-" in group_by list'),
    ("TestRootRouteExists", "receivers:\n- name: 'team-X-mails'\n", "no routes provided"),
    ("TestRootRouteNoMuteTimes", """mute_time_intervals:
- name: my_mute_time
  time_intervals: [{times: [{start_time: '09:00', end_time: '17:00'}]}]
receivers:
- name: 'team-X-mails'
route:
  receiver: 'team-X-mails'
  mute_time_intervals: [my_mute_time]
""", "root route must not have any mute time intervals"),
    ("TestRootRouteNoActiveTimes", """time_intervals:
- name: my_active_time
  time_intervals: [{times: [{start_time: '09:00', end_time: '17:00'}]}]
receivers:
- name: 'team-X-mails'
route:
  receiver: 'team-X-mails'
  active_time_intervals: [my_active_time]
""", "root route must not have any active time intervals"),
    ("TestRootRouteHasNoMatcher/match", "route:\n  receiver: 'team-X'\n  match: {severity: critical}\n"
     "receivers:\n- name: 'team-X'\n", "root route must not have any matchers"),
    ("TestRootRouteHasNoMatcher/matchers", "route:\n  receiver: 'team-X'\n  matchers: ['severity=critical']\n"
     "receivers:\n- name: 'team-X'\n", "root route must not have any matchers"),
    ("TestContinueErrorInRouteRoot", "route:\n  receiver: team-X-mails\n  continue: true\nreceivers:\n"
     "- name: 'team-X-mails'\n", "cannot have continue in root route"),
    ("TestGroupIntervalIsGreaterThanZero", "route:\n  receiver: team-X-mails\n  group_interval: 0s\nreceivers:\n"
     "- name: 'team-X-mails'\n", "group_interval cannot be zero"),
    ("TestRepeatIntervalIsGreaterThanZero", "route:\n  receiver: team-X-mails\n  repeat_interval: 0s\nreceivers:\n"
     "- name: 'team-X-mails'\n", "repeat_interval cannot be zero"),
    ("TestSlackNoAPIURL", "route: {receiver: s}\nreceivers:\n- name: s\n  slack_configs: [{channel: '#x'}]\n",
     "no Slack API URL nor App token set either inline or in a file"),
    ("config.go Config.UnmarshalYAML (email_configs without a smarthost; no Go test asserts it)", "route: {receiver: e}\nreceivers:\n- name: e\n"
     "  email_configs: [{to: a@b.c}]\n", "no global SMTP smarthost set"),
    ("issue#12 unknown integration", "route: {receiver: p}\nreceivers:\n- name: p\n  pagerduty_configs: [{}]\n",
     "pagerduty_configs is an Alertmanager integration wedmetrics does not implement"),
    ("issue#12 unknown integration", "route: {receiver: p}\nreceivers:\n- name: p\n  carrier_pigeon_configs: [{}]\n",
     "unknown integration 'carrier_pigeon_configs'"),
    ("issue#12 unknown field", "route: {receiver: p, recevier: q}\nreceivers:\n- name: p\n", "field recevier not found"),
]


@pytest.mark.parametrize("go_test,text,error", BAD, ids=[r[0] for r in BAD])
def test_alertmanager_refuses_this_config(go_test, text, error):
    with pytest.raises(ConfigError) as e:
        load_alertmanager_config(text)
    assert error in str(e.value)


def test_group_by_all():
    """TestGroupByAll"""
    cfg = load_alertmanager_config("route:\n  receiver: r\n  group_by: ['...']\nreceivers: [{name: r}]\n")
    assert cfg.routing.route.group_by == ("...",)


WHOLE = """
global:
  resolve_timeout: 2m
  smtp_smarthost: 127.0.0.1:2525
  smtp_from: alerts@example.org
  smtp_require_tls: false
  slack_api_url: http://127.0.0.1:9/slack
templates: ['*.tmpl']
route:
  receiver: default
  group_by: [alertname, venue]
  group_wait: 10s
  group_interval: 1m
  repeat_interval: 2h
  routes:
    - matchers: ['{severity="critical", team=~"web|db"}']
      receiver: pager
      continue: true
    - match: {team: photos}
      match_re: {service: "upload.*"}
      matchers: [env!="dev", 'region!~"eu-.*"']
      receiver: photos
      group_by: ['...']
      mute_time_intervals: [maintenance]
      active_time_intervals: [saturdays]
      routes:
        - matchers: [severity="info"]
          receiver: sms-oncall
receivers:
  - name: default
  - name: pager
    webhook_configs:
      - url: http://127.0.0.1:9/hook
        max_alerts: 10
  - name: photos
    email_configs: [{to: "photos@example.org, lead@example.org"}]
    slack_configs: [{channel: "#photos", send_resolved: true}]
  - name: sms-oncall
  - name: logbook
    log_configs: [{logger: wedmetrics.test}]
inhibit_rules:
  - source_match: {severity: critical}
    target_match_re: {severity: "warning|info"}
    equal: [venue]
  - source_matchers: ['alertname="VenueDown"']
    target_matchers: ['{alertname=~"Slow.*", venue!=""}']
    equal: [venue]
time_intervals:
  - name: saturdays
    time_intervals:
      - weekdays: [saturday]
        times: [{start_time: "08:00", end_time: "24:00"}]
        location: Europe/London
mute_time_intervals:
  - name: maintenance
    time_intervals:
      - weekdays: ['tuesday']
        days_of_month: ['1:7', '-7:-1']
        months: ['january:march', 'october:12']
        years: ['2026:2030']
        times: [{start_time: "02:00", end_time: "04:00"}]
"""


def test_the_whole_file_loads(tmp_path):
    (tmp_path / "alertmanager.yml").write_text(WHOLE)
    (tmp_path / "wedding.tmpl").write_text('{{ define "x" }}x{{ end }}')
    cfg = load_alertmanager_config(tmp_path / "alertmanager.yml")
    assert cfg.resolve_timeout == 120.0 and cfg.templates == [str(tmp_path / "wedding.tmpl")]
    r = cfg.routing
    assert r.alertmanager and (r.route.group_wait, r.route.group_interval, r.route.repeat_interval) == (10, 60, 7200)
    pager, photos = r.route.routes
    assert [str(m) for m in pager.matchers] == ['severity="critical"', 'team=~"web|db"'] and pager.continue_
    assert [str(m) for m in photos.matchers] == ['team="photos"', 'service=~"upload.*"', 'env!="dev"',
                                                 'region!~"eu-.*"']
    assert photos.group_by == ("...",) and photos.mute_time_intervals == ("maintenance",)
    assert photos.active_time_intervals == ("saturdays",) and photos.routes[0].receiver == "sms-oncall"
    rule = r.inhibit_rules[1]
    assert [str(m) for m in rule.target_matchers] == ['alertname=~"Slow.*"', 'venue!=""']
    assert {m.name for m in r.mute_time_intervals} == {"maintenance", "saturdays"}
    rec = cfg.receivers
    assert [type(n) for _, n, _ in rec["pager"].integrations] == [AlertmanagerWebhookNotifier]
    assert [(type(n), resolved) for _, n, resolved in rec["photos"].integrations] == [
        (EmailNotifier, False), (SlackNotifier, True)]
    assert rec["default"].integrations == [] and isinstance(rec["logbook"].integrations[0][1], LogNotifier)
    maintenance = next(m for m in r.mute_time_intervals if m.name == "maintenance")
    first_tuesday_jan = dt.datetime(2026, 1, 6, 3, 0, tzinfo=dt.timezone.utc).timestamp()
    assert maintenance.active(first_tuesday_jan) and not maintenance.active(first_tuesday_jan + 7 * 86400)


def test_alert_engine_takes_the_file_and_wedmetrics_channels_serve_empty_receivers(tmp_path):
    (tmp_path / "alertmanager.yml").write_text(WHOLE)
    engine = wm.MetricsEngine(clock=wm.ManualClock(1_700_000_000.0))
    sms = LogNotifier(name="sms-oncall")
    alerts = wm.AlertEngine(engine, config=tmp_path / "alertmanager.yml", notifiers=[sms])
    try:
        assert alerts.delivery.channels and "sms-oncall" in set(alerts.delivery.channels)
        assert alerts.routing.inhibit_rules == alerts.alertmanager_config.routing.inhibit_rules   # no calendar
        with pytest.raises(ValueError, match="has the name of a receiver"):
            wm.AlertEngine(engine, config=tmp_path / "alertmanager.yml", notifiers=[LogNotifier(name="pager")])
    finally:
        alerts.close()
        engine.close()


def test_wedding_defaults_add_the_inhibit_rule_only_with_a_calendar_and_can_be_switched_off():
    from wedmetrics.alerting.silences import DEFAULT_INHIBIT_RULE

    engine = wm.MetricsEngine(clock=wm.ManualClock(1_700_000_000.0))
    text = "route: {receiver: r}\nreceivers: [{name: r}]\n"
    cal = wm.WeddingCalendar()
    try:
        on = wm.AlertEngine(engine, config=text, calendar=cal)
        off = wm.AlertEngine(engine, config=text, calendar=cal, wedding_defaults=False)
        plain = wm.AlertEngine(engine, config=text)
        assert on.routing.inhibit_rules == (DEFAULT_INHIBIT_RULE,)
        assert off.routing.inhibit_rules == () == plain.routing.inhibit_rules
        assert off.policy.saturday_speedup == 1.0 and on.policy.saturday_speedup == 2.0
        from wedmetrics.alerting.notification import Notification

        crit = Notification("c", "Down", "firing", "critical", labels={"wedding_id": "w1"}, starts_at=0.0,
                            wedding_id="w1")
        warn = Notification("w", "Slow", "firing", "warning", labels={"wedding_id": "w1"}, starts_at=0.0,
                            wedding_id="w1")
        for a, muted in ((on, ["c"]), (off, []), (plain, [])):
            a.dispatcher.update([crit, warn], 1.0)
            assert a.dispatcher.muted_by(warn, 1.0)["inhibited_by"] == muted
        for a in (on, off, plain):
            a.close()
    finally:
        engine.close()


def test_fingerprint_is_order_free_and_starts_from_the_fnv_offset():
    # the real Alertmanager's own fingerprints are compared in test_alertmanager_notifier.py
    assert label_fingerprint({}) == "cbf29ce484222325"       # FNV-1a 64 offset basis
    assert label_fingerprint({"b": "2", "a": "1"}) == label_fingerprint({"a": "1", "b": "2"})
    assert label_fingerprint({"a": "1"}) != label_fingerprint({"a": "2"})


def test_receiver_without_integrations_drops_and_counts():
    from wedmetrics.alerting.notification import Notification, NotificationGroup

    r = Receiver("null", [])
    assert r.targets() == (None,)
    r.send(NotificationGroup((Notification("a", "R", "firing", "info", starts_at=0.0),), group_key="g"))
    assert r.dropped == 1


def test_wedding_severity_has_its_own_label_and_never_overwrites_the_users():
    import datetime as dt

    saturday = dt.datetime(2026, 6, 13, 14, 0, tzinfo=dt.timezone.utc).timestamp()
    clock = wm.ManualClock(saturday)
    engine = wm.MetricsEngine(clock=clock)
    cal = wm.WeddingCalendar([wm.Wedding(id="w1", org_id="acme", date="2026-06-13", timezone="Europe/London",
                                         guest_count=100, start_time="14:00", end_time="23:00")])
    alerts = wm.AlertEngine(engine, calendar=cal)
    try:
        engine.series("api.latency", labels={"wedding_id": "w1", "severity": "sev3"}).record(3.0)
        engine.series("api.latency", labels={"wedding_id": "w1", "route": "/rsvp"}).record(3.0)
        alerts.add_rule({"kind": "threshold", "name": "Slow", "metric": "api.latency", "stat": "max",
                         "window": "1m", "op": ">", "threshold": 1.0, "severity": "warning"})
        alerts.evaluate()
        from wedmetrics.alerting.routing import alert_labels

        views = sorted(alerts.active(), key=lambda a: a.labels.get("severity", ""))
        # the user's labels stay exactly as written; the alert's severity is raised
        assert [(a.labels.get("severity"), a.severity) for a in views] == [(None, "critical"), ("sev3", "critical")]
        assert all("wedding_severity" not in a.labels for a in views)
        seen = [alert_labels(alerts.notification_for(a.id)) for a in views]
        # matchers see the raised level as wedding_severity; severity is the rule's, only where the
        # user wrote none; alertname is the rule, as Prometheus sets it
        assert [(s["alertname"], s["severity"], s["wedding_severity"]) for s in seen] == [
            ("Slow", "warning", "critical"), ("Slow", "sev3", "critical")]
    finally:
        alerts.close()
        engine.close()
