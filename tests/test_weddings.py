"""Wedding context: calendar lookups and the priority policy, on explicit times."""
from __future__ import annotations

import datetime as dt

import pydantic
import pytest

from wedmetrics.alerting.notification import Severity
from wedmetrics.weddings import PriorityPolicy, Wedding, WeddingCalendar

LONDON = dt.timezone(dt.timedelta(hours=1))  # BST, in force in June


def at(y, mo, d, h=0, mi=0, tz=dt.timezone.utc) -> float:
    return dt.datetime(y, mo, d, h, mi, tzinfo=tz).timestamp()


def wedding(**kw) -> Wedding:
    base = dict(id="w1", org_id="acme", date=dt.date(2026, 6, 13), timezone="Europe/London",
                guest_count=200, venue="Kew Gardens", start_time=dt.time(14, 0), end_time=dt.time(23, 0))
    base.update(kw)
    return Wedding(**base)


@pytest.fixture
def calendar():
    return WeddingCalendar([
        wedding(),                                                     # Saturday 13 June, London
        wedding(id="w2", org_id="acme", date=dt.date(2026, 6, 17),     # Wednesday, no times
                start_time=None, end_time=None, guest_count=40),
        wedding(id="syd", org_id="kiwi", date=dt.date(2026, 6, 13),    # Saturday in Sydney
                timezone="Australia/Sydney", start_time=dt.time(13, 0), end_time=dt.time(22, 0)),
    ])


# -- Wedding -----------------------------------------------------------------

def test_event_bounds_are_local_times_in_the_wedding_timezone():
    w = wedding()
    assert w.event_start == at(2026, 6, 13, 14, tz=LONDON)
    assert w.event_end == at(2026, 6, 13, 23, tz=LONDON)
    assert w.is_saturday


def test_event_past_midnight_and_whole_day_events():
    late = wedding(end_time=dt.time(1, 30))
    assert late.event_end == at(2026, 6, 14, 1, 30, tz=LONDON)
    whole = wedding(start_time=None, end_time=None)
    assert (whole.event_start, whole.event_end) == (at(2026, 6, 13, tz=LONDON), at(2026, 6, 14, tz=LONDON))


def test_wedding_accepts_strings_and_is_immutable():
    w = Wedding(id="w", org_id="o", date="2026-01-03", timezone="UTC", guest_count="80",
                venue="Hall", start_time="10:00")
    assert w.date == dt.date(2026, 1, 3) and w.guest_count == 80 and w.start_time == dt.time(10)
    with pytest.raises(pydantic.ValidationError):
        w.guest_count = 5


@pytest.mark.parametrize("field,value,needle", [
    ("timezone", "Mars/Olympus", "timezone"),
    ("guest_count", -1, "guest_count"),
    ("date", "13/06/2026", "date"),
    ("id", "", "id"),
    ("start_time", "25:00", "start_time"),
])
def test_bad_wedding_fields_are_named(field, value, needle):
    with pytest.raises(pydantic.ValidationError) as e:
        wedding(**{field: value})
    assert needle in str(e.value)
    assert e.value.errors()[0]["loc"] == (field,)


def test_end_time_without_start_time_is_rejected():
    with pytest.raises(pydantic.ValidationError, match="end_time needs start_time"):
        wedding(start_time=None, end_time=dt.time(20))


# -- WeddingCalendar ----------------------------------------------------------

def test_calendar_get_by_org_and_labels(calendar):
    assert calendar.get("w2").guest_count == 40
    assert [w.id for w in calendar.by_org("acme")] == ["w1", "w2"]
    assert calendar.for_labels({"wedding_id": "syd", "route": "/photos"}).venue == "Kew Gardens"
    assert calendar.for_labels({"route": "/photos"}) is None
    assert calendar.for_labels(None) is None
    assert len(calendar) == 3 and "w1" in calendar and "nope" not in calendar


def test_unknown_wedding_ids_are_counted_not_fatal(calendar):
    assert calendar.for_labels({"wedding_id": "ghost"}) is None
    assert calendar.for_labels({"wedding_id": "ghost"}) is None
    assert calendar.stats() == {"weddings": 3, "unknown_wedding_lookups": 2, "unknown_wedding_ids": {"ghost": 2}}


def test_unknown_ids_are_remembered_up_to_a_cap_and_all_counted(calendar):
    for i in range(1005):
        calendar.for_labels({"wedding_id": f"ghost-{i}"})
    calendar.for_labels({"wedding_id": "ghost-0"})
    stats = calendar.stats()
    assert stats["unknown_wedding_lookups"] == 1006
    assert len(stats["unknown_wedding_ids"]) == 1000 and stats["unknown_wedding_ids"]["ghost-0"] == 2


def test_calendar_rejects_duplicates_and_names_missing_ids(calendar):
    with pytest.raises(ValueError, match="'w1' is already"):
        calendar.add(wedding())
    calendar.add(wedding(guest_count=10), replace=True)
    assert calendar.get("w1").guest_count == 10
    with pytest.raises(KeyError, match="ghost"):
        calendar.get("ghost")
    assert calendar.remove("w2").id == "w2"
    with pytest.raises(KeyError, match="w2"):
        calendar.remove("w2")


def test_calendar_validates_dicts_naming_the_field():
    cal = WeddingCalendar()
    cal.add({"id": "d", "org_id": "o", "date": "2026-07-04", "timezone": "America/New_York",
             "guest_count": 90, "venue": "Barn"})
    assert cal.get("d").timezone == "America/New_York"
    with pytest.raises(pydantic.ValidationError, match="guest_count"):
        cal.add({"id": "e", "org_id": "o", "date": "2026-07-04", "timezone": "UTC", "venue": "x"})


def test_active_at_uses_each_weddings_own_timezone(calendar):
    # 04:00 UTC on 13 June is 14:00 in Sydney (party on) and 05:00 in London (not yet).
    assert [w.id for w in calendar.active_at(at(2026, 6, 13, 4))] == ["syd"]
    assert [w.id for w in calendar.active_at(at(2026, 6, 13, 14))] == ["w1"]
    # Widened by 12 hours, London's wedding is already "on" at 05:00 local.
    assert [w.id for w in calendar.active_at(at(2026, 6, 13, 4), hours_before=12)] == ["syd", "w1"]
    assert calendar.active_at(at(2026, 6, 15, 12)) == []


# -- PriorityPolicy: wedding-day severity raise -------------------------------

def test_severity_raised_one_level_on_the_wedding_day(calendar):
    policy = PriorityPolicy(calendar, wedding_day_hours_before=12, wedding_day_hours_after=6)
    labels = {"wedding_id": "w1"}
    # 13:00 local on the day, an hour before the ceremony.
    assert policy.severity_for("warning", labels, at(2026, 6, 13, 13, tz=LONDON)) is Severity.CRITICAL
    assert policy.severity_for(Severity.CRITICAL, labels, at(2026, 6, 13, 13, tz=LONDON)) is Severity.PAGE
    # Window edges: 12 h before the 14:00 start, 6 h after the 23:00 end (exclusive).
    assert policy.severity_for("info", labels, at(2026, 6, 13, 2, tz=LONDON)) is Severity.WARNING
    assert policy.severity_for("info", labels, at(2026, 6, 13, 1, 59, tz=LONDON)) is Severity.INFO
    assert policy.severity_for("info", labels, at(2026, 6, 14, 4, 59, tz=LONDON)) is Severity.WARNING
    assert policy.severity_for("info", labels, at(2026, 6, 14, 5, tz=LONDON)) is Severity.INFO
    # A week earlier nothing changes; nor for series tied to no wedding.
    assert policy.severity_for("warning", labels, at(2026, 6, 6, 14, tz=LONDON)) is Severity.WARNING
    assert policy.severity_for("warning", {}, at(2026, 6, 13, 14, tz=LONDON)) is Severity.WARNING


def test_wedding_day_window_is_configurable(calendar):
    policy = PriorityPolicy(calendar, wedding_day_hours_before=0, wedding_day_hours_after=0)
    labels = {"wedding_id": "w1"}
    assert not policy.is_wedding_day(labels, at(2026, 6, 13, 13, tz=LONDON))
    assert policy.is_wedding_day(labels, at(2026, 6, 13, 14, tz=LONDON))


def test_bad_severity_is_named(calendar):
    with pytest.raises(ValueError, match="severity must be one of"):
        PriorityPolicy(calendar).severity_for("loud", {}, 0.0)


# -- PriorityPolicy: Saturday halving ------------------------------------------

def test_saturday_halves_escalation_delays_in_the_wedding_timezone(calendar):
    policy = PriorityPolicy(calendar, saturday_without_wedding=False)
    # Friday 12 June 15:00 UTC is Saturday 01:00 in Sydney, Friday 16:00 in London.
    ts = at(2026, 6, 12, 15)
    assert policy.escalation_delay(600, {"wedding_id": "syd"}, ts) == 300.0
    assert policy.escalation_delay("10m", {"wedding_id": "w2"}, ts) == 600.0
    # On Saturday in London, even a Wednesday wedding's alerts escalate twice as fast.
    assert policy.escalation_delay(600, {"wedding_id": "w2"}, at(2026, 6, 13, 12)) == 300.0


def test_saturday_wedding_window_spilling_into_friday_counts_as_saturday(calendar):
    policy = PriorityPolicy(calendar, wedding_day_hours_before=12, saturday_without_wedding=False)
    friday_evening = at(2026, 6, 12, 22, tz=LONDON)   # 16 h before the 14:00 start
    set_up = at(2026, 6, 13, 2, tz=LONDON)           # inside the 12 h lead-in, already Saturday
    assert policy.escalation_delay(600, {"wedding_id": "w1"}, friday_evening) == 600.0
    assert policy.escalation_delay(600, {"wedding_id": "w1"}, set_up) == 300.0
    sunday_small_hours = at(2026, 6, 14, 3, tz=LONDON)  # within 6 h after the 23:00 end
    assert policy.escalation_delay(600, {"wedding_id": "w1"}, sunday_small_hours) == 300.0


def test_saturday_without_a_wedding_uses_the_default_timezone():
    ts = at(2026, 6, 13, 3)  # Saturday 03:00 UTC, still Friday 23:00 in New York
    assert PriorityPolicy().escalation_delay(600, {}, ts) == 300.0
    assert PriorityPolicy(default_timezone="America/New_York").escalation_delay(600, {}, ts) == 600.0
    assert PriorityPolicy(saturday_without_wedding=False).escalation_delay(600, {}, ts) == 600.0


def test_speedup_factor_is_configurable(calendar):
    policy = PriorityPolicy(calendar, saturday_speedup=3.0)
    assert policy.escalation_delay(900, {"wedding_id": "w1"}, at(2026, 6, 13, 12)) == 300.0


# -- PriorityPolicy: guest scaling -----------------------------------------------

def test_guest_scaled_thresholds(calendar):
    policy = PriorityPolicy(calendar, guest_reference=100)
    assert policy.scaled_threshold(50.0, {"wedding_id": "w1"}, "guest_count") == 100.0   # 200 guests
    assert policy.scaled_threshold(50.0, {"wedding_id": "w2"}, "guest_count") == 20.0    # 40 guests
    assert policy.scaled_threshold(50.0, {"wedding_id": "w1"}, None) == 50.0
    assert policy.scaled_threshold(50.0, {}, "guest_count") == 50.0
    assert policy.scaled_threshold(50.0, {"wedding_id": "ghost"}, "guest_count") == 50.0


def test_guest_scale_is_clamped_and_reference_checked(calendar):
    policy = PriorityPolicy(calendar, guest_scale_min=0.5, guest_scale_max=1.5)
    assert policy.guest_scale(calendar.get("w2")) == 0.5
    assert policy.guest_scale(calendar.get("w1")) == 1.5
    assert policy.guest_scale(calendar.get("w1"), reference=400) == 0.5
    assert policy.guest_scale(None) == 1.0
    with pytest.raises(ValueError, match="reference"):
        policy.guest_scale(calendar.get("w1"), reference=0)


def test_bad_scale_by_and_threshold_are_named(calendar):
    policy = PriorityPolicy(calendar)
    with pytest.raises(ValueError, match="scale_by must be 'guest_count'"):
        policy.scaled_threshold(1.0, {"wedding_id": "w1"}, "venue_size")
    with pytest.raises(ValueError, match="threshold"):
        policy.scaled_threshold(float("nan"), {}, None)


@pytest.mark.parametrize("kw,needle", [
    ({"saturday_speedup": 0.5}, "saturday_speedup"),
    ({"wedding_day_hours_before": -1}, "wedding_day_hours_before"),
    ({"default_timezone": "Nowhere/Land"}, "default_timezone"),
    ({"guest_scale_min": 5, "guest_scale_max": 2}, "guest_scale_min"),
    ({"surprise": 1}, "surprise"),
])
def test_bad_policy_settings_are_named(kw, needle):
    with pytest.raises(pydantic.ValidationError, match=needle):
        PriorityPolicy(**kw)
