"""What a notifier delivers: one alert (:class:`Notification`) or a group of them.

The model follows Alertmanager, whose users expect it: alerts that share a
``group_key`` travel together in one message (one email, one Slack post, one
webhook call), each alert keeping its own status, labels and times.  A
:class:`NotificationGroup` is that message; a lone :class:`Notification` is
delivered as a group of one (:func:`as_group`).

Everything here is immutable and JSON-able through ``to_dict()``; the webhook
body is built from it, so its shape is part of the public contract
(see ``docs/alerting.md``).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import math
import types
from collections.abc import Iterable, Mapping
from typing import Any, Union

__all__ = [
    "Severity",
    "Notification",
    "NotificationGroup",
    "as_group",
    "FIRING",
    "RESOLVED",
]

FIRING = "firing"
RESOLVED = "resolved"
_STATUSES = (FIRING, RESOLVED)


class Severity(enum.IntEnum):
    """Ordered alert severities: ``INFO < WARNING < CRITICAL < PAGE``.

    ``PAGE`` means "wake someone up"; escalation raises a severity one level
    at a time and never past ``PAGE``.

    >>> Severity.parse("warning").raised()
    <Severity.CRITICAL: 2>
    >>> Severity.CRITICAL.raised(levels=5)
    <Severity.PAGE: 3>
    """

    INFO = 0
    WARNING = 1
    CRITICAL = 2
    PAGE = 3

    @property
    def label(self) -> str:
        """Lower-case name used in payloads and config (``"critical"``)."""
        return self.name.lower()

    def raised(self, levels: int = 1) -> "Severity":
        """Severity ``levels`` steps higher, saturating at :attr:`PAGE`.

        Parameters
        ----------
        levels : int
            Number of steps, ``>= 0``.
        """
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 0:
            raise ValueError(f"Severity.raised: levels must be an int >= 0, got {levels!r}")
        return Severity(min(int(self) + levels, int(Severity.PAGE)))

    @classmethod
    def parse(cls, value: Union["Severity", str, int]) -> "Severity":
        """Accept a :class:`Severity`, its name (any case) or its integer level.

        Raises
        ------
        ValueError
            For anything else, naming the accepted values.
        """
        if isinstance(value, Severity):
            return value
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                pass
        elif isinstance(value, int) and not isinstance(value, bool):
            try:
                return cls(value)
            except ValueError:
                pass
        names = ", ".join(s.label for s in cls)
        raise ValueError(f"severity must be one of {names} (or 0..{int(cls.PAGE)}), got {value!r}")

    def __str__(self) -> str:
        return self.label


def _frozen_str_map(value: Any, field: str) -> Mapping[str, str]:
    if value is None:
        return types.MappingProxyType({})
    if not isinstance(value, Mapping):
        raise TypeError(f"Notification.{field} must be a mapping of str to str, got {type(value).__name__}")
    out = {}
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"Notification.{field} must map str to str, got {k!r}: {v!r}")
        out[k] = v
    # A read-only view of a private copy: the caller's dict may change later,
    # the notification must not (it may sit in a retry queue for minutes).
    return types.MappingProxyType(dict(sorted(out.items())))


def _time(value: Any, field: str, *, optional: bool) -> float | None:
    if value is None:
        if optional:
            return None
        raise TypeError(f"Notification.{field} is required (epoch seconds)")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Notification.{field} must be epoch seconds (float), got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"Notification.{field} must be finite, got {value!r}")
    return value


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc).isoformat().replace("+00:00", "Z")


@dataclasses.dataclass(frozen=True)
class Notification:
    """One alert, as told to people.

    Parameters
    ----------
    alert_id : str
        Stable identity of the alert instance (rule + label set); the same id
        is sent when it fires, escalates and resolves.
    rule : str
        Name of the rule that produced it.
    status : {"firing", "resolved"}
    severity : Severity or str or int
        Parsed with :meth:`Severity.parse`.
    summary : str
        One line for subjects, SMS and chat headlines.
    description : str
        Longer text for email and webhook bodies.
    labels, annotations : mapping of str to str
        Copied and frozen.
    value : float or None
        The observed value that triggered the rule.  Non-finite values (an
        empty window gives NaN) are kept here but sent as ``null``.
    starts_at : float
        Epoch seconds the alert started firing.
    ends_at : float or None
        Epoch seconds it resolved; required when ``status == "resolved"``.
    group_key : str
        Alerts with the same key are delivered together; defaults to ``rule``.
    escalation_level : int
        0 for the first notification, +1 per escalation step.
    wedding_id : str or None
        The wedding this alert concerns, when it concerns one.
    generator_url : str
        Where the alert comes from (Prometheus' graph link, a wedmetrics
        page); Alertmanager's ``generatorURL``, a field of its own.
    """

    alert_id: str
    rule: str
    status: str
    severity: Severity
    summary: str = ""
    description: str = ""
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)
    value: float | None = None
    starts_at: float = 0.0
    ends_at: float | None = None
    group_key: str = ""
    escalation_level: int = 0
    wedding_id: str | None = None
    generator_url: str = ""

    def __post_init__(self) -> None:
        for field in ("alert_id", "rule"):
            v = getattr(self, field)
            if not isinstance(v, str) or not v:
                raise ValueError(f"Notification.{field} must be a non-empty str, got {v!r}")
        for field in ("summary", "description", "group_key", "generator_url"):
            if not isinstance(getattr(self, field), str):
                raise TypeError(f"Notification.{field} must be a str, got {getattr(self, field)!r}")
        if self.status not in _STATUSES:
            raise ValueError(f"Notification.status must be 'firing' or 'resolved', got {self.status!r}")
        set_ = object.__setattr__  # frozen: normalise through the back door, once
        set_(self, "severity", Severity.parse(self.severity))
        set_(self, "labels", _frozen_str_map(self.labels, "labels"))
        set_(self, "annotations", _frozen_str_map(self.annotations, "annotations"))
        if self.value is not None:
            if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
                raise TypeError(f"Notification.value must be a float or None, got {self.value!r}")
            set_(self, "value", float(self.value))
        set_(self, "starts_at", _time(self.starts_at, "starts_at", optional=False))
        set_(self, "ends_at", _time(self.ends_at, "ends_at", optional=True))
        if self.status == RESOLVED and self.ends_at is None:
            raise ValueError("Notification.ends_at is required when status is 'resolved'")
        if self.ends_at is not None and self.ends_at < self.starts_at:
            raise ValueError(
                f"Notification.ends_at ({self.ends_at!r}) is before starts_at ({self.starts_at!r})"
            )
        lvl = self.escalation_level
        if isinstance(lvl, bool) or not isinstance(lvl, int) or lvl < 0:
            raise ValueError(f"Notification.escalation_level must be an int >= 0, got {lvl!r}")
        if self.wedding_id is not None and (not isinstance(self.wedding_id, str) or not self.wedding_id):
            raise ValueError(f"Notification.wedding_id must be a non-empty str or None, got {self.wedding_id!r}")
        if not self.group_key:
            set_(self, "group_key", self.rule)

    # Mapping fields make the generated hash fail; identity of a notification
    # is the alert plus where it is in its life.
    def __hash__(self) -> int:
        return hash((self.alert_id, self.status, self.starts_at, self.ends_at, self.escalation_level))

    @property
    def firing(self) -> bool:
        """True while the alert fires."""
        return self.status == FIRING

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (plain dicts, ISO-8601 UTC times beside epoch floats).

        >>> n = Notification("a1", "HighLatency", "firing", "critical", starts_at=0.0)
        >>> n.to_dict()["startsAt"]
        '1970-01-01T00:00:00Z'
        """
        value = self.value if self.value is not None and math.isfinite(self.value) else None
        return {
            "alertId": self.alert_id,
            "rule": self.rule,
            "status": self.status,
            "severity": self.severity.label,
            "summary": self.summary,
            "description": self.description,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "value": value,
            "startsAt": _iso(self.starts_at),
            "endsAt": _iso(self.ends_at),
            "startsAtEpoch": self.starts_at,
            "endsAtEpoch": self.ends_at,
            "groupKey": self.group_key,
            "escalationLevel": self.escalation_level,
            "weddingId": self.wedding_id,
            "generatorURL": self.generator_url,
        }


@dataclasses.dataclass(frozen=True)
class NotificationGroup:
    """Alerts delivered together, as one message.

    Parameters
    ----------
    alerts : iterable of Notification
        At least one.  Order is kept (the router decides it).
    group_key : str, optional
        Defaults to the first alert's ``group_key``.
    group_labels : mapping of str to str, optional
        The labels that define the group on its route (the route's
        ``group_by``); Alertmanager's ``groupLabels``.
    targets : frozenset of str, optional
        The integrations of a receiver this message is for (set by the
        dispatcher when it deduplicates per integration, as Alertmanager's
        notification log does); None: all of them.

    Notes
    -----
    The group's :attr:`status` is ``"firing"`` while any alert fires, its
    :attr:`severity` the highest of its alerts, and :attr:`common_labels` /
    :attr:`common_annotations` the pairs every alert shares, as in
    Alertmanager's webhook payload.
    """

    alerts: tuple[Notification, ...]
    group_key: str = ""
    group_labels: Mapping[str, str] = dataclasses.field(default_factory=dict, compare=False, hash=False)
    targets: frozenset | None = dataclasses.field(default=None, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "group_labels", _frozen_str_map(self.group_labels, "group_labels"))
        if self.targets is not None:
            object.__setattr__(self, "targets", frozenset(self.targets))
        alerts = tuple(self.alerts) if isinstance(self.alerts, Iterable) else self.alerts
        if not isinstance(alerts, tuple) or not alerts:
            raise ValueError("NotificationGroup.alerts must hold at least one Notification")
        for a in alerts:
            if not isinstance(a, Notification):
                raise TypeError(f"NotificationGroup.alerts must hold Notification objects, got {type(a).__name__}")
        object.__setattr__(self, "alerts", alerts)
        if not isinstance(self.group_key, str):
            raise TypeError(f"NotificationGroup.group_key must be a str, got {self.group_key!r}")
        if not self.group_key:
            object.__setattr__(self, "group_key", alerts[0].group_key)

    @property
    def status(self) -> str:
        """``"firing"`` if any alert fires, else ``"resolved"``."""
        return FIRING if any(a.firing for a in self.alerts) else RESOLVED

    @property
    def severity(self) -> Severity:
        """Highest severity among the alerts."""
        return max(a.severity for a in self.alerts)

    @property
    def escalation_level(self) -> int:
        """Highest escalation level among the alerts."""
        return max(a.escalation_level for a in self.alerts)

    @property
    def firing(self) -> tuple[Notification, ...]:
        """The alerts that fire."""
        return tuple(a for a in self.alerts if a.firing)

    @property
    def resolved(self) -> tuple[Notification, ...]:
        """The alerts that resolved."""
        return tuple(a for a in self.alerts if not a.firing)

    @property
    def common_labels(self) -> dict[str, str]:
        """Label pairs shared by every alert."""
        return _common(a.labels for a in self.alerts)

    @property
    def common_annotations(self) -> dict[str, str]:
        """Annotation pairs shared by every alert."""
        return _common(a.annotations for a in self.alerts)

    @property
    def wedding_ids(self) -> tuple[str, ...]:
        """Distinct wedding ids of the alerts, in order of first appearance."""
        return tuple(dict.fromkeys(a.wedding_id for a in self.alerts if a.wedding_id))

    def title(self) -> str:
        """Alertmanager-style headline: ``[FIRING:2] HighLatency (critical)``.

        Counts the alerts that match the group's status; rules are listed
        once each, in order.
        """
        status = self.status
        matching = self.firing if status == FIRING else self.resolved
        rules = ", ".join(dict.fromkeys(a.rule for a in matching))
        return f"[{status.upper()}:{len(matching)}] {rules} ({self.severity.label})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, modelled on Alertmanager's webhook payload."""
        return {
            "version": "1",
            "groupKey": self.group_key,
            "status": self.status,
            "severity": self.severity.label,
            "title": self.title(),
            "escalationLevel": self.escalation_level,
            "weddingIds": list(self.wedding_ids),
            "groupLabels": dict(self.group_labels),
            "commonLabels": self.common_labels,
            "commonAnnotations": self.common_annotations,
            "alerts": [a.to_dict() for a in self.alerts],
        }


def _common(maps: Iterable[Mapping[str, str]]) -> dict[str, str]:
    it = iter(maps)
    common = dict(next(it))
    for m in it:
        common = {k: v for k, v in common.items() if m.get(k) == v}
    return common


def as_group(message: Notification | NotificationGroup) -> NotificationGroup:
    """Return ``message`` as a :class:`NotificationGroup` (a group of one for a lone alert).

    Raises
    ------
    TypeError
        For anything that is neither.
    """
    if isinstance(message, NotificationGroup):
        return message
    if isinstance(message, Notification):
        return NotificationGroup((message,))
    raise TypeError(f"expected a Notification or NotificationGroup, got {type(message).__name__}")
