"""Escalation levels through the dispatcher: delays, acknowledgement, Saturday halving,
re-arming on new alerts, and the wedding-day severity raise feeding the route tree."""
from __future__ import annotations

import datetime as dt

import pydantic
import pytest

from wedmetrics.alerting.escalation import Escalation, EscalationPolicy
from wedmetrics.alerting.notification import Notification, Severity
from wedmetrics.alerting.routing import Dispatcher
from wedmetrics.alerting.silences import Silence
from wedmetrics.weddings import PriorityPolicy, Wedding, WeddingCalendar

TUESDAY = dt.datetime(2026, 6, 9, 12, 0, tzinfo=dt.timezone.utc).timestamp()
SATURDAY = dt.datetime(2026, 6, 13, 12, 0, tzinfo=dt.timezone.utc).timestamp()

POLICY = {"name": "wedding-day", "levels": [
    {"receivers": ["primary"], "delay": "10m"},
    {"receivers": ["secondary", "lead"], "delay": "20m"},
    {"receivers": ["manager"], "delay": "30m"},
]}


def config(**route):
    base = {"receiver": "ops", "group_by": ["wedding_id"], "group_wait": 30, "group_interval": 300,
            "repeat_interval": "4h", "escalation": "wedding-day"}
    base.update(route)
    return {"route": base, "escalation_policies": [POLICY]}


@pytest.fixture
def calendar():
    return WeddingCalendar([
        Wedding(id="sat", org_id="acme", date=dt.date(2026, 6, 13), timezone="Europe/London",
                guest_count=150, venue="Kew", start_time=dt.time(14), end_time=dt.time(23)),
        Wedding(id="wed", org_id="acme", date=dt.date(2026, 6, 10), timezone="Europe/London",
                guest_count=80, venue="Barn"),
    ])


def alert(alert_id="a1", severity="critical", wedding_id="wed", starts_at=TUESDAY, status="firing", ends_at=None):
    return Notification(alert_id, "UploadsFailing", status, severity, starts_at=starts_at, ends_at=ends_at,
                        wedding_id=wedding_id, labels={"service": "photos"})


def who(notes):
    return sorted((n.receiver, n.reason, n.escalation_level) for n in notes)


def test_levels_are_paged_in_order_until_acknowledged(calendar):
    d = Dispatcher(config(), priority=PriorityPolicy(calendar))
    t = TUESDAY
    d.update(alert(), t)
    assert who(d.tick(t + 30)) == [("ops", "initial", 0), ("primary", "initial", 0)]
    assert d.next_due() == t + 30 + 300          # the next group flush comes first
    assert d.tick(t + 30 + 599) == []
    assert who(d.tick(t + 30 + 600)) == [("lead", "escalation", 1), ("secondary", "escalation", 1)]
    assert who(d.tick(t + 30 + 600 + 1199)) == []
    assert who(d.tick(t + 30 + 600 + 1200)) == [("manager", "escalation", 2)]
    # The last level is re-paged at its own period until someone answers.
    assert who(d.tick(t + 30 + 600 + 1200 + 1800)) == [("manager", "escalation", 2)]
    key = d.groups()[0]["group_key"]
    esc = d.acknowledge(key, t + 4000, by="maria")
    assert (esc.acked_by, esc.level) == ("maria", 2)
    assert d.groups()[0]["next_escalation_at"] is None
    assert d.tick(t + 30 + 600 + 1200 + 1800 * 2) == []


def test_acknowledgement_at_level_zero_stops_escalation(calendar):
    d = Dispatcher(config(), priority=PriorityPolicy(calendar))
    d.update(alert(), TUESDAY)
    d.tick(TUESDAY + 30)
    assert d.acknowledge_alert("a1", TUESDAY + 60, by="sam") == ['root:{wedding_id="wed"}']
    later = [TUESDAY + 30 + 300 * k for k in range(1, 13)]
    assert [n for t in later for n in d.tick(t)] == []
    with pytest.raises(KeyError, match="nope"):
        d.acknowledge("nope", TUESDAY, by="sam")


def test_saturday_halves_every_escalation_delay(calendar):
    d = Dispatcher(config(), priority=PriorityPolicy(calendar))
    t = SATURDAY
    d.update(alert(wedding_id="sat", starts_at=t), t)
    d.tick(t + 30)
    assert d.tick(t + 30 + 299) == []
    assert who(d.tick(t + 30 + 300)) == [("lead", "escalation", 1), ("secondary", "escalation", 1)]
    assert who(d.tick(t + 30 + 300 + 600)) == [("manager", "escalation", 2)]


def test_without_priority_policy_delays_are_used_as_configured():
    d = Dispatcher(config())
    t = SATURDAY
    d.update(alert(wedding_id="sat", starts_at=t), t)
    d.tick(t + 30)
    assert d.tick(t + 30 + 300) == []
    assert [n.receiver for n in d.tick(t + 630)] == ["secondary", "lead"]


def test_escalated_receivers_hear_updates_and_the_resolve(calendar):
    d = Dispatcher(config(), priority=PriorityPolicy(calendar))
    t = TUESDAY
    a1 = alert()
    d.update(a1, t)
    d.tick(t + 30)
    d.tick(t + 630)                                            # level 1 paged
    d.update(alert("a2", starts_at=t + 700), t + 700)
    assert who(d.tick(t + 930)) == [("lead", "update", 1), ("ops", "update", 1), ("primary", "update", 1),
                                    ("secondary", "update", 1)]
    d.update([Notification(a.alert_id, a.rule, "resolved", a.severity, starts_at=a.starts_at, ends_at=t + 1000,
                           wedding_id="wed", labels={"service": "photos"})
              for a in (a1, alert("a2", starts_at=t + 700))], t + 1000)
    notes = d.tick(t + 1230)
    assert {n.receiver for n in notes} == {"ops", "primary", "secondary", "lead"}
    assert {n.reason for n in notes} == {"resolved"}
    assert d.groups() == [] and d.next_due() is None


def test_new_firing_alert_rearms_an_acknowledged_escalation(calendar):
    d = Dispatcher(config(), priority=PriorityPolicy(calendar))
    t = TUESDAY
    d.update(alert("a1"), t)
    d.tick(t + 30)
    d.acknowledge_alert("a1", t + 40, by="sam")
    d.update(alert("a2", starts_at=t + 100), t + 100)
    assert who(d.tick(t + 330)) == [("ops", "update", 0), ("primary", "update", 0)]
    # Re-armed at the update: the next level is due one level-0 delay later.
    assert who(d.tick(t + 330 + 600)) == [("lead", "escalation", 1), ("secondary", "escalation", 1)]


def test_silenced_group_does_not_escalate_until_the_silence_ends(calendar):
    d = Dispatcher(config(), priority=PriorityPolicy(calendar))
    t = TUESDAY
    d.update(alert(), t)
    d.tick(t + 30)
    d.add_silence(Silence(matchers=['wedding_id="wed"'], starts_at=t + 100, ends_at=t + 1000,
                          created_by="ana", comment="venue power cut, known"))
    assert d.tick(t + 630) == []
    assert d.tick(t + 930) == []   # flush and the postponed step both find it silenced
    # After the silence the postponed step happens at the first tick that finds it due.
    notes = d.tick(t + 1020)
    assert ("secondary", "escalation", 1) in who(notes)


def test_route_without_escalation_never_pages_levels():
    d = Dispatcher({"route": {"receiver": "ops", "group_wait": 0}, "escalation_policies": [POLICY]})
    d.update(alert(), TUESDAY)
    assert who(d.tick(TUESDAY)) == [("ops", "initial", 0)]
    assert [n for k in range(1, 10) for n in d.tick(TUESDAY + 600 * k)] == []
    with pytest.raises(KeyError, match="no escalating alert group"):
        d.acknowledge('root:{}', TUESDAY)


def test_wedding_day_raise_sends_a_warning_down_the_critical_route(calendar):
    priority = PriorityPolicy(calendar)
    d = Dispatcher({"route": {"receiver": "ops", "group_wait": 0, "routes": [
        {"matchers": ['severity=~"critical|page"'], "receiver": "pager"}]}})
    on_the_day = dt.datetime(2026, 6, 13, 15, tzinfo=dt.timezone.utc).timestamp()
    week_before = on_the_day - 7 * 86400
    for when, expected in ((week_before, "ops"), (on_the_day, "pager")):
        sev = priority.severity_for("warning", {"wedding_id": "sat"}, when)
        note = d.process(alert(f"a-{expected}", severity=sev, wedding_id="sat", starts_at=when), when)
        assert [n.receiver for n in note] == [expected]
    assert priority.severity_for("warning", {"wedding_id": "sat"}, on_the_day) is Severity.CRITICAL


def test_escalation_state_object_directly(calendar):
    policy = EscalationPolicy.model_validate(POLICY)
    priority = PriorityPolicy(calendar)
    esc = Escalation.start(policy, SATURDAY, [{"wedding_id": "sat"}, {"wedding_id": "wed"}], priority)
    assert esc.next_at == SATURDAY + 300          # the shortest delay any alert calls for
    assert esc.receivers() == ("primary",)
    assert esc.step(esc.next_at, [{"wedding_id": "wed"}], priority) == ("secondary", "lead")
    assert esc.receivers() == ("primary", "secondary", "lead")
    assert policy.receivers_up_to(5) == ("primary", "secondary", "lead", "manager")


@pytest.mark.parametrize("bad,needle", [
    ({"name": "p", "levels": []}, "levels"),
    ({"name": "p", "levels": [{"receivers": [], "delay": 5}]}, "levels.0.receivers"),
    ({"name": "p", "levels": [{"receivers": ["a"], "delay": "-5m"}]}, "levels.0.delay"),
    ({"name": "p", "levels": [{"receivers": ["a"], "delay": 0}]}, "delay must be > 0"),
    ({"levels": [{"receivers": ["a"]}]}, "name"),
])
def test_bad_escalation_policies_are_named(bad, needle):
    with pytest.raises(pydantic.ValidationError, match=needle):
        EscalationPolicy.model_validate(bad)
