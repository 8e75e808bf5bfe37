"""The hub's HTTP face: ``/metrics`` against prometheus_client, in the same run.

Run: ``python -m pytest benchmarks/bench_http.py --benchmark-only -s -p no:cacheprovider``
(``-s`` prints the figures; ``WEDMETRICS_BENCH_JSON=path`` also writes them as JSON).

``/metrics`` for 10,000 series (one metric, two labels, five minutes of
traffic at a point per series per second): the exposition renders a summary
per series (p50/p95/p99 over the last 5 minutes from the engine's sketches,
cumulative ``_count``/``_sum``).  The peers are prometheus_client's own
strongest idiom, ``generate_latest(registry)`` over a ``CollectorRegistry``
holding the same 10,000 label sets as ``Histogram`` children (default 15
buckets) and as ``Summary`` children (count and sum only: that client keeps
no quantiles).  All three are timed in interleaved rounds, so the machine's
load weighs on each alike; medians are compared.
"""
from __future__ import annotations

import statistics
import time

import numpy as np
import pytest

import wedmetrics as wm
from wedmetrics.http.exposition import Exposition

from figures import FIGURES, report

T0 = 1_781_000_000.0
N_SERIES = 10_000


def _engine_with_traffic(seconds: int = 300):
    clock = wm.ManualClock(T0)
    engine = wm.MetricsEngine(clock=clock)
    handles = [engine.series("api.latency", {"route": f"/r{i}", "code": "200"})
               for i in range(N_SERIES)]
    ids = np.array([h.id for h in handles], dtype=np.int64)
    rng = np.random.default_rng(3)
    for k in range(seconds):
        engine.record_many(ids, np.full(N_SERIES, T0 + k + 0.5), rng.lognormal(-2, 0.5, N_SERIES))
    clock.set(T0 + seconds)
    return clock, engine, ids, rng


def _prometheus_client_registry(kind: str):
    from prometheus_client import CollectorRegistry, Histogram, Summary

    registry = CollectorRegistry()
    cls = Histogram if kind == "histogram" else Summary
    metric = cls("api_latency", "API latency", ["route", "code"], registry=registry)
    rng = np.random.default_rng(3)
    for i in range(N_SERIES):
        child = metric.labels(f"/r{i}", "200")
        for v in rng.lognormal(-2, 0.5, 5).tolist():
            child.observe(v)
    return registry


def test_metrics_exposition_10k_series_vs_prometheus_client(benchmark):
    from prometheus_client import generate_latest

    clock, engine, ids, rng = _engine_with_traffic()
    exposition = Exposition(engine)
    first = time.perf_counter()
    body, _ = exposition.render()
    first_ms = (time.perf_counter() - first) * 1e3
    assert body.count(b"\napi_latency_count{") == N_SERIES
    histograms = _prometheus_client_registry("histogram")
    summaries = _prometheus_client_registry("summary")
    assert generate_latest(histograms).count(b"api_latency_count{") == N_SERIES

    def next_second():
        # live: a second of traffic lands between scrapes and the windows move
        now = clock.now()
        engine.record_many(ids, np.full(N_SERIES, now + 0.5), rng.lognormal(-2, 0.5, N_SERIES))
        clock.set(now + 1.0)

    ours, hist, summ = [], [], []
    for _ in range(7):
        next_second()
        t = time.perf_counter()
        exposition.render()
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        generate_latest(histograms)
        hist.append(time.perf_counter() - t)
        t = time.perf_counter()
        generate_latest(summaries)
        summ.append(time.perf_counter() - t)
    benchmark.pedantic(exposition.render, setup=lambda: next_second() and None, rounds=5,
                       iterations=1, warmup_rounds=0)
    ours_ms = statistics.median(ours + [benchmark.stats.stats.median]) * 1e3
    hist_ms = statistics.median(hist) * 1e3
    summ_ms = statistics.median(summ) * 1e3
    report("metrics_10k_series", wedmetrics_ms=ours_ms, first_scrape_ms=first_ms,
           prometheus_client_histograms_ms=hist_ms, prometheus_client_summaries_ms=summ_ms,
           vs_histograms=hist_ms / ours_ms, vs_summaries=summ_ms / ours_ms,
           body_bytes=len(body), compiled=wm.HAVE_COMPILED)
    benchmark.extra_info.update(FIGURES["metrics_10k_series"])
    if wm.HAVE_COMPILED:
        assert hist_ms / ours_ms >= 10.0
        assert summ_ms / ours_ms > 1.0
    engine.close()
