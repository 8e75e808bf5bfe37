"""Dispatcher lifecycle on explicit times: route matching, grouping timers, repeat, resolve,
inhibition, silences and mute intervals, and config errors that name the field."""
from __future__ import annotations

import dataclasses
import datetime as dt

import pydantic
import pytest

from wedmetrics.alerting.notification import Notification, NotificationGroup, Severity
from wedmetrics.alerting.routing import (DEFAULT_GROUP_INTERVAL, DEFAULT_GROUP_WAIT,
                                         DEFAULT_REPEAT_INTERVAL, Dispatcher, RoutingConfig,
                                         alert_labels)
from wedmetrics.alerting.silences import Silence

T0 = dt.datetime(2026, 6, 9, 12, 0, tzinfo=dt.timezone.utc).timestamp()  # a Tuesday


def alert(alert_id="a1", rule="HighLatency", severity="warning", status="firing", starts_at=T0,
          ends_at=None, wedding_id=None, **labels) -> Notification:
    if status == "resolved" and ends_at is None:
        ends_at = starts_at + 1
    return Notification(alert_id, rule, status, severity, labels=labels, starts_at=starts_at,
                        ends_at=ends_at, wedding_id=wedding_id, summary=f"{rule} {alert_id}")


def resolved(a: Notification, at: float) -> Notification:
    return Notification(a.alert_id, a.rule, "resolved", a.severity, labels=dict(a.labels),
                        starts_at=a.starts_at, ends_at=at, wedding_id=a.wedding_id)


def brief(notes):
    """(receiver, reason, firing ids, resolved ids) per notification, for compact asserts."""
    return [(n.receiver, n.reason, [a.alert_id for a in n.group.firing],
             [a.alert_id for a in n.group.resolved]) for n in notes]


def simple(**route) -> Dispatcher:
    base = {"receiver": "ops", "group_by": ["alertname"], "group_wait": 30, "group_interval": 300,
            "repeat_interval": 3600}
    base.update(route)
    return Dispatcher({"route": base, "inhibit_rules": []})


# -- route tree ------------------------------------------------------------------

TREE = {
    "route": {
        "receiver": "default",
        "group_by": ["alertname"],
        "routes": [
            {"matchers": ['severity=~"critical|page"'], "receiver": "pager", "continue": True},
            {"matchers": {"team": "photos"}, "receiver": "photos-team",
             "routes": [{"matchers": ['route!~"/photos/thumbs.*"'], "receiver": "photos-oncall"}]},
            {"matchers": ['team="photos"'], "receiver": "never-reached"},
            {"matchers": ['wedding_id=~".+"'], "receiver": "weddings", "group_by": ["..."]},
        ],
    },
}


@pytest.mark.parametrize("labels,expected", [
    ({"severity": "warning"}, ["default"]),
    # A matching child, even with continue, means the parent itself is not a match.
    ({"severity": "critical"}, ["pager"]),
    ({"severity": "page", "team": "photos", "route": "/photos/1"}, ["pager", "photos-oncall"]),
    ({"severity": "info", "team": "photos", "route": "/photos/thumbs/9"}, ["photos-team"]),
    ({"severity": "info", "wedding_id": "w1"}, ["weddings"]),
])
def test_route_matching_depth_first_with_continue(labels, expected):
    d = Dispatcher(TREE)
    assert [n.receiver for n in d.routes_for(labels)] == expected


def test_children_inherit_settings_and_alertmanager_defaults():
    d = Dispatcher({"route": {"receiver": "ops", "group_wait": "10s",
                              "routes": [{"matchers": ["team=db"], "receiver": "dba", "repeat_interval": "1h"}]}})
    assert (d.root.group_wait, d.root.group_interval, d.root.repeat_interval) == (
        10.0, DEFAULT_GROUP_INTERVAL, DEFAULT_REPEAT_INTERVAL)
    child = d.routes_for({"team": "db"})[0]
    assert (child.path, child.receiver, child.group_wait, child.repeat_interval) == ("root/0", "dba", 10.0, 3600.0)
    assert DEFAULT_GROUP_WAIT == 30.0 and child.send_resolved is True


def test_matcher_labels_include_rule_severity_and_wedding():
    a = alert(severity=Severity.CRITICAL, wedding_id="w9", route="/rsvp")
    assert alert_labels(a) == {"alertname": "HighLatency", "severity": "critical", "wedding_id": "w9",
                               "route": "/rsvp", "wedding_severity": "critical"}
    # a label the alert has is never overwritten; exact Alertmanager mode adds nothing
    b = alert(severity=Severity.CRITICAL, route="/rsvp")
    assert alert_labels(dataclasses.replace(b, labels={"severity": "sev1"}))["severity"] == "sev1"
    assert alert_labels(dataclasses.replace(b, labels={"route": "/x"}), alertmanager=True) == {"route": "/x"}


# -- grouping timers ------------------------------------------------------------------

def test_group_wait_batches_alerts_then_group_interval_limits_updates():
    d = simple()
    assert d.process(alert("a1"), T0) == []
    assert d.next_due() == T0 + 30
    assert d.process(alert("a2", starts_at=T0 + 10), T0 + 10) == []
    assert d.tick(T0 + 29.9) == []
    first = d.tick(T0 + 30)
    assert brief(first) == [("ops", "initial", ["a1", "a2"], [])]
    assert first[0].group_key == 'root:{alertname="HighLatency"}'
    assert first[0].group_labels == {"alertname": "HighLatency"}
    assert all(a.group_key == first[0].group_key for a in first[0].alerts)
    assert isinstance(first[0].group, NotificationGroup)
    # A new alert after the first flush waits for group_interval, not group_wait.
    d.update(alert("a3", starts_at=T0 + 40), T0 + 40)
    assert d.next_due() == T0 + 330
    assert d.tick(T0 + 329) == []
    assert brief(d.tick(T0 + 330)) == [("ops", "update", ["a1", "a2", "a3"], [])]


def test_group_by_splits_groups_and_dots_group_by_every_label():
    d = simple(group_by=["wedding_id"])
    d.update([alert("a1", wedding_id="w1"), alert("a2", wedding_id="w2"),
              alert("a3", rule="DiskFull", wedding_id="w1")], T0)
    notes = d.tick(T0 + 30)
    assert sorted((n.group_key, tuple(a.alert_id for a in n.alerts)) for n in notes) == [
        ('root:{wedding_id="w1"}', ("a1", "a3")), ('root:{wedding_id="w2"}', ("a2",))]
    every = simple(group_by=["..."])
    every.update([alert("a1", wedding_id="w1", route="/a"), alert("a2", wedding_id="w1", route="/b")], T0)
    assert [len(n.alerts) for n in every.tick(T0 + 30)] == [1, 1]
    one = simple(group_by=[])
    one.update([alert("a1"), alert("a2", rule="DiskFull")], T0)
    assert [(n.group_key, len(n.alerts)) for n in one.tick(T0 + 30)] == [("root:{}", 2)]


def test_unchanged_group_is_repeated_after_repeat_interval_only():
    d = simple()
    d.update(alert("a1"), T0)
    assert brief(d.tick(T0 + 30)) == [("ops", "initial", ["a1"], [])]
    # Flushes every group_interval find nothing new until an hour has passed.
    quiet = [t for t in range(1, 13) if d.tick(T0 + 30 + 300 * t)]
    assert quiet == [12]  # 30 + 3600 is the 12th group_interval
    # Re-sending an identical state of the alert is not a change.
    d.update(alert("a1"), T0 + 3700)
    assert d.tick(T0 + 30 + 300 * 13) == []


def test_resolved_alerts_are_sent_once_and_leave_the_group():
    d = simple()
    a1, a2 = alert("a1"), alert("a2")
    d.update([a1, a2], T0)
    d.tick(T0 + 30)
    d.update(resolved(a1, T0 + 100), T0 + 100)
    notes = d.tick(T0 + 330)
    assert brief(notes) == [("ops", "update", ["a2"], ["a1"])]
    assert notes[0].alerts[1].ends_at == T0 + 100
    assert [g["alerts"] for g in d.groups()] == [["a2"]]
    d.update(resolved(a2, T0 + 400), T0 + 400)
    notes = d.tick(T0 + 630)
    assert brief(notes) == [("ops", "resolved", [], ["a2"])]
    assert notes[0].status == "resolved"
    assert d.groups() == [] and d.next_due() is None


def test_resolve_before_first_flush_sends_nothing():
    d = simple()
    a1 = alert("a1")
    d.update(a1, T0)
    d.update(resolved(a1, T0 + 5), T0 + 5)
    assert d.tick(T0 + 30) == []
    assert d.groups() == []


def test_send_resolved_false_still_clears_but_does_not_tell():
    d = simple(send_resolved=False)
    a1, a2 = alert("a1"), alert("a2")
    d.update([a1, a2], T0)
    d.tick(T0 + 30)
    d.update(resolved(a1, T0 + 60), T0 + 60)
    assert d.tick(T0 + 330) == []   # only a resolve: not a reason to notify
    d.update(resolved(a2, T0 + 400), T0 + 400)
    assert d.tick(T0 + 630) == []
    assert d.groups() == []


def test_resolve_for_unknown_alert_is_counted():
    d = simple()
    d.update(alert("ghost", status="resolved"), T0)
    assert d.tick(T0 + 60) == [] and d.stats()["resolved_unknown"] == 1


def test_old_alert_creating_a_group_flushes_at_once_later_ones_wait():
    # Alertmanager 0.30+: only the alert that creates the group skips group_wait.
    d = simple()
    d.update(alert("a1", starts_at=T0), T0)
    d.update(alert("a2", starts_at=T0 - 600), T0 + 5)   # old, but the group exists already
    assert d.next_due() == T0 + 30
    d2 = simple()
    d2.update(alert("a2", starts_at=T0 - 600), T0 + 5)  # old, and creates the group
    assert d2.next_due() == T0 + 5
    assert brief(d2.tick(T0 + 5)) == [("ops", "initial", ["a2"], [])]


def test_refire_after_resolve_starts_a_new_group_with_group_wait():
    d = simple()
    a1 = alert("a1")
    d.update(a1, T0)
    d.tick(T0 + 30)
    d.update(resolved(a1, T0 + 40), T0 + 40)
    assert brief(d.tick(T0 + 330)) == [("ops", "resolved", [], ["a1"])]
    d.update(alert("a1", starts_at=T0 + 1000), T0 + 1000)
    assert d.tick(T0 + 1029) == []
    assert brief(d.tick(T0 + 1030)) == [("ops", "initial", ["a1"], [])]


def test_continue_fans_out_to_several_receivers_with_their_own_groups():
    d = Dispatcher(TREE)
    d.update(alert("a1", severity="critical", team="photos", route="/photos/thumbs/1"), T0)
    notes = d.tick(T0 + 30)
    assert sorted((n.receiver, n.route) for n in notes) == [("pager", "root/0"), ("photos-team", "root/1")]
    assert notes[0].group_key != notes[1].group_key


def test_severity_change_under_same_alert_id_moves_the_alert():
    d = Dispatcher(TREE)
    d.update(alert("a1", severity="warning"), T0)
    assert brief(d.tick(T0 + 30)) == [("default", "initial", ["a1"], [])]
    d.update(alert("a1", severity="critical"), T0 + 60)   # raised: the wedding day began
    notes = d.tick(T0 + 90)
    assert brief(notes) == [("pager", "initial", ["a1"], [])]
    assert d.stats()["regrouped"] == 1
    # Those told of the warning are not told it resolved (it did not): they keep following
    # the alert, hear nothing new while it fires, and hear when it really resolves.
    assert d.tick(T0 + 330) == []
    assert sorted(g["receiver"] for g in d.groups()) == ["default", "pager"]
    a1 = alert("a1", severity="critical")
    d.update(resolved(a1, T0 + 400), T0 + 400)
    notes = d.tick(T0 + 630)
    assert sorted(brief(notes)) == [("default", "resolved", [], ["a1"]), ("pager", "resolved", [], ["a1"])]
    assert d.groups() == []


def test_severity_change_before_first_flush_just_moves_the_alert():
    d = Dispatcher(TREE)
    d.update(alert("a1", severity="warning"), T0)
    d.update(alert("a1", severity="critical"), T0 + 10)
    notes = d.tick(T0 + 40)
    assert brief(notes) == [("pager", "initial", ["a1"], [])]
    assert [g["receiver"] for g in d.groups()] == ["pager"]


def test_update_rejects_other_types_and_bad_times():
    d = simple()
    with pytest.raises(TypeError, match="Notification"):
        d.update([{"labels": {}}], T0)
    with pytest.raises(ValueError, match="now"):
        d.tick(float("nan"))


# -- inhibition -------------------------------------------------------------------------

def wedding_dispatcher(**config) -> Dispatcher:
    cfg = {"route": {"receiver": "ops", "group_by": ["wedding_id", "alertname"], "group_wait": 30,
                     "group_interval": 300}}
    cfg.update(config)
    return Dispatcher(cfg)


def test_default_rule_critical_for_a_wedding_mutes_its_warnings_only():
    d = wedding_dispatcher()
    d.update([alert("warn-w1", rule="SlowUploads", wedding_id="w1"),
              alert("warn-w2", rule="SlowUploads", wedding_id="w2"),
              alert("warn-none", rule="SlowUploads"),
              alert("crit-w1", rule="PhotoUploadsDown", severity="critical", wedding_id="w1")], T0)
    notes = d.tick(T0 + 30)
    sent = sorted(a.alert_id for n in notes for a in n.alerts)
    assert sent == ["crit-w1", "warn-none", "warn-w2"]
    assert d.stats()["inhibited"] == 1
    assert d.muted_by(alert("warn-w1", rule="SlowUploads", wedding_id="w1"), T0)["inhibited_by"] == ["crit-w1"]


def test_inhibition_lifts_when_the_source_resolves():
    d = wedding_dispatcher()
    crit = alert("crit", rule="PhotoUploadsDown", severity="critical", wedding_id="w1")
    d.update([crit, alert("warn", rule="SlowUploads", wedding_id="w1")], T0)
    assert [a.alert_id for n in d.tick(T0 + 30) for a in n.alerts] == ["crit"]
    d.update(resolved(crit, T0 + 100), T0 + 100)
    notes = d.tick(T0 + 330)
    assert sorted(brief(notes)) == [("ops", "initial", ["warn"], []), ("ops", "resolved", [], ["crit"])]


def test_custom_inhibit_rules_and_equal_labels():
    d = wedding_dispatcher(inhibit_rules=[{
        "source_matchers": ['alertname="VenueOffline"'], "target_matchers": ['alertname="SlowUploads"'],
        "equal": ["venue"]}])
    d.update([alert("src", rule="VenueOffline", venue="kew"),
              alert("t1", rule="SlowUploads", venue="kew"),
              alert("t2", rule="SlowUploads", venue="barn"),
              alert("crit", rule="X", severity="critical", wedding_id="w1"),
              alert("warn", rule="Y", wedding_id="w1")], T0)
    sent = sorted(a.alert_id for n in d.tick(T0 + 30) for a in n.alerts)
    # The default rule is replaced, so the wedding warning goes out too.
    assert sent == ["crit", "src", "t2", "warn"]


def test_an_alert_does_not_inhibit_itself():
    d = wedding_dispatcher(inhibit_rules=[{"source_matchers": ["team=db"], "target_matchers": ["team=db"]}])
    d.update(alert("only", team="db"), T0)
    assert [a.alert_id for n in d.tick(T0 + 30) for a in n.alerts] == ["only"]


# -- silences -----------------------------------------------------------------------

def test_silence_mutes_until_it_expires_then_alert_is_notified():
    d = simple()
    d.add_silence(Silence(id="s1", matchers=['alertname="HighLatency"', 'route=~"/photos.*"'],
                          starts_at=T0, ends_at=T0 + 600, created_by="ana", comment="CDN migration"))
    d.update([alert("a1", route="/photos/7"), alert("a2", route="/rsvp")], T0)
    assert brief(d.tick(T0 + 30)) == [("ops", "initial", ["a2"], [])]
    assert d.stats()["silenced"] == 1
    assert d.muted_by(alert("a1", route="/photos/7"), T0 + 30)["silenced_by"] == ["s1"]
    assert d.tick(T0 + 330) == []                      # still silenced at the next flush
    assert brief(d.tick(T0 + 630)) == [("ops", "update", ["a1", "a2"], [])]   # expired at T0+600


def test_expiring_a_silence_early_and_cancelling_a_future_one():
    d = simple()
    d.add_silence({"id": "s1", "matchers": ["alertname=HighLatency"], "starts_at": T0, "ends_at": T0 + 7200,
                   "created_by": "ana", "comment": "noisy"})
    d.add_silence({"id": "later", "matchers": ["alertname=HighLatency"], "starts_at": T0 + 3000,
                   "ends_at": T0 + 9000, "created_by": "ana"})
    d.update(alert("a1"), T0)
    assert d.tick(T0 + 30) == []
    assert d.silences.expire("s1", T0 + 100).ends_at == T0 + 100
    d.silences.expire("later", T0 + 100)
    # the pending one is kept, expired (Alertmanager: starts_at = ends_at = now)
    assert [(s.id, s.state(T0 + 101)) for s in d.silences] == [("s1", "expired"), ("later", "expired")]
    assert brief(d.tick(T0 + 330)) == [("ops", "initial", ["a1"], [])]
    assert d.silences.prune(T0 + 100 + 86400) == 2 and len(d.silences) == 0


def test_silence_that_starts_later_does_not_mute_now():
    d = simple()
    d.add_silence(Silence(matchers=["alertname=HighLatency"], starts_at=T0 + 60, ends_at=T0 + 600,
                          created_by="bo"))
    d.update(alert("a1"), T0)
    assert brief(d.tick(T0 + 30)) == [("ops", "initial", ["a1"], [])]


# -- mute intervals ----------------------------------------------------------------

MAINTENANCE = {"name": "tuesday-maintenance", "weekdays": ["tuesday"], "timezone": "Europe/London",
               "times": [{"start_time": "02:00", "end_time": "04:00"}]}


def london(y, mo, d, h, mi=0) -> float:
    from zoneinfo import ZoneInfo
    return dt.datetime(y, mo, d, h, mi, tzinfo=ZoneInfo("Europe/London")).timestamp()


@pytest.mark.parametrize("start", [
    london(2026, 1, 13, 2, 30),    # GMT: 02:30 UTC
    london(2026, 6, 16, 2, 30),    # BST: 01:30 UTC
])
def test_mute_interval_holds_notifications_in_local_time_across_dst(start):
    d = Dispatcher({"route": {"receiver": "ops", "group_wait": 30, "group_interval": 300,
                              "mute_time_intervals": ["tuesday-maintenance"]},
                    "mute_time_intervals": [MAINTENANCE], "inhibit_rules": []})
    d.update(alert("a1", starts_at=start), start)
    assert d.tick(start + 30) == []
    assert d.stats()["muted"] == 1
    # Flushes keep coming every group_interval; the first one after 04:00 local tells.
    end = start + 90 * 60
    times = [start + 30 + 300 * k for k in range(1, 20)]
    first = next(t for t in times if d.tick(t))
    assert end <= first < end + 300


def test_mute_interval_does_not_apply_an_hour_off_in_utc():
    # 02:30 UTC on a summer Tuesday is 03:30 BST (muted); 03:30 UTC is 04:30 BST (not).
    d = Dispatcher({"route": {"receiver": "ops", "group_wait": 0, "mute_time_intervals": ["tuesday-maintenance"]},
                    "mute_time_intervals": [MAINTENANCE], "inhibit_rules": []})
    t = dt.datetime(2026, 6, 16, 2, 30, tzinfo=dt.timezone.utc).timestamp()
    assert d.process(alert("a1", starts_at=t), t) == []
    d2 = Dispatcher(d.config)
    assert len(d2.process(alert("a1", starts_at=t + 3600), t + 3600)) == 1


def test_mute_interval_applies_only_on_routes_that_name_it():
    d = Dispatcher({"route": {"receiver": "ops", "group_wait": 0, "routes": [
        {"matchers": ["team=db"], "receiver": "dba", "mute_time_intervals": ["tuesday-maintenance"]}]},
        "mute_time_intervals": [MAINTENANCE], "inhibit_rules": []})
    t = london(2026, 6, 16, 3)
    notes = d.process([alert("db", team="db", starts_at=t), alert("web", team="web", starts_at=t)], t)
    assert brief(notes) == [("ops", "initial", ["web"], [])]


# -- configuration errors ----------------------------------------------------------------

@pytest.mark.parametrize("config,needle", [
    ({"route": {"group_wait": "30s"}}, "route.receiver is required"),
    ({"route": {"receiver": "ops", "matchers": ["a=b"]}}, "route.matchers must be empty"),
    ({"route": {"receiver": "ops", "group_wait": "soon"}}, "route.group_wait"),
    ({"route": {"receiver": "ops", "routes": [{"group_interval": 0}]}}, "route.routes.0.group_interval"),
    ({"route": {"receiver": "ops", "routes": [{"matchers": ["sev=~(unclosed"]}]}},
     "route.routes.0.matchers"),
    ({"route": {"receiver": "ops", "routes": [{"matchers": ["no operator"]}]}}, "cannot parse matcher"),
    ({"route": {"receiver": "ops", "group_by": ["...", "team"]}}, "route.group_by"),
    ({"route": {"receiver": "ops", "recevier": "typo"}}, "route.recevier"),
    ({"route": {"receiver": "ops", "routes": [{"mute_time_intervals": ["nightly"]}]}},
     "route.routes.0.mute_time_intervals: unknown time interval 'nightly'"),
    ({"route": {"receiver": "ops", "escalation": "wedding"}}, "route.escalation: unknown escalation policy"),
    ({"route": {"receiver": "ops"}, "inhibit_rules": [{"source_matchers": ["a=~("], "target_matchers": ["a=b"]}]},
     "inhibit_rules.0.source_matchers"),
    ({"route": {"receiver": "ops"}, "mute_time_intervals": [{"name": "m", "weekdays": ["funday"]}]},
     "funday is not a valid weekday"),
    ({"route": {"receiver": "ops"}, "mute_time_intervals": [
        {"name": "m", "times": [{"start_time": "04:00", "end_time": "02:00"}]}]}, "start time cannot be equal or greater than end time"),
    ({"route": {"receiver": "ops"}, "mute_time_intervals": [{"name": "m", "timezone": "Europe/Lndon"}]},
     "unknown time zone Europe/Lndon"),
    ({"route": {"receiver": "ops"}, "escalation_policies": [
        {"name": "p", "levels": [{"receivers": ["a"]}, {"receivers": ["b"]}]}]}, "levels.0.delay is required"),
])
def test_malformed_config_errors_name_the_field(config, needle):
    with pytest.raises(pydantic.ValidationError) as e:
        Dispatcher(config)
    assert needle in str(e.value), str(e.value)


def test_config_loads_from_yaml():
    cfg = RoutingConfig.from_yaml("""
route:
  receiver: ops
  group_by: [wedding_id]
  routes:
    - matchers: ['severity=~"critical|page"']
      receiver: pager
      continue: true
""")
    assert cfg.route.routes[0].continue_ is True
    with pytest.raises(ValueError, match="mapping at the top level"):
        RoutingConfig.from_yaml("- just a list")


# -- no alert is missed ----------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_EVENT = st.tuples(st.integers(0, 400),                          # seconds since the previous event
                   st.sampled_from(["a", "b", "c", "d"]),        # alert id
                   st.booleans(),                                # firing?
                   st.sampled_from(["warning", "critical"]),
                   st.sampled_from(["w1", "w2"]))


@settings(max_examples=80, deadline=None)
@given(st.lists(_EVENT, min_size=1, max_size=25))
def test_what_receivers_were_last_told_matches_the_truth(events):
    """The obvious oracle: replay every notification in order.  Every resolve told is a real
    resolve; an alert resolved at the end was last told as resolved on every route; an alert
    firing at the end was last told as firing on the route it now belongs to."""
    d = Dispatcher({"route": {"receiver": "ops", "group_by": ["wedding_id"], "group_wait": 30,
                              "group_interval": 120, "routes": [
                                  {"matchers": ["severity=critical"], "receiver": "pager"}]},
                    "inhibit_rules": []})
    sent: list = []
    state: dict = {}          # alert id -> (firing, severity, wedding, starts_at)
    resolves: dict = {}       # alert id -> times it really resolved
    t = T0

    def run_until(limit):
        nonlocal t
        while (due := d.next_due()) is not None and due <= limit:
            sent.extend(d.tick(due))
        t = limit

    for gap, aid, firing, sev, wid in events:
        run_until(t + gap)
        prev = state.get(aid)
        if firing:
            started = prev[3] if prev and prev[0] else t
            state[aid] = (True, sev, wid, started)
            d.update(alert(aid, severity=sev, wedding_id=wid, starts_at=started), t)
        elif prev and prev[0]:
            state[aid] = (False, prev[1], prev[2], prev[3])
            resolves.setdefault(aid, set()).add(t)
            d.update(Notification(aid, "HighLatency", "resolved", prev[1], starts_at=prev[3], ends_at=t,
                                  wedding_id=prev[2]), t)
        sent.extend(d.tick(t))
    run_until(t + 1000)

    last_told: dict = {}
    for n in sent:
        for a in n.alerts:
            last_told[(a.alert_id, n.route)] = a.status
            if not a.firing:
                assert a.ends_at in resolves.get(a.alert_id, ()), (a.alert_id, a.ends_at, resolves)
    for aid, (firing, sev, wid, started) in state.items():
        told = {route: status for (i, route), status in last_told.items() if i == aid}
        if firing:
            assert told.get("root/0" if sev == "critical" else "root") == "firing", (aid, sev, told)
        else:
            assert all(status == "resolved" for status in told.values()), (aid, told)


def test_documented_wedding_day_example_behaves_as_described():
    """The worked example of docs/alerting.md, step by step."""
    import pathlib
    import re

    from wedmetrics.weddings import PriorityPolicy, Wedding, WeddingCalendar

    docs = pathlib.Path(__file__).parents[2] / "docs"
    blocks = re.findall(r"```yaml\n(.*?)```", (docs / "alerting.md").read_text(), re.S)
    example = [b for b in blocks if "name: wedding-day" in b and "tuesday-maintenance" in b]
    assert example, "the wedding-day routing example is missing from docs/"
    yaml_text = example[0]
    calendar = WeddingCalendar([Wedding(id="w-1042", org_id="acme", date=dt.date(2026, 6, 13),
                                        timezone="Europe/London", guest_count=220, venue="Kew Gardens",
                                        start_time="14:00", end_time="01:00")])
    policy = PriorityPolicy(calendar, wedding_day_hours_before=12, wedding_day_hours_after=6)
    d = Dispatcher(RoutingConfig.from_yaml(yaml_text), priority=policy)
    t = dt.datetime(2026, 6, 13, 12, 0, tzinfo=dt.timezone.utc).timestamp()   # 13:00 in London
    labels = {"wedding_id": "w-1042"}
    severity = policy.severity_for("warning", labels, t)
    assert severity is Severity.CRITICAL                                            # step 1
    slow = alert("slow", rule="SlowUploads", severity=severity, wedding_id="w-1042", starts_at=t)
    info = alert("info", rule="Thumbs", severity=policy.severity_for("info", labels, t),
                 wedding_id="w-1042", starts_at=t)
    assert d.process([slow, info], t) == []
    assert [(n.receiver, n.reason) for n in d.tick(t + 10)] == [("pager-sms", "initial")]       # steps 2-3
    assert [(n.receiver, [a.alert_id for a in n.alerts]) for n in d.tick(t + 30)] == [
        ("weddings-slack", ["slow"])]                                                          # step 5
    assert d.stats()["inhibited"] >= 1
    assert d.tick(t + 10 + 299) == []
    assert sorted(n.receiver for n in d.tick(t + 10 + 300)) == ["lead-email", "secondary-sms"]  # step 4
    assert [n.receiver for n in d.tick(t + 10 + 300 + 600)] == ["cto-phone"]
    d.update(resolved(slow, t + 1000), t + 1000)
    d.update(resolved(info, t + 1000), t + 1000)
    done = [n for k in range(1, 4) for n in d.tick(t + 1000 + 300 * k)]
    assert sorted(n.receiver for n in done if n.reason == "resolved") == [                     # step 6
        "cto-phone", "lead-email", "pager-sms", "secondary-sms", "weddings-slack"]
    assert d.groups() == []


_LABELSET = st.fixed_dictionaries({}, optional={"wedding_id": st.sampled_from(["w1", "w2"]),
                                                "venue": st.sampled_from(["kew", "barn"])})


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["info", "warning", "critical", "page"]), _LABELSET,
                          st.booleans()), min_size=1, max_size=12))
def test_inhibition_index_agrees_with_checking_every_pair(specs):
    rules = [{"source_matchers": ['severity=~"critical|page"'], "target_matchers": ['severity=~"warning|info"'],
              "equal": ["wedding_id"]},
             {"source_matchers": ["venue=kew"], "target_matchers": ['severity!="page"'], "equal": ["venue"]}]
    d = Dispatcher({"route": {"receiver": "ops"}, "inhibit_rules": rules})
    alerts = [alert(f"a{i}", severity=sev, status="firing" if firing else "resolved", **labels)
              for i, (sev, labels, firing) in enumerate(specs)]
    d.update(alerts, T0)
    rule_objs = d.config.inhibit_rules
    for target in alerts:
        expected = sorted(src.alert_id for src in alerts
                          if src.firing and src.alert_id != target.alert_id
                          and any(r.inhibits(alert_labels(target), alert_labels(src)) for r in rule_objs))
        assert d.muted_by(target, T0)["inhibited_by"] == expected
