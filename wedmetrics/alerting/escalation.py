"""Escalation policies: who is paged next when nobody acknowledges.

An :class:`EscalationPolicy` is an ordered list of :class:`EscalationLevel`
(receivers + delay until the next level).  Level 0 is paged with the
group's first firing notification; if nobody acknowledges within level 0's
delay, level 1 is paged, and so on.  A delay on the last level re-pages it
at that period until someone acknowledges (a missed Saturday alert is the
worst outcome, so the last level does not go quiet on its own).

Delays go through :meth:`wedmetrics.weddings.PriorityPolicy.escalation_delay`,
so on Saturdays (in the wedding's timezone) every delay is halved by
default.  :class:`Escalation` is the state of one alert group; the
:class:`~wedmetrics.alerting.routing.Dispatcher` owns and drives it.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, Optional

import pydantic

from wedmetrics.clock import parse_duration

__all__ = ["EscalationLevel", "EscalationPolicy", "Escalation"]


class EscalationLevel(pydantic.BaseModel):
    """One step of an escalation policy.

    Parameters
    ----------
    receivers : list of str
        Receiver (notifier channel) names paged at this level; at least one.
    delay : float or str, optional
        Seconds (or ``"10m"``) to wait for an acknowledgement before the
        next level.  Required on every level but the last; on the last it
        is the re-page period.
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    receivers: tuple[str, ...] = pydantic.Field(min_length=1)
    delay: Optional[float] = None

    @pydantic.field_validator("receivers")
    @classmethod
    def _names(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for name in v:
            if not name:
                raise ValueError("receiver names must be non-empty")
        return v

    @pydantic.field_validator("delay", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        if v is None:
            return None
        seconds = parse_duration(v)
        if seconds <= 0:
            raise ValueError(f"delay must be > 0, got {v!r}")
        return seconds


class EscalationPolicy(pydantic.BaseModel):
    """A named, ordered list of escalation levels.

    Examples
    --------
    >>> p = EscalationPolicy(name="wedding-day", levels=[
    ...     {"receivers": ["primary-sms"], "delay": "5m"},
    ...     {"receivers": ["secondary-sms", "lead-email"], "delay": "10m"},
    ...     {"receivers": ["cto-phone"]}])
    >>> len(p.levels), p.levels[0].delay
    (3, 300.0)
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    name: str = pydantic.Field(min_length=1)
    levels: tuple[EscalationLevel, ...] = pydantic.Field(min_length=1)

    @pydantic.model_validator(mode="after")
    def _delays(self) -> "EscalationPolicy":
        for i, level in enumerate(self.levels[:-1]):
            if level.delay is None:
                raise ValueError(f"levels.{i}.delay is required (only the last level may omit it)")
        return self

    def receivers_up_to(self, level: int) -> tuple[str, ...]:
        """Receivers of levels ``0..level``, in order, without repeats."""
        seen = dict.fromkeys(r for lv in self.levels[: level + 1] for r in lv.receivers)
        return tuple(seen)


def _priority_delay(priority: Any, base: float, label_sets: Iterable[Mapping[str, str]], now: float) -> float:
    """The shortest delay any of the alerts calls for (no policy: the base delay)."""
    if priority is None:
        return base
    delays = [priority.escalation_delay(base, labels, now) for labels in label_sets]
    return min(delays) if delays else base


@dataclasses.dataclass
class Escalation:
    """Escalation state of one alert group.

    Attributes
    ----------
    policy : EscalationPolicy
    level : int
        Highest level paged so far.
    started_at : float
        When level 0 was paged.
    next_at : float or None
        When the next step is due; None when nothing more will happen
        (acknowledged, or the last level has no re-page period).
    acked_by, acked_at : str or None, float or None
        Who acknowledged and when.
    acked_alerts : frozenset of str
        Alert ids (fingerprints) firing when acknowledged; a new firing
        alert outside this set re-arms the escalation.
    """

    policy: EscalationPolicy
    level: int = 0
    started_at: float = 0.0
    next_at: Optional[float] = None
    acked_by: Optional[str] = None
    acked_at: Optional[float] = None
    acked_alerts: frozenset = frozenset()

    @classmethod
    def start(cls, policy: EscalationPolicy, now: float, label_sets: Iterable[Mapping[str, str]],
              priority: Any = None) -> "Escalation":
        """Page level 0 at ``now`` and schedule the next step."""
        esc = cls(policy=policy, level=0, started_at=now)
        esc._schedule(now, list(label_sets), priority)
        return esc

    @property
    def acknowledged(self) -> bool:
        return self.acked_at is not None

    def receivers(self) -> tuple[str, ...]:
        """Everyone paged so far (they all get the group's later updates)."""
        return self.policy.receivers_up_to(self.level)

    def due(self, now: float) -> bool:
        """True when the next step should happen at ``now``."""
        return not self.acknowledged and self.next_at is not None and now >= self.next_at

    def step(self, now: float, label_sets: Iterable[Mapping[str, str]], priority: Any = None) -> tuple[str, ...]:
        """Go one level up (or re-page the last level); returns the receivers to page now."""
        if self.level + 1 < len(self.policy.levels):
            self.level += 1
        self._schedule(now, list(label_sets), priority)
        return self.policy.levels[self.level].receivers

    def postpone(self, until: float) -> None:
        """Move a due step to ``until`` (used while a mute interval holds the group)."""
        if self.next_at is not None:
            self.next_at = max(self.next_at, until)

    def acknowledge(self, by: str, now: float, firing: Iterable[str]) -> None:
        """Stop escalating; remembers which alerts were acknowledged."""
        self.acked_by, self.acked_at = by, now
        self.acked_alerts = frozenset(firing)

    def rearm_if_new(self, firing: Iterable[str], now: float, label_sets: Iterable[Mapping[str, str]],
                     priority: Any = None) -> bool:
        """Clear an acknowledgement when an alert outside it fires; returns True if re-armed.

        Escalation resumes from the current level with a fresh delay.
        """
        if not self.acknowledged or set(firing) <= self.acked_alerts:
            return False
        self.acked_by = self.acked_at = None
        self.acked_alerts = frozenset()
        self._schedule(now, list(label_sets), priority)
        return True

    def _schedule(self, now: float, label_sets: list, priority: Any) -> None:
        base = self.policy.levels[self.level].delay
        self.next_at = None if base is None else now + _priority_delay(priority, base, label_sets, now)
