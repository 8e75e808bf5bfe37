"""Alert rules: pydantic models, one class per ``kind``.

A rule is data: it can be written in Python, loaded from a dict, JSON or
YAML (:func:`wedmetrics.alerting.loading.load_rules`), and every mistake is
reported with the name of the field that holds it.

``AlertRule`` is the common base and also the front door:
``AlertRule(kind="threshold", ...)`` builds a :class:`ThresholdRule`, and
``AlertRule.model_validate(d)`` picks the class from ``d["kind"]`` (a
pydantic discriminated union).

Kinds
-----
threshold
    A window statistic (``p95`` over ``5m``) compared with a value.
rate_of_change
    How a window statistic moved since the previous window.
absence
    No points in the window ("no data" is the condition itself).
anomaly
    A statistic of closed buckets scored against an adaptive baseline
    (robust rolling z-score or EWMA, optionally seasonal).
composite
    ``all`` / ``any`` of other rules firing.

>>> r = AlertRule(kind="threshold", name="SlowPhotos", metric="api.latency",
...               stat="p95", window="5m", op=">", threshold=0.5, **{"for": "1m"})
>>> type(r).__name__, r.window, r.for_
('ThresholdRule', 300.0, 60.0)
"""
from __future__ import annotations

import math
import re
from typing import Annotated, Any, ClassVar, Literal, Optional, Union

import pydantic
from pydantic import BeforeValidator, Field

from wedmetrics.clock import parse_duration

from .matchers import Matcher, parse_matchers
from .notification import Severity
from .templating import Template, TemplateError

__all__ = [
    "AlertRule", "ThresholdRule", "RateOfChangeRule", "AbsenceRule", "AnomalyRule",
    "CompositeRule", "FeedbackPolicy", "RULE_KINDS", "NO_DATA_POLICIES", "parse_stat",
    "stat_value", "rule_adapter", "RuleError",
]

NO_DATA_POLICIES = ("alert", "ok", "keep")
_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}\Z")
_PLAIN_STATS = ("count", "sum", "min", "max", "mean", "rate")


class RuleError(ValueError):
    """A rule that is valid on its own but not in its engine: duplicate name,
    unknown metric, a composite naming unknown rules.  The message starts
    with the rule and the field."""


def _duration(v: Any) -> float:
    # parse_duration raises ValueError/TypeError naming the value; pydantic
    # adds the field name in front.
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError(f"duration must be finite, got {v!r}")
    return parse_duration(v)


def _positive_duration(v: Any) -> float:
    seconds = _duration(v)
    if seconds <= 0:
        raise ValueError(f"must be > 0, got {v!r}")
    return seconds


Duration = Annotated[float, BeforeValidator(_duration)]
PositiveDuration = Annotated[float, BeforeValidator(_positive_duration)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


def parse_stat(stat: Any) -> str:
    """Check a statistic name: count, sum, min, max, mean, rate or pNN[.N].

    ``rate`` is ``sum / window`` (per-second rate of a counter).
    """
    if not isinstance(stat, str):
        raise ValueError(f"stat must be a string such as 'p95', got {stat!r}")
    s = stat.strip().lower()
    if s in _PLAIN_STATS:
        return s
    if s.startswith("p"):
        try:
            q = float(s[1:])
        except ValueError:
            q = math.nan
        if 0.0 <= q <= 100.0:
            return s
    raise ValueError(
        f"unknown stat {stat!r}: use count, sum, min, max, mean, rate or a percentile like p95, p99.9")


def stat_value(stats, stat: str, window: float) -> float:
    """The value of ``stat`` in a :class:`~wedmetrics.WindowStats`."""
    if stat == "rate":
        return stats.sum / window
    return stats.get(stat)


def _severity(v: Any) -> Severity:
    return Severity.parse(v)


def _matchers(v: Any) -> tuple[Matcher, ...]:
    return parse_matchers(v)


class FeedbackPolicy(pydantic.BaseModel):
    """How false-positive feedback moves a rule's threshold.

    Each false positive moves the threshold one ``step`` away from firing
    (up for ``>`` rules, down for ``<`` rules, up for anomaly scores), never
    past the declared bound.

    Parameters
    ----------
    step : float
        Size of one move: a fraction of the current threshold
        (``mode="relative"``, default, 0.1 = 10 %) or an absolute amount.
    mode : {"relative", "absolute"}
    max_threshold : float, optional
        Upper bound for rules whose threshold moves up.
    min_threshold : float, optional
        Lower bound for rules whose threshold moves down.
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    step: float = Field(gt=0, allow_inf_nan=False)
    mode: Literal["relative", "absolute"] = "relative"
    max_threshold: Optional[FiniteFloat] = None
    min_threshold: Optional[FiniteFloat] = None

    def moved(self, threshold: float, upward: bool) -> float:
        """The threshold after one false positive."""
        delta = self.step * abs(threshold) if self.mode == "relative" else self.step
        if self.mode == "relative" and threshold == 0.0:
            delta = self.step  # a relative step from zero would never move
        if upward:
            out = threshold + delta
            return min(out, self.max_threshold) if self.max_threshold is not None else out
        out = threshold - delta
        return max(out, self.min_threshold) if self.min_threshold is not None else out


class AlertRule(pydantic.BaseModel):
    """Fields every rule has; ``AlertRule(kind=..., ...)`` builds the right kind.

    Parameters
    ----------
    name : str
        Unique among the rules of one :class:`~wedmetrics.alerting.AlertEngine`;
        ``[A-Za-z0-9_.:-]``, at most 128 characters.
    kind : str
        One of :data:`RULE_KINDS`.
    severity : {"info", "warning", "critical", "page"}
        Base severity; raised one level on a wedding day.
    for : duration
        How long the condition must hold before the alert fires (the
        ``pending`` state).  Written ``for_`` in Python.
    keep_firing_for : duration
        How long a firing alert stays firing after its condition clears.
    cooldown : duration
        Least time between two firing onsets of one alert: a condition that
        holds again sooner waits in ``pending`` until the cooldown has passed
        since the last onset.  What anomaly rules use to re-arm without
        holding an alert on (every firing evaluation is one more page).
    no_data : {"ok", "alert", "keep"}
        What an empty window means: the condition is false, true, or the
        alert keeps its last state.
    labels, annotations : dict of str to str
        Templates (``"{{ labels.route }} p95 is {{ value }}"``) rendered
        when an alert starts firing; ``summary`` and ``description``
        annotations become the notification's text.
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid", populate_by_name=True,
                                       arbitrary_types_allowed=True)

    name: str
    kind: str
    severity: Annotated[Severity, BeforeValidator(_severity)] = Severity.WARNING
    for_: Duration = Field(default=0.0, alias="for")
    keep_firing_for: Duration = 0.0
    cooldown: Duration = 0.0
    no_data: Literal["ok", "alert", "keep"] = "ok"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    #: Whether the rule reads series of a metric (all kinds but composite).
    reads_metric: ClassVar[bool] = True

    def __new__(cls, *args: Any, **kwargs: Any):
        if cls is AlertRule:
            kind = kwargs.get("kind")
            target = _KINDS.get(kind) if isinstance(kind, str) else None
            if target is None:
                # the adapter raises the ValidationError that names "kind"
                rule_adapter().validate_python(kwargs)
            return super().__new__(target)
        return super().__new__(cls)

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any):  # type: ignore[override]
        """Validate a dict (or a rule); on ``AlertRule`` the ``kind`` picks the class."""
        if cls is AlertRule:
            return rule_adapter().validate_python(obj, *args, **kwargs)
        return super().model_validate(obj, *args, **kwargs)

    @classmethod
    def model_validate_json(cls, json_data: Any, *args: Any, **kwargs: Any):  # type: ignore[override]
        """Validate JSON text; on ``AlertRule`` the ``kind`` picks the class."""
        if cls is AlertRule:
            return rule_adapter().validate_json(json_data, *args, **kwargs)
        return super().model_validate_json(json_data, *args, **kwargs)

    @pydantic.field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"rule name must be 1-128 of [A-Za-z0-9_.:-], got {v!r}")
        return v

    @pydantic.field_validator("labels", "annotations")
    @classmethod
    def _templates(cls, v: dict[str, str], info: pydantic.ValidationInfo) -> dict[str, str]:
        for key, text in v.items():
            if info.field_name == "labels" and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValueError(f"label name {key!r} must be an identifier")
            try:
                Template(text)
            except TemplateError as e:
                raise ValueError(f"{key}: {e}") from None
        return v

    def compiled_labels(self) -> dict[str, Template]:
        """The ``labels`` templates, compiled."""
        return {k: Template(v) for k, v in self.labels.items()}

    def compiled_annotations(self) -> dict[str, Template]:
        """The ``annotations`` templates, compiled."""
        return {k: Template(v) for k, v in self.annotations.items()}


class _SeriesRule(AlertRule):
    """A rule over the series of one metric name."""

    metric: str = Field(min_length=1)
    match: tuple[Matcher, ...] = ()
    per_series: bool = True
    window: PositiveDuration = 60.0

    _parse_match = pydantic.field_validator("match", mode="before")(
        classmethod(lambda cls, v: _matchers(v)))

    @pydantic.field_serializer("match")
    def _match_text(self, v: tuple[Matcher, ...]) -> list[str]:
        # the text form parses back: dumped rules load again
        return [str(m) for m in v]


class _Compared(_SeriesRule):
    """A statistic compared with a threshold, with optional hysteresis."""

    stat: str = "mean"
    op: Literal[">", ">=", "<", "<="] = ">"
    threshold: FiniteFloat
    recovery_threshold: Optional[FiniteFloat] = None
    feedback: Optional[FeedbackPolicy] = None

    @pydantic.field_validator("stat", mode="before")
    @classmethod
    def _stat(cls, v: Any) -> str:
        return parse_stat(v)

    @property
    def above(self) -> bool:
        """True when the rule fires on values above its threshold."""
        return self.op in (">", ">=")

    @pydantic.model_validator(mode="after")
    def _hysteresis(self) -> "_Compared":
        r = self.recovery_threshold
        if r is not None:
            if self.above and r > self.threshold:
                raise ValueError(f"recovery_threshold ({r}) must be <= threshold ({self.threshold}) "
                                 f"for op {self.op!r}: an alert recovers below where it fires")
            if not self.above and r < self.threshold:
                raise ValueError(f"recovery_threshold ({r}) must be >= threshold ({self.threshold}) "
                                 f"for op {self.op!r}: an alert recovers above where it fires")
        fb = self.feedback
        if fb is not None:
            if self.above and fb.max_threshold is not None and fb.max_threshold < self.threshold:
                raise ValueError(f"feedback.max_threshold ({fb.max_threshold}) is below threshold "
                                 f"({self.threshold})")
            if not self.above and fb.min_threshold is not None and fb.min_threshold > self.threshold:
                raise ValueError(f"feedback.min_threshold ({fb.min_threshold}) is above threshold "
                                 f"({self.threshold})")
        return self


class ThresholdRule(_Compared):
    """``stat`` over the last ``window`` compared with ``threshold``.

    Parameters
    ----------
    metric : str
        Metric name; must exist in the engine when the rule is added.
    match : list of str or dict
        Label matchers (``['route=~"/photos.*"']`` or ``{"route": "/photos"}``)
        choosing the series of the metric.
    per_series : bool
        One alert per matching series (default), or one over their merge.
    stat : str
        ``count``, ``sum``, ``min``, ``max``, ``mean``, ``rate`` or ``pNN``.
    window : duration
    op : {">", ">=", "<", "<="}
    threshold : float
    recovery_threshold : float, optional
        A firing alert resolves only once the value is back on the good
        side of this (hysteresis); default: the threshold itself.
    scale_by : {"guest_count"}, optional
        Scale threshold and recovery threshold by the series' wedding size.
    feedback : FeedbackPolicy, optional
    """

    kind: Literal["threshold"] = "threshold"
    scale_by: Optional[Literal["guest_count"]] = None


class RateOfChangeRule(_Compared):
    """How ``stat`` changed between the previous ``window`` and the last one.

    Parameters
    ----------
    change : {"relative", "absolute", "per_second"}
        ``(now - before) / |before|`` (0.5 = +50 %), ``now - before``, or
        ``(now - before) / window``.  The threshold is compared with it:
        ``op=">", threshold=0.5`` fires on a rise of more than 50 %.
    """

    kind: Literal["rate_of_change"] = "rate_of_change"
    change: Literal["relative", "absolute", "per_second"] = "relative"


class AbsenceRule(_SeriesRule):
    """Fires when a series (or the merged metric) has no points in ``window``.

    Empty windows are the condition itself, so ``no_data`` does not apply.
    """

    kind: Literal["absence"] = "absence"


class AnomalyRule(_SeriesRule):
    """``stat`` of each closed ``step`` bucket scored against an adaptive baseline.

    The scoring is :mod:`wedmetrics.alerting.detectors`' (the ensemble of
    anomaly likelihoods, the robust median/MAD z-score over level, step and
    short mean, or EWMA), fed one closed bucket at a time.

    An anomaly alert is a pulse: it fires for the one evaluation at which
    the detector flags and resolves at the next, so a firing row is a
    notification; ``cooldown`` keeps it from firing again too soon (the
    default rule set uses 100 steps).

    Parameters
    ----------
    step : duration
        Bucket width the detector reads; must be a resolution of the engine
        (1s, 1m, 5m, 1h by default).
    stat : str
        Statistic of each bucket (default ``mean``); empty buckets are "no data".
    detector : {"robust", "ewma", "ensemble"}
        ``ensemble`` (:mod:`wedmetrics.alerting.ensemble`): its score and
        ``threshold`` are nines of anomaly likelihood (5: ``1 - 1e-5``).
    baseline : int
        Buckets in the rolling median/MAD window (``robust``, and the
        robust scorers of ``ensemble``).
    min_points : int
        Buckets the baseline needs before it scores anything.
    alpha : float
        EWMA smoothing factor (``ewma``).
    seasonality : {"daily", "weekly"}, optional
        Score ``x[t] - x[t - season]``, removing a daily or weekly pattern.
    threshold : float
        Score (robust standard deviations) at which a bucket is anomalous.
    surprise_window : int
        A bucket is anomalous only if one of the detector's views (level,
        step, short mean) reaches the threshold and beats every score of
        that view over the previous ``surprise_window`` buckets (0: off).
    scorers : list of {"robust", "knn", "seasonal", "art", "context"}
        Raw scorers of ``ensemble`` (``seasonal`` lags one day of steps;
        ``art`` and ``context`` are :mod:`wedmetrics.alerting.art` and
        :mod:`wedmetrics.alerting.contextual`).
    calibration : int
        Previous scores each ``ensemble`` score is ranked against.
    likelihood_window, averaging, learning : int
        The ``ensemble``'s anomaly likelihood: buckets its Gaussian is fitted
        to, raw scores in its short-term average, buckets before it scores.
    novelty_tolerance : float, optional
        ``ensemble`` only: a bucket beyond the range of the previous
        ``likelihood_window`` buckets by more than this share of that range
        is anomalous at once (:mod:`wedmetrics.alerting.spatial`; the
        default rule uses NAB's 0.05).  Unset: no range check.
    feedback : FeedbackPolicy, optional
        Moves ``threshold`` up on false positives.
    """

    kind: Literal["anomaly"] = "anomaly"
    step: PositiveDuration = 60.0
    stat: str = "mean"
    detector: Literal["robust", "ewma", "ensemble"] = "robust"
    baseline: int = Field(default=60, ge=2)
    min_points: int = Field(default=10, ge=2)
    alpha: float = Field(default=0.02, gt=0, lt=1)
    mean_span: int = Field(default=6, ge=1)
    seasonality: Optional[Literal["daily", "weekly"]] = None
    threshold: float = Field(default=5.0, gt=0, allow_inf_nan=False)
    surprise_window: int = Field(default=0, ge=0)
    scorers: tuple[Literal["robust", "knn", "seasonal", "art", "context"], ...] = ("robust", "knn")
    calibration: int = Field(default=4000, ge=1)
    likelihood_window: int = Field(default=8640, ge=2)
    averaging: int = Field(default=10, ge=1)
    learning: int = Field(default=300, ge=0)
    novelty_tolerance: Optional[float] = Field(default=None, ge=0, allow_inf_nan=False)
    feedback: Optional[FeedbackPolicy] = None

    @pydantic.field_validator("stat", mode="before")
    @classmethod
    def _stat(cls, v: Any) -> str:
        return parse_stat(v)

    @property
    def above(self) -> bool:
        """Anomaly scores fire upwards (feedback raises the threshold)."""
        return True

    @property
    def season(self) -> int:
        """Seasonal lag in buckets (0 without seasonality)."""
        if self.seasonality is None:
            return 0
        return int(round({"daily": 86400.0, "weekly": 604800.0}[self.seasonality] / self.step))

    @property
    def day_lag(self) -> int:
        """A day in buckets (at least 1): the lag of the ``seasonal`` scorer."""
        return max(1, int(round(86400.0 / self.step)))

    @pydantic.model_validator(mode="after")
    def _detector_config(self) -> "AnomalyRule":
        if self.seasonality is not None:
            period = {"daily": 86400.0, "weekly": 604800.0}[self.seasonality]
            if abs(period / self.step - round(period / self.step)) > 1e-9:
                raise ValueError(f"step ({self.step:g}s) must divide the {self.seasonality} period")
        if self.min_points > self.baseline:
            raise ValueError(f"min_points ({self.min_points}) must be <= baseline ({self.baseline})")
        self.detector_config(self.threshold)  # raises ValueError naming the parameter
        return self

    def detector_config(self, threshold: float | None = None):
        """The :class:`~wedmetrics.alerting.detectors.DetectorConfig` of this rule.

        The rule compares scores with its (feedback-adjusted) threshold
        itself, so the detector's own threshold is set to the smallest
        positive value and its verdict only carries the surprise gate.
        """
        from .detectors import DetectorConfig

        return DetectorConfig(method=self.detector, window=self.baseline,
                              min_periods=self.min_points,
                              threshold=threshold if threshold is not None else 1e-12,
                              surprise_window=self.surprise_window, mean_span=self.mean_span,
                              alpha=self.alpha, season=self.season, consecutive=1, cooldown=0,
                              scorers=tuple(self.scorers), season_lag=self.day_lag,
                              calibration=self.calibration,
                              likelihood_window=self.likelihood_window,
                              averaging=self.averaging, learning=self.learning,
                              novelty_tolerance=self.novelty_tolerance)


class CompositeRule(AlertRule):
    """Fires while ``all`` (or ``any``) of the named rules have a firing alert.

    Parameters
    ----------
    rules : list of str
        Names of other rules of the same engine (no cycles).
    op : {"all", "any"}
    """

    kind: Literal["composite"] = "composite"
    rules: tuple[str, ...] = Field(min_length=1)
    op: Literal["all", "any"] = "all"

    reads_metric: ClassVar[bool] = False

    @pydantic.field_validator("rules")
    @classmethod
    def _distinct(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError(f"rules must be distinct, got {list(v)}")
        return v


_KINDS: dict[str, type[AlertRule]] = {
    "threshold": ThresholdRule,
    "rate_of_change": RateOfChangeRule,
    "absence": AbsenceRule,
    "anomaly": AnomalyRule,
    "composite": CompositeRule,
}
RULE_KINDS = tuple(_KINDS)

AnyRule = Annotated[Union[ThresholdRule, RateOfChangeRule, AbsenceRule, AnomalyRule, CompositeRule],
                    Field(discriminator="kind")]
_ADAPTER: list[pydantic.TypeAdapter] = []


def rule_adapter() -> pydantic.TypeAdapter:
    """The TypeAdapter of the discriminated union of every rule kind."""
    if not _ADAPTER:
        _ADAPTER.append(pydantic.TypeAdapter(AnyRule, config=pydantic.ConfigDict(title="AlertRule")))
    return _ADAPTER[0]
