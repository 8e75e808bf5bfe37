"""Collection: the background :class:`Collector`, its sources and buffer,
instrumentation helpers for service code, ASGI/WSGI request middleware, and the wedding-traffic simulator
(:mod:`wedmetrics.collect.simulate`)."""
from . import simulate
from .buffer import OVERFLOW_POLICIES, BoundedBuffer, Sample
from .collector import Collector, CollectorSelfSource
from .instrument import InProgress, Timer, counted, timed
from .middleware import ASGIMetricsMiddleware, WSGIMetricsMiddleware
from .sources import CallableSource, ProcessSource, Source, SystemSource

__all__ = ["Collector", "CollectorSelfSource", "Sample", "BoundedBuffer", "OVERFLOW_POLICIES", "Source",
           "CallableSource", "SystemSource", "ProcessSource", "Timer", "timed", "counted",
           "InProgress", "ASGIMetricsMiddleware", "WSGIMetricsMiddleware", "simulate"]
