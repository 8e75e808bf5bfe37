"""AlertEngine: rules over a MetricsEngine, the lifecycle, and the way out to people.

One tick (:meth:`AlertEngine.evaluate`) does, in order:

1. **Plan** (only when rules, series or weddings changed): every rule is
   applied to the series of its metric that its matchers select, one alert
   instance per series (or one over their merge); instances that read the
   same ``(series, window)`` share one window query, and those reading the
   same statistic of it share one value.
2. **Values**: one window query per distinct ``(series, window)``, then the
   comparisons of every threshold, rate-of-change and absence instance as
   numpy array operations; anomaly instances feed their newly closed
   buckets to their detectors.
3. **Lifecycle**: :func:`~wedmetrics.alerting.evaluation.step` moves every
   instance at once; composite rules follow, in dependency order.
4. **Out**: only instances that changed state are touched in Python: a
   firing alert gets its severity (raised on a wedding day), its templated
   labels and annotations, an event in the history, and a
   :class:`~wedmetrics.alerting.notification.Notification` for the
   :class:`~wedmetrics.alerting.routing.Dispatcher` (grouping, silences,
   inhibition, mute intervals, escalation); what the dispatcher says is due
   goes to the :class:`~wedmetrics.alerting.delivery.DeliveryQueue`, whose
   worker threads do the network I/O.

Evaluation reads the time it is given (default: the metrics engine's
``now()``) and nothing else, so a backtest stepping a
:class:`~wedmetrics.clock.ManualClock` through history gets the same alerts
as live evaluation did.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import logging
import math
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Optional

import numpy as np

from wedmetrics.clock import parse_duration

from .evaluation import FIRING, INACTIVE, PENDING, RESOLVED, STATE_NAMES, StateTable, TickResult, step
from .loading import rule_from_dict
from .matchers import matches_all, parse_matchers
from .notification import FIRING as STATUS_FIRING
from .notification import RESOLVED as STATUS_RESOLVED
from .notification import Notification, Severity
from .rules import (AbsenceRule, AlertRule, AnomalyRule, CompositeRule, RateOfChangeRule,
                    RuleError, ThresholdRule)
from .silences import Silence
from wedmetrics.storage.base import AlertEvent

__all__ = ["AlertEngine", "AlertView", "History", "ALL_RECEIVERS", "fingerprint"]

log = logging.getLogger("wedmetrics.alerting")

#: Receiver name of the default route: every notifier channel.
ALL_RECEIVERS = "all"
#: ``group_interval`` of the default route (seconds).
DEFAULT_GROUP_INTERVAL = 10.0
_OPS = {">": 0, ">=": 1, "<": 2, "<=": 3}
_CHANGE = {None: 0, "relative": 1, "absolute": 2, "per_second": 3}
_COUNTLIKE = ("count", "sum", "rate")     # an empty window has a value for these: 0
_PLAIN_CODES = {"count": 0, "sum": 1, "min": 2, "max": 3, "mean": 4, "rate": 5}


def fingerprint(rule: str, labels: Mapping[str, str]) -> str:
    """Stable alert id of one rule applied to one label set (16 hex digits)."""
    text = rule + "\x00" + "\x00".join(f"{k}={labels[k]}" for k in sorted(labels))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _compare(values: np.ndarray, thresholds: np.ndarray, ops: np.ndarray) -> np.ndarray:
    # NaN compares false everywhere: an undefined value neither fires nor recovers
    return np.where(ops == 0, values > thresholds,
                    np.where(ops == 1, values >= thresholds,
                             np.where(ops == 2, values < thresholds, values <= thresholds)))


class _Instance:
    """One rule applied to one series (or merge): identity and current episode."""

    __slots__ = ("row", "rule", "fp", "labels", "sids", "wedding_id", "scale", "detector",
                 "fed_until", "last_fed", "score", "gate", "episode", "value")

    def __init__(self, row: int, rule: AlertRule, labels: dict, sids: tuple) -> None:
        self.row = row
        self.rule = rule
        self.labels = labels
        self.sids = sids
        self.fp = fingerprint(rule.name, labels)
        self.wedding_id = labels.get("wedding_id") or None
        self.scale = 1.0
        self.detector = None
        self.fed_until = -math.inf      # anomaly: buckets before this were fed
        self.last_fed = -math.inf       # anomaly: end of the newest bucket with data
        self.score = math.nan
        self.gate = False
        self.episode: Optional[dict] = None   # the current firing: severity, text, ack
        self.value = math.nan


@dataclasses.dataclass(frozen=True)
class AlertView:
    """A snapshot of one alert instance, as :meth:`AlertEngine.active` shows it."""

    id: str
    rule: str
    state: str
    labels: dict
    annotations: dict
    severity: str
    value: float
    active_since: Optional[float]
    fired_at: Optional[float]
    acked_by: Optional[str]
    wedding_id: Optional[str]
    silenced_by: tuple = ()
    inhibited_by: tuple = ()


class History:
    """Alert events and rule state: in memory, and in the storage backend when there is one.

    Events are :class:`~wedmetrics.storage.AlertEvent` records.  They are
    kept in a bounded deque (oldest evicted first, counted) and buffered for
    the backend, which gets them in one ``write_alert_events`` call per tick
    (:meth:`flush`), after the tick's notifications were handed out.  A
    failed write keeps the events buffered for the next flush (bounded by
    ``limit``; overflow is counted as ``store_dropped``) and is logged, never
    raised into the evaluation.  With a backend, :meth:`query` reads the
    backend, so history survives a restart.
    """

    def __init__(self, storage=None, limit: int = 100_000) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"history_limit must be an int >= 1, got {limit!r}")
        self.storage = storage
        self.limit = limit
        self._events: collections.deque = collections.deque(maxlen=limit)
        self._pending: list[AlertEvent] = []
        self._lock = threading.Lock()
        self._counts = {"events": 0, "evicted": 0, "stored": 0, "store_errors": 0,
                        "store_dropped": 0}

    def add(self, event: AlertEvent) -> None:
        with self._lock:
            if len(self._events) == self._events.maxlen:
                self._counts["evicted"] += 1
            self._events.append(event)
            self._counts["events"] += 1
            if self.storage is not None:
                self._pending.append(event)

    def flush(self) -> None:
        """Write buffered events to the backend (one call)."""
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            self.storage.write_alert_events(batch)
            self._counts["stored"] += len(batch)
        except Exception:
            log.exception("writing %d alert events to storage failed; kept for the next tick",
                          len(batch))
            with self._lock:
                self._counts["store_errors"] += 1
                self._pending[:0] = batch
                over = len(self._pending) - self.limit
                if over > 0:
                    del self._pending[:over]
                    self._counts["store_dropped"] += over

    def write_state(self, name: str, state: dict, ts: float) -> None:
        if self.storage is None:
            return
        try:
            self.storage.write_rule_state(name, state, ts)
        except Exception:
            self._counts["store_errors"] += 1
            log.exception("writing the state of rule %r to storage failed", name)

    def read_state(self, name: str) -> Optional[dict]:
        if self.storage is None:
            return None
        stored = self.storage.read_rule_state(name)
        return None if stored is None else dict(stored.state)

    def query(self, *, rule=None, alert_id=None, status=None, since=None, until=None,
              limit=None) -> list[AlertEvent]:
        if self.storage is not None:
            self.flush()
            events = self.storage.read_alert_events(-1e300 if since is None else since,
                                                    1e300 if until is None else until, rule)
        else:
            with self._lock:
                events = list(self._events)
        out = [e for e in events
               if (rule is None or e.rule == rule) and (alert_id is None or e.alert_id == alert_id)
               and (status is None or e.status == status) and (since is None or e.ts >= since)
               and (until is None or e.ts < until)]
        return out[-limit:] if limit else out

    def stats(self) -> dict:
        with self._lock:
            return dict(self._counts, kept=len(self._events), unstored=len(self._pending))

    def close(self) -> None:
        if self.storage is not None:
            self.flush()


class AlertEngine:
    """Evaluates alert rules over a :class:`~wedmetrics.MetricsEngine` and notifies people.

    Parameters
    ----------
    engine : MetricsEngine
        Where the series live; its clock is the alert engine's clock.
    calendar : WeddingCalendar, optional
        Ties ``wedding_id`` labels to weddings (wedding-day severity raise,
        Saturday escalation speed-up, guest-scaled thresholds).
    policy : PriorityPolicy, optional
        Default: ``PriorityPolicy(calendar)`` when a calendar is given.
    notifiers : iterable of Notifier
        Channels; a :class:`~wedmetrics.alerting.delivery.DeliveryQueue` is
        made for them (and closed with the engine).
    delivery : DeliveryQueue, optional
        An existing queue instead of ``notifiers`` (not closed by us).
    routing : RoutingConfig or dict, optional
        The whole Alertmanager-style configuration.  Or give its parts:
    route : Route or dict, optional
        Root of the route tree.  Default: every alert to every channel
        (receiver ``"all"``), one group per alert, no waiting.
    inhibit_rules : list, optional
        Default: a critical alert for a wedding mutes its warnings.
    mute_intervals : list of MuteInterval or dict
    escalation : list of EscalationPolicy or dict
        Policies routes refer to by name.
    interval : float or str
        Tick period of :meth:`start` (default 1 s, at least 0.05 s).
    storage : StorageBackend, optional
        Where alert events and rule state go; default ``engine.storage``.
    history_limit : int
        Events kept in memory (oldest evicted first, counted in :meth:`stats`).
    rules : iterable of AlertRule or dict, optional
        Added with :meth:`add_rule`.
    config : str, path or AlertmanagerConfig, optional
        An ``alertmanager.yml`` (path or text; see
        :func:`~wedmetrics.alerting.alertmanager_config.load_alertmanager_config`)
        instead of ``routing``/``route``: its route tree, inhibit rules,
        time intervals and receivers (each a notifier channel).  A
        ``notifiers`` entry named like a receiver without integrations serves
        that receiver (the wedmetrics channels).
    wedding_defaults : bool
        With ``config`` and a ``calendar``: add the wedding-day inhibit rule
        (:data:`~wedmetrics.alerting.silences.DEFAULT_INHIBIT_RULE`) and the
        Saturday escalation speed-up (default True).  False, or no calendar:
        exactly Alertmanager's behaviour.
    external_url : str
        Where people reach this wedmetrics (Alertmanager's
        ``--web.external-url``): the ``externalURL`` of the webhook payloads
        of an ``alertmanager.yml``'s receivers.

    Notes
    -----
    Rule alerts carry, besides the labels of their series and rule, the
    label ``alertname`` (the rule's name, as Prometheus sets it),
    ``severity`` (the rule's configured severity, only where the labels have
    no ``severity``: a user's own is never overwritten) and, with a
    calendar (and ``wedding_defaults``), ``wedding_severity``: the
    wedding-aware level, possibly raised on a wedding day.  Routes, silences,
    inhibit rules and every notifier (``AlertmanagerNotifier`` included) see
    these labels; :meth:`active` shows the series' and rule's labels only.

    Examples
    --------
    >>> import wedmetrics as wm
    >>> from wedmetrics.alerting import AlertEngine, AlertRule
    >>> clock = wm.ManualClock(1_700_000_000.0)
    >>> engine = wm.MetricsEngine(clock=clock)
    >>> h = engine.series("api.latency", labels={"route": "/photos"})
    >>> alerts = AlertEngine(engine)
    >>> _ = alerts.add_rule(AlertRule(kind="threshold", name="SlowPhotos", metric="api.latency",
    ...                               stat="max", window="1m", op=">", threshold=0.5))
    >>> h.record(0.9)
    >>> alerts.evaluate().count("firing")
    1
    >>> alerts.active()[0].labels["route"]
    '/photos'
    >>> alerts.close(); engine.close()
    """

    def __init__(self, engine, *, calendar=None, policy=None, notifiers: Iterable = (),
                 delivery=None, routing=None, route=None, inhibit_rules=None,
                 mute_intervals: Iterable = (), escalation: Iterable = (), interval=1.0,
                 storage=..., history_limit: int = 100_000, rules: Iterable = (), config=None,
                 wedding_defaults: bool = True, external_url: str = "") -> None:
        from .delivery import DeliveryQueue
        from .received import ReceivedAlerts
        from .routing import Dispatcher, RoutingConfig
        from .silences import SilenceStore

        self.engine = engine
        self.alertmanager_config = None
        if not isinstance(external_url, str):
            raise ValueError(f"external_url must be a str, got {external_url!r}")
        self.external_url = external_url
        # receiver name (routes, API) -> delivery channel id; the same name unless
        # an alertmanager.yml receiver's name is not a valid channel id
        self._channel_of: dict[str, str] = {}
        integrations: dict[str, list] = {}
        if config is not None:
            from .alertmanager_config import AlertmanagerConfig, load_alertmanager_config
            from .silences import DEFAULT_INHIBIT_RULE

            if routing is not None or route is not None or inhibit_rules is not None:
                raise ValueError("give config= (an alertmanager.yml) or routing/route/inhibit_rules, not both")
            am = config if isinstance(config, AlertmanagerConfig) else load_alertmanager_config(config)
            if external_url:
                am.set_external_url(external_url)
            self.alertmanager_config = am
            routing = am.routing
            if calendar is not None and wedding_defaults:
                routing = routing.model_copy(update={"inhibit_rules": routing.inhibit_rules
                                                     + (DEFAULT_INHIBIT_RULE,), "wedding_labels": True})
            channels_by_name = {r.name: r for r in am.notifiers()}
            self._channel_of = am.channel_ids()
            for n in notifiers:
                known = channels_by_name.get(n.name)
                if known is not None and known.integrations:
                    raise ValueError(f"notifier {n.name!r} has the name of a receiver that has "
                                     "integrations in the config; rename one of them")
                channels_by_name[n.name] = n
            notifiers = list(channels_by_name.values())
            integrations = {name: [(t, sr) for t, _, sr in r.integrations]
                            for name, r in am.receivers.items() if channels_by_name.get(r.name) is r}
        if policy is None and calendar is not None:
            from wedmetrics.weddings import PriorityPolicy

            policy = PriorityPolicy(calendar) if wedding_defaults else PriorityPolicy(
                calendar, saturday_speedup=1.0, saturday_without_wedding=False)
        self.policy = policy
        self.calendar = policy.calendar if policy is not None else calendar
        self.interval = parse_duration(interval)
        if self.interval < 0.05:
            raise ValueError(f"interval must be >= 0.05 s, got {interval!r}")
        notifiers = list(notifiers)
        if delivery is not None and notifiers:
            raise ValueError("give notifiers or delivery, not both")
        channels = {getattr(n, "name", None) for n in notifiers} if delivery is None \
            else set(delivery.channels)
        self.routing = self._routing_config(RoutingConfig, routing, route, inhibit_rules,
                                            mute_intervals, escalation)
        self._check_receivers(channels)
        # made last, so that a configuration error leaves no worker threads behind
        self._owns_delivery = delivery is None and bool(notifiers)
        self.delivery = DeliveryQueue(notifiers, clock=engine.clock) if self._owns_delivery else delivery
        self.storage = engine.storage if storage is ... else storage
        # silences live in the store when there is one, so they survive a restart
        silence_store = SilenceStore(storage=self.storage if _stores_silences(self.storage) else None)
        self.dispatcher = Dispatcher(self.routing, priority=self.policy, silences=silence_store,
                                     integrations=integrations)
        self._wedding_label = self.calendar is not None and (wedding_defaults or config is None)
        self.received = ReceivedAlerts(self.alertmanager_config.resolve_timeout
                                       if self.alertmanager_config is not None else 300.0)
        self._next_due: Optional[float] = None
        self.history_log = History(self.storage, history_limit)

        self._lock = threading.RLock()
        self._rules: dict[str, AlertRule] = {}
        self._rule_state: dict[str, dict] = {}
        self._table = StateTable()
        self._instances: list[_Instance] = []
        self._by_fp: dict[str, _Instance] = {}
        self._by_target: dict[tuple, _Instance] = {}
        self._plan_key: Optional[tuple] = None
        self._composites: list[CompositeRule] = []
        self._live: list[_Instance] = []
        self._build_arrays()
        self._counts = {"ticks": 0, "errors": 0, "notifications": 0, "not_delivered": 0}
        self.last_tick: Optional[TickResult] = None
        self.last_error: Optional[BaseException] = None
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._closed = False
        for r in rules:
            self.add_rule(r)

    # -- configuration --------------------------------------------------------

    @staticmethod
    def _routing_config(RoutingConfig, routing, route, inhibit_rules, mute_intervals, escalation):
        if routing is not None:
            if route is not None or inhibit_rules is not None or list(mute_intervals) or list(escalation):
                raise ValueError("give routing=, or its parts (route, inhibit_rules, mute_intervals, "
                                 "escalation), not both")
            if isinstance(routing, RoutingConfig):
                return routing
            return RoutingConfig.model_validate(dict(routing))
        if route is None:
            # one group per alert, sent at the first tick that sees it; a change
            # (resolve) follows at most DEFAULT_GROUP_INTERVAL after the last message
            route = {"receiver": ALL_RECEIVERS, "group_by": ["..."], "group_wait": 0,
                     "group_interval": DEFAULT_GROUP_INTERVAL}
        cfg: dict[str, Any] = {"route": route, "mute_time_intervals": list(mute_intervals),
                               "escalation_policies": list(escalation)}
        if inhibit_rules is not None:
            cfg["inhibit_rules"] = list(inhibit_rules)
        return RoutingConfig.model_validate(cfg)

    def _check_receivers(self, channels: set) -> None:
        names: dict[str, str] = {}

        def walk(r, where: str) -> None:
            if r.receiver is not None:
                names[r.receiver] = f"{where}.receiver"
            for i, child in enumerate(r.routes):
                walk(child, f"{where}.routes.{i}")

        walk(self.routing.route, "route")
        for p in self.routing.escalation_policies:
            for i, level in enumerate(p.levels):
                for name in level.receivers:
                    names.setdefault(name, f"escalation {p.name!r} levels.{i}.receivers")
        for name, where in names.items():
            if name != ALL_RECEIVERS and self._channel_of.get(name, name) not in channels:
                raise ValueError(f"{where}: receiver {name!r} is not a notifier channel "
                                 f"(channels: {sorted(channels)})")

    def add_rule(self, rule) -> AlertRule:
        """Add a rule (an :class:`AlertRule` or a dict); returns the validated rule.

        A rule may name a metric that has no series yet, as Prometheus rules
        may: it waits, with no alert instance, and evaluates each series of
        the metric from the tick after the series appears.

        Raises
        ------
        RuleError
            For an invalid dict (naming the rule and the field), a duplicate
            name, an anomaly ``step`` that is not a resolution of the engine,
            or a composite naming unknown rules or forming a cycle.
        """
        if isinstance(rule, Mapping):
            rule = rule_from_dict(rule)
        elif not isinstance(rule, AlertRule):
            raise TypeError(f"add_rule takes an AlertRule or a dict, got {type(rule).__name__}")
        with self._lock:
            if rule.name in self._rules:
                raise RuleError(f"rule {rule.name!r}: name: a rule with this name already exists")
            if rule.reads_metric:
                if not self.engine.series_list(rule.metric):
                    # a typo waits too: say so where someone may look
                    log.info("rule %r reads %r, which has no series yet; it waits for one "
                             "(known names: %s)", rule.name, rule.metric,
                             sorted(self.engine.names())[:20])
                if isinstance(rule, AnomalyRule):
                    try:
                        self.engine.aggregation.level_of(rule.step)
                    except ValueError as e:
                        raise RuleError(f"rule {rule.name!r}: step: {e}") from None
            else:
                self._check_composite(rule)
            self._rules[rule.name] = rule
            self._rule_state[rule.name] = self._initial_state(rule)
            self._plan_key = None
            if isinstance(rule, CompositeRule):
                # added only after everything it names: the list is in dependency order
                self._composites.append(rule)
        return rule

    def _initial_state(self, rule: AlertRule) -> dict:
        """Fresh rule state, or the stored one when it was learnt for the same declared threshold."""
        state = {"false_positives": 0, "confirmed": 0}
        if hasattr(rule, "threshold"):
            state["threshold"] = state["declared_threshold"] = float(rule.threshold)
        stored = self.history_log.read_state(rule.name)
        if stored and stored.get("declared_threshold") == state.get("declared_threshold"):
            # feedback survives restarts; a re-declared threshold starts over
            for key in ("threshold", "false_positives", "confirmed"):
                if key in stored and key in state:
                    state[key] = stored[key]
        return state

    def add_rules(self, rules: Iterable) -> list[AlertRule]:
        """Add several rules (composites may refer to rules later in the list)."""
        rules = [rule_from_dict(r) if isinstance(r, Mapping) else r for r in rules]
        pending = list(rules)
        added = []
        while pending:
            progress = False
            for r in list(pending):
                if isinstance(r, CompositeRule) and not all(n in self._rules for n in r.rules):
                    continue
                added.append(self.add_rule(r))
                pending.remove(r)
                progress = True
            if not progress:
                self.add_rule(pending[0])  # raises, naming what is missing
        return added

    def _check_composite(self, rule: CompositeRule) -> None:
        for name in rule.rules:
            if name == rule.name:
                raise RuleError(f"rule {rule.name!r}: rules: a composite cannot refer to itself")
            if name not in self._rules:
                raise RuleError(f"rule {rule.name!r}: rules: unknown rule {name!r} "
                                f"(add the rules it combines first)")

    def remove_rule(self, name: str) -> AlertRule:
        """Remove a rule; its firing alerts resolve now.

        Raises
        ------
        KeyError
            Naming the rule; RuleError when a composite still refers to it.
        """
        with self._lock:
            if name not in self._rules:
                raise KeyError(f"no rule named {name!r}")
            users = [r.name for r in self._composites if name in r.rules]
            if users:
                raise RuleError(f"rule {name!r} is used by composite rules {users}; remove them first")
            now = self._now(None)
            out = []
            for inst in self._instances:
                if inst.rule.name == name and self._table.state[inst.row] == FIRING:
                    out.append(self._resolve(inst, now, reason="rule removed"))
                    self._table.state[inst.row] = INACTIVE
            rule = self._rules.pop(name)
            self._plan_key = None
            if isinstance(rule, CompositeRule):
                self._composites.remove(rule)
            self._dispatch(out, now)
            return rule

    def rules(self) -> list[AlertRule]:
        """The rules, in the order they were added."""
        with self._lock:
            return list(self._rules.values())

    def rule_state(self, name: str) -> dict:
        """Adaptive state of one rule: current ``threshold`` (and the ``declared_threshold``),
        ``false_positives`` and ``confirmed`` feedback counts."""
        with self._lock:
            if name not in self._rule_state:
                raise KeyError(f"no rule named {name!r}")
            return dict(self._rule_state[name])

    def refresh(self) -> None:
        """Re-plan at the next tick (picks up changed weddings, e.g. a new guest count)."""
        with self._lock:
            self._plan_key = None

    # -- planning -------------------------------------------------------------

    def _targets(self, rule, index: dict) -> list[tuple[dict, tuple]]:
        """``(labels, series ids)`` of each instance of ``rule``.

        ``index`` caches, per metric, its handles and a map from each label
        pair to the handles carrying it, so 10,000 rules pinned by equality
        matchers do not each scan every series of their metric.
        """
        entry = index.get(rule.metric)
        if entry is None:
            handles = self.engine.series_list(rule.metric)
            pairs: dict[tuple, list] = {}
            for h in handles:
                for pair in h.labels.items():
                    pairs.setdefault(pair, []).append(h)
            entry = index[rule.metric] = (handles, pairs)
        handles, pairs = entry
        equal = [m for m in rule.match if m.op == "="]
        if equal:
            # the rarest equality pair narrows the candidates; the rest are checked
            candidates = min((pairs.get((m.name, m.value), []) for m in equal), key=len)
            if any(m.value == "" for m in equal):   # "" also matches a missing label
                candidates = handles
        else:
            candidates = handles
        handles = [h for h in candidates if matches_all(rule.match, h.labels)]
        if rule.per_series:
            return [(dict(h.labels), (h.id,)) for h in handles]
        if not handles:
            return []
        # the merged instance carries the labels its matchers pin down
        labels = {m.name: m.value for m in rule.match if m.op == "="}
        return [(labels, tuple(sorted(h.id for h in handles)))]

    def _plan(self, now: float) -> None:
        key = (self.engine.series_count(), len(self.calendar) if self.calendar is not None else 0)
        if key == self._plan_key:
            return
        index: dict = {}
        for rule in self._rules.values():
            targets = self._targets(rule, index) if rule.reads_metric else [({}, ())]
            for labels, sids in targets:
                # a merged instance keeps its identity while it gains series
                tkey = (rule.name, sids) if rule.reads_metric and rule.per_series else (rule.name,)
                inst = self._by_target.get(tkey)
                if inst is None or inst.rule is not rule:
                    if inst is not None and inst.rule is not rule:
                        self._by_fp.pop(inst.fp, None)
                    row = self._table.add(rule.for_, rule.keep_firing_for,
                                          "ok" if isinstance(rule, AbsenceRule) else rule.no_data,
                                          rule.cooldown, pulse=isinstance(rule, AnomalyRule))
                    inst = _Instance(row, rule, labels, sids)
                    self._instances.append(inst)
                    self._by_target[tkey] = inst
                    self._by_fp[inst.fp] = inst
                elif inst.sids != sids:
                    inst.sids = sids     # a merged instance gained series
                if getattr(rule, "scale_by", None) and self.policy is not None:
                    inst.scale = self.policy.guest_scale(self.policy.wedding_for(inst.labels))
                if isinstance(rule, AnomalyRule) and inst.detector is None:
                    from .detectors import make_detector

                    inst.detector = make_detector(rule.detector_config())
                    # warm up on what memory still holds
                    inst.fed_until = now - (rule.baseline + rule.min_points) * rule.step
        live = {r.name for r in self._rules.values()}
        self._live = [i for i in self._instances if i.rule.name in live and i.rule is self._rules[i.rule.name]]
        self._build_arrays()
        self._plan_key = key

    def _build_arrays(self) -> None:
        """Columnar plan of the compared instances (threshold, rate of change, absence)."""
        queries: dict[tuple, int] = {}
        values: dict[tuple, int] = {}
        rows, cur, prev, qcur, qprev, change, window, ops, thr, rec, countlike = \
            [], [], [], [], [], [], [], [], [], [], []
        compared = []

        def slot(sids, win, offset, stat):
            q = queries.setdefault((sids, win, offset), len(queries))
            return q, values.setdefault((q, stat, win), len(values))

        for inst in self._live:
            rule = inst.rule
            if isinstance(rule, (ThresholdRule, RateOfChangeRule)):
                stat, op = rule.stat, rule.op
                base = self._rule_state[rule.name]["threshold"]
                recovery = rule.recovery_threshold if rule.recovery_threshold is not None \
                    else rule.threshold
                t, r = base * inst.scale, (recovery + (base - rule.threshold)) * inst.scale
            elif isinstance(rule, AbsenceRule):
                stat, op, t, r = "count", "<=", 0.0, 0.0
            else:
                continue
            compared.append(inst)
            q, v = slot(inst.sids, rule.window, False, stat)
            rows.append(inst.row)
            qcur.append(q)
            cur.append(v)
            if isinstance(rule, RateOfChangeRule):
                qp, vp = slot(inst.sids, rule.window, True, stat)
                change.append(_CHANGE[rule.change])
            else:
                qp, vp = -1, -1
                change.append(0)
            qprev.append(qp)
            prev.append(vp)
            window.append(rule.window)
            ops.append(_OPS[op])
            thr.append(t)
            rec.append(r)
            countlike.append(stat in _COUNTLIKE)
        self._queries = list(queries)                      # [(sids, window, previous?)]
        is_exact = self.engine.aggregation.is_exact
        self._query_exact = [any(is_exact(i) for i in sids) for sids, _, _ in self._queries]
        # Percentile slots are read per query from its merged sketch; the plain
        # statistics of every slot come from per-query columns in one numpy pass.
        quant: dict[int, list] = {}
        plain_slot, plain_query, plain_code, plain_window = [], [], [], []
        for i, (q, stat, win) in enumerate(values):
            if stat in _PLAIN_CODES:
                plain_slot.append(i)
                plain_query.append(q)
                plain_code.append(_PLAIN_CODES[stat])
                plain_window.append(win)
            else:
                quant.setdefault(q, []).append((i, float(stat[1:]) / 100.0))
        self._n_slots = len(values)
        self._quantiles = [(tuple(i for i, _ in quant[q]), tuple(x for _, x in quant[q]))
                           if q in quant else None for q in range(len(self._queries))]
        self._plain = (np.array(plain_slot, dtype=np.int64), np.array(plain_query, dtype=np.int64),
                       np.array(plain_code, dtype=np.int8), np.array(plain_window, dtype=np.float64))
        # The batch read (every query without exact series, in one core call)
        # and where its quantiles go.
        batch = [q for q in range(len(self._queries)) if not self._query_exact[q]]
        self._batch = np.array(batch, dtype=np.int64)
        self._batch_groups = [self._queries[q][0] for q in batch]
        self._batch_qs = [self._quantiles[q][1] if self._quantiles[q] else () for q in batch]
        self._batch_slots = np.array([i for q in batch if self._quantiles[q]
                                      for i in self._quantiles[q][0]], dtype=np.int64)
        self._query_window = np.array([w for _, w, _ in self._queries], dtype=np.float64)
        self._query_previous = np.array([bool(p) for _, _, p in self._queries], dtype=bool)
        self._compared = compared
        self._c = {
            "rows": np.array(rows, dtype=np.int64), "cur": np.array(cur, dtype=np.int64),
            "prev": np.array(prev, dtype=np.int64), "qcur": np.array(qcur, dtype=np.int64),
            "qprev": np.array(qprev, dtype=np.int64), "change": np.array(change, dtype=np.int8),
            "window": np.array(window, dtype=np.float64), "ops": np.array(ops, dtype=np.int8),
            "thr": np.array(thr, dtype=np.float64), "rec": np.array(rec, dtype=np.float64),
            "countlike": np.array(countlike, dtype=bool),
        }
        self._anomalies = [i for i in self._live if isinstance(i.rule, AnomalyRule)]
        self._composite_insts = [i for i in self._live if isinstance(i.rule, CompositeRule)]
        self._names = np.array([i.rule.name for i in self._live], dtype=object)
        self._fps = np.array([i.fp for i in self._live], dtype=object)
        self._live_rows = np.array([i.row for i in self._live], dtype=np.int64)

    # -- evaluation -----------------------------------------------------------

    def _now(self, now) -> float:
        if now is None:
            return float(self.engine.now())
        if isinstance(now, bool) or not isinstance(now, (int, float)) or not math.isfinite(now):
            raise ValueError(f"now must be finite epoch seconds, got {now!r}")
        return float(now)

    def evaluate(self, now: float | None = None) -> TickResult:
        """Run one tick at ``now`` (default: the metrics engine's ``now()``).

        Returns
        -------
        TickResult
            Rule, fingerprint, state and value of every alert instance
            (also kept as :attr:`last_tick`).
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("AlertEngine is closed")
            now = self._now(now)
            self._plan(now)
            values = np.full(self._table.n, np.nan)
            codes = np.zeros(self._table.n, dtype=np.int8)
            before = self._table.state[:self._table.n].copy()
            if self._compared:
                self._eval_compared(now, values, codes)
            if self._anomalies:
                self._eval_anomalies(now, values, codes)
            for inst in self._composite_insts:
                self._eval_composite(inst, now, values, codes)
            messages = self._transitions(before, codes, values, now)
            messages += self.received.expire(now)
            self._dispatch(messages, now)
            self.history_log.flush()     # after the notifications went out
            rows = self._live_rows
            result = TickResult(now, self._names, self._fps, codes[rows], values[rows])
            self.last_tick = result
            self._counts["ticks"] += 1
            return result

    def _read_windows(self, now: float) -> tuple:
        """One merged window per planned query: per-query count/sum/min/max
        columns and every slot's value."""
        agg = self.engine.aggregation
        n = len(self._queries)
        counts, sums = np.zeros(n), np.zeros(n)
        mins, maxs = np.full(n, np.nan), np.full(n, np.nan)
        slot_values = np.full(self._n_slots, np.nan)
        # Cover every finest bucket overlapping (now - win, now]: a point
        # inside the window is never missed because of where a bucket
        # boundary falls (at most one older bucket comes along).  A
        # "previous" query is the whole-bucket window just before that one.
        w0 = self.engine.resolutions[0][1]
        win, previous = self._query_window, self._query_previous
        first = np.floor((now - win) / w0)
        lo = np.where(previous, first - np.ceil(win / w0 - 1e-9), first).astype(np.int64)
        hi = np.where(previous, first, math.floor(now / w0) + 1).astype(np.int64)
        end = np.where(previous, (first - 0.5) * w0, now)
        batch = self._batch
        if len(batch):
            # the same buckets as AggregationEngine.window, without its
            # per-call target resolution
            count, total, lo_v, hi_v, quantiles = agg.read_windows(
                self._batch_groups, lo[batch], hi[batch], end[batch], self._batch_qs)
            seen = count > 0
            counts[batch] = count
            sums[batch] = np.where(seen, total, 0.0)
            mins[batch] = np.where(seen, lo_v, np.nan)
            maxs[batch] = np.where(seen, hi_v, np.nan)
            slot_values[self._batch_slots] = quantiles      # NaN for an empty window
        for q in np.flatnonzero(self._query_exact):
            stats = agg.window(list(self._queries[q][0]), (hi[q] - lo[q]) * w0, end=end[q])
            if stats.count:
                counts[q], sums[q], mins[q], maxs[q] = stats.count, stats.sum, stats.min, stats.max
                wanted = self._quantiles[q]
                if wanted is not None:
                    slot_values[list(wanted[0])] = [stats.quantile(x) for x in wanted[1]]
        slot, query, code, win = self._plain
        if len(slot):
            with np.errstate(divide="ignore", invalid="ignore"):
                columns = np.stack([counts[query], sums[query], mins[query], maxs[query],
                                    sums[query] / counts[query], sums[query] / win])
            slot_values[slot] = columns[code, np.arange(len(slot))]
        return counts, slot_values

    def _eval_compared(self, now: float, values: np.ndarray, codes: np.ndarray) -> None:
        c = self._c
        counts, slot_values = self._read_windows(now)
        cur = slot_values[c["cur"]]
        has_data = c["countlike"] | (counts[c["qcur"]] > 0)
        value = cur
        rate = c["change"] > 0
        if rate.any():
            prev = np.where(rate, slot_values[np.maximum(c["prev"], 0)], np.nan)
            has_data = has_data & (~rate | c["countlike"] | (counts[np.maximum(c["qprev"], 0)] > 0))
            with np.errstate(divide="ignore", invalid="ignore"):
                delta = cur - prev
                value = np.where(c["change"] == 1, delta / np.abs(prev),
                                 np.where(c["change"] == 2, delta,
                                          np.where(c["change"] == 3, delta / c["window"], cur)))
        cond = _compare(value, c["thr"], c["ops"])
        recovered = ~_compare(value, c["rec"], c["ops"])
        rows = c["rows"]
        codes[rows] = step(self._table, rows, cond, recovered, has_data, now)
        values[rows] = value

    def _eval_anomalies(self, now: float, values: np.ndarray, codes: np.ndarray) -> None:
        n = len(self._anomalies)
        cond = np.zeros(n, dtype=bool)
        has_data = np.zeros(n, dtype=bool)
        rows = np.empty(n, dtype=np.int64)
        for k, inst in enumerate(self._anomalies):
            rule = inst.rule
            self._feed(inst, now)
            threshold = self._rule_state[rule.name]["threshold"]
            cond[k] = inst.gate and inst.score >= threshold
            # fresh data: a bucket with points closed within the last two steps
            has_data[k] = now - inst.last_fed <= 2 * rule.step + self.engine.lateness
            rows[k] = inst.row
            values[inst.row] = inst.score
        codes[rows] = step(self._table, rows, cond, ~cond, has_data, now)

    def _feed(self, inst: _Instance, now: float) -> None:
        """Score the buckets of ``inst`` that closed since it last looked."""
        rule = inst.rule
        if now - inst.fed_until < rule.step:
            return
        cols = self.engine.aggregation.buckets(list(inst.sids), rule.step, inst.fed_until, now)
        closed = cols["closed"]
        for i in np.flatnonzero(closed):
            start = float(cols["start"][i])
            if start + rule.step > now:
                break     # a replay's engine may hold buckets that end after `now`
            count = int(cols["count"][i])
            inst.fed_until = start + rule.step
            if count == 0:
                continue
            v = _bucket_stat(cols, i, rule.stat, rule.step)
            if not math.isfinite(v):
                continue
            decision = inst.detector.update(v)
            inst.score, inst.gate = float(decision.score), bool(decision.anomalous)
            inst.last_fed = start + rule.step

    def _eval_composite(self, inst: _Instance, now: float, values: np.ndarray,
                        codes: np.ndarray) -> None:
        rule = inst.rule
        state = self._table.state
        firing = [any(state[i.row] == FIRING for i in self._live if i.rule.name == name)
                  for name in rule.rules]
        held = all(firing) if rule.op == "all" else any(firing)
        row = np.array([inst.row], dtype=np.int64)
        cond = np.array([held])
        codes[inst.row] = step(self._table, row, cond, ~cond, np.array([True]), now)[0]
        values[inst.row] = float(sum(firing))

    # -- transitions and notifications ----------------------------------------

    def _transitions(self, before: np.ndarray, codes: np.ndarray, values: np.ndarray,
                     now: float) -> list[Notification]:
        changed = np.flatnonzero((before != codes) & ~((before == FIRING) & (codes == FIRING)))
        out = []
        for row in changed:
            inst = self._instances[row]
            inst.value = float(values[row])
            code = codes[row]
            if code == FIRING:
                out.append(self._fire(inst, now))
            elif code == RESOLVED:
                out.append(self._resolve(inst, now))
        # firing values move; keep the latest for active()
        firing_rows = np.flatnonzero(codes == FIRING)
        for row in firing_rows:
            self._instances[row].value = float(values[row])
        return out

    def _context(self, inst: _Instance, severity: Severity) -> dict:
        rule = inst.rule
        ctx = {"labels": inst.labels, "value": inst.value, "rule": rule.name,
               "severity": severity.label, "wedding": None,
               "metric": getattr(rule, "metric", ""), "stat": getattr(rule, "stat", ""),
               "window": getattr(rule, "window", None)}
        if hasattr(rule, "threshold"):
            ctx["threshold"] = self._rule_state[rule.name]["threshold"] * inst.scale
        if inst.wedding_id and self.calendar is not None and inst.wedding_id in self.calendar:
            ctx["wedding"] = self.calendar.get(inst.wedding_id)
        return ctx

    def _fire(self, inst: _Instance, now: float) -> Notification:
        rule = inst.rule
        severity = rule.severity
        if self.policy is not None:
            severity = self.policy.severity_for(severity, inst.labels, now)
        ctx = self._context(inst, severity)
        labels = dict(inst.labels)
        labels.update({k: t.render(ctx) for k, t in rule.compiled_labels().items()})
        annotations = {k: t.render(ctx) for k, t in rule.compiled_annotations().items()}
        started = float(self._table.fired_at[inst.row])
        inst.episode = {"severity": severity, "labels": labels, "annotations": annotations,
                        "started_at": started, "acked_by": None, "acked_at": None}
        self._record("firing", now, inst, extra=annotations)
        return self._notification(inst, STATUS_FIRING, None)

    def _resolve(self, inst: _Instance, now: float, reason: str = "") -> Notification:
        ep = inst.episode or {"severity": inst.rule.severity, "labels": dict(inst.labels),
                              "annotations": {}, "started_at": now}
        inst.episode = ep
        self._record("resolved", now, inst, reason=reason)
        n = self._notification(inst, STATUS_RESOLVED, max(now, ep["started_at"]))
        inst.episode = None
        return n

    def _record(self, status: str, now: float, inst: _Instance, extra: Optional[dict] = None,
                **notes) -> None:
        """Add one event about ``inst`` to the history (``notes`` go in its annotations)."""
        ep = inst.episode or {}
        annotations = dict(extra or {})
        annotations.update({k: v if isinstance(v, str) else repr(v)
                            for k, v in notes.items() if v is not None and v != ""})
        severity = ep.get("severity", inst.rule.severity)
        self.history_log.add(AlertEvent(
            alert_id=inst.fp, rule=inst.rule.name, status=status,
            severity=Severity.parse(severity).label, ts=now,
            labels=dict(ep.get("labels", inst.labels)), annotations=annotations,
            value=inst.value if math.isfinite(inst.value) else None, wedding_id=inst.wedding_id))

    def _notification(self, inst: _Instance, status: str, ends_at) -> Notification:
        ep = inst.episode
        value = inst.value if math.isfinite(inst.value) else None
        labels = dict(ep["labels"])
        labels["alertname"] = inst.rule.name             # as Prometheus sets it
        labels.setdefault("severity", Severity.parse(inst.rule.severity).label)
        if self._wedding_label:
            labels.setdefault("wedding_severity", Severity.parse(ep["severity"]).label)
        return Notification(
            alert_id=inst.fp, rule=inst.rule.name, status=status, severity=ep["severity"],
            summary=ep["annotations"].get("summary", ""),
            description=ep["annotations"].get("description", ""), labels=labels,
            annotations=ep["annotations"], value=value, starts_at=ep["started_at"],
            ends_at=ends_at, wedding_id=inst.wedding_id)

    def _dispatch(self, messages: list[Notification], now: float) -> None:
        # The dispatcher's tick walks every alert group; skip it while nothing
        # is due (its due times only move when it is called).
        if not messages and (self._next_due is None or now < self._next_due):
            return
        routed = self.dispatcher.process(messages, now)
        self._next_due = self.dispatcher.next_due()
        told: dict[tuple, list] = {}
        for rn in routed:
            if self.delivery is None:
                # no channel at all: counted, so a silent configuration is visible
                self._counts["not_delivered"] += 1
                continue
            channels = None if rn.receiver == ALL_RECEIVERS else [self._channel_of.get(rn.receiver, rn.receiver)]
            self.delivery.submit(rn.group, channels)
            self._counts["notifications"] += 1
            for a in rn.alerts:
                status = "escalated" if rn.reason == "escalation" else "notified"
                told.setdefault((a.alert_id, status), [a, rn]).append(rn.receiver)
        # who was told what, when: the audit trail of paging, one event per
        # alert and tick (storage keys events by alert, status and time)
        for (alert_id, status), (a, rn, *receivers) in told.items():
            self.history_log.add(AlertEvent(
                alert_id=alert_id, rule=a.rule, status=status, severity=a.severity.label, ts=now,
                labels=dict(a.labels),
                annotations={"receivers": ",".join(receivers), "reason": rn.reason,
                             "escalation_level": str(rn.escalation_level), "alert_status": a.status},
                value=a.value if a.value is not None and math.isfinite(a.value) else None,
                wedding_id=a.wedding_id))

    # -- alerts from outside (the Alertmanager v2 API) --------------------------

    def receive_alerts(self, alerts: Iterable, now: float | None = None) -> int:
        """Take alerts posted in Alertmanager's form (``labels``, ``annotations``,
        ``startsAt``, ``endsAt``, ``generatorURL``) and route them now.

        As Alertmanager's ``POST /api/v2/alerts``: labels with empty values
        are removed, the valid alerts are taken even when others are invalid.
        Returns how many updates were routed.

        Raises
        ------
        InvalidAlerts
            (a ``ValueError``) after taking the valid alerts, when some were
            invalid: ``errors`` has Alertmanager's messages.
        MalformedAlert
            (a ``ValueError``) when an item does not have the API's shape;
            then none of the batch is taken.
        """
        from .received import InvalidAlerts

        with self._lock:
            now = self._now(now)
            updates, errors = self.received.receive(list(alerts), now)
            taken = len(updates)
            updates += self.received.expire(now)
            self._dispatch(updates, now)
            due = self.received.next_expiry()
            if due is not None and (self._next_due is None or due < self._next_due):
                self._next_due = due
        if errors:
            raise InvalidAlerts(errors, taken)
        return taken

    def notification_for(self, alert_id: str):
        """The :class:`Notification` a firing rule alert is routed as, or None when it does not fire."""
        with self._lock:
            inst = self._by_fp.get(alert_id)
            if inst is None or inst.episode is None or self._table.state[inst.row] != FIRING:
                return None
            return self._notification(inst, STATUS_FIRING, None)

    # -- people ---------------------------------------------------------------

    def _firing_instance(self, alert_id: str) -> _Instance:
        inst = self._by_fp.get(alert_id)
        if inst is None:
            raise KeyError(f"no alert with id {alert_id!r}")
        if self._table.state[inst.row] != FIRING or inst.episode is None:
            raise KeyError(f"alert {alert_id!r} is not firing")
        return inst

    def ack(self, alert_id: str, by: str, now: float | None = None) -> AlertView:
        """Acknowledge a firing alert: escalation of its groups stops.

        Raises
        ------
        KeyError
            Naming the id when no such alert fires.
        ValueError
            When ``by`` is empty.
        """
        if not isinstance(by, str) or not by:
            raise ValueError("ack: by must name who acknowledges")
        with self._lock:
            now = self._now(now)
            inst = self._firing_instance(alert_id)
            inst.episode["acked_by"], inst.episode["acked_at"] = by, now
            self.dispatcher.acknowledge_alert(alert_id, now, by)
            self._next_due = self.dispatcher.next_due()
            self._record("acknowledged", now, inst, by=by)
            self.history_log.flush()
            return self._view(inst, now)

    def silence(self, matchers, until, *, by: str = "api", comment: str = "",
                starts_at: float | None = None) -> Silence:
        """Mute alerts matching ``matchers`` until ``until`` (epoch seconds, or a
        duration from now such as ``"2h"``).  Returns the :class:`Silence`."""
        with self._lock:
            now = self._now(starts_at)
            end = now + parse_duration(until) if isinstance(until, str) else until
            s = self.dispatcher.add_silence(Silence(matchers=parse_matchers(matchers), starts_at=now,
                                                    ends_at=end, created_by=by, comment=comment))
            self.history_log.add(AlertEvent(
                alert_id=s.id, rule="", status="silenced", severity="", ts=now, labels={},
                annotations={"matchers": ", ".join(str(m) for m in s.matchers), "by": by,
                             "until": repr(float(end)), "comment": comment}))
            self.history_log.flush()
            return s

    def feedback(self, alert_id: str, *, false_positive: bool, by: str = "", note: str = "",
                 now: float | None = None) -> dict:
        """Record whether an alert was right; a false positive moves an adaptive threshold.

        Each false positive moves the rule's threshold one ``feedback.step``
        away from firing, within the bounds the rule declares.  Feedback on
        rules without a ``feedback`` policy is recorded but moves nothing.

        Returns
        -------
        dict
            The rule's state afterwards: ``threshold``, ``false_positives``, ``confirmed``.
        """
        with self._lock:
            now = self._now(now)
            inst = self._by_fp.get(alert_id)
            if inst is None:
                raise KeyError(f"no alert with id {alert_id!r}")
            rule = inst.rule
            state = self._rule_state[rule.name]
            old = state.get("threshold")
            if false_positive:
                state["false_positives"] += 1
                policy = getattr(rule, "feedback", None)
                if policy is not None:
                    state["threshold"] = policy.moved(old, upward=rule.above)
                    self._plan_key = None    # thresholds live in the plan's arrays
            else:
                state["confirmed"] += 1
            self._record("feedback", now, inst, by=by, note=note,
                         verdict="false_positive" if false_positive else "confirmed",
                         threshold_before=old, threshold_after=state.get("threshold"))
            self.history_log.write_state(rule.name, dict(state), now)
            self.history_log.flush()
            return dict(state)

    # -- inspection -----------------------------------------------------------

    def _view(self, inst: _Instance, now: float) -> AlertView:
        code = int(self._table.state[inst.row])
        ep = inst.episode or {}
        labels = ep.get("labels", inst.labels)
        severity = ep.get("severity", inst.rule.severity)
        silenced = inhibited = ()
        if code == FIRING and ep:
            muted = self.dispatcher.muted_by(self._notification(inst, STATUS_FIRING, None), now)
            silenced, inhibited = tuple(muted["silenced_by"]), tuple(muted["inhibited_by"])
        since = self._table.active_since[inst.row]
        return AlertView(
            id=inst.fp, rule=inst.rule.name, state=STATE_NAMES[code], labels=dict(labels),
            annotations=dict(ep.get("annotations", {})), severity=Severity.parse(severity).label,
            value=inst.value, active_since=None if math.isnan(since) else float(since),
            fired_at=ep.get("started_at"), acked_by=ep.get("acked_by"),
            wedding_id=inst.wedding_id, silenced_by=silenced, inhibited_by=inhibited)

    def active(self, *, include_pending: bool = True) -> list[AlertView]:
        """Alerts firing (and pending, unless ``include_pending=False``), by rule and id."""
        with self._lock:
            now = self._now(None)
            wanted = (FIRING, PENDING) if include_pending else (FIRING,)
            out = [self._view(i, now) for i in self._live if self._table.state[i.row] in wanted]
        return sorted(out, key=lambda a: (a.rule, a.id))

    def history(self, *, rule: str | None = None, alert_id: str | None = None,
                status: str | None = None, since: float | None = None,
                until: float | None = None, limit: int | None = None) -> list[AlertEvent]:
        """Alert events, oldest first, from storage when configured.

        Each is a :class:`~wedmetrics.storage.AlertEvent` whose ``status`` is
        ``firing``, ``resolved``, ``notified`` / ``escalated`` (annotations:
        ``receivers``, ``reason``, ``escalation_level``), ``acknowledged``
        (``by``), ``silenced`` (the silence id as ``alert_id``; ``matchers``,
        ``until``, ``by``, ``comment``) or ``feedback`` (``verdict``,
        ``threshold_before``, ``threshold_after``, ``by``, ``note``).
        """
        with self._lock:
            return self.history_log.query(rule=rule, alert_id=alert_id, status=status,
                                          since=since, until=until, limit=limit)

    def stats(self) -> dict:
        """Ticks, errors, instances per state, notifications handed out, history and dispatcher counters."""
        with self._lock:
            states = self._table.state[:self._table.n]
            out = dict(self._counts)
            out.update(rules=len(self._rules), instances=len(self._live),
                       pending=int(np.count_nonzero(states == PENDING)),
                       firing=int(np.count_nonzero(states == FIRING)),
                       history=self.history_log.stats(), dispatcher=self.dispatcher.stats())
            return out

    # -- background evaluation ------------------------------------------------

    def start(self) -> "AlertEngine":
        """Evaluate every ``interval`` seconds on a background thread."""
        with self._lock:
            if self._closed:
                raise RuntimeError("AlertEngine is closed")
            if self._thread is not None:
                return self
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="wedmetrics-alerting", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.evaluate()
            except Exception as e:  # keep ticking; the failure is counted and kept
                with self._lock:
                    self._counts["errors"] += 1
                    self.last_error = e
                log.exception("alert evaluation failed")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the background thread (waits for the tick in progress)."""
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout)
        self._thread = None

    def close(self, timeout: float = 10.0) -> None:
        """Stop evaluating, deliver what is queued (owned queue), flush history to storage."""
        self.stop(timeout)
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._owns_delivery:
            self.delivery.close(timeout)
        self.history_log.close()

    def __enter__(self) -> "AlertEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<AlertEngine rules={len(self._rules)} instances={len(self._instances)} "
                f"running={self._thread is not None}>")


def _stores_silences(storage) -> bool:
    return storage is not None and callable(getattr(storage, "read_silences", None))


def _bucket_stat(cols, i: int, stat: str, width: float) -> float:
    count = float(cols["count"][i])
    if stat == "count":
        return count
    if stat == "sum":
        return float(cols["sum"][i])
    if stat == "rate":
        return float(cols["sum"][i]) / width
    if stat == "mean":
        return float(cols["sum"][i]) / count
    if stat in ("min", "max"):
        return float(cols[stat][i])
    return float(cols["sketch"][i].quantile(float(stat[1:]) / 100.0))
