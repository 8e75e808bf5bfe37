"""End to end: MetricsEngine with a storage backend, history merged from storage and memory."""
from __future__ import annotations

import numpy as np
import pytest

import wedmetrics as wm
from wedmetrics.buckets import SeriesKey
from wedmetrics.storage import MemoryBackend, SQLiteBackend

T0 = 1_699_999_200.0          # a whole hour


def feed(engine, h, start, minutes, seed):
    rng = np.random.default_rng(seed)
    values = rng.lognormal(-2.0, 0.8, size=minutes * 20)
    ts = start + np.repeat(np.arange(minutes) * 60.0, 20) + np.tile(np.arange(20) * 3.0, minutes)
    engine.record_many(np.full(len(ts), h.id), ts, values)
    return ts, values


def test_closed_buckets_reach_sqlite_and_history_merges(tmp_path):
    path = tmp_path / "metrics.db"
    clock = wm.ManualClock(T0)
    engine = wm.MetricsEngine(clock=clock, storage=SQLiteBackend(path, org_id="org-1"),
                              retention={"1m": "30m"}, flush_options={"thread": False})
    h = engine.series("api.latency", labels={"route": "/photos"})
    ts, values = feed(engine, h, T0, 90, seed=1)
    clock.set(T0 + 90 * 60 + 10)
    hist = engine.history(h, "1m", T0, T0 + 90 * 60)
    # memory holds the last 30 minutes; storage has the rest, nothing twice
    assert len(hist) == 90 and int(hist.count.sum()) == len(values)
    np.testing.assert_array_equal(hist.start, T0 + 60 * np.arange(90))
    assert np.all(hist.closed)
    engine.close()

    # a later process reads it back from the file
    again = SQLiteBackend(path, org_id="org-1")
    key = SeriesKey.of("api.latency", {"route": "/photos"})
    stored = again.read_buckets(key, 60.0, T0, T0 + 90 * 60)
    assert len(stored) == 90 and int(stored.count.sum()) == len(values)
    s = again.read_merged("api.latency", 60.0, T0, T0 + 90 * 60)
    exact = np.sort(values)[int(np.floor(0.95 * (len(values) - 1)))]
    assert abs(s.p95 - exact) <= 0.01 * exact * 1.0001
    assert again.read_merged("api.latency", 3600.0, T0, T0 + 2 * 3600).count == len(values)
    again.close()


def test_two_engines_give_the_global_percentile_of_one():
    store = MemoryBackend.shared_store()
    one_clock = wm.ManualClock(T0)
    whole = wm.MetricsEngine(clock=one_clock)
    hw = whole.series("api.latency")
    everything, times = [], []
    for host, seed in (("h1", 2), ("h2", 3)):
        e = wm.MetricsEngine(clock=wm.ManualClock(T0),
                             storage=MemoryBackend("org-1", store=store),
                             flush_options={"thread": False})
        h = e.series("api.latency", labels={"host": host})
        ts, vals = feed(e, h, T0, 10, seed)
        everything.append(vals)
        times.append(ts)
        e.close()
    order = np.argsort(np.concatenate(times), kind="stable")   # one engine fed both, in time order
    whole.record_many(np.full(len(order), hw.id), np.concatenate(times)[order],
                      np.concatenate(everything)[order])
    reader = MemoryBackend("org-1", store=store)
    merged = reader.read_merged("api.latency", 60.0, T0, T0 + 600)
    one_clock.set(T0 + 600)
    single = whole.query(hw, last="10m")
    vals = np.concatenate(everything)
    assert merged.count == single.count == len(vals)
    for q in (0.5, 0.95, 0.99):
        assert merged.quantile(q) == pytest.approx(single.quantile(q), rel=2e-2)
        exact = np.sort(vals)[int(np.floor(q * (len(vals) - 1)))]
        assert abs(merged.quantile(q) - exact) <= 0.01 * exact * 1.0001


def test_engine_close_flushes_everything_once():
    backend = MemoryBackend("org-1")
    clock = wm.ManualClock(T0)
    engine = wm.MetricsEngine(clock=clock, storage=backend, flush_interval=0.01)
    h = engine.series("jobs", kind="counter")
    for i in range(50):
        h.inc(2, ts=T0 + i * 7.0)
    engine.close()
    stats = engine.stats()["storage"]
    assert stats["buffered"] == 0 and sum(stats["dropped"].values()) == 0
    key = SeriesKey.of("jobs", kind="counter")
    for width in (1.0, 60.0, 300.0, 3600.0):
        got = backend.read_merged("jobs", width, 0, 2e9)
        assert got.count == 50 and got.sum == 100.0, width
    assert stats["duplicates"] == 0 and stats["written"] == backend.row_count()
    assert backend.series_keys() == [key]
