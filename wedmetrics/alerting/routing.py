"""Alertmanager-style routing: route tree, grouping timers, inhibition, silences, escalation.

The :class:`Dispatcher` takes alert state updates (each a
:class:`~wedmetrics.alerting.notification.Notification`: labels, annotations,
firing/resolved, ``starts_at`` and a fingerprint, its ``alert_id``) at an
explicit time ``now`` and returns the :class:`RoutedNotification` objects due
at ``now``.  It has no thread and reads no clock: the alert engine (or a
backtest) calls :meth:`Dispatcher.process` / :meth:`Dispatcher.tick` with the
time of its :class:`~wedmetrics.clock.Clock`, and :meth:`Dispatcher.next_due`
says when to call again.

Semantics follow Alertmanager, whose behaviour on-call engineers know:

* The route tree is walked depth first.  A node matches when all its
  matchers match; the deepest matching nodes win; a matching child stops
  the walk among its siblings unless it sets ``continue: true``.  Children
  inherit ``receiver``, ``group_by``, timers, ``send_resolved`` and
  ``escalation`` from their parent; ``mute_time_intervals`` and
  ``active_time_intervals`` belong to the route that names them and are not
  inherited (as in Alertmanager).
* Alerts of one route with equal ``group_by`` label values form a group
  (``'...'`` groups by every label).  A new group is first notified after
  ``group_wait`` (default 30 s); later changes are sent at most every
  ``group_interval`` (default 5 min); an unchanged firing group is re-sent
  after ``repeat_interval`` (default 4 h).  As in current Alertmanager
  (0.30 and later; in 0.25-0.29 any alert
  arriving before the group's first flush could), only the alert that creates a group can skip
  ``group_wait``: when it started more than ``group_wait`` ago, the group
  flushes at once.  Resolved alerts are sent once
  (when ``send_resolved``) and then leave the group.
* Silenced and inhibited alerts are left out of notifications; a group
  inside one of its route's mute intervals, or outside all of its active
  intervals, sends nothing.
* A route with ``escalation`` pages the policy's levels until someone
  :meth:`~Dispatcher.acknowledge` s the group; delays go through the
  :class:`~wedmetrics.weddings.PriorityPolicy`.

Labels seen by matchers are the alert's labels plus ``alertname`` (its
rule, unless the labels already have one) and ``wedding_id`` (when set).
A user's ``severity`` label is never changed: the alert's severity fills
``severity`` in only where the labels have none.  The wedding-aware level
(possibly raised for a wedding day) is ``wedding_severity``, a label of its
own (the alert engine sets it when it runs with a calendar).
"""
from __future__ import annotations

import dataclasses
import math
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Optional, Union

import pydantic
import yaml

from wedmetrics.clock import parse_duration

from .escalation import Escalation, EscalationPolicy
from .matchers import Matcher, matches_all, parse_matchers
from .notification import FIRING, Notification, NotificationGroup
from .silences import DEFAULT_INHIBIT_RULE, InhibitRule, MuteInterval, Silence, SilenceStore

__all__ = [
    "Route",
    "RoutingConfig",
    "RouteNode",
    "RoutedNotification",
    "Dispatcher",
    "GROUP_BY_ALL",
    "DEFAULT_GROUP_WAIT",
    "DEFAULT_GROUP_INTERVAL",
    "DEFAULT_REPEAT_INTERVAL",
    "REASON_INITIAL",
    "REASON_UPDATE",
    "REASON_REPEAT",
    "REASON_RESOLVED",
    "REASON_ESCALATION",
    "alert_labels",
]

#: ``group_by: ['...']`` groups by every label.
GROUP_BY_ALL = "..."
DEFAULT_GROUP_WAIT = 30.0
DEFAULT_GROUP_INTERVAL = 300.0
DEFAULT_REPEAT_INTERVAL = 4 * 3600.0

REASON_INITIAL = "initial"      # first notification of a group
REASON_UPDATE = "update"        # new firing alerts, or newly resolved ones
REASON_REPEAT = "repeat"        # nothing changed, repeat_interval passed
REASON_RESOLVED = "resolved"    # every alert of the group resolved
REASON_ESCALATION = "escalation"

# While a mute interval holds a group, a due escalation is re-checked this often.
_MUTED_RECHECK = 60.0


def _duration(v: Any) -> Any:
    return None if v is None else parse_duration(v)


class Route(pydantic.BaseModel):
    """One node of the route tree, as configured (unset fields inherit).

    Parameters
    ----------
    receiver : str, optional
        Receiver (notifier channel) name; required on the root.
    matchers : list of str or mapping
        ``['severity="critical"', 'wedding_id=~".+"']`` or ``{"team": "photos"}``.
    continue : bool
        Keep looking at the next siblings after this route matched.
    group_by : list of str, optional
        Label names; ``['...']`` for every label; ``[]`` for one group per route.
    group_wait, group_interval, repeat_interval : float or str, optional
        Seconds or durations like ``"30s"``, ``"5m"``, ``"4h"``.
    send_resolved : bool, optional
        Tell receivers when alerts resolve (default True).
    mute_time_intervals : list of str
        Names of :class:`MuteInterval` s during which this route sends nothing
        (not inherited by child routes).
    active_time_intervals : list of str
        Names of :class:`MuteInterval` s outside of which this route sends
        nothing (not inherited).
    escalation : str, optional
        Name of an :class:`EscalationPolicy`.
    routes : list of Route
        Children.
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True,
                                       populate_by_name=True)

    receiver: Optional[str] = pydantic.Field(default=None, min_length=1)
    matchers: tuple[Matcher, ...] = ()
    continue_: bool = pydantic.Field(default=False, alias="continue")
    group_by: Optional[tuple[str, ...]] = None
    group_wait: Optional[float] = None
    group_interval: Optional[float] = None
    repeat_interval: Optional[float] = None
    send_resolved: Optional[bool] = None
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()
    escalation: Optional[str] = None
    routes: tuple["Route", ...] = ()

    _parse = pydantic.field_validator("matchers", mode="before")(lambda v: parse_matchers(v))
    _durations = pydantic.field_validator(
        "group_wait", "group_interval", "repeat_interval", mode="before")(_duration)

    @pydantic.field_validator("group_interval", "repeat_interval")
    @classmethod
    def _positive(cls, v: Optional[float]) -> Optional[float]:
        if v is not None and v <= 0:
            raise ValueError(f"must be > 0, got {v}")
        return v

    @pydantic.field_validator("group_by")
    @classmethod
    def _group_by(cls, v: Optional[tuple[str, ...]]) -> Optional[tuple[str, ...]]:
        if v is not None and GROUP_BY_ALL in v and len(v) > 1:
            raise ValueError("'...' groups by every label and cannot be combined with other labels")
        return v


class RoutingConfig(pydantic.BaseModel):
    """Everything the dispatcher is configured with, loadable from a dict or YAML.

    Parameters
    ----------
    route : Route
        The root: needs a ``receiver``, takes no matchers and no ``continue``.
    inhibit_rules : list of InhibitRule, optional
        Default: :data:`~wedmetrics.alerting.silences.DEFAULT_INHIBIT_RULE`
        (a critical alert for a wedding mutes that wedding's warnings).
        ``[]`` turns inhibition off.
    mute_time_intervals : list of MuteInterval
    escalation_policies : list of EscalationPolicy
    alertmanager : bool
        Alertmanager's rules exactly (set by
        :func:`~wedmetrics.alerting.alertmanager_config.load_alertmanager_config`):
        matchers see the alert's labels only (no ``alertname``/``severity``
        filled in from the alert's fields) and the root route may not have
        mute or active intervals.
    wedding_labels : bool, optional
        Whether matchers see ``wedding_severity`` (the alert's wedding-aware
        severity) where its labels have none; default: unless ``alertmanager``.
        ``AlertEngine(config=..., calendar=...)`` turns it on with the wedding defaults.

    Raises
    ------
    pydantic.ValidationError
        (a ``ValueError``) whose message names the offending field, e.g.
        ``route.routes.0.group_wait``.
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    route: Route
    inhibit_rules: tuple[InhibitRule, ...] = (DEFAULT_INHIBIT_RULE,)
    mute_time_intervals: tuple[MuteInterval, ...] = ()
    escalation_policies: tuple[EscalationPolicy, ...] = ()
    alertmanager: bool = False
    wedding_labels: Optional[bool] = None

    @pydantic.model_validator(mode="after")
    def _references(self) -> "RoutingConfig":
        root = self.route
        if root.receiver is None:
            raise ValueError("route.receiver is required on the root route")
        if root.matchers:
            raise ValueError("route.matchers must be empty on the root route (it receives every alert)")
        if root.continue_:
            raise ValueError("route.continue makes no sense on the root route")
        if self.alertmanager and root.mute_time_intervals:
            raise ValueError("root route must not have any mute time intervals")
        if self.alertmanager and root.active_time_intervals:
            raise ValueError("root route must not have any active time intervals")
        for kind, items in (("mute_time_intervals", self.mute_time_intervals),
                            ("escalation_policies", self.escalation_policies)):
            names = [x.name for x in items]
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"{kind}: duplicate names {dup}")
        mutes = {m.name for m in self.mute_time_intervals}
        policies = {p.name for p in self.escalation_policies}

        def walk(r: Route, where: str) -> None:
            for kind in ("mute_time_intervals", "active_time_intervals"):
                for name in getattr(r, kind):
                    if name not in mutes:
                        raise ValueError(f"{where}.{kind}: unknown time interval {name!r} "
                                         f"(defined: {sorted(mutes)})")
            if r.escalation is not None and r.escalation not in policies:
                raise ValueError(f"{where}.escalation: unknown escalation policy {r.escalation!r} "
                                 f"(defined: {sorted(policies)})")
            for i, child in enumerate(r.routes):
                walk(child, f"{where}.routes.{i}")

        walk(root, "route")
        return self

    @classmethod
    def from_yaml(cls, text: str) -> "RoutingConfig":
        """Parse YAML text (safe loader) and validate it."""
        data = yaml.safe_load(text)
        if not isinstance(data, Mapping):
            raise ValueError(f"routing config must be a mapping at the top level, got {type(data).__name__}")
        return cls.model_validate(data)


@dataclasses.dataclass(frozen=True)
class RouteNode:
    """A route with inherited settings filled in; what alerts are actually routed by.

    ``path`` names the node by position: ``"root"``, ``"root/0"``, ``"root/0/2"``.
    """

    path: str
    receiver: str
    matchers: tuple[Matcher, ...]
    continue_: bool
    group_by: tuple[str, ...]
    group_wait: float
    group_interval: float
    repeat_interval: float
    send_resolved: bool
    mute_time_intervals: tuple[str, ...]
    active_time_intervals: tuple[str, ...]
    escalation: Optional[str]
    children: tuple["RouteNode", ...]

    @classmethod
    def build(cls, route: Route, parent: Optional["RouteNode"] = None, path: str = "root") -> "RouteNode":
        def pick(name: str, default: Any) -> Any:
            own = getattr(route, name)
            if own is not None:
                return own
            return getattr(parent, name) if parent is not None else default

        node = cls(
            path=path,
            receiver=pick("receiver", None),
            matchers=route.matchers,
            continue_=route.continue_,
            group_by=pick("group_by", ()),
            group_wait=pick("group_wait", DEFAULT_GROUP_WAIT),
            group_interval=pick("group_interval", DEFAULT_GROUP_INTERVAL),
            repeat_interval=pick("repeat_interval", DEFAULT_REPEAT_INTERVAL),
            send_resolved=pick("send_resolved", True),
            mute_time_intervals=route.mute_time_intervals,      # not inherited
            active_time_intervals=route.active_time_intervals,
            escalation=pick("escalation", None),
            children=(),
        )
        children = tuple(cls.build(c, node, f"{path}/{i}") for i, c in enumerate(route.routes))
        return dataclasses.replace(node, children=children)

    def match(self, labels: Mapping[str, str]) -> list["RouteNode"]:
        """The nodes an alert with ``labels`` is routed to (Alertmanager's ``Route.Match``)."""
        if not matches_all(self.matchers, labels):
            return []
        found: list[RouteNode] = []
        for child in self.children:
            hit = child.match(labels)
            found.extend(hit)
            if hit and not child.continue_:
                break
        return found or [self]

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """The labels that identify an alert's group on this route (absent ones left out)."""
        if self.group_by == (GROUP_BY_ALL,):
            return dict(sorted(labels.items()))
        return {k: labels[k] for k in sorted(self.group_by) if k in labels}


def alert_labels(alert: Notification, alertmanager: bool = False,
                 wedding: Optional[bool] = None) -> dict[str, str]:
    """The label set matchers see.

    The alert's labels as they are; unless ``alertmanager`` (exact
    Alertmanager semantics), missing ``alertname`` and ``severity`` are filled
    in from the alert's rule and severity, and (``wedding``, default: unless
    ``alertmanager``) ``wedding_severity`` from its wedding-aware severity.
    A label the alert has is never overwritten.  ``wedding_id`` is added when set.
    """
    labels = dict(alert.labels)
    if not alertmanager:
        labels.setdefault("alertname", alert.rule)
        labels.setdefault("severity", alert.severity.label)
    if (not alertmanager) if wedding is None else wedding:
        labels.setdefault("wedding_severity", alert.severity.label)
    if alert.wedding_id:
        labels["wedding_id"] = alert.wedding_id
    return labels


@dataclasses.dataclass(frozen=True)
class RoutedNotification:
    """One message due to one receiver.

    Attributes
    ----------
    receiver : str
        Notifier channel name; hand ``group`` to it (``DeliveryQueue.submit(rn.group, [rn.receiver])``).
    group : NotificationGroup
        The alerts, each carrying this ``group_key`` and ``escalation_level``.
    group_key : str
    group_labels : dict
    route : str
        Path of the route node (``"root/1"``).
    reason : str
        ``"initial"``, ``"update"``, ``"repeat"``, ``"resolved"`` or ``"escalation"``.
    escalation_level : int
        The group's escalation level (0 without a policy).
    at : float
        The ``now`` it became due.
    """

    receiver: str
    group: NotificationGroup
    group_key: str
    group_labels: Mapping[str, str]
    route: str
    reason: str
    escalation_level: int
    at: float

    @property
    def alerts(self) -> tuple[Notification, ...]:
        return self.group.alerts

    @property
    def status(self) -> str:
        return self.group.status


@dataclasses.dataclass
class _Sent:
    """What a group's last notification told (Alertmanager's notification log entry)."""

    firing: frozenset
    resolved: frozenset
    at: float


@dataclasses.dataclass
class _Group:
    key: str
    node: RouteNode
    labels: dict
    created_at: float
    next_flush_at: float
    alerts: dict = dataclasses.field(default_factory=dict)  # alert_id -> Notification
    flushed: bool = False
    sent: Optional[_Sent] = None
    escalation: Optional[Escalation] = None
    nflog: dict = dataclasses.field(default_factory=dict)   # integration -> _Sent


class Dispatcher:
    """Routes alert updates to receivers, honouring timers, silences, inhibition and escalation.

    Parameters
    ----------
    config : RoutingConfig or mapping
        A mapping is validated as :class:`RoutingConfig`.
    priority : PriorityPolicy, optional
        Scales escalation delays (Saturday speed-up).  Without it delays are
        used as configured.
    silences : SilenceStore, optional
        Shared store; a new empty one by default.
    integrations : mapping of str to list of (str, bool), optional
        For receivers made of several integrations (an ``alertmanager.yml``
        receiver): each integration's name and ``send_resolved``.  Such a
        receiver is deduplicated per integration, as Alertmanager's
        notification log does (``DedupStage.needsUpdate`` with the
        integration's ``send_resolved``): an integration that does not want
        resolved alerts gets nothing when an alert of its group resolves, and
        its ``repeat_interval`` counts from its own last message.  Messages
        meant for only some integrations carry them in ``group.targets``.

    Examples
    --------
    >>> from wedmetrics.alerting.notification import Notification
    >>> d = Dispatcher({"route": {"receiver": "ops", "group_by": ["wedding_id"], "group_wait": "30s"}})
    >>> a = Notification("a1", "HighLatency", "firing", "warning", starts_at=0.0, wedding_id="w1")
    >>> d.process([a], now=0.0), d.next_due()
    ([], 30.0)
    >>> [(n.receiver, n.reason, len(n.alerts)) for n in d.tick(30.0)]
    [('ops', 'initial', 1)]
    """

    def __init__(self, config: Union[RoutingConfig, Mapping[str, Any]], *, priority: Any = None,
                 silences: Optional[SilenceStore] = None,
                 integrations: Optional[Mapping[str, Iterable[tuple[str, bool]]]] = None) -> None:
        if isinstance(config, Mapping):
            config = RoutingConfig.model_validate(dict(config))
        elif not isinstance(config, RoutingConfig):
            raise TypeError(f"Dispatcher needs a RoutingConfig or a dict, got {type(config).__name__}")
        self.config = config
        self.root = RouteNode.build(config.route)
        self.priority = priority
        self.silences = silences if silences is not None else SilenceStore()
        self._mutes = {m.name: m for m in config.mute_time_intervals}
        self._policies = {p.name: p for p in config.escalation_policies}
        self._integrations = {name: tuple((str(t), bool(sr)) for t, sr in items)
                              for name, items in (integrations or {}).items()}
        self._integrations = {k: v for k, v in self._integrations.items() if v}
        self._groups: dict[str, _Group] = {}
        self._firing: dict[str, Notification] = {}   # every firing alert: inhibition sources
        # Per inhibit rule: values of its `equal` labels -> firing source alert ids.
        # Rebuilt lazily after the firing set changes, so that each check is a
        # dict lookup instead of a scan of every firing alert.
        self._sources: Optional[list[dict[tuple, set]]] = None
        self._labels: dict[str, dict] = {}           # alert_id -> matcher labels
        self._member: dict[str, set] = {}            # alert_id -> keys of the groups holding it
        self._stats: Counter = Counter()
        self._lock = threading.RLock()

    # -- input ----------------------------------------------------------------

    def update(self, alerts: Union[Notification, Iterable[Notification]], now: float) -> None:
        """Record alert state changes seen at ``now`` (no notification is produced here)."""
        now = _now(now)
        if isinstance(alerts, Notification):
            alerts = (alerts,)
        with self._lock:
            for alert in alerts:
                if not isinstance(alert, Notification):
                    raise TypeError(f"Dispatcher.update takes Notification objects, got {type(alert).__name__}")
                self._insert(alert, now)

    def tick(self, now: float) -> list[RoutedNotification]:
        """Notifications due at ``now`` (group flushes, then escalation steps)."""
        now = _now(now)
        out: list[RoutedNotification] = []
        with self._lock:
            for key in sorted(self._groups):
                group = self._groups[key]
                if group.next_flush_at <= now:
                    out.extend(self._flush(group, now))
            for key in sorted(self._groups):
                group = self._groups[key]
                if group.escalation is not None and group.escalation.due(now):
                    out.extend(self._escalate(group, now))
            self._stats["notifications"] += len(out)
            for n in out:
                self._stats[f"reason_{n.reason}"] += 1
        return out

    def process(self, alerts: Union[Notification, Iterable[Notification]], now: float) -> list[RoutedNotification]:
        """:meth:`update` then :meth:`tick`: the notifications due at ``now``."""
        self.update(alerts, now)
        return self.tick(now)

    def next_due(self) -> Optional[float]:
        """Earliest time :meth:`tick` has something to do, or None when idle."""
        with self._lock:
            times = [g.next_flush_at for g in self._groups.values()]
            times += [g.escalation.next_at for g in self._groups.values()
                      if g.escalation is not None and not g.escalation.acknowledged
                      and g.escalation.next_at is not None]
        return min(times) if times else None

    # -- people ---------------------------------------------------------------

    def acknowledge(self, group_key: str, now: float, by: str = "") -> Escalation:
        """Stop escalating a group; returns its escalation state.

        Raises
        ------
        KeyError
            Naming the key, when no such group exists or it has no escalation running.
        """
        now = _now(now)
        with self._lock:
            group = self._groups.get(group_key)
            if group is None or group.escalation is None:
                raise KeyError(f"no escalating alert group {group_key!r}")
            firing = [fp for fp, a in group.alerts.items() if a.status == FIRING]
            group.escalation.acknowledge(by, now, firing)
            self._stats["acknowledged"] += 1
            return group.escalation

    def acknowledge_alert(self, alert_id: str, now: float, by: str = "") -> list[str]:
        """Acknowledge every escalating group holding this alert; returns their keys."""
        with self._lock:
            keys = [k for k, g in sorted(self._groups.items())
                    if alert_id in g.alerts and g.escalation is not None]
            for k in keys:
                self.acknowledge(k, now, by)
        return keys

    def add_silence(self, silence: Union[Silence, Mapping[str, Any]]) -> Silence:
        """Add a silence to :attr:`silences` (validated when given as a dict)."""
        return self.silences.add(silence)

    # -- inspection -----------------------------------------------------------

    def routes_for(self, labels: Mapping[str, str]) -> list[RouteNode]:
        """The route nodes alerts with these (matcher) labels go to."""
        return self.root.match(labels)

    def muted_by(self, alert: Notification, now: float, node: Optional[RouteNode] = None) -> dict[str, list[str]]:
        """Why an alert would be left out at ``now``: silence ids, inhibiting alert ids, mute intervals."""
        labels = alert_labels(alert, self.config.alertmanager, self.config.wedding_labels)
        with self._lock:
            reasons = {"silenced_by": self.silences.silenced_by(labels, now),
                       "inhibited_by": self._inhibitors(alert.alert_id, labels)}
            if node is not None:
                reasons["mute_intervals"] = self._active_mutes(node, now)
        return reasons

    def groups(self) -> list[dict[str, Any]]:
        """A snapshot of every group: key, route, labels, alert ids, timers and escalation."""
        with self._lock:
            out = []
            for key, g in sorted(self._groups.items()):
                esc = g.escalation
                out.append({
                    "group_key": key, "route": g.node.path, "receiver": g.node.receiver,
                    "labels": dict(g.labels), "alerts": sorted(g.alerts), "next_flush_at": g.next_flush_at,
                    "escalation_level": esc.level if esc else None,
                    "acknowledged_by": esc.acked_by if esc else None,
                    "next_escalation_at": esc.next_at if esc and not esc.acknowledged else None,
                })
            return out

    def stats(self) -> dict[str, Any]:
        """Counters: notifications (and per reason), silenced / inhibited / muted alert
        exclusions, resolved updates for unknown alerts, acknowledgements; current groups and alerts."""
        with self._lock:
            s = dict(self._stats)
            s["groups"] = len(self._groups)
            s["firing_alerts"] = len(self._firing)
            return s

    # -- internals --------------------------------------------------------------

    def _insert(self, alert: Notification, now: float) -> None:
        fp = alert.alert_id
        labels = alert_labels(alert, self.config.alertmanager, self.config.wedding_labels)
        if alert.status == FIRING:
            self._firing[fp] = alert
        else:
            self._firing.pop(fp, None)
        self._labels[fp] = labels
        self._sources = None
        placed = False
        targets = [(node, node.group_labels(labels)) for node in self.root.match(labels)]
        keys = {_group_key(node.path, glabels) for node, glabels in targets}
        member = self._member.setdefault(fp, set())
        if member and not member <= keys:
            # Same alert id, different labels (its severity was raised for a
            # wedding day): it now belongs to other groups too.
            self._stats["regrouped"] += 1
        for key in member - keys:
            old_group = self._groups[key]
            if old_group.sent is not None and fp in old_group.sent.firing:
                # Receivers told that it fires keep following it until it really
                # resolves: a "resolved" for the old label set (what Alertmanager
                # would send) could close an incident that is still open.
                old_group.alerts[fp] = alert
            else:
                del old_group.alerts[fp]
                member.discard(key)
        for node, glabels in targets:
            key = _group_key(node.path, glabels)
            group = self._groups.get(key)
            if group is None:
                if alert.status != FIRING:
                    continue  # nothing to resolve here: this group never saw the alert fire
                group = _Group(key=key, node=node, labels=glabels, created_at=now,
                               next_flush_at=now + node.group_wait)
                self._groups[key] = group
                # Alertmanager 0.30+: the alert creating a group, when it has
                # waited group_wait already, makes the group flush at once.
                # Later alerts wait for the group's timer.
                if alert.starts_at + node.group_wait < now:
                    group.next_flush_at = now
            elif alert.status != FIRING and fp not in group.alerts:
                continue
            group.alerts[fp] = alert
            member.add(key)
            placed = True
        if not member:
            del self._member[fp]
            self._labels.pop(fp, None)
        if not placed:
            if alert.status != FIRING:
                # A resolve for an alert no group holds (never fired here, or its
                # resolve was already sent): counted so the gap is visible.
                self._stats["resolved_unknown"] += 1

    def _inhibitors(self, fp: str, labels: Mapping[str, str]) -> list[str]:
        """Ids of the firing alerts (other than ``fp``) that inhibit an alert with ``labels``."""
        rules = self.config.inhibit_rules
        if not rules:
            return []
        if self._sources is None:
            self._sources = [{} for _ in rules]
            for src_fp, src in self._firing.items():
                src_labels = self._labels.get(src_fp) or alert_labels(src, self.config.alertmanager, self.config.wedding_labels)
                for rule, index in zip(rules, self._sources):
                    if matches_all(rule.source_matchers, src_labels):
                        key = tuple(src_labels.get(name, "") for name in rule.equal)
                        index.setdefault(key, set()).add(src_fp)
        hits: set = set()
        for rule, index in zip(rules, self._sources):
            if not matches_all(rule.target_matchers, labels):
                continue
            found = index.get(tuple(labels.get(name, "") for name in rule.equal), set())
            if found and matches_all(rule.source_matchers, labels):
                # Alertmanager: when the target matches both sides, sources that
                # match both sides too do not mute it (no two alerts mute each other).
                found = {src for src in found
                         if not matches_all(rule.target_matchers, self._labels.get(src) or {})}
            hits |= found
        hits.discard(fp)
        return sorted(hits)

    def _active_mutes(self, node: RouteNode, now: float) -> list[str]:
        """Why the route is muted at ``now``: its mute intervals in force, or,
        when it has active intervals and none holds, ``"!<name>"`` for each."""
        muted = [name for name in node.mute_time_intervals if self._mutes[name].active(now)]
        if node.active_time_intervals and not any(self._mutes[name].active(now)
                                                  for name in node.active_time_intervals):
            muted += [f"!{name}" for name in node.active_time_intervals]
        return muted

    def _visible(self, group: _Group, now: float) -> list[Notification]:
        """The group's alerts minus the silenced and inhibited ones (counted)."""
        keep = []
        for fp in sorted(group.alerts):
            alert = group.alerts[fp]
            # From the alert itself: a regrouped alert's old version has other labels.
            labels = alert_labels(alert, self.config.alertmanager, self.config.wedding_labels)
            if self.silences.silenced_by(labels, now):
                self._stats["silenced"] += 1
            elif self._inhibitors(fp, labels):
                self._stats["inhibited"] += 1
            else:
                keep.append(alert)
        return keep

    def _flush(self, group: _Group, now: float) -> list[RoutedNotification]:
        node = group.node
        group.flushed = True
        group.next_flush_at = now + node.group_interval
        snapshot = dict(group.alerts)
        out: list[RoutedNotification] = []
        if self._active_mutes(node, now):
            # Alertmanager drops the flush during a mute interval; resolved alerts
            # still leave the group below.  Counted, not silent.
            self._stats["muted"] += len(snapshot)
        else:
            visible = self._visible(group, now)
            firing = frozenset(a.alert_id for a in visible if a.status == FIRING)
            resolved = frozenset(a.alert_id for a in visible if a.status != FIRING)
            profile = self._integrations.get(node.receiver)
            if profile is not None and node.escalation is None and group.escalation is None:
                out = self._flush_integrations(group, profile, visible, firing, resolved, now)
                reason = None
            else:
                reason = self._needs_update(group.sent, firing, resolved, node.send_resolved,
                                            node.repeat_interval, now)
            if reason is not None and visible:
                group.sent = _Sent(firing, resolved, now)
                # Everyone paged so far hears the resolve, even though it ends the escalation.
                told = self._receivers(group)
                self._track_escalation(group, firing, visible, now)
                payload = [a for a in visible if a.status == FIRING or node.send_resolved]
                if payload:
                    receivers = tuple(dict.fromkeys(told + self._receivers(group)))
                    out = self._messages(group, payload, reason, receivers, now)
            elif group.escalation is not None and not _any_firing(group):
                group.escalation = None  # nothing left firing to escalate about
        # Sent (or muted) resolved alerts leave the group, unless they fired again meanwhile.
        for fp, alert in snapshot.items():
            if alert.status != FIRING and group.alerts.get(fp) is alert:
                self._drop(fp, group)
        if not group.alerts:
            del self._groups[group.key]
        return out

    def _drop(self, fp: str, group: _Group) -> None:
        """Take an alert out of a group; forget it once no group holds it."""
        del group.alerts[fp]
        member = self._member.get(fp)
        if member is not None:
            member.discard(group.key)
            if not member:
                del self._member[fp]
                self._labels.pop(fp, None)

    @staticmethod
    def _needs_update(sent: Optional[_Sent], firing: frozenset, resolved: frozenset,
                      send_resolved: bool, repeat_interval: float, now: float) -> Optional[str]:
        """Alertmanager's ``DedupStage.needsUpdate``, returning why (or None)."""
        if sent is None:
            return REASON_INITIAL if firing else None
        if not firing <= sent.firing:
            return REASON_UPDATE
        if not firing:
            # All resolved: tell whoever was told they fired.
            return REASON_RESOLVED if sent.firing else None
        if send_resolved and not resolved <= sent.resolved:
            return REASON_UPDATE
        if sent.at <= now - repeat_interval:
            return REASON_REPEAT
        return None

    def _flush_integrations(self, group: _Group, profile: tuple, visible: list, firing: frozenset,
                            resolved: frozenset, now: float) -> list[RoutedNotification]:
        """One receiver of several integrations, each with its own notification log entry."""
        if not visible:
            return []
        node = group.node
        due: dict[str, str] = {}
        for target, send_resolved in profile:
            why = self._needs_update(group.nflog.get(target), firing, resolved, send_resolved,
                                     node.repeat_interval, now)
            if why is not None:
                due[target] = why
                # logged even when the integration is then sent nothing (resolved
                # alerts to one without send_resolved), as Alertmanager does
                group.nflog[target] = _Sent(firing, resolved, now)
        if not due:
            return []
        group.sent = _Sent(firing, resolved, now)
        order = (REASON_INITIAL, REASON_UPDATE, REASON_RESOLVED, REASON_REPEAT)
        reason = min(due.values(), key=order.index)
        targets = None if len(due) == len(profile) else frozenset(due)
        return self._messages(group, visible, reason, (node.receiver,), now, targets=targets)

    def _track_escalation(self, group: _Group, firing: frozenset, visible: list, now: float) -> None:
        name = group.node.escalation
        if name is None:
            return
        label_sets = [self._labels[a.alert_id] for a in visible if a.status == FIRING]
        if not _any_firing(group):
            group.escalation = None
        elif not firing:
            # What still fires is silenced or inhibited: the escalation pauses
            # (see _escalate) and resumes when the silence ends.
            return
        elif group.escalation is None:
            group.escalation = Escalation.start(self._policies[name], now, label_sets, self.priority)
        else:
            group.escalation.rearm_if_new(firing, now, label_sets, self.priority)

    def _escalate(self, group: _Group, now: float) -> list[RoutedNotification]:
        esc = group.escalation
        if self._active_mutes(group.node, now):
            esc.postpone(now + _MUTED_RECHECK)
            return []
        firing = [a for a in self._visible(group, now) if a.status == FIRING]
        if not firing:
            # Silenced or inhibited since: no one to wake; look again later.
            esc.postpone(now + _MUTED_RECHECK)
            return []
        label_sets = [self._labels[a.alert_id] for a in firing]
        receivers = esc.step(now, label_sets, self.priority)
        return self._messages(group, firing, REASON_ESCALATION, receivers, now)

    def _receivers(self, group: _Group) -> tuple[str, ...]:
        names = [group.node.receiver]
        if group.escalation is not None:
            names.extend(group.escalation.receivers())
        return tuple(dict.fromkeys(names))

    def _messages(self, group: _Group, alerts: list[Notification], reason: str,
                  receivers: Iterable[str], now: float,
                  targets: Optional[frozenset] = None) -> list[RoutedNotification]:
        level = group.escalation.level if group.escalation is not None else 0
        # Firing first, then resolved; each in a stable order.
        ordered = sorted(alerts, key=lambda a: (a.status != FIRING, a.starts_at, a.alert_id))
        stamped = tuple(dataclasses.replace(a, group_key=group.key, escalation_level=level) for a in ordered)
        message = NotificationGroup(stamped, group_key=group.key, group_labels=group.labels, targets=targets)
        return [RoutedNotification(receiver=r, group=message, group_key=group.key,
                                   group_labels=dict(group.labels), route=group.node.path,
                                   reason=reason, escalation_level=level, at=now)
                for r in dict.fromkeys(receivers)]


def _any_firing(group: _Group) -> bool:
    return any(a.status == FIRING for a in group.alerts.values())


def _group_key(path: str, labels: Mapping[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{path}:{{{inner}}}"


def _now(now: Any) -> float:
    if isinstance(now, bool) or not isinstance(now, (int, float)) or not math.isfinite(now):
        raise ValueError(f"now must be finite epoch seconds, got {now!r}")
    return float(now)
