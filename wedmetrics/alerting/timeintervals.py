"""Recurring time windows, exactly as Alertmanager's ``time_intervals`` read them.

A :class:`TimeInterval` holds inclusive ranges of weekdays, days of the
month, months and years, and half-open ranges of times of day, all read in
its ``location`` (an IANA zone, default UTC).  A part left out means "any".
A time is inside when every given part has a range containing it.

The YAML forms and their errors are Alertmanager's (``timeinterval/``):

* ``weekdays: ['monday:friday', 'sunday']`` (names only, any case);
* ``days_of_month: ['1:5', '-3:-1']``: negative days count from the end of
  the month (-1 is its last day); a range reaching past a short month's end
  is clamped to it, and a range starting after it is skipped;
* ``months: ['january:march', '12']`` (names or numbers);
* ``years: ['2020:2025']``;
* ``times: [{start_time: '09:00', end_time: '17:00'}]``, ``'24:00'`` allowed as an end;
* ``location: 'Europe/London'`` (``timezone`` is accepted as an older spelling).

>>> import datetime as dt
>>> ti = TimeInterval.model_validate({"weekdays": ["saturday"], "times": [
...     {"start_time": "10:00", "end_time": "18:00"}], "location": "Europe/London"})
>>> ti.contains(dt.datetime(2026, 6, 13, 11, 0, tzinfo=dt.timezone.utc).timestamp())
True
"""
from __future__ import annotations

import calendar as _calendar
import datetime as _dt
import re
from typing import Any, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pydantic

__all__ = ["TimeRange", "TimeInterval", "WEEKDAYS", "MONTHS"]

#: Alertmanager's (Go's) weekday numbers: Sunday is 0.
WEEKDAYS = {"sunday": 0, "monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4, "friday": 5,
            "saturday": 6}
MONTHS = {name.lower(): i for i, name in enumerate(_calendar.month_name) if name}
_MONTH_NAMES = {v: k for k, v in MONTHS.items()}
_VALID_TIME = re.compile(r"^((([01][0-9])|(2[0-3])):[0-5][0-9])$|(^24:00$)")
_MODEL = pydantic.ConfigDict(frozen=True, extra="forbid")


def parse_time_of_day(text: Any) -> int:
    """``"HH:MM"`` to minutes since midnight (``"24:00"`` is 1440)."""
    if not isinstance(text, str) or not _VALID_TIME.match(text):
        raise ValueError(f"couldn't parse timestamp {text}, invalid format")
    h, m = text.split(":")
    return int(h) * 60 + int(m)


class TimeRange(pydantic.BaseModel):
    """Times of day ``[start_time, end_time)``, kept as minutes since midnight."""

    model_config = _MODEL

    start_minute: int
    end_minute: int

    @pydantic.model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("start_time" in data or "end_time" in data):
            extra = set(data) - {"start_time", "end_time"}
            if extra:
                raise ValueError(f"times: unknown field(s) {sorted(extra)}")
            if not data.get("start_time") or not data.get("end_time"):
                raise ValueError("both start and end times must be provided")
            start, end = parse_time_of_day(data["start_time"]), parse_time_of_day(data["end_time"])
            if start >= end:
                raise ValueError("start time cannot be equal or greater than end time")
            return {"start_minute": start, "end_minute": end}
        if isinstance(data, dict) and not data:
            raise ValueError("both start and end times must be provided")
        return data

    def contains(self, minute_of_day: int) -> bool:
        return self.start_minute <= minute_of_day < self.end_minute

    def to_yaml(self) -> dict:
        def hhmm(m: int) -> str:
            return f"{m // 60:02d}:{m % 60:02d}"
        return {"start_time": hhmm(self.start_minute), "end_time": hhmm(self.end_minute)}


def _split(item: Any) -> tuple[str, str]:
    if isinstance(item, bool) or not isinstance(item, (str, int)):
        raise ValueError(f"{item!r} is not a range: use 'a:b' or a single value")
    text = str(item).strip().lower()
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 2:
            raise ValueError(f"couldn't parse range {text}, invalid format")
        return parts[0], parts[1]
    return text, text


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f'strconv.Atoi: parsing "{text}": invalid syntax') from None


def _weekday(text: str) -> int:
    if text not in WEEKDAYS:
        raise ValueError(f"{text} is not a valid weekday")
    return WEEKDAYS[text]


def _month(text: str) -> int:
    if text in MONTHS:
        return MONTHS[text]
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text} is not a valid month") from None


def _as_list(v: Any, what: str) -> list:
    if isinstance(v, (str, int)) and not isinstance(v, bool):
        return [v]
    if not isinstance(v, (list, tuple)):
        raise ValueError(f"{what} must be a list of ranges, got {v!r}")
    return list(v)


def parse_weekdays(v: Any) -> tuple[tuple[int, int], ...]:
    out = []
    for item in _as_list(v, "weekdays"):
        a, b = _split(item)
        begin, end = _weekday(a), _weekday(b)
        if begin > end:
            raise ValueError("start day cannot be before end day")
        out.append((begin, end))
    return tuple(out)


def parse_days_of_month(v: Any) -> tuple[tuple[int, int], ...]:
    out = []
    for item in _as_list(v, "days_of_month"):
        a, b = _split(item)
        begin, end = _int(a), _int(b)
        for d in (begin, end):
            if d == 0 or d < -31 or d > 31:
                raise ValueError(f"{d} is not a valid day of the month: out of range")
        if begin < 0 < end:
            raise ValueError("end day must be negative if start day is negative")
        # Always wrong, whatever the month's length (28 days at least).
        if (28 + begin if begin < 0 else begin) > (28 + end if end < 0 else end):
            raise ValueError(f"end day {end} is always before start day {begin}")
        out.append((begin, end))
    return tuple(out)


def parse_months(v: Any) -> tuple[tuple[int, int], ...]:
    out = []
    for item in _as_list(v, "months"):
        a, b = _split(item)
        begin, end = _month(a), _month(b)
        for m in (begin, end):
            if not 1 <= m <= 12:
                raise ValueError(f"{m} is not a valid month: out of range")
        if begin > end:
            raise ValueError(f"end month {_MONTH_NAMES[end]} is before start month {_MONTH_NAMES[begin]}")
        out.append((begin, end))
    return tuple(out)


def parse_years(v: Any) -> tuple[tuple[int, int], ...]:
    out = []
    for item in _as_list(v, "years"):
        a, b = _split(item)
        begin, end = _int(a), _int(b)
        if begin > end:
            raise ValueError(f"end year {end} is before start year {begin}")
        out.append((begin, end))
    return tuple(out)


class TimeInterval(pydantic.BaseModel):
    """One recurring window; an omitted part means "any" (see the module doc).

    Ranges are ``(begin, end)`` pairs, inclusive, in Alertmanager's numbering
    (weekdays: Sunday = 0).
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    times: Optional[tuple[TimeRange, ...]] = None
    weekdays: Optional[tuple[tuple[int, int], ...]] = None
    days_of_month: Optional[tuple[tuple[int, int], ...]] = None
    months: Optional[tuple[tuple[int, int], ...]] = None
    years: Optional[tuple[tuple[int, int], ...]] = None
    location: str = "UTC"

    @pydantic.model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "timezone" in data:
            if "location" in data:
                raise ValueError("give location or timezone (its older name), not both")
            data["location"] = data.pop("timezone")
        for key, parse in (("weekdays", parse_weekdays), ("days_of_month", parse_days_of_month),
                           ("months", parse_months), ("years", parse_years)):
            v = data.get(key)
            if v is not None and not _parsed(v):
                data[key] = parse(v)
        if data.get("location") is None:
            data.pop("location", None)
        return data

    @pydantic.field_validator("location")
    @classmethod
    def _zone(cls, v: str) -> str:
        if v in ("Local", ""):
            return "UTC"
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ValueError(f"unknown time zone {v} (an IANA name such as 'Europe/London')") from None
        return v

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.location)

    def contains(self, now: float) -> bool:
        """True when ``now`` (epoch seconds) is inside, read in :attr:`location`."""
        return self.contains_datetime(_dt.datetime.fromtimestamp(now, tz=self.zone))

    def contains_datetime(self, t: _dt.datetime) -> bool:
        """Alertmanager's ``ContainsTime`` for an aware datetime."""
        t = t.astimezone(self.zone)
        if self.times is not None:
            minute = t.hour * 60 + t.minute
            if not any(r.contains(minute) for r in self.times):
                return False
        if self.days_of_month is not None:
            last = _calendar.monthrange(t.year, t.month)[1]
            hit = False
            for b, e in self.days_of_month:
                begin = last + b + 1 if b < 0 else b
                end = last + e + 1 if e < 0 else e
                if begin > last:
                    continue   # starts after this month's end: not this month
                begin, end = _clamp(begin, -last, last), _clamp(end, -last, last)
                if begin <= t.day <= end:
                    hit = True
                    break
            if not hit:
                return False
        if self.months is not None and not any(b <= t.month <= e for b, e in self.months):
            return False
        if self.weekdays is not None:
            go_weekday = (t.weekday() + 1) % 7
            if not any(b <= go_weekday <= e for b, e in self.weekdays):
                return False
        if self.years is not None and not any(b <= t.year <= e for b, e in self.years):
            return False
        return True


def _parsed(v: Any) -> bool:
    return isinstance(v, tuple) and all(isinstance(x, tuple) and len(x) == 2
                                        and all(isinstance(i, int) for i in x) for x in v)


def _clamp(n: int, lo: int, hi: int) -> int:
    return lo if n <= lo else hi if n >= hi else n
