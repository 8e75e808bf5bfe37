"""Backtests: replay history through alert rules and score what they would have sent.

:func:`backtest` feeds a recorded series (a NAB-style ``timestamp,value``
CSV, a DataFrame or a dict of arrays) through a real
:class:`~wedmetrics.MetricsEngine` and :class:`~wedmetrics.alerting.AlertEngine`
on a :class:`~wedmetrics.ManualClock`, so ``for``, ``keep_firing_for``,
hysteresis, no-data policies and grouping behave exactly as in production.

**One evaluation per observation.**  The engine gets a single resolution
equal to the sampling period ``step`` of the data and no lateness.  Rows are
grouped by the bucket ``floor(ts / step)`` they fall in; for each bucket the
replay records its rows, advances the engine to the bucket's end
``(floor(ts / step) + 1) * step`` (which closes it) and evaluates every rule
there.  A threshold rule with ``window == step`` then reads exactly that
bucket (its window ``(end - step, end]`` holds no other row), and an anomaly
rule with ``step == step`` scores exactly that bucket; on regularly sampled
data each evaluation is one row.  Rows sharing a bucket (irregular sampling)
are evaluated together.  Input rows out of time order (a CSV written newest
first, shuffled rows) are first sorted by timestamp (stable: rows of one
timestamp keep their order); ``result.metrics["rows_reordered"]`` counts the
rows that moved and the metrics table says so.  Every result row, label
window and ``--alerts-out`` line then follows that time order.  Points the
engine still drops are counted in ``result.metrics["engine"]["dropped"]``
and named under the metrics table, never silently lost.

**Vectorised path.**  When every rule reads one observation per evaluation
(anomaly rules with ``step`` equal to the data's step, threshold rules with
``window`` equal to it, statistics that equal the value for one point) and
every row has a bucket of its own, the detector runs over the whole array
(:func:`~wedmetrics.alerting.detectors.detect`, Numba when installed) and
the per-tick lifecycle is the same :func:`~wedmetrics.alerting.evaluation.step`
the AlertEngine uses.  It gives the same notifications as the streaming
replay (``tests/alerting/test_backtest.py`` proves it) about 10-50 times
faster.  ``path="streaming"`` forces the replay through the engines.
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Optional

import numpy as np

from wedmetrics.clock import parse_duration

from .detectors import default_detector_config, detect
from .engine import fingerprint
from .evaluation import FIRING, INACTIVE, PENDING, RESOLVED, StateTable, step
from .loading import load_rules, rule_from_dict
from .rules import AlertRule, AnomalyRule, ThresholdRule
from .scoring import nab_score, score_events

__all__ = ["backtest", "default_anomaly_rules", "BacktestResult", "BacktestEvent",
           "load_data", "load_labels", "infer_step", "UnknownStepError", "NAB_PROFILES"]

NAB_PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
#: Statistics that equal the value itself when a bucket holds one point.
_ONE_POINT_STATS = ("mean", "min", "max", "sum")
_PATHS = ("auto", "vectorised", "streaming")


@dataclasses.dataclass(frozen=True)
class BacktestEvent:
    """One notification the rules would have sent.

    Attributes
    ----------
    ts : float
        Evaluation time (epoch seconds): the end of the bucket of ``row``.
    row : int
        Index of the (last) input row the evaluation covered.
    kind : {"firing", "resolved"}
    rule, fingerprint, severity : str
    value : float
        The value the condition was judged on (anomaly rules: the score).
    labels : dict
    """

    ts: float
    row: int
    kind: str
    rule: str
    fingerprint: str
    severity: str
    value: float
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-able form (a non-finite value as None)."""
        d = dataclasses.asdict(self)
        d["labels"] = dict(self.labels)
        d["value"] = self.value if math.isfinite(self.value) else None
        return d


def default_anomaly_rules(step: float | str = "5m", *, metric: str = "value",
                          name: str = "anomaly") -> list[AnomalyRule]:
    """The frozen default detector as alert rules (one anomaly rule).

    :func:`~wedmetrics.alerting.detectors.default_detector_config` in rule
    form: the ensemble of anomaly likelihoods (see
    :mod:`wedmetrics.alerting.ensemble`), ``for = 0``.  The detector's
    ``cooldown`` of 100 observations becomes the rule's ``cooldown = 100 *
    step``: an anomaly alert fires for the one evaluation at which the
    detector flags (a pulse), resolves at the next, and cannot fire again
    until 100 observations after that onset.

    Parameters
    ----------
    step : float or str
        Sampling period of the data (NAB: 5 minutes).
    metric, name : str
        Metric read and rule name.

    Examples
    --------
    >>> [(r.kind, r.detector, r.step, r.cooldown) for r in default_anomaly_rules("5m")]
    [('anomaly', 'ensemble', 300.0, 30000.0)]
    """
    cfg = default_detector_config()
    step_s = parse_duration(step)
    return [AnomalyRule(name=name, metric=metric, step=step_s, stat="mean", detector=cfg.method,
                        baseline=cfg.window, min_points=cfg.min_periods, threshold=cfg.threshold,
                        surprise_window=cfg.surprise_window, mean_span=cfg.mean_span,
                        alpha=cfg.alpha, scorers=cfg.scorers, calibration=cfg.calibration,
                        likelihood_window=cfg.likelihood_window, averaging=cfg.averaging,
                        learning=cfg.learning, novelty_tolerance=cfg.novelty_tolerance,
                        cooldown=cfg.cooldown * step_s,
                        severity="warning")]


# -- inputs -------------------------------------------------------------------

def load_data(data: Any) -> tuple[np.ndarray, dict[str, np.ndarray], Optional[str]]:
    """Normalise backtest input to ``(timestamps, {metric: values}, file name)``.

    Parameters
    ----------
    data : str, Path, pandas.DataFrame or dict
        A ``timestamp,value`` CSV (NAB's format; metric ``value``); a
        DataFrame with a ``timestamp`` column (or a DatetimeIndex) and one
        numeric column per metric; or a dict of arrays with a ``timestamp``
        key and one key per metric.  Timestamps are epoch seconds,
        ``datetime64`` or ISO text.

    Raises
    ------
    ValueError
        Naming the column: no timestamp, no metric, unequal lengths,
        non-finite values or timestamps, no rows.
    """
    from .nab import parse_timestamps, read_series_csv

    name = None
    if isinstance(data, (str, Path)):
        path = Path(data)
        ts, values = read_series_csv(path)
        return _checked(ts, {"value": values}), {"value": np.asarray(values, dtype=np.float64)}, path.name
    columns: dict[str, Any]
    if hasattr(data, "columns") and hasattr(data, "index"):          # a pandas DataFrame
        columns = {str(c): data[c].to_numpy() for c in data.columns}
        if "timestamp" not in columns:
            if str(getattr(data.index, "dtype", "")).startswith("datetime64"):
                columns["timestamp"] = data.index.to_numpy()
            else:
                raise ValueError("data: the DataFrame needs a 'timestamp' column or a DatetimeIndex")
    elif isinstance(data, Mapping):
        columns = dict(data)
        if "timestamp" not in columns:
            raise ValueError(f"data: the dict needs a 'timestamp' key, got keys {sorted(columns)}")
    else:
        raise TypeError(f"data must be a CSV path, a DataFrame or a dict of arrays, "
                        f"got {type(data).__name__}")
    raw_ts = np.asarray(columns.pop("timestamp"))
    if raw_ts.dtype.kind == "M":
        ts = raw_ts.astype("datetime64[ns]").astype(np.int64) / 1e9
    elif raw_ts.dtype.kind in "OUS":
        ts = parse_timestamps([str(t) for t in raw_ts.tolist()], source="data['timestamp']")
    else:
        ts = raw_ts.astype(np.float64)
    if not columns:
        raise ValueError("data: no metric column besides 'timestamp'")
    metrics = {}
    for key, col in columns.items():
        arr = np.asarray(col)
        if arr.dtype.kind not in "iuf":
            raise ValueError(f"data[{key!r}]: values must be numbers, got dtype {arr.dtype}")
        metrics[key] = arr.astype(np.float64)
    return _checked(ts, metrics), metrics, name


def _checked(ts: np.ndarray, metrics: dict[str, np.ndarray]) -> np.ndarray:
    ts = np.asarray(ts, dtype=np.float64)
    if ts.ndim != 1 or len(ts) == 0:
        raise ValueError(f"data: timestamps must be a non-empty 1-D array, got shape {ts.shape}")
    bad = np.flatnonzero(~np.isfinite(ts))
    if bad.size:
        raise ValueError(f"data['timestamp'][{bad[0]}] = {ts[bad[0]]!r} must be finite")
    for key, values in metrics.items():
        values = np.asarray(values)
        if values.shape != ts.shape:
            raise ValueError(f"data[{key!r}] has {values.shape[0] if values.ndim else 0} rows, "
                             f"timestamps have {len(ts)}")
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise ValueError(f"data[{key!r}][{bad[0]}] = {values[bad[0]]!r} must be finite")
    return ts


def load_labels(labels: Any, timestamps: np.ndarray, data_name: Optional[str] = None) -> np.ndarray:
    """Labelled anomaly windows as inclusive row ranges ``(k, 2)``.

    Parameters
    ----------
    labels : None, str, Path, list or dict
        A JSON file or object: NAB's ``combined_windows.json`` (file name ->
        windows; the entry whose key ends with ``data_name`` is used, or the
        only entry) or a plain list of ``[start, end]`` pairs (epoch seconds
        or timestamp text).
    timestamps : numpy.ndarray
        The rows' epoch seconds (sorted or nearly so).
    data_name : str, optional
        The data file's name, to pick a NAB entry.

    Returns
    -------
    numpy.ndarray
        int64 ``(k, 2)``: first row at or after the start, last row at or
        before the end (NAB's bounds are row timestamps, so this is NAB's
        row range); windows holding no row are an error.
    """
    from .nab import parse_timestamps

    if labels is None:
        return np.zeros((0, 2), dtype=np.int64)
    source = "labels"
    if isinstance(labels, (str, Path)):
        source = str(labels)
        labels = json.loads(Path(labels).read_text())
    if isinstance(labels, Mapping):
        keys = [k for k in labels if data_name and str(k).endswith(data_name)]
        if not keys and len(labels) == 1:
            keys = list(labels)
        if len(keys) != 1:
            raise ValueError(f"{source}: cannot pick the windows of {data_name!r}: "
                             f"{len(keys)} keys match (of {len(labels)})")
        labels = labels[keys[0]]
    pairs = list(labels)
    if any(not isinstance(p, (list, tuple)) or len(p) != 2 for p in pairs):
        raise ValueError(f"{source}: windows must be [start, end] pairs")
    flat = [t for p in pairs for t in p]
    if all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in flat):
        bounds = np.asarray(flat, dtype=np.float64)
    else:
        bounds = parse_timestamps([str(t) for t in flat], source=source)
    order = np.argsort(timestamps, kind="stable")
    srt = np.asarray(timestamps, dtype=np.float64)[order]
    rows = np.empty((len(pairs), 2), dtype=np.int64)
    for k in range(len(pairs)):
        start, end = bounds[2 * k], bounds[2 * k + 1]
        if end < start:
            raise ValueError(f"{source}: window {k} ends ({end!r}) before it starts ({start!r})")
        lo = int(np.searchsorted(srt, start, side="left"))
        hi = int(np.searchsorted(srt, end, side="right")) - 1
        if hi < lo:
            raise ValueError(f"{source}: window {k} [{start!r}, {end!r}] holds no row")
        rows[k] = (order[lo], order[hi]) if order[lo] <= order[hi] else (order[hi], order[lo])
    return rows[np.argsort(rows[:, 0], kind="stable")]


class UnknownStepError(ValueError):
    """The sampling step cannot be inferred from the data; ``reason`` says why.

    The message names the Python argument ``step=``; the command line names
    its ``--step`` option instead.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}; give step=")


def infer_step(timestamps: np.ndarray) -> float:
    """Sampling period of a series: the most common positive gap between time-ordered rows."""
    gaps = np.diff(np.sort(np.asarray(timestamps, dtype=np.float64)))
    gaps = gaps[gaps > 0]
    if gaps.size == 0:
        raise UnknownStepError("data: cannot infer the sampling step "
                               "(fewer than two distinct timestamps)")
    values, counts = np.unique(gaps, return_counts=True)
    return float(values[np.argmax(counts)])


def _rules(rules: Any, step_s: float, metrics: Iterable[str]) -> list[AlertRule]:
    if rules is None:
        metric = "value" if "value" in metrics else next(iter(metrics))
        return list(default_anomaly_rules(step_s, metric=metric))
    if isinstance(rules, (str, Path)):
        return list(load_rules(rules))
    if isinstance(rules, (AlertRule, Mapping)):
        rules = [rules]
    return [rule_from_dict(r) if isinstance(r, Mapping) else r for r in rules]


# -- the two replays -----------------------------------------------------------

@dataclasses.dataclass
class _Replay:
    """Per-evaluation lifecycle of every rule (one alert instance per rule)."""

    eval_ts: np.ndarray          # (k,) evaluation times
    row_eval: np.ndarray         # (n,) evaluation covering each row (-1: none yet)
    eval_row: np.ndarray         # (k,) last row of each evaluation
    codes: np.ndarray            # (k, r) int8 per-tick state codes
    values: np.ndarray           # (k, r) value judged on
    events: list
    engine_stats: dict


def _vectorised_obstacle(ts: np.ndarray, metrics: dict, rules: list, step_s: float) -> Optional[str]:
    """Why the vectorised path cannot reproduce the engine here (None: it can)."""
    buckets = np.floor(ts / step_s)
    if len(buckets) > 1 and not (np.diff(buckets) > 0).all():
        return "some rows share a bucket or go back in time"
    for r in rules:
        if isinstance(r, AnomalyRule):
            if r.step != step_s:
                return f"rule {r.name!r}: step {r.step:g}s differs from the data step {step_s:g}s"
        elif isinstance(r, ThresholdRule):
            if r.window != step_s:
                return f"rule {r.name!r}: window {r.window:g}s differs from the data step {step_s:g}s"
            if r.scale_by is not None:
                return f"rule {r.name!r}: scale_by needs a wedding calendar"
        else:
            return f"rule {r.name!r}: kind {r.kind!r} runs on the streaming path only"
        if r.stat not in _ONE_POINT_STATS + ("count", "rate"):
            return f"rule {r.name!r}: stat {r.stat!r} is a sketch estimate, not the value itself"
        if r.metric not in metrics or r.match:
            return f"rule {r.name!r}: metric/match select series the vectorised path does not model"
    return None


def _one_point_stat(values: np.ndarray, stat: str, step_s: float) -> np.ndarray:
    if stat == "count":
        return np.ones_like(values)
    if stat == "rate":
        return values / step_s
    return values


def _render_labels(rule: AlertRule, value: float) -> dict:
    ctx = {"labels": {}, "value": value, "rule": rule.name, "severity": rule.severity.label,
           "wedding": None, "metric": getattr(rule, "metric", ""), "stat": getattr(rule, "stat", ""),
           "window": getattr(rule, "window", None)}
    if hasattr(rule, "threshold"):
        ctx["threshold"] = rule.threshold
    return {k: t.render(ctx) for k, t in rule.compiled_labels().items()}


def _events_from_codes(rules: list, eval_ts: np.ndarray, eval_row: np.ndarray, codes: np.ndarray,
                       values: np.ndarray) -> list:
    """Notifications from per-tick state codes, as AlertEngine's transitions make them:
    a firing tick after a non-firing one, and every resolving tick."""
    events = []
    fps = [fingerprint(rule.name, {}) for rule in rules]
    for j, rule in enumerate(rules):
        col = codes[:, j]
        prev = np.concatenate(([INACTIVE], np.where(col[:-1] == RESOLVED, INACTIVE, col[:-1])))
        for k in np.flatnonzero(((col == FIRING) & (prev != FIRING)) | (col == RESOLVED)).tolist():
            kind = "firing" if col[k] == FIRING else "resolved"
            v = float(values[k, j])
            events.append(BacktestEvent(
                ts=float(eval_ts[k]), row=int(eval_row[k]), kind=kind, rule=rule.name,
                fingerprint=fps[j], severity=rule.severity.label, value=v,
                labels=_render_labels(rule, v) if kind == "firing" else {}))
    events.sort(key=lambda e: (e.ts, e.rule))
    return events


def _replay_vectorised(ts: np.ndarray, metrics: dict, rules: list, step_s: float) -> _Replay:
    from .engine import _compare

    n, r = len(ts), len(rules)
    eval_ts = (np.floor(ts / step_s) + 1.0) * step_s
    cond = np.zeros((n, r), dtype=bool)
    recovered = np.zeros((n, r), dtype=bool)
    values = np.empty((n, r))
    table = StateTable(r)
    for j, rule in enumerate(rules):
        x = _one_point_stat(metrics[rule.metric], rule.stat, step_s)
        if isinstance(rule, AnomalyRule):
            scores, gate = detect(x, rule.detector_config())
            cond[:, j] = gate & (scores >= rule.threshold)
            recovered[:, j] = ~cond[:, j]
            values[:, j] = scores
        else:
            op = np.full(n, {">": 0, ">=": 1, "<": 2, "<=": 3}[rule.op], dtype=np.int8)
            rec = rule.recovery_threshold if rule.recovery_threshold is not None else rule.threshold
            cond[:, j] = _compare(x, np.full(n, rule.threshold), op)
            recovered[:, j] = ~_compare(x, np.full(n, rec), op)
            values[:, j] = x
        table.add(rule.for_, rule.keep_firing_for, rule.no_data, rule.cooldown,
                  pulse=isinstance(rule, AnomalyRule))
    rows = np.arange(r, dtype=np.int64)
    has_data = np.ones(r, dtype=bool)
    codes = np.empty((n, r), dtype=np.int8)
    for k in range(n):
        codes[k] = step(table, rows, cond[k], recovered[k], has_data, float(eval_ts[k]))
    events = _events_from_codes(rules, eval_ts, np.arange(n), codes, values)
    return _Replay(eval_ts, np.arange(n), np.arange(n), codes, values, events,
                   {"accepted": n * len(metrics), "dropped": {}})


def _replay_streaming(ts: np.ndarray, metrics: dict, rules: list, step_s: float) -> _Replay:
    from wedmetrics.clock import ManualClock
    from wedmetrics.engine import MetricsEngine

    from .engine import AlertEngine

    n = len(ts)
    buckets = np.floor(ts / step_s)
    starts = np.flatnonzero(np.concatenate(([True], buckets[1:] != buckets[:-1])))
    ends = np.append(starts[1:], n)
    keep = 2 * max([int(math.ceil(getattr(x, "window", step_s) / step_s)) for x in rules] + [1024])
    clock = ManualClock(float(ts[0]))
    engine = MetricsEngine(clock=clock, resolutions=[step_s], retention={step_s: keep * step_s},
                           lateness=0.0)
    names = list(metrics)
    handles = [engine.series(m) for m in names]
    ids = np.array([h.id for h in handles], dtype=np.int64)
    stacked = np.stack([metrics[m] for m in names], axis=1)          # (n, metrics)
    alerts = AlertEngine(engine, storage=None, history_limit=10 ** 7)
    alerts.add_rules(rules)
    order = {rule.name: j for j, rule in enumerate(rules)}
    eval_ts, eval_row, codes, values = [], [], [], []
    row_eval = np.full(n, -1, dtype=np.int64)
    at = -math.inf
    try:
        for lo, hi in zip(starts.tolist(), ends.tolist()):
            group_ts = ts[lo:hi]
            clock.set(max(clock.now(), float(group_ts.max())))
            m = hi - lo
            engine.record_many(np.tile(ids, m), np.repeat(group_ts, len(ids)), stacked[lo:hi].ravel())
            end = (float(buckets[lo]) + 1.0) * step_s
            if end > at:      # a group going back in time was late: no evaluation of its own
                at = end
                clock.set(end)
                engine.advance(end)
                tick = alerts.evaluate(end)
                c = np.zeros(len(rules), dtype=np.int8)
                v = np.full(len(rules), np.nan)
                for name, code, value in zip(tick.rule, tick.state, tick.value):
                    c[order[name]], v[order[name]] = code, value
                eval_ts.append(end)
                eval_row.append(hi - 1)
                codes.append(c)
                values.append(v)
            row_eval[lo:hi] = len(eval_ts) - 1
        stats = engine.stats()
    finally:
        alerts.close()
        engine.close()
    codes = np.array(codes, dtype=np.int8).reshape(-1, len(rules))
    values = np.array(values).reshape(-1, len(rules))
    eval_row = np.array(eval_row, dtype=np.int64)
    events = _events_from_codes(rules, np.array(eval_ts), eval_row, codes, values)
    return _Replay(np.array(eval_ts), row_eval, eval_row, codes, values, events,
                   {"accepted": stats["accepted"], "dropped": dict(stats["dropped"])})


# -- the entry point ------------------------------------------------------------

def backtest(rules: Any, data: Any, labels: Any = None, *, step: float | str | None = None,
             path: str = "auto") -> "BacktestResult":
    """Replay ``data`` through ``rules`` and score the notifications they would have sent.

    Parameters
    ----------
    rules : None, AlertRule, dict, list of them, or a rules file path
        ``None``: :func:`default_anomaly_rules` at the data's step.
    data : str, Path, DataFrame or dict
        See :func:`load_data` (NAB CSVs: ``timestamp,value``).
    labels : None, path, list of [start, end] or NAB combined-windows dict
        Labelled anomaly windows (see :func:`load_labels`).
    step : float or str, optional
        Sampling period; default the most common gap between rows.
    path : {"auto", "vectorised", "streaming"}
        ``auto`` takes the vectorised path when it reproduces the engine.

    Returns
    -------
    BacktestResult

    Examples
    --------
    >>> import numpy as np
    >>> ts = 1_700_000_000.0 + 60.0 * np.arange(6)
    >>> rule = {"kind": "threshold", "name": "High", "metric": "value", "stat": "max",
    ...         "window": "1m", "op": ">", "threshold": 5.0}
    >>> res = backtest([rule], {"timestamp": ts, "value": [1, 9, 9, 1, 9, 1.0]})
    >>> [(e.kind, e.row) for e in res.events]
    [('firing', 1), ('resolved', 3), ('firing', 4), ('resolved', 5)]
    """
    if path not in _PATHS:
        raise ValueError(f"path must be one of {_PATHS}, got {path!r}")
    ts, metrics, data_name = load_data(data)
    ts, metrics, reordered = _in_time_order(ts, metrics)
    step_s = infer_step(ts) if step is None else parse_duration(step)
    if not step_s > 0:
        raise ValueError(f"step must be > 0, got {step!r}")
    rule_list = _rules(rules, step_s, metrics)
    if not rule_list:
        raise ValueError("rules: no rule to backtest")
    names = [r.name for r in rule_list]
    if len(set(names)) != len(names):
        raise ValueError(f"rules: duplicate rule names in {names}")
    windows = load_labels(labels, ts, data_name)
    obstacle = _vectorised_obstacle(ts, metrics, rule_list, step_s)
    if path == "vectorised" and obstacle is not None:
        raise ValueError(f"path='vectorised' cannot reproduce the engine here: {obstacle}")
    use_vec = path == "vectorised" or (path == "auto" and obstacle is None)
    replay = (_replay_vectorised if use_vec else _replay_streaming)(ts, metrics, rule_list, step_s)
    return BacktestResult(ts, metrics, rule_list, windows, step_s, replay,
                          "vectorised" if use_vec else "streaming", obstacle, data_name,
                          reordered)


def _in_time_order(ts: np.ndarray, metrics: dict) -> tuple[np.ndarray, dict, int]:
    """The rows sorted by timestamp (stable) and how many of them moved."""
    if len(ts) < 2 or bool((np.diff(ts) >= 0).all()):
        return ts, metrics, 0
    order = np.argsort(ts, kind="stable")
    moved = int((order != np.arange(len(ts))).sum())
    return ts[order], {k: np.asarray(v)[order] for k, v in metrics.items()}, moved


# -- the result -------------------------------------------------------------------

class BacktestResult:
    """What a backtest found: notifications, per-row states, and their scores.

    Attributes
    ----------
    events : list of BacktestEvent
        Every notification (``firing`` and ``resolved``), oldest first.
    metrics : dict
        ``{"rules": {name: measures}, "overall": measures, ...}``; measures
        are ``windows``, ``windows_detected``, ``window_recall``,
        ``notifications`` (firing onsets), ``true_events``, ``false_events``,
        ``event_precision``, ``false_alarms_per_day``, ``median_delay_s``,
        ``firing_rows`` and ``nab_<profile>`` (normalised NAB score with the
        firing rows as detections, as written by ``--alerts-out``; NaN without
        labelled windows).
        ``overall`` is "any rule firing".
        ``rows_reordered`` counts input rows that were out of time order
        (sorted before the replay); ``engine`` holds the engine's accepted
        and dropped point counts.
    timestamps : numpy.ndarray
    values : dict of numpy.ndarray
    rules : list of AlertRule
    windows : numpy.ndarray
        int64 ``(k, 2)`` labelled windows as inclusive rows.
    states : numpy.ndarray
        int8 ``(rows, rules)``: state code of each rule at each row's evaluation.
    path : {"vectorised", "streaming"}
    step : float
    """

    def __init__(self, ts, metrics, rules, windows, step_s, replay: _Replay, path, obstacle,
                 data_name, rows_reordered: int = 0) -> None:
        self.timestamps = ts
        self.values = metrics
        self.rules = rules
        self.windows = windows
        self.step = step_s
        self.path = path
        self.vectorised_obstacle = obstacle
        self.data_name = data_name
        self.rows_reordered = rows_reordered
        self.events: list[BacktestEvent] = replay.events
        self.eval_ts = replay.eval_ts
        self.row_eval = replay.row_eval
        state = np.where(replay.codes == RESOLVED, INACTIVE, replay.codes).astype(np.int8)
        safe = np.maximum(replay.row_eval, 0)
        self.states = np.where((replay.row_eval >= 0)[:, None], state[safe], INACTIVE).astype(np.int8) \
            if len(state) else np.zeros((len(ts), len(rules)), dtype=np.int8)
        self.scores = np.where((replay.row_eval >= 0)[:, None], replay.values[safe], np.nan) \
            if len(state) else np.full((len(ts), len(rules)), np.nan)
        self.onsets = np.zeros((len(ts), len(rules)), dtype=bool)
        index = {rule.name: j for j, rule in enumerate(rules)}
        for e in self.events:
            if e.kind == "firing":
                self.onsets[e.row, index[e.rule]] = True
        self.engine_stats = replay.engine_stats
        self.metrics = self._measure()

    @property
    def firing(self) -> np.ndarray:
        """bool ``(rows, rules)``: the rule was firing at the row's evaluation."""
        return self.states == FIRING

    @property
    def pending(self) -> np.ndarray:
        """bool ``(rows, rules)``: the rule was pending at the row's evaluation."""
        return self.states == PENDING

    @property
    def alert(self) -> np.ndarray:
        """bool per row: any rule firing (what ``--alerts-out`` writes)."""
        return self.firing.any(axis=1)

    def _measures(self, firing: np.ndarray, onsets: np.ndarray) -> dict:
        ev = score_events(firing, self.windows, self.timestamps)
        out = {"windows": ev.windows, "windows_detected": ev.windows_detected,
               "window_recall": ev.window_recall, "notifications": int(onsets.sum()),
               "true_events": ev.true_events, "false_events": ev.false_events,
               "event_precision": ev.event_precision,
               "false_alarms_per_day": ev.false_alarms_per_day,
               "median_delay_s": ev.median_delay, "firing_rows": int(firing.sum())}
        for profile in NAB_PROFILES:
            # scored on the firing rows, exactly what --alerts-out writes
            out[f"nab_{profile}"] = (nab_score([(firing, self.windows)], profile).normalized
                                     if len(self.windows) else math.nan)
        return out

    def _measure(self) -> dict:
        per_rule = {rule.name: self._measures(self.firing[:, j], self.onsets[:, j])
                    for j, rule in enumerate(self.rules)}
        overall = self._measures(self.alert, self.onsets.any(axis=1))
        return {"rules": per_rule, "overall": overall, "rows": int(len(self.timestamps)),
                "rows_reordered": self.rows_reordered, "step_s": self.step, "path": self.path,
                "engine": self.engine_stats}

    def metrics_table(self) -> str:
        """The metrics as a fixed-width text table (one line per rule, then overall)."""
        cols = [("windows", "{:d}"), ("windows_detected", "{:d}"), ("notifications", "{:d}"),
                ("true_events", "{:d}"), ("false_events", "{:d}"), ("event_precision", "{:.2f}"),
                ("false_alarms_per_day", "{:.3f}"), ("median_delay_s", "{:.0f}"),
                ("nab_standard", "{:.2f}")]
        heads = ["rule", "windows", "detected", "notified", "true", "false", "precision",
                 "FA/day", "delay_s", "NAB std"]
        lines = []
        items = list(self.metrics["rules"].items()) + [("(overall)", self.metrics["overall"])]
        for name, m in items:
            cells = [name]
            for key, fmt in cols:
                v = m[key]
                cells.append("-" if isinstance(v, float) and math.isnan(v) else fmt.format(v))
            lines.append(cells)
        widths = [max(len(row[i]) for row in lines + [heads]) for i in range(len(heads))]
        fmt_row = lambda row: "  ".join(c.rjust(w) if i else c.ljust(w)    # noqa: E731
                                        for i, (c, w) in enumerate(zip(row, widths)))
        return "\n".join([fmt_row(heads)] + [fmt_row(r) for r in lines] + self._table_notes())

    def _table_notes(self) -> list[str]:
        """What a reader of the table must know: reordered rows, dropped points."""
        notes = []
        n = len(self.timestamps)
        if self.rows_reordered:
            notes.append(f"note: {self.rows_reordered} of {n} rows were out of time order; "
                         f"they were sorted by timestamp (stable) before the replay")
        dropped = {k: v for k, v in self.engine_stats.get("dropped", {}).items() if v}
        if dropped:
            total = sum(dropped.values())
            points = self.engine_stats.get("accepted", 0) + total
            why = ", ".join(f"{k}={v}" for k, v in dropped.items())
            notes.append(f"note: the engine dropped {total} of {points} points ({why}); "
                         f"the scores above leave them out")
        return notes

    def to_frame(self):
        """One row per input row: timestamp, metric values, per rule its state,
        score/value and whether it notified there, ``alert`` and ``in_window``.

        Returns
        -------
        pandas.DataFrame
        """
        import pandas as pd

        cols: dict[str, Any] = {"timestamp": pd.to_datetime(self.timestamps, unit="s")}
        cols.update({k: v for k, v in self.values.items()})
        names = np.array(["inactive", "pending", "firing"], dtype=object)
        for j, rule in enumerate(self.rules):
            cols[f"{rule.name}.state"] = names[self.states[:, j]]
            cols[f"{rule.name}.value"] = self.scores[:, j]
            cols[f"{rule.name}.notified"] = self.onsets[:, j]
        cols["alert"] = self.alert
        cols["in_window"] = self.in_window()
        return pd.DataFrame(cols)

    def events_frame(self):
        """The notifications as a :class:`pandas.DataFrame` (one row per event)."""
        import pandas as pd

        frame = pd.DataFrame([e.to_dict() for e in self.events],
                             columns=[f.name for f in dataclasses.fields(BacktestEvent)])
        frame["time"] = pd.to_datetime(frame["ts"], unit="s")
        return frame

    def in_window(self) -> np.ndarray:
        """bool per row: inside a labelled window."""
        mask = np.zeros(len(self.timestamps), dtype=bool)
        for lo, hi in self.windows.tolist():
            mask[lo:hi + 1] = True
        return mask

    def plot(self, ax=None, *, metric: str | None = None):
        """Matplotlib figure: the series, labelled windows, pending/firing spans,
        notifications (needs the ``[plot]`` extra).  See
        :func:`wedmetrics.alerting.backtest_plot.plot_backtest`."""
        from .backtest_plot import plot_backtest

        return plot_backtest(self, ax=ax, metric=metric)

    def __repr__(self) -> str:
        o = self.metrics["overall"]
        return (f"<BacktestResult rows={len(self.timestamps)} rules={len(self.rules)} "
                f"path={self.path} notifications={o['notifications']} "
                f"windows_detected={o['windows_detected']}/{o['windows']}>")
