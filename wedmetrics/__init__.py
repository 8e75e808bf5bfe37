"""wedmetrics: embeddable real-time metrics with wedding-aware alerting.

Record points in-process, query multi-resolution windows with percentiles,
evaluate alert rules, notify people and flush rollups to a store.

>>> import wedmetrics as wm
>>> engine = wm.MetricsEngine(clock=wm.ManualClock(0.0))
>>> engine.series("api.latency").record(0.25)
>>> engine.query("api.latency", last="5m").max
0.25
"""
from __future__ import annotations

from importlib import import_module

from ._kernels import HAVE_COMPILED, Sketch
from .aggregation import AggregationEngine, Columns, WindowStats
from .buckets import BucketBatch, SeriesKey
from .clock import Clock, ManualClock, WallClock, parse_duration
from .engine import IngestResult, MetricsEngine, SeriesHandle
from .errors import (CardinalityError, EngineClosedError, InvalidPointError, LatePointError,
                     UnknownSeriesError, WedmetricsError)

__version__ = "0.1.0"

# Heavier parts load on first use so that `import wedmetrics` stays light.
_LAZY = {
    "MemoryBackend": "wedmetrics.storage",
    "SQLiteBackend": "wedmetrics.storage",
    "TimescaleBackend": "wedmetrics.storage",
    "StorageBackend": "wedmetrics.storage",
    "AlertEngine": "wedmetrics.alerting",
    "load_alertmanager_config": "wedmetrics.alerting",
    "AlertmanagerNotifier": "wedmetrics.alerting",
    "AlertRule": "wedmetrics.alerting",
    "load_rules": "wedmetrics.alerting",
    "Severity": "wedmetrics.alerting",
    "Notification": "wedmetrics.alerting",
    "LogNotifier": "wedmetrics.alerting",
    "EmailNotifier": "wedmetrics.alerting",
    "SlackNotifier": "wedmetrics.alerting",
    "WebhookNotifier": "wedmetrics.alerting",
    "SmsNotifier": "wedmetrics.alerting",
    "Route": "wedmetrics.alerting",
    "Silence": "wedmetrics.alerting",
    "InhibitRule": "wedmetrics.alerting",
    "MuteInterval": "wedmetrics.alerting",
    "EscalationPolicy": "wedmetrics.alerting",
    "Wedding": "wedmetrics.weddings",
    "WeddingCalendar": "wedmetrics.weddings",
    "PriorityPolicy": "wedmetrics.weddings",
    "Collector": "wedmetrics.collect",
    "simulate": "wedmetrics.collect.simulate",
    "http": "wedmetrics.http",
    "backtest": "wedmetrics.alerting.backtest",
    "default_anomaly_rules": "wedmetrics.alerting.backtest",
    "BacktestResult": "wedmetrics.alerting.backtest",
    "AlertEvent": "wedmetrics.storage",
    "RuleState": "wedmetrics.storage",
    "Flusher": "wedmetrics.storage",
    "InvalidKeyError": "wedmetrics.storage",
    "ThresholdRule": "wedmetrics.alerting",
    "RateOfChangeRule": "wedmetrics.alerting",
    "AbsenceRule": "wedmetrics.alerting",
    "AnomalyRule": "wedmetrics.alerting",
    "CompositeRule": "wedmetrics.alerting",
    "FeedbackPolicy": "wedmetrics.alerting",
    "RuleError": "wedmetrics.alerting",
    "TickResult": "wedmetrics.alerting",
    "NotificationGroup": "wedmetrics.alerting",
    "DeliveryQueue": "wedmetrics.alerting",
    "RetryPolicy": "wedmetrics.alerting",
    "RoutingConfig": "wedmetrics.alerting",
    "Dispatcher": "wedmetrics.alerting",
    "Sample": "wedmetrics.collect",
    "Source": "wedmetrics.collect",
    "SystemSource": "wedmetrics.collect",
    "ProcessSource": "wedmetrics.collect",
    "CallableSource": "wedmetrics.collect",
    "Timer": "wedmetrics.collect",
    "timed": "wedmetrics.collect",
    "counted": "wedmetrics.collect",
    "InProgress": "wedmetrics.collect",
    "ASGIMetricsMiddleware": "wedmetrics.collect",
    "WSGIMetricsMiddleware": "wedmetrics.collect",
    "RemoteWriteExporter": "wedmetrics.export.remote_write",
}


_MODULES = {"simulate", "http"}   # lazy names that are modules, not attributes


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'wedmetrics' has no attribute {name!r}")
    mod = import_module(module)
    value = mod if name in _MODULES else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_LAZY))


__all__ = [
    "HAVE_COMPILED", "Sketch", "AggregationEngine", "Columns", "WindowStats", "BucketBatch",
    "SeriesKey", "Clock", "ManualClock", "WallClock", "parse_duration", "IngestResult",
    "MetricsEngine", "SeriesHandle", "CardinalityError", "InvalidPointError", "LatePointError",
    "UnknownSeriesError", "WedmetricsError", "EngineClosedError", *_LAZY,
]
