"""Rule models, loading from dict / JSON / YAML, field-naming errors, and the templater."""
from __future__ import annotations

import json
import math

import pydantic
import pytest

from wedmetrics.alerting import (AbsenceRule, AlertRule, AnomalyRule, CompositeRule,
                                 RateOfChangeRule, RuleError, Severity, Template, TemplateError,
                                 ThresholdRule, load_rules, parse_rules)
from wedmetrics.alerting.rules import FeedbackPolicy, parse_stat

BASE = dict(kind="threshold", name="Slow", metric="api.latency", stat="p95", window="5m",
            op=">", threshold=0.5)


def error_of(data) -> pydantic.ValidationError:
    with pytest.raises(pydantic.ValidationError) as info:
        AlertRule.model_validate(data)
    return info.value


def fields(err: pydantic.ValidationError) -> list[str]:
    return [".".join(str(x) for x in e["loc"]) for e in err.errors()]


# --------------------------------------------------------------------------- building rules


def test_the_kind_picks_the_class_from_kwargs_and_dicts():
    assert type(AlertRule(**BASE)) is ThresholdRule
    cases = {
        "rate_of_change": (RateOfChangeRule, dict(metric="m", threshold=0.5)),
        "absence": (AbsenceRule, dict(metric="m")),
        "anomaly": (AnomalyRule, dict(metric="m", step="1m")),
        "composite": (CompositeRule, dict(rules=["a", "b"])),
    }
    for kind, (cls, extra) in cases.items():
        rule = AlertRule.model_validate({"kind": kind, "name": f"r-{kind}", **extra})
        assert type(rule) is cls and rule.kind == kind
        assert type(AlertRule(kind=kind, name="x", **extra)) is cls
    assert isinstance(ThresholdRule(**BASE), AlertRule)


def test_defaults_durations_and_severity_parsing():
    r = AlertRule(**BASE, **{"for": "2m"}, keep_firing_for=30, severity="CRITICAL")
    assert (r.window, r.for_, r.keep_firing_for) == (300.0, 120.0, 30.0)
    assert r.severity is Severity.CRITICAL
    assert (r.no_data, r.per_series, r.match, r.recovery_threshold) == ("ok", True, (), None)
    assert AlertRule(**dict(BASE, severity=3)).severity is Severity.PAGE
    r = AlertRule(**BASE, match={"route": "/photos"})
    assert [str(m) for m in r.match] == ['route="/photos"']
    r = AlertRule(**BASE, match=['route=~"/photos.*"', 'org!="test"'])
    assert [m.op for m in r.match] == ["=~", "!="]


def test_rules_are_frozen_and_round_trip_through_json():
    r = AlertRule(**BASE, labels={"team": "web"}, annotations={"summary": "{{ value }}"})
    with pytest.raises(pydantic.ValidationError):
        r.threshold = 2.0
    dumped = r.model_dump_json(by_alias=True)
    again = AlertRule.model_validate_json(dumped)
    assert again == r and json.loads(dumped)["for"] == 0.0


@pytest.mark.parametrize("stat, ok", [
    ("p95", "p95"), ("P99.9", "p99.9"), ("mean", "mean"), ("rate", "rate"), ("p0", "p0"),
    ("p100", "p100"),
])
def test_parse_stat_accepts(stat, ok):
    assert parse_stat(stat) == ok


@pytest.mark.parametrize("stat", ["p95x", "p101", "median", "", 95, "p-1"])
def test_parse_stat_rejects(stat):
    with pytest.raises(ValueError, match="stat"):
        parse_stat(stat)


# --------------------------------------------------------------------------- validation errors name the field


@pytest.mark.parametrize("change, field, words", [
    (dict(stat="p95x"), "threshold.stat", "unknown stat 'p95x'"),
    (dict(window="-5m"), "threshold.window", "cannot parse duration '-5m'"),
    (dict(window=-5), "threshold.window", ">= 0"),
    (dict(window=0), "threshold.window", "must be > 0"),
    (dict(threshold="high"), "threshold.threshold", "valid number"),
    (dict(threshold=float("nan")), "threshold.threshold", "finite"),
    (dict(op="=>"), "threshold.op", "'>', '>=', '<' or '<='"),
    (dict(severity="urgent"), "threshold.severity", "severity must be one of"),
    (dict(no_data="ignore"), "threshold.no_data", "'ok', 'alert' or 'keep'"),
    (dict(name="has space"), "threshold.name", "rule name must be"),
    (dict(scale_by="venue_size"), "threshold.scale_by", "guest_count"),
    (dict(treshold=1), "threshold.treshold", "Extra inputs are not permitted"),
    (dict(annotations={"summary": "{{ lables.route }}"}), "threshold.annotations",
     "unknown name 'lables'"),
    (dict(labels={"bad-name": "x"}), "threshold.labels", "must be an identifier"),
    (dict(match=['route=~"("']), "threshold.match", "invalid regex"),
])
def test_malformed_rules_name_the_field(change, field, words):
    err = error_of({**BASE, **change})
    assert field in fields(err)
    assert words in str(err)


def test_negative_for_names_the_alias():
    err = error_of({**BASE, "for": "-1s"})
    assert fields(err) == ["threshold.for"]


def test_missing_and_unknown_kind():
    err = error_of({k: v for k, v in BASE.items() if k != "kind"})
    assert "kind" in str(err)
    err = error_of({**BASE, "kind": "treshold"})
    assert "'threshold', 'rate_of_change', 'absence', 'anomaly', 'composite'" in str(err)
    with pytest.raises(pydantic.ValidationError, match="does not match any of the expected tags"):
        AlertRule(**{**BASE, "kind": "nope"})


def test_missing_required_fields():
    err = error_of({"kind": "threshold", "name": "x"})
    assert set(fields(err)) == {"threshold.metric", "threshold.threshold"}
    err = error_of({"kind": "composite", "name": "c", "rules": []})
    assert fields(err) == ["composite.rules"]


def test_hysteresis_must_sit_on_the_recovering_side():
    with pytest.raises(pydantic.ValidationError, match=r"recovery_threshold \(0.8\) must be <= threshold"):
        AlertRule(**BASE, recovery_threshold=0.8)
    with pytest.raises(pydantic.ValidationError, match=r"must be >= threshold"):
        AlertRule(**dict(BASE, op="<"), recovery_threshold=0.1)
    assert AlertRule(**BASE, recovery_threshold=0.4).recovery_threshold == 0.4


def test_feedback_bounds_are_checked():
    with pytest.raises(pydantic.ValidationError, match=r"feedback.max_threshold \(0.2\) is below"):
        AlertRule(**BASE, feedback={"step": 0.1, "max_threshold": 0.2})
    with pytest.raises(pydantic.ValidationError, match="step"):
        AlertRule(**BASE, feedback={"step": 0})
    fb = FeedbackPolicy(step=0.5, max_threshold=2.0)
    assert [fb.moved(1.0, True), fb.moved(1.8, True), fb.moved(0.0, True)] == [1.5, 2.0, 0.5]
    fb = FeedbackPolicy(step=2, mode="absolute", min_threshold=5)
    assert [fb.moved(10, False), fb.moved(6, False)] == [8, 5]


def test_anomaly_rule_parameters_are_checked():
    rule = AlertRule(kind="anomaly", name="a", metric="m", step="5m", seasonality="daily")
    assert rule.season == 288 and rule.detector_config().season == 288
    with pytest.raises(pydantic.ValidationError, match="must divide the daily period"):
        AlertRule(kind="anomaly", name="a", metric="m", step="7m", seasonality="daily")
    with pytest.raises(pydantic.ValidationError, match=r"min_points \(50\) must be <= baseline"):
        AlertRule(kind="anomaly", name="a", metric="m", baseline=20, min_points=50)
    with pytest.raises(pydantic.ValidationError, match="anomaly.detector"):
        AlertRule.model_validate({"kind": "anomaly", "name": "a", "metric": "m",
                                  "detector": "prophet"})


def test_composite_rules_must_be_distinct():
    with pytest.raises(pydantic.ValidationError, match="distinct"):
        AlertRule(kind="composite", name="c", rules=["a", "a"])


# --------------------------------------------------------------------------- loading


YAML = """
rules:
  - name: SlowPhotos
    kind: threshold
    metric: api.latency
    match: {route: /photos}
    stat: p95
    window: 5m
    op: ">"
    threshold: 0.5
    recovery_threshold: 0.4
    for: 2m
    severity: critical
    annotations:
      summary: "{{ labels.route }} p95 is {{ value | ms }}"
  - name: NoHeartbeat
    kind: absence
    metric: heartbeat
    window: 2m
  - name: Both
    kind: composite
    rules: [SlowPhotos, NoHeartbeat]
"""


def test_load_rules_from_yaml_file_json_file_and_text(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(YAML)
    rules = load_rules(path)
    assert [(r.name, r.kind) for r in rules] == [
        ("SlowPhotos", "threshold"), ("NoHeartbeat", "absence"), ("Both", "composite")]
    assert rules[0].for_ == 120.0 and rules[0].severity is Severity.CRITICAL
    as_json = tmp_path / "rules.json"
    as_json.write_text(json.dumps([r.model_dump(mode="json", by_alias=True) for r in rules]))
    assert load_rules(as_json) == rules
    assert load_rules(YAML) == rules
    assert load_rules(str(path)) == rules


def test_load_errors_name_file_rule_and_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(YAML.replace("window: 5m", "window: 0s"))
    with pytest.raises(RuleError, match=r"bad.yaml: rules\[0\] 'SlowPhotos': window: must be > 0"):
        load_rules(path)
    path.write_text(YAML.replace("name: NoHeartbeat", "name: SlowPhotos"))
    with pytest.raises(RuleError, match=r"rules\[1\] 'SlowPhotos': name: 'SlowPhotos' is already "
                                        r"used by rules\[0\]"):
        load_rules(path)
    path.write_text("rules: [\n")
    with pytest.raises(RuleError, match="bad.yaml: cannot parse"):
        load_rules(path)
    with pytest.raises(RuleError, match=r"unknown top-level keys \['rule'\]"):
        parse_rules({"rule": []})
    with pytest.raises(RuleError, match=r"rules\[0\]: a rule must be a mapping, got str"):
        parse_rules(["SlowPhotos"])
    with pytest.raises(RuleError, match=r"rules\[0\] 'x': kind: "):
        parse_rules([{"name": "x", "kind": "nope"}])
    with pytest.raises(FileNotFoundError, match="no rules file"):
        load_rules(tmp_path / "missing.yaml")


# --------------------------------------------------------------------------- templating


def test_template_renders_labels_values_and_filters():
    ctx = {"labels": {"route": "/photos"}, "value": 0.41234, "threshold": 0.3, "rule": "Slow"}
    assert Template("{{ labels.route }} p95 {{ value }}").render(ctx) == "/photos p95 0.41234"
    assert Template("{{value:.1f}}|{{ value | ms }}|{{ value|pct }}").render(ctx) == \
        "0.4|412ms|41.2%"
    assert Template("{{ labels.missing }}!").render(ctx) == "!"
    assert Template("{{ rule | upper }}").render(ctx) == "SLOW"
    assert Template("{{ value }}").render({"value": math.nan}) == "NaN"
    assert Template("plain").is_constant and not Template("{{ value }}").is_constant


def test_template_never_evaluates_code():
    ctx = {"labels": {"x": "{{ value }}"}, "value": 1.0}
    # a label value holding template text is printed, not rendered again
    assert Template("{{ labels.x }}").render(ctx) == "{{ value }}"

    class Secretive:
        _private = "hidden"
        public = "shown"

    assert Template("{{ wedding.public }}").render({"wedding": Secretive()}) == "shown"


@pytest.mark.parametrize("text, words", [
    ("{{ value.__class__ }}", "dotted name"),
    ("{{ wedding._private }}", "no segment may start with '_'"),
    ("{{ __import__('os') }}", "dotted name"),
    ("{{ lables.route }}", "unknown name 'lables'"),
    ("{{ value | shout }}", "unknown filter 'shout'"),
    ("{{ value:{0} }}", "invalid format spec"),
    ("{{ value ", "unbalanced"),
    ("{{ }}", "dotted name"),
])
def test_bad_templates_are_rejected(text, words):
    with pytest.raises(TemplateError, match=words):
        Template(text)
