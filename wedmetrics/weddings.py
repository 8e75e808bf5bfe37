"""Wedding context: who is getting married, where, when, and what that changes.

A series or alert carrying the label ``wedding_id`` is tied to a
:class:`Wedding` in a :class:`WeddingCalendar`.  :class:`PriorityPolicy`
turns that tie into the three rules on-call engineers of a wedding platform
asked for:

* on the wedding day (within configurable hours of the event) an alert's
  severity is raised one level;
* on Saturdays every escalation delay is divided by a speed-up factor
  (2.0 by default: twice as fast);
* thresholds declared with ``scale_by: guest_count`` grow and shrink with
  the size of the wedding.

"Saturday" and "wedding day" are judged in the wedding's own timezone: a
13:00 wedding in Sydney is a Saturday there while London still sleeps on
Friday.  Every method takes an explicit ``ts`` (epoch seconds) so that the
same policy serves live alerting and backtests on a
:class:`~wedmetrics.clock.ManualClock`.

>>> import datetime as dt
>>> cal = WeddingCalendar([Wedding(id="w1", org_id="acme", date=dt.date(2026, 6, 13),
...                                timezone="Europe/London", guest_count=200, venue="Kew")])
>>> policy = PriorityPolicy(cal)
>>> policy.scaled_threshold(50.0, {"wedding_id": "w1"}, "guest_count")
100.0
"""
from __future__ import annotations

import datetime as _dt
import math
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pydantic

__all__ = ["Wedding", "WeddingCalendar", "PriorityPolicy", "WEDDING_LABEL", "SCALE_BY_GUESTS"]

#: The label that ties a series or an alert to its wedding.
WEDDING_LABEL = "wedding_id"
#: The one ``scale_by`` value thresholds may declare.
SCALE_BY_GUESTS = "guest_count"

_SATURDAY = 5  # datetime.date.weekday()
# Distinct unknown ids remembered by name; beyond that only counted, so that
# hostile or runaway labels cannot grow the calendar without bound.
_UNKNOWN_IDS_KEPT = 1000


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown IANA timezone {name!r} (e.g. 'Europe/London')") from None


def _finite_ts(ts: Any, what: str = "ts") -> float:
    if isinstance(ts, bool) or not isinstance(ts, (int, float)):
        raise TypeError(f"{what} must be epoch seconds (float), got {ts!r}")
    ts = float(ts)
    if not math.isfinite(ts):
        raise ValueError(f"{what} must be finite, got {ts!r}")
    return ts


class Wedding(pydantic.BaseModel):
    """One wedding: the event alerts about it are judged against.

    Parameters
    ----------
    id : str
        Unique id; series and alerts refer to it through the ``wedding_id`` label.
    org_id : str
        The tenant (planner or venue company) the wedding belongs to.
    date : datetime.date
        Local calendar date of the event (``"2026-06-13"`` is accepted).
    timezone : str
        IANA name (``"Europe/London"``) in which ``date`` and times are local.
    guest_count : int
        Expected guests, ``>= 0``; drives ``scale_by: guest_count`` thresholds.
    venue : str
        Free text, shown to people.
    start_time, end_time : datetime.time, optional
        Local start and end of the event.  Without them the event is the
        whole local day.  An ``end_time`` at or before ``start_time`` means
        the party goes on past midnight.

    Examples
    --------
    >>> w = Wedding(id="w1", org_id="acme", date="2026-06-13", timezone="Europe/London",
    ...             guest_count=120, venue="Kew Gardens", start_time="14:00", end_time="01:00")
    >>> w.is_saturday, w.event_end - w.event_start
    (True, 39600.0)
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    id: str = pydantic.Field(min_length=1)
    org_id: str = pydantic.Field(min_length=1)
    date: _dt.date
    timezone: str
    guest_count: int = pydantic.Field(ge=0)
    venue: str = ""
    start_time: Optional[_dt.time] = None
    end_time: Optional[_dt.time] = None

    @pydantic.field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        _zone(v)
        return v

    @pydantic.field_validator("start_time", "end_time")
    @classmethod
    def _naive_time(cls, v: Optional[_dt.time]) -> Optional[_dt.time]:
        # The wedding's timezone is the only one that applies; a second,
        # embedded offset would contradict it.
        if v is not None and v.tzinfo is not None:
            raise ValueError("give a local time without offset; the wedding's timezone applies")
        return v

    @pydantic.model_validator(mode="after")
    def _end_needs_start(self) -> "Wedding":
        if self.end_time is not None and self.start_time is None:
            raise ValueError("end_time needs start_time")
        return self

    @property
    def tz(self) -> ZoneInfo:
        """The wedding's :class:`zoneinfo.ZoneInfo`."""
        return _zone(self.timezone)

    @property
    def is_saturday(self) -> bool:
        """True when the event's local date is a Saturday."""
        return self.date.weekday() == _SATURDAY

    @property
    def event_start(self) -> float:
        """Epoch seconds of the local start (midnight without ``start_time``)."""
        start = self.start_time or _dt.time(0, 0)
        return _dt.datetime.combine(self.date, start, tzinfo=self.tz).timestamp()

    @property
    def event_end(self) -> float:
        """Epoch seconds of the local end (next local midnight without times)."""
        if self.start_time is None:
            end = _dt.datetime.combine(self.date + _dt.timedelta(days=1), _dt.time(0, 0), tzinfo=self.tz)
            return end.timestamp()
        if self.end_time is None:
            # A start without an end: the event runs to the end of its day.
            end = _dt.datetime.combine(self.date + _dt.timedelta(days=1), _dt.time(0, 0), tzinfo=self.tz)
            return end.timestamp()
        day = self.date if self.end_time > self.start_time else self.date + _dt.timedelta(days=1)
        return _dt.datetime.combine(day, self.end_time, tzinfo=self.tz).timestamp()

    def local(self, ts: float) -> _dt.datetime:
        """``ts`` as an aware datetime in the wedding's timezone."""
        return _dt.datetime.fromtimestamp(_finite_ts(ts), tz=self.tz)

    def within(self, ts: float, hours_before: float = 0.0, hours_after: float = 0.0) -> bool:
        """True when ``ts`` lies in ``[event_start - hours_before, event_end + hours_after)``."""
        ts = _finite_ts(ts)
        return self.event_start - hours_before * 3600.0 <= ts < self.event_end + hours_after * 3600.0


class WeddingCalendar:
    """The weddings alerts can refer to, by id and by organisation.

    Thread-safe: the alert engine reads it while an admin thread adds
    weddings.

    Parameters
    ----------
    weddings : iterable of Wedding or dict, optional
        Initial weddings; dicts are validated as :class:`Wedding`.

    Notes
    -----
    A ``wedding_id`` label naming no known wedding is not an error at
    alert time (the alert must still go out), but it is counted in
    :meth:`stats` under ``unknown_wedding_ids`` so the gap is visible.
    """

    def __init__(self, weddings: Iterable[Wedding | Mapping[str, Any]] = ()) -> None:
        self._by_id: dict[str, Wedding] = {}
        self._lock = threading.Lock()
        self._unknown: dict[str, int] = {}
        self._unknown_lookups = 0
        for w in weddings:
            self.add(w)

    def add(self, wedding: Wedding | Mapping[str, Any], *, replace: bool = False) -> Wedding:
        """Add a wedding; a dict is validated first.

        Raises
        ------
        ValueError
            If the id is already present and ``replace`` is false, or the dict is invalid
            (a :class:`pydantic.ValidationError` naming the field).
        """
        if isinstance(wedding, Mapping):
            wedding = Wedding.model_validate(dict(wedding))
        elif not isinstance(wedding, Wedding):
            raise TypeError(f"WeddingCalendar.add needs a Wedding or a dict, got {type(wedding).__name__}")
        with self._lock:
            if wedding.id in self._by_id and not replace:
                raise ValueError(f"wedding id {wedding.id!r} is already in the calendar (pass replace=True)")
            self._by_id[wedding.id] = wedding
        return wedding

    def remove(self, wedding_id: str) -> Wedding:
        """Remove and return a wedding; ``KeyError`` naming the id if absent."""
        with self._lock:
            try:
                return self._by_id.pop(wedding_id)
            except KeyError:
                raise KeyError(f"no wedding with id {wedding_id!r}") from None

    def get(self, wedding_id: str) -> Wedding:
        """The wedding with this id; ``KeyError`` naming the id if absent."""
        with self._lock:
            try:
                return self._by_id[wedding_id]
            except KeyError:
                raise KeyError(f"no wedding with id {wedding_id!r}") from None

    def by_org(self, org_id: str) -> list[Wedding]:
        """Weddings of one organisation, by event start."""
        with self._lock:
            found = [w for w in self._by_id.values() if w.org_id == org_id]
        return sorted(found, key=lambda w: (w.event_start, w.id))

    def for_labels(self, labels: Mapping[str, str] | None) -> Wedding | None:
        """The wedding named by the ``wedding_id`` label, or None.

        None when the label is absent or names no known wedding (the latter
        is counted, see :meth:`stats`).
        """
        if not labels:
            return None
        wedding_id = labels.get(WEDDING_LABEL)
        if not wedding_id:
            return None
        with self._lock:
            wedding = self._by_id.get(wedding_id)
            if wedding is None:
                self._unknown_lookups += 1
                if wedding_id in self._unknown or len(self._unknown) < _UNKNOWN_IDS_KEPT:
                    self._unknown[wedding_id] = self._unknown.get(wedding_id, 0) + 1
        return wedding

    def active_at(self, ts: float, hours_before: float = 0.0, hours_after: float = 0.0) -> list[Wedding]:
        """Weddings whose event (widened by the given hours) contains ``ts``, by start."""
        ts = _finite_ts(ts)
        with self._lock:
            found = [w for w in self._by_id.values() if w.within(ts, hours_before, hours_after)]
        return sorted(found, key=lambda w: (w.event_start, w.id))

    def stats(self) -> dict[str, Any]:
        """``weddings`` (count), ``unknown_wedding_lookups`` (lookups that missed) and
        ``unknown_wedding_ids`` (id -> misses, for the first 1000 distinct ids)."""
        with self._lock:
            return {"weddings": len(self._by_id), "unknown_wedding_lookups": self._unknown_lookups,
                    "unknown_wedding_ids": dict(self._unknown)}

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, wedding_id: object) -> bool:
        return wedding_id in self._by_id

    def __iter__(self) -> Iterator[Wedding]:
        with self._lock:
            weddings = list(self._by_id.values())
        return iter(sorted(weddings, key=lambda w: (w.event_start, w.id)))

    def __repr__(self) -> str:
        return f"WeddingCalendar({len(self)} weddings)"


class PriorityPolicy(pydantic.BaseModel):
    """How wedding context changes severity, escalation speed and thresholds.

    Parameters
    ----------
    calendar : WeddingCalendar
        Where ``wedding_id`` labels are looked up.
    wedding_day_hours_before, wedding_day_hours_after : float
        The "wedding day" is the event widened by these hours on each side
        (defaults 12 and 6: set-up and vendor arrivals start the evening
        before, clean-up ends in the small hours).
    saturday_speedup : float
        Escalation delays are divided by this on Saturdays (default 2.0).
    default_timezone : str
        Where "Saturday" is judged for alerts tied to no wedding.
    saturday_without_wedding : bool
        Whether the Saturday speed-up also applies to alerts tied to no
        wedding (default True: Saturday is the platform's peak day).
    guest_reference : float
        Guest count at which a scaled threshold equals its declared value.
    guest_scale_min, guest_scale_max : float
        Clamp on the guest scale, so that a 2-person elopement does not
        turn a threshold into a hair trigger nor a 5000-guest gala into
        one that never fires.

    Notes
    -----
    The Saturday rule applies when ``ts`` is a Saturday in the wedding's
    timezone, and also throughout the wedding-day window of a Saturday
    wedding (which may start on Friday evening or end early on Sunday).
    """

    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True, extra="forbid", frozen=True)

    calendar: WeddingCalendar = pydantic.Field(default_factory=WeddingCalendar)
    wedding_day_hours_before: float = pydantic.Field(default=12.0, ge=0, allow_inf_nan=False)
    wedding_day_hours_after: float = pydantic.Field(default=6.0, ge=0, allow_inf_nan=False)
    saturday_speedup: float = pydantic.Field(default=2.0, ge=1.0, allow_inf_nan=False)
    default_timezone: str = "UTC"
    saturday_without_wedding: bool = True
    guest_reference: float = pydantic.Field(default=100.0, gt=0, allow_inf_nan=False)
    guest_scale_min: float = pydantic.Field(default=0.1, gt=0, allow_inf_nan=False)
    guest_scale_max: float = pydantic.Field(default=10.0, gt=0, allow_inf_nan=False)

    def __init__(self, calendar: WeddingCalendar | None = None, /, **kw: Any) -> None:
        if calendar is not None:
            kw["calendar"] = calendar
        super().__init__(**kw)

    @pydantic.field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        _zone(v)
        return v

    @pydantic.model_validator(mode="after")
    def _ordered_clamp(self) -> "PriorityPolicy":
        if self.guest_scale_min > self.guest_scale_max:
            raise ValueError(
                f"guest_scale_min ({self.guest_scale_min}) must not exceed guest_scale_max ({self.guest_scale_max})")
        return self

    # -- judgements ---------------------------------------------------------

    def wedding_for(self, labels: Mapping[str, str] | None) -> Wedding | None:
        """The wedding the labels are tied to, or None."""
        return self.calendar.for_labels(labels)

    def is_wedding_day(self, labels: Mapping[str, str] | None, ts: float) -> bool:
        """True when the labels name a wedding and ``ts`` is within its wedding-day window."""
        wedding = self.wedding_for(labels)
        return wedding is not None and self._in_window(wedding, ts)

    def is_saturday(self, labels: Mapping[str, str] | None, ts: float) -> bool:
        """True when the Saturday speed-up applies to an alert with these labels at ``ts``."""
        ts = _finite_ts(ts)
        wedding = self.wedding_for(labels)
        if wedding is None:
            if not self.saturday_without_wedding:
                return False
            local = _dt.datetime.fromtimestamp(ts, tz=_zone(self.default_timezone))
            return local.weekday() == _SATURDAY
        if wedding.local(ts).weekday() == _SATURDAY:
            return True
        return wedding.is_saturday and self._in_window(wedding, ts)

    def guest_scale(self, wedding: Wedding | None, reference: float | None = None) -> float:
        """``guest_count / reference``, clamped; 1.0 without a wedding.

        >>> import datetime as dt
        >>> w = Wedding(id="w", org_id="o", date=dt.date(2026, 1, 3), timezone="UTC",
        ...             guest_count=250, venue="")
        >>> PriorityPolicy().guest_scale(w), PriorityPolicy().guest_scale(w, reference=50)
        (2.5, 5.0)
        """
        if wedding is None:
            return 1.0
        ref = self.guest_reference if reference is None else reference
        if isinstance(ref, bool) or not isinstance(ref, (int, float)) or not math.isfinite(ref) or ref <= 0:
            raise ValueError(f"guest_scale: reference must be a finite number > 0, got {ref!r}")
        scale = wedding.guest_count / float(ref)
        return min(max(scale, self.guest_scale_min), self.guest_scale_max)

    # -- what the alert engine calls ---------------------------------------

    def severity_for(self, base_severity: Any, labels: Mapping[str, str] | None, ts: float) -> Any:
        """Severity to use: one level higher on the wedding day.

        Parameters
        ----------
        base_severity : Severity or str or int
            Parsed with :meth:`Severity.parse`.
        labels : mapping
            The alert's labels (``wedding_id`` ties it to a wedding).
        ts : float
            When the alert fires, epoch seconds.

        Returns
        -------
        Severity
        """
        from wedmetrics.alerting.notification import Severity  # alerting imports weddings, not back

        base = Severity.parse(base_severity)
        return base.raised(1) if self.is_wedding_day(labels, ts) else base

    def escalation_delay(self, base_delay: float, labels: Mapping[str, str] | None, ts: float) -> float:
        """Escalation delay in seconds: divided by ``saturday_speedup`` on Saturdays.

        ``base_delay`` may be seconds or a duration string (``"10m"``).
        """
        from wedmetrics.clock import parse_duration

        delay = parse_duration(base_delay)
        return delay / self.saturday_speedup if self.is_saturday(labels, ts) else delay

    def scaled_threshold(self, threshold: float, labels: Mapping[str, str] | None,
                         scale_by: str | None) -> float:
        """Threshold scaled by the wedding's guest count when ``scale_by == "guest_count"``.

        Without ``scale_by``, or for labels tied to no known wedding, the
        threshold is returned unchanged.

        Raises
        ------
        ValueError
            For a non-finite threshold or an unknown ``scale_by``.
        """
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
            raise ValueError(f"scaled_threshold: threshold must be a finite number, got {threshold!r}")
        if scale_by is None:
            return float(threshold)
        if scale_by != SCALE_BY_GUESTS:
            raise ValueError(f"scale_by must be {SCALE_BY_GUESTS!r} or None, got {scale_by!r}")
        return float(threshold) * self.guest_scale(self.wedding_for(labels))

    def _in_window(self, wedding: Wedding, ts: float) -> bool:
        return wedding.within(ts, self.wedding_day_hours_before, self.wedding_day_hours_after)
