"""Matchers, silences, inhibition rules and recurring mute intervals, on their own."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pydantic
import pytest

from wedmetrics.alerting.matchers import Matcher, parse_matchers
from wedmetrics.alerting.silences import (DEFAULT_INHIBIT_RULE, InhibitRule, MuteInterval, Silence,
                                          SilenceStore)

LONDON = ZoneInfo("Europe/London")


def local(y, mo, d, h, mi=0, tz=LONDON) -> float:
    return dt.datetime(y, mo, d, h, mi, tzinfo=tz).timestamp()


# -- matchers ------------------------------------------------------------------------

@pytest.mark.parametrize("text,labels,expected", [
    ('severity="critical"', {"severity": "critical"}, True),
    ("severity=critical", {"severity": "warning"}, False),
    ('team!="db"', {}, True),                                   # missing reads as ""
    ('team!="db"', {"team": "db"}, False),
    ('route=~"/photos/.*"', {"route": "/photos/1"}, True),
    ('route=~"/photos/.*"', {"route": "/x/photos/1"}, False),   # anchored at the start
    ('route=~"/photos"', {"route": "/photos/1"}, False),        # and at the end
    ('wedding_id=~".+"', {}, False),
    ('env!~"dev|staging"', {"env": "prod"}, True),
    ('env!~"dev|staging"', {"env": "staging"}, False),
    ('note="say \\"hi\\""', {"note": 'say "hi"'}, True),
    ("  a = b  ", {"a": "b"}, True),
])
def test_matcher_semantics(text, labels, expected):
    assert Matcher.parse(text).matches(labels) is expected


def test_matcher_round_trips_through_str():
    m = Matcher.parse('note="say \\"hi\\""')
    assert Matcher.parse(str(m)) == m


@pytest.mark.parametrize("text,needle", [
    ("no operator here", "cannot parse matcher"),
    ("1abc=x", "cannot parse matcher"),
    ('a=~"("', "invalid regex"),
    ('a="open', "unbalanced quotes"),
])
def test_bad_matchers_are_named(text, needle):
    with pytest.raises(ValueError, match=needle):
        Matcher.parse(text)


def test_parse_matchers_forms():
    assert parse_matchers(None) == ()
    assert parse_matchers({"a": "b"}) == (Matcher("a", "=", "b"),)
    assert parse_matchers(["a=b", Matcher("c", "!=", "d")]) == (Matcher("a", "=", "b"), Matcher("c", "!=", "d"))
    with pytest.raises(ValueError, match="value must be a string"):
        parse_matchers({"a": 1})
    with pytest.raises(ValueError, match="operator"):
        Matcher("a", "==", "b")


# -- silences ---------------------------------------------------------------------------

def test_silence_window_is_half_open_and_needs_every_matcher():
    s = Silence(matchers=["wedding_id=w1", 'alertname=~"Slow.*"'], starts_at=100, ends_at=200, created_by="ana")
    assert s.mutes({"wedding_id": "w1", "alertname": "SlowUploads"}, 100)
    assert s.mutes({"wedding_id": "w1", "alertname": "SlowUploads"}, 199.9)
    assert not s.mutes({"wedding_id": "w1", "alertname": "SlowUploads"}, 200)
    assert not s.mutes({"wedding_id": "w1", "alertname": "Down"}, 150)
    assert s.expired(200) and not s.expired(199.9)


@pytest.mark.parametrize("kw,needle", [
    ({"matchers": []}, "at least one matcher"),
    ({"ends_at": 50}, "end time must not be before start time"),
    ({"created_by": ""}, "created_by"),
    ({"starts_at": float("inf")}, "starts_at"),
    ({"matchers": ["bad matcher"]}, "matchers"),
])
def test_bad_silences_are_named(kw, needle):
    base = dict(matchers=["a=b"], starts_at=100, ends_at=200, created_by="ana")
    base.update(kw)
    with pytest.raises(pydantic.ValidationError, match=needle):
        Silence(**base)


def test_store_lookup_expiry_and_prune():
    store = SilenceStore([{"id": "s1", "matchers": ["a=b"], "starts_at": 0, "ends_at": 100, "created_by": "x"}])
    store.add(Silence(id="s2", matchers=["a=~b|c"], starts_at=50, ends_at=500, created_by="y"))
    assert store.silenced_by({"a": "b"}, 60) == ["s1", "s2"]
    assert store.silenced_by({"a": "c"}, 10) == []
    assert [s.id for s in store.active(60)] == ["s1", "s2"]
    assert store.expire("s2", 70).ends_at == 70
    assert store.expire("s2", 80).ends_at == 70      # already over: unchanged
    assert store.silenced_by({"a": "c"}, 75) == []
    assert store.prune(now=100 + 3600, retention=3600) == 2
    with pytest.raises(KeyError, match="s1"):
        store.get("s1")
    with pytest.raises(KeyError, match="zzz"):
        store.expire("zzz", 0)


# -- inhibition rules ---------------------------------------------------------------------

def test_default_rule_needs_a_shared_wedding():
    sev = "wedding_severity"   # the wedding-aware level, never the user's own severity label
    crit = {sev: "critical", "wedding_id": "w1"}
    assert DEFAULT_INHIBIT_RULE.inhibits({sev: "warning", "wedding_id": "w1"}, crit)
    assert DEFAULT_INHIBIT_RULE.inhibits({sev: "info", "wedding_id": "w1"}, {sev: "page", "wedding_id": "w1"})
    assert not DEFAULT_INHIBIT_RULE.inhibits({sev: "warning", "wedding_id": "w2"}, crit)
    assert not DEFAULT_INHIBIT_RULE.inhibits({sev: "critical", "wedding_id": "w1"}, crit)
    assert not DEFAULT_INHIBIT_RULE.inhibits({"severity": "warning", "wedding_id": "w1"},
                                             {"severity": "critical", "wedding_id": "w1"})
    # Two alerts without wedding: "equal" would hold (both empty), the target matcher refuses.
    assert not DEFAULT_INHIBIT_RULE.inhibits({sev: "warning"}, {sev: "critical"})


def test_equal_labels_missing_on_both_sides_count_as_equal():
    rule = InhibitRule(source_matchers=["alertname=A"], target_matchers=["alertname=B"], equal=["venue"])
    assert rule.inhibits({"alertname": "B"}, {"alertname": "A"})
    assert not rule.inhibits({"alertname": "B", "venue": "x"}, {"alertname": "A"})


# -- mute intervals --------------------------------------------------------------------------

MAINT = MuteInterval(name="maint", weekdays=["tuesday"], timezone="Europe/London",
                     times=[{"start_time": "02:00", "end_time": "04:00"}])


@pytest.mark.parametrize("when,expected", [
    (local(2026, 1, 13, 2, 0), True),      # Tuesday, GMT
    (local(2026, 1, 13, 3, 59), True),
    (local(2026, 1, 13, 4, 0), False),     # end is exclusive
    (local(2026, 1, 13, 1, 59), False),
    (local(2026, 6, 16, 2, 0), True),      # Tuesday, BST: 01:00 UTC
    (local(2026, 1, 14, 2, 30), False),    # Wednesday
])
def test_maintenance_window_in_local_time(when, expected):
    assert MAINT.active(when) is expected


def test_same_utc_instant_differs_across_dst():
    t_winter = dt.datetime(2026, 1, 13, 1, 30, tzinfo=dt.timezone.utc).timestamp()   # 01:30 GMT
    t_summer = dt.datetime(2026, 6, 16, 1, 30, tzinfo=dt.timezone.utc).timestamp()   # 02:30 BST
    assert not MAINT.active(t_winter) and MAINT.active(t_summer)


def test_window_on_the_spring_forward_night():
    # Sunday 29 March 2026 01:00 GMT -> 02:00 BST: a 01:00-03:00 window lasts one real hour.
    mi = MuteInterval(name="dst", weekdays=["sunday"], timezone="Europe/London",
                      times=[{"start_time": "01:00", "end_time": "03:00"}])
    start = dt.datetime(2026, 3, 29, 0, 59, tzinfo=dt.timezone.utc).timestamp()
    inside = [k for k in range(0, 180) if mi.active(start + 60 * k)]
    assert (len(inside), inside[0]) == (60, 1)


def test_ranges_days_of_month_months_and_several_intervals():
    mi = MuteInterval(name="m", time_intervals=[
        {"weekdays": ["monday:friday"], "times": [{"start_time": "00:00", "end_time": "06:00"}],
         "months": ["june:august"], "timezone": "UTC"},
        {"days_of_month": [-1], "timezone": "UTC"},
    ])
    utc = dt.timezone.utc
    assert mi.active(local(2026, 7, 1, 5, tz=utc))          # Wednesday in July, early
    assert not mi.active(local(2026, 7, 4, 5, tz=utc))      # Saturday
    assert not mi.active(local(2026, 9, 2, 5, tz=utc))      # September
    assert mi.active(local(2026, 2, 28, 18, tz=utc))        # last day of February
    assert not mi.active(local(2026, 2, 27, 18, tz=utc))


@pytest.mark.parametrize("kw,needle", [
    ({"weekdays": [1]}, "1 is not a valid weekday"),
    ({"weekdays": ["friday:monday"]}, "start day cannot be before end day"),
    ({"days_of_month": [0]}, "0 is not a valid day of the month"),
    ({"months": ["smarch"]}, "months"),
    ({"times": [{"start_time": "2:60", "end_time": "04:00"}]}, "start_time"),
    ({"times": [{"start_time": "22:00", "end_time": "25:00"}]}, "end_time"),
    ({"name": ""}, "name"),
])
def test_bad_mute_intervals_are_named(kw, needle):
    base = {"name": "m"}
    base.update(kw)
    with pytest.raises(pydantic.ValidationError, match=needle):
        MuteInterval.model_validate(base)


def test_no_time_intervals_never_hold_an_empty_one_always_does():
    # Alertmanager's Intervener: an empty list matches nothing (never mutes,
    # never active); a range without fields matches every instant.
    never = MuteInterval.model_validate({"name": "never", "time_intervals": []})
    always = MuteInterval.model_validate({"name": "always", "time_intervals": [{}]})
    for t in (0.0, 1_781_000_000.0, 1_781_345_678.9):
        assert never.active(t) is False and always.active(t) is True


def test_active_rejects_non_finite_time():
    with pytest.raises(ValueError, match="finite"):
        MAINT.active(float("nan"))
