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


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_history_adds_other_writers_rows_to_buckets_still_in_memory(tmp_path, kind):
    """Engine A still holds minutes in memory that it also flushed; engine B (another
    process) stored its own rows of the same minutes: A's history counts both once."""
    store = MemoryBackend.shared_store()

    def backend():
        if kind == "memory":
            return MemoryBackend("org-1", store=store)
        return SQLiteBackend(tmp_path / "metrics.db", org_id="org-1")

    clock = wm.ManualClock(T0)
    a = wm.MetricsEngine(clock=clock, storage=backend(), retention={"1m": "30m"},
                         flush_options={"thread": False})
    ha = a.series("api.latency", labels={"route": "/photos"})
    _, va = feed(a, ha, T0, 10, seed=21)
    b = wm.MetricsEngine(clock=wm.ManualClock(T0), storage=backend(),
                         flush_options={"thread": False})
    hb = b.series("api.latency", labels={"route": "/photos"})
    rng = np.random.default_rng(22)
    vb = rng.lognormal(-1.0, 0.5, size=40)
    tb = T0 + 240 + np.arange(40) * 3.0                 # minutes 4 and 5 only
    b.record_many(np.full(40, hb.id), tb, vb)
    b.close()
    clock.set(T0 + 600 + 10)
    hist = a.history(ha, "1m", T0, T0 + 600)
    # A's closed minutes are in storage too (its own rows), and in memory
    key = SeriesKey.of("api.latency", {"route": "/photos"})
    stored = a.storage.read_buckets(key, 60.0, T0, T0 + 600)
    assert int(stored.count.sum()) == len(va) + len(vb)
    np.testing.assert_array_equal(hist.start, T0 + 60 * np.arange(10))
    np.testing.assert_array_equal(hist.count, [20] * 4 + [40, 40] + [20] * 4)
    per_minute = va.reshape(10, 20).sum(axis=1)
    per_minute[4:6] += vb.reshape(2, 20).sum(axis=1)
    np.testing.assert_allclose(hist.sum, per_minute, rtol=1e-9)
    both = np.r_[va.reshape(10, 20)[4], vb[:20]]
    exact = np.sort(both)[int(np.floor(0.95 * (len(both) - 1)))]
    assert abs(hist.p95[4] - exact) <= 0.01 * exact * 1.0001
    a.close()
