"""Alerting: rules over the metrics engine, their lifecycle, routing and notifiers.

>>> import wedmetrics as wm
>>> from wedmetrics.alerting import AlertEngine, AlertRule
>>> engine = wm.MetricsEngine(clock=wm.ManualClock(1_700_000_000.0))
>>> engine.series("api.latency", labels={"route": "/photos"}).record(0.9)
>>> with AlertEngine(engine) as alerts:
...     _ = alerts.add_rule({"kind": "threshold", "name": "Slow", "metric": "api.latency",
...                          "stat": "p95", "window": "5m", "op": ">", "threshold": 0.5})
...     alerts.evaluate().count("firing")
1
>>> engine.close()
"""
from __future__ import annotations

from .alertmanager_config import AlertmanagerConfig, load_alertmanager_config
from .alertmanager_notifier import AlertmanagerNotifier
from .delivery import DeadLetter, DeliveryQueue, RetryPolicy
from .detectors import DetectorConfig, detect, make_detector
from .engine import ALL_RECEIVERS, DEFAULT_GROUP_INTERVAL, AlertEngine, AlertView, History, fingerprint
from .escalation import Escalation, EscalationLevel, EscalationPolicy
from .evaluation import STATE_NAMES, TickResult
from .loading import load_rules, parse_rules
from .matchers import Matcher, parse_matchers
from .notification import Notification, NotificationGroup, Severity
from .notifiers import (DeliveryError, EmailNotifier, LogNotifier, Notifier, Secret, SlackNotifier,
                        SmsNotifier, WebhookNotifier, verify_signature)
from .routing import Dispatcher, Route, RoutingConfig
from .rules import (AbsenceRule, AlertRule, AnomalyRule, CompositeRule, FeedbackPolicy,
                    RateOfChangeRule, RuleError, ThresholdRule)
from .silences import DEFAULT_INHIBIT_RULE, InhibitRule, MuteInterval, Silence, SilenceStore
from .templating import Template, TemplateError

__all__ = [
    "load_alertmanager_config", "AlertmanagerConfig", "AlertmanagerNotifier",
    "AlertEngine", "AlertView", "History", "ALL_RECEIVERS", "DEFAULT_GROUP_INTERVAL",
    "fingerprint", "TickResult", "DetectorConfig", "make_detector", "detect", "Escalation",
    "STATE_NAMES", "AlertRule", "ThresholdRule", "RateOfChangeRule", "AbsenceRule", "AnomalyRule",
    "CompositeRule", "FeedbackPolicy", "RuleError", "load_rules", "parse_rules", "Template",
    "TemplateError", "Matcher", "parse_matchers", "Notification", "NotificationGroup", "Severity",
    "Notifier", "LogNotifier", "EmailNotifier", "SlackNotifier", "WebhookNotifier", "SmsNotifier",
    "Secret", "DeliveryError", "verify_signature", "DeliveryQueue", "RetryPolicy", "DeadLetter",
    "Route", "RoutingConfig", "Dispatcher", "EscalationPolicy", "EscalationLevel", "Silence",
    "InhibitRule", "MuteInterval", "SilenceStore", "DEFAULT_INHIBIT_RULE",
]
