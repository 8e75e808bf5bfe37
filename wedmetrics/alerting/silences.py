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

import math
import re
import threading
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import pydantic

from .matchers import Matcher, matches_all, parse_matchers
from .timeintervals import TimeInterval, TimeRange

__all__ = [
    "Silence",
    "SilenceStore",
    "InhibitRule",
    "DEFAULT_INHIBIT_RULE",
    "TimeRange",
    "TimeInterval",
    "MuteInterval",
    "can_update",
    "PENDING",
    "ACTIVE",
    "EXPIRED",
]

_MODEL = pydantic.ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


def _matchers(v: Any) -> tuple[Matcher, ...]:
    return parse_matchers(v)


_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

PENDING, ACTIVE, EXPIRED = "pending", "active", "expired"


class Silence(pydantic.BaseModel):
    """A one-off mute for alerts matching every matcher, from ``starts_at`` to ``ends_at``.

    The rules are Alertmanager's (``silence/silence.go``): at least one
    matcher, and at least one that does not match the empty string (a
    silence of only ``x=""`` / ``x=~".*"`` matchers would mute every alert);
    ``ends_at`` not before ``starts_at`` (equal is valid); the silence is
    *pending* before ``starts_at``, *active* on ``[starts_at, ends_at)``,
    *expired* from ``ends_at`` on.  (Alertmanager counts the instant
    ``ends_at`` as active; here a silence expired "now" no longer mutes now,
    which matters on a manual clock and nowhere else.)

    Parameters
    ----------
    matchers : list of str or mapping
    starts_at, ends_at : float
        Epoch seconds.
    created_by : str
        Who set it (shown in audits).
    comment : str
        Why.
    id : str, optional
        Generated when omitted.
    updated_at : float, optional
        When this version was written (default: ``starts_at``).

    Examples
    --------
    >>> s = Silence(matchers=['wedding_id="w1"'], starts_at=0, ends_at=3600,
    ...             created_by="ana", comment="venue wifi swap")
    >>> s.state(-1), s.state(10), s.state(3599.5), s.state(3600)
    ('pending', 'active', 'active', 'expired')
    """

    model_config = _MODEL

    matchers: tuple[Matcher, ...]
    starts_at: float = pydantic.Field(allow_inf_nan=False)
    ends_at: float = pydantic.Field(allow_inf_nan=False)
    created_by: str = pydantic.Field(min_length=1)
    comment: str = ""
    id: str = pydantic.Field(default_factory=lambda: str(uuid.uuid4()), min_length=1)
    updated_at: float | None = pydantic.Field(default=None, allow_inf_nan=False)

    _parse = pydantic.field_validator("matchers", mode="before")(_matchers)

    @pydantic.field_validator("matchers")
    @classmethod
    def _valid_matchers(cls, v: tuple[Matcher, ...]) -> tuple[Matcher, ...]:
        if not v:
            raise ValueError("a silence needs at least one matcher (an empty one would mute every alert)")
        for i, m in enumerate(v):
            if not _LABEL_NAME.match(m.name):
                raise ValueError(f"invalid label matcher {i}: invalid label name {m.name!r}")
        if all(m.matches_empty() for m in v):
            raise ValueError("at least one matcher must not match the empty string "
                             "(this silence would mute every alert)")
        return v

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> "Silence":
        if self.ends_at < self.starts_at:
            raise ValueError(f"end time must not be before start time "
                             f"(ends_at {self.ends_at} < starts_at {self.starts_at})")
        if self.updated_at is None:
            object.__setattr__(self, "updated_at", self.starts_at)
        return self

    def state(self, now: float) -> str:
        """``"pending"``, ``"active"`` or ``"expired"`` at ``now``."""
        if now < self.starts_at:
            return PENDING
        if now >= self.ends_at:
            return EXPIRED
        return ACTIVE

    def active(self, now: float) -> bool:
        """True on ``[starts_at, ends_at)``."""
        return self.state(now) == ACTIVE

    def expired(self, now: float) -> bool:
        """True from ``ends_at`` on."""
        return self.state(now) == EXPIRED

    def mutes(self, labels: Mapping[str, str], now: float) -> bool:
        """True when active at ``now`` and every matcher matches ``labels``."""
        return self.active(now) and matches_all(self.matchers, labels)

    def to_record(self) -> dict:
        """A JSON-able dict (what storage keeps); :meth:`from_record` reads it back."""
        return {"id": self.id, "matchers": [m.to_api() for m in self.matchers],
                "starts_at": self.starts_at, "ends_at": self.ends_at, "created_by": self.created_by,
                "comment": self.comment, "updated_at": self.updated_at}

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> "Silence":
        data = dict(data)
        data["matchers"] = tuple(Matcher.from_api(m) for m in data.get("matchers", ()))
        return cls.model_validate(data)


def can_update(old: Silence, new: Silence, now: float) -> bool:
    """Alertmanager's ``canUpdate``: may ``old`` be changed into ``new`` in place?

    Only when the matchers are the same and history is not rewritten: an
    active silence keeps its start and may not end in the past; a pending one
    may not start in the past; an expired one never changes.
    """
    if old.matchers != new.matchers:
        return False
    state = old.state(now)
    if state == ACTIVE:
        return int(old.starts_at) == int(new.starts_at) and not new.ends_at < now
    if state == PENDING:
        return not new.starts_at < now
    return False


class SilenceStore:
    """The silences of one dispatcher: set, expire, look up, prune; optionally persisted.

    Thread-safe (people add silences from an API thread while the
    dispatcher runs).  Expired silences are kept, for audit, until
    :meth:`prune` drops those older than a retention.  With a ``storage``
    backend every change is written through and the store starts with what
    the backend holds, so silences survive a restart.
    """

    def __init__(self, silences: Iterable[Silence | Mapping[str, Any]] = (), *, storage: Any = None) -> None:
        self._by_id: dict[str, Silence] = {}
        self._lock = threading.Lock()
        self.storage = storage
        if storage is not None:
            for record in storage.read_silences().values():
                s = Silence.from_record(record)
                self._by_id[s.id] = s
        for s in silences:
            self.add(s)

    def _persist(self, silence: Silence) -> None:
        if self.storage is not None:
            self.storage.write_silence(silence.id, silence.to_record(), float(silence.updated_at))

    def add(self, silence: Silence | Mapping[str, Any]) -> Silence:
        """Store a silence as given (or replace one by id); a dict is validated as :class:`Silence`."""
        if isinstance(silence, Mapping):
            silence = Silence.model_validate(dict(silence))
        elif not isinstance(silence, Silence):
            raise TypeError(f"SilenceStore.add needs a Silence or a dict, got {type(silence).__name__}")
        with self._lock:
            self._by_id[silence.id] = silence
            self._persist(silence)
        return silence

    def set(self, silence: Silence | Mapping[str, Any], now: float) -> Silence:
        """Create or update a silence as Alertmanager's API does; returns what is stored.

        Without an id (or with ``id`` omitted) it is new: it gets a fresh id
        and starts no earlier than ``now``.  With the id of a stored silence,
        it is changed in place when :func:`can_update` allows; otherwise the
        old one is expired (unless it already was) and the change is stored
        as a new silence with a new id.

        Raises
        ------
        KeyError
            For an id that is not stored.
        """
        if isinstance(silence, Mapping):
            data = dict(silence)
            data.setdefault("starts_at", now)
            given_id = data.pop("id", None) or None
            silence = Silence.model_validate(data)
        else:
            given_id = silence.id if silence.id in self._by_id else None
        with self._lock:
            prev = None
            if given_id is not None:
                prev = self._by_id.get(given_id)
                if prev is None:
                    raise KeyError(f"no silence with id {given_id!r}")
            if prev is not None and can_update(prev, silence, now):
                stored = silence.model_copy(update={"id": prev.id, "updated_at": float(now)})
            else:
                stored = silence.model_copy(update={
                    "id": str(uuid.uuid4()), "starts_at": max(silence.starts_at, float(now)),
                    "updated_at": float(now)})
                if stored.ends_at < stored.starts_at:
                    raise ValueError("end time must not be before start time")
                if prev is not None and prev.state(now) != EXPIRED:
                    self._expire_locked(prev, now)
            self._by_id[stored.id] = stored
            self._persist(stored)
            return stored

    def get(self, silence_id: str) -> Silence:
        """The silence with this id; ``KeyError`` naming it if absent."""
        with self._lock:
            try:
                return self._by_id[silence_id]
            except KeyError:
                raise KeyError(f"no silence with id {silence_id!r}") from None

    def expire(self, silence_id: str, now: float) -> Silence:
        """End a silence at ``now``; returns its new version.

        An active silence ends now; a pending one gets ``starts_at = ends_at =
        now`` and so reads as expired from then on (it is kept, not dropped);
        an expired one is left as it is.
        """
        with self._lock:
            try:
                s = self._by_id[silence_id]
            except KeyError:
                raise KeyError(f"no silence with id {silence_id!r}") from None
            return self._expire_locked(s, now)

    def _expire_locked(self, s: Silence, now: float) -> Silence:
        state = s.state(now)
        if state == EXPIRED:
            return s
        now = float(now)
        change = {"ends_at": now, "updated_at": now}
        if state == PENDING:
            change["starts_at"] = now
        s = s.model_copy(update=change)
        self._by_id[s.id] = s
        self._persist(s)
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
            if old and self.storage is not None:
                self.storage.delete_silences(old)
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
        An empty side matches every alert, as in Alertmanager.
    equal : list of str
        Labels whose values must be equal on source and target (a label
        missing on both counts as equal, as in Alertmanager).

    Notes
    -----
    An alert never inhibits itself, and only firing sources inhibit.
    """

    model_config = _MODEL

    source_matchers: tuple[Matcher, ...] = ()
    target_matchers: tuple[Matcher, ...] = ()
    equal: tuple[str, ...] = ()

    _parse = pydantic.field_validator("source_matchers", "target_matchers", mode="before")(_matchers)

    def inhibits(self, target: Mapping[str, str], source: Mapping[str, str]) -> bool:
        """True when ``source`` (assumed firing, and a different alert) mutes ``target``.

        As in Alertmanager, when the target matches both sides of the rule, a
        source that also matches both sides does not mute it: two alerts
        matching both sides never mute each other.
        """
        if not (matches_all(self.target_matchers, target) and matches_all(self.source_matchers, source)
                and all(target.get(name, "") == source.get(name, "") for name in self.equal)):
            return False
        return not (matches_all(self.source_matchers, target) and matches_all(self.target_matchers, source))


#: A critical (or page) alert for a wedding mutes the warnings and infos of
#: the same wedding, judged by the wedding-aware level (``wedding_severity``,
#: set when the alert engine runs with a calendar).  Alerts tied to no
#: wedding are never muted by it.
DEFAULT_INHIBIT_RULE = InhibitRule(
    source_matchers=['wedding_severity=~"critical|page"'],
    target_matchers=['wedding_severity=~"warning|info"', 'wedding_id=~".+"'],
    equal=["wedding_id"],
)


class MuteInterval(pydantic.BaseModel):
    """A named, recurring mute window (Alertmanager's ``time_intervals``).

    Either give ``time_intervals`` (a list of :class:`TimeInterval`), or the
    parts of a single one at the top level.  An empty list never holds (as in
    Alertmanager); a :class:`TimeInterval` with no fields always holds.

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
        parts = ("times", "weekdays", "days_of_month", "months", "years", "location", "timezone")
        if isinstance(data, Mapping) and "time_intervals" not in data and any(p in data for p in parts):
            data = dict(data)
            data["time_intervals"] = [{p: data.pop(p) for p in parts if p in data}]
        return data

    def active(self, now: float) -> bool:
        """True when any of its windows contains ``now`` (never, with no windows:
        as in Alertmanager, ``time_intervals: []`` neither mutes nor activates)."""
        if isinstance(now, bool) or not isinstance(now, (int, float)) or not math.isfinite(now):
            raise ValueError(f"MuteInterval.active: now must be finite epoch seconds, got {now!r}")
        return any(ti.contains(float(now)) for ti in self.time_intervals)
