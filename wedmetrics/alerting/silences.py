"""What keeps an alert quiet: silences, inhibition rules and recurring mute intervals.

* A :class:`Silence` mutes alerts matching its matchers between
  ``starts_at`` and ``ends_at`` (one-off, created by a person, with a
  comment saying why).  :class:`SilenceStore` keeps them and expires them.
* An :class:`InhibitRule` mutes *target* alerts while a *source* alert fires
  with the same values of the ``equal`` labels.  The default rule: a
  critical (or page) alert for a wedding mutes that wedding's warnings.
* A :class:`MuteInterval` is a recurring window (weekdays, times of day,
  days of month, months) in its own timezone, e.g. a Tuesday 02:00-04:00
  Europe/London maintenance window.  Times are wall-clock times of that
  zone, so the window follows daylight-saving changes.

All judgements take an explicit ``now`` (epoch seconds).
"""
from __future__ import annotations

import calendar as _calendar
import datetime as _dt
import math
import re
import threading
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pydantic

from .matchers import Matcher, matches_all, parse_matchers

__all__ = [
    "Silence",
    "SilenceStore",
    "InhibitRule",
    "DEFAULT_INHIBIT_RULE",
    "TimeRange",
    "TimeInterval",
    "MuteInterval",
]

_MODEL = pydantic.ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


def _matchers(v: Any) -> tuple[Matcher, ...]:
    return parse_matchers(v)


class Silence(pydantic.BaseModel):
    """A one-off mute for alerts matching every matcher, from ``starts_at`` to ``ends_at``.

    Parameters
    ----------
    matchers : list of str or mapping
        At least one (an empty silence would mute everything).
    starts_at, ends_at : float
        Epoch seconds; active on ``[starts_at, ends_at)``.
    created_by : str
        Who set it (shown in audits).
    comment : str
        Why.
    id : str, optional
        Generated when omitted.

    Examples
    --------
    >>> s = Silence(matchers=['wedding_id="w1"'], starts_at=0, ends_at=3600,
    ...             created_by="ana", comment="venue wifi swap")
    >>> s.active(10), s.active(3600), s.mutes({"wedding_id": "w1"}, 10)
    (True, False, True)
    """

    model_config = _MODEL

    matchers: tuple[Matcher, ...]
    starts_at: float = pydantic.Field(allow_inf_nan=False)
    ends_at: float = pydantic.Field(allow_inf_nan=False)
    created_by: str = pydantic.Field(min_length=1)
    comment: str = ""
    id: str = pydantic.Field(default_factory=lambda: uuid.uuid4().hex, min_length=1)

    _parse = pydantic.field_validator("matchers", mode="before")(_matchers)

    @pydantic.field_validator("matchers")
    @classmethod
    def _not_empty(cls, v: tuple[Matcher, ...]) -> tuple[Matcher, ...]:
        if not v:
            raise ValueError("a silence needs at least one matcher (an empty one would mute every alert)")
        return v

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> "Silence":
        if self.ends_at <= self.starts_at:
            raise ValueError(f"ends_at ({self.ends_at}) must be after starts_at ({self.starts_at})")
        return self

    def active(self, now: float) -> bool:
        """True on ``[starts_at, ends_at)``."""
        return self.starts_at <= now < self.ends_at

    def expired(self, now: float) -> bool:
        """True from ``ends_at`` on."""
        return now >= self.ends_at

    def mutes(self, labels: Mapping[str, str], now: float) -> bool:
        """True when active at ``now`` and every matcher matches ``labels``."""
        return self.active(now) and matches_all(self.matchers, labels)


class SilenceStore:
    """The silences of one dispatcher: add, expire early, look up, prune.

    Thread-safe (people add silences from an API thread while the
    dispatcher runs).  Expired silences are kept, for audit, until
    :meth:`prune` drops those older than a retention.
    """

    def __init__(self, silences: Iterable[Silence | Mapping[str, Any]] = ()) -> None:
        self._by_id: dict[str, Silence] = {}
        self._lock = threading.Lock()
        for s in silences:
            self.add(s)

    def add(self, silence: Silence | Mapping[str, Any]) -> Silence:
        """Add (or replace, by id) a silence; a dict is validated as :class:`Silence`."""
        if isinstance(silence, Mapping):
            silence = Silence.model_validate(dict(silence))
        elif not isinstance(silence, Silence):
            raise TypeError(f"SilenceStore.add needs a Silence or a dict, got {type(silence).__name__}")
        with self._lock:
            self._by_id[silence.id] = silence
        return silence

    def get(self, silence_id: str) -> Silence:
        """The silence with this id; ``KeyError`` naming it if absent."""
        with self._lock:
            try:
                return self._by_id[silence_id]
            except KeyError:
                raise KeyError(f"no silence with id {silence_id!r}") from None

    def expire(self, silence_id: str, now: float) -> Silence:
        """End a silence at ``now`` (no-op if it already ended); returns the new version."""
        with self._lock:
            try:
                s = self._by_id[silence_id]
            except KeyError:
                raise KeyError(f"no silence with id {silence_id!r}") from None
            if s.ends_at <= now:
                return s
            # A silence that has not started yet is cancelled: it ends where it starts,
            # which is not a valid Silence, so drop it instead.
            if now <= s.starts_at:
                del self._by_id[silence_id]
                return s.model_copy(update={"ends_at": s.starts_at})
            s = s.model_copy(update={"ends_at": float(now)})
            self._by_id[silence_id] = s
            return s

    def active(self, now: float) -> list[Silence]:
        """Silences in force at ``now``, by start."""
        with self._lock:
            found = [s for s in self._by_id.values() if s.active(now)]
        return sorted(found, key=lambda s: (s.starts_at, s.id))

    def silenced_by(self, labels: Mapping[str, str], now: float) -> list[str]:
        """Ids of the silences muting ``labels`` at ``now`` (empty: not silenced)."""
        with self._lock:
            silences = list(self._by_id.values())
        return sorted(s.id for s in silences if s.mutes(labels, now))

    def prune(self, now: float, retention: float = 86400.0) -> int:
        """Forget silences that ended more than ``retention`` seconds before ``now``; returns how many."""
        with self._lock:
            old = [k for k, s in self._by_id.items() if s.ends_at + retention <= now]
            for k in old:
                del self._by_id[k]
        return len(old)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self):
        with self._lock:
            return iter(sorted(self._by_id.values(), key=lambda s: (s.starts_at, s.id)))


class InhibitRule(pydantic.BaseModel):
    """Mute *target* alerts while a matching *source* alert fires.

    Parameters
    ----------
    source_matchers, target_matchers : list of str or mapping
    equal : list of str
        Labels whose values must be equal on source and target (a label
        missing on both counts as equal, as in Alertmanager).

    Notes
    -----
    An alert never inhibits itself, and only firing sources inhibit.
    """

    model_config = _MODEL

    source_matchers: tuple[Matcher, ...]
    target_matchers: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()

    _parse = pydantic.field_validator("source_matchers", "target_matchers", mode="before")(_matchers)

    @pydantic.field_validator("source_matchers", "target_matchers")
    @classmethod
    def _not_empty(cls, v: tuple[Matcher, ...]) -> tuple[Matcher, ...]:
        if not v:
            raise ValueError("needs at least one matcher (an empty side would match every alert)")
        return v

    def inhibits(self, target: Mapping[str, str], source: Mapping[str, str]) -> bool:
        """True when ``source`` (assumed firing, and a different alert) mutes ``target``."""
        return (matches_all(self.target_matchers, target)
                and matches_all(self.source_matchers, source)
                and all(target.get(name, "") == source.get(name, "") for name in self.equal))


#: A critical (or page) alert for a wedding mutes the warnings and infos of
#: the same wedding.  Alerts tied to no wedding are never muted by it.
DEFAULT_INHIBIT_RULE = InhibitRule(
    source_matchers=['severity=~"critical|page"'],
    target_matchers=['severity=~"warning|info"', 'wedding_id=~".+"'],
    equal=["wedding_id"],
)


_WEEKDAYS = {name: i for i, name in enumerate(
    ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))}
_MONTHS = {name.lower(): i for i, name in enumerate(_calendar.month_name) if name}
_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")


def _minutes(text: Any, field: str) -> int:
    m = _HHMM.match(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"{field} must be 'HH:MM', got {text!r}")
    h, mi = int(m.group(1)), int(m.group(2))
    if mi >= 60 or h > 24 or (h == 24 and mi):
        raise ValueError(f"{field} must be between 00:00 and 24:00, got {text!r}")
    return h * 60 + mi


def _ranges(spec: Any, names: Mapping[str, int], lo: int, hi: int, what: str) -> frozenset[int]:
    """Expand ``["monday:wednesday", "friday"]`` / ``["1:5", 9]`` into a set of numbers."""
    if spec is None:
        return frozenset()
    if isinstance(spec, (str, int)):
        spec = [spec]
    out: set[int] = set()

    def one(token: Any) -> int:
        if isinstance(token, bool):
            raise ValueError(f"{what}: {token!r} is not a valid value")
        if isinstance(token, int):
            n = token
        else:
            t = str(token).strip().lower()
            if t in names:
                return names[t]
            try:
                n = int(t)
            except ValueError:
                raise ValueError(f"{what}: {token!r} is not a valid value") from None
        if not lo <= n <= hi:
            raise ValueError(f"{what}: {n} is outside {lo}..{hi}")
        return n

    for item in spec:
        if isinstance(item, str) and ":" in item.strip()[1:]:
            # The first character may be a minus sign (days_of_month counts from the end).
            cut = item.index(":", 1)
            a, b = one(item[:cut]), one(item[cut + 1:])
            if (a < 0) != (b < 0) or a > b:
                raise ValueError(f"{what}: range {item!r} must go upwards")
            out.update(range(a, b + 1))
        else:
            out.add(one(item))
    return frozenset(out)


class TimeRange(pydantic.BaseModel):
    """A time-of-day range ``[start_time, end_time)`` in minutes; ``"24:00"`` allowed as end."""

    model_config = _MODEL

    start_time: str
    end_time: str

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> "TimeRange":
        a, b = _minutes(self.start_time, "start_time"), _minutes(self.end_time, "end_time")
        if a == 24 * 60:
            raise ValueError("start_time must be before 24:00")
        if b <= a:
            raise ValueError(
                f"end_time ({self.end_time}) must be after start_time ({self.start_time}); "
                "split a range across midnight in two")
        return self

    def contains(self, minute_of_day: int) -> bool:
        return _minutes(self.start_time, "start_time") <= minute_of_day < _minutes(self.end_time, "end_time")


class TimeInterval(pydantic.BaseModel):
    """One recurring window; an omitted part means "any".

    Parameters
    ----------
    times : list of {start_time, end_time}
        Local times of day, ``"HH:MM"``.
    weekdays : list of str
        Names or ranges: ``["tuesday"]``, ``["monday:friday"]``.
    days_of_month : list of int or str
        1..31, or negative counting from the month's end (-1 = last day); ranges ``"1:7"``.
    months : list of str or int
        Names or 1..12; ranges ``"june:august"``.
    timezone : str
        IANA name in which all of the above are read (default UTC).
    """

    model_config = _MODEL

    times: tuple[TimeRange, ...] = ()
    weekdays: frozenset[int] = frozenset()
    days_of_month: frozenset[int] = frozenset()
    months: frozenset[int] = frozenset()
    timezone: str = "UTC"

    @pydantic.field_validator("weekdays", mode="before")
    @classmethod
    def _weekdays(cls, v: Any) -> frozenset[int]:
        if isinstance(v, frozenset):
            return v
        # Numbers are not accepted: whether 0 is Sunday or Monday is a classic trap.
        items = [v] if isinstance(v, str) else v
        if not isinstance(items, (list, tuple)) or any(
                not isinstance(x, str) or any(p.strip().lower() not in _WEEKDAYS for p in x.split(":"))
                for x in items):
            raise ValueError(f"weekdays must be names like 'tuesday' or ranges like 'monday:friday', got {v!r}")
        return _ranges(items, _WEEKDAYS, 0, 6, "weekdays")

    @pydantic.field_validator("days_of_month", mode="before")
    @classmethod
    def _days(cls, v: Any) -> frozenset[int]:
        if isinstance(v, frozenset):
            return v
        days = _ranges(v, {}, -31, 31, "days_of_month")
        if 0 in days:
            raise ValueError("days_of_month: 0 is not a day (use 1..31 or -31..-1)")
        return days

    @pydantic.field_validator("months", mode="before")
    @classmethod
    def _months(cls, v: Any) -> frozenset[int]:
        if isinstance(v, frozenset):
            return v
        return _ranges(v, _MONTHS, 1, 12, "months")

    @pydantic.field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ValueError(f"unknown IANA timezone {v!r} (e.g. 'Europe/London')") from None
        return v

    def contains(self, now: float) -> bool:
        """True when ``now`` (epoch seconds) falls in this window, read in its timezone."""
        local = _dt.datetime.fromtimestamp(now, tz=ZoneInfo(self.timezone))
        if self.weekdays and local.weekday() not in self.weekdays:
            return False
        if self.months and local.month not in self.months:
            return False
        if self.days_of_month:
            last = _calendar.monthrange(local.year, local.month)[1]
            wanted = {d if d > 0 else last + 1 + d for d in self.days_of_month}
            if local.day not in wanted:
                return False
        if self.times:
            minute = local.hour * 60 + local.minute
            if not any(r.contains(minute) for r in self.times):
                return False
        return True


class MuteInterval(pydantic.BaseModel):
    """A named, recurring mute window (Alertmanager's ``time_intervals``).

    Either give ``time_intervals`` (a list of :class:`TimeInterval`), or the
    parts of a single one at the top level.

    Examples
    --------
    >>> import datetime as dt
    >>> mi = MuteInterval(name="maintenance", weekdays=["tuesday"],
    ...                   times=[{"start_time": "02:00", "end_time": "04:00"}], timezone="Europe/London")
    >>> tue_0230_bst = dt.datetime(2026, 6, 16, 1, 30, tzinfo=dt.timezone.utc).timestamp()
    >>> mi.active(tue_0230_bst), mi.active(tue_0230_bst + 7200)
    (True, False)
    """

    model_config = _MODEL

    name: str = pydantic.Field(min_length=1)
    time_intervals: tuple[TimeInterval, ...]

    @pydantic.model_validator(mode="before")
    @classmethod
    def _flat_form(cls, data: Any) -> Any:
        parts = ("times", "weekdays", "days_of_month", "months", "timezone")
        if isinstance(data, Mapping) and "time_intervals" not in data and any(p in data for p in parts):
            data = dict(data)
            data["time_intervals"] = [{p: data.pop(p) for p in parts if p in data}]
        return data

    @pydantic.field_validator("time_intervals")
    @classmethod
    def _not_empty(cls, v: tuple[TimeInterval, ...]) -> tuple[TimeInterval, ...]:
        if not v:
            raise ValueError("a mute interval needs at least one time interval")
        return v

    def active(self, now: float) -> bool:
        """True when any of its windows contains ``now``."""
        if isinstance(now, bool) or not isinstance(now, (int, float)) or not math.isfinite(now):
            raise ValueError(f"MuteInterval.active: now must be finite epoch seconds, got {now!r}")
        return any(ti.contains(float(now)) for ti in self.time_intervals)
