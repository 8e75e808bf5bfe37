"""MetricsEngine behaviour, checked against the obvious computation on raw points."""
from __future__ import annotations

import math
import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wedmetrics as wm

T0 = 1_700_000_000.0


def lower(values, q):
    return float(np.quantile(values, q, method="lower"))


def test_record_and_query_exact_aggregates(engine, clock):
    h = engine.series("api.latency", labels={"route": "/photos"})
    vals = [0.12, 0.5, 0.03, 2.5, 0.7]
    for v in vals:
        h.record(v)
    s = engine.query(h, last=60)
    assert s.count == 5
    assert s.sum == pytest.approx(sum(vals), rel=1e-12)
    assert (s.min, s.max) == (0.03, 2.5)
    assert s.mean == pytest.approx(sum(vals) / 5)
    for q in (0.5, 0.95, 0.99, 0.9):
        assert s.quantile(q) == pytest.approx(lower(vals, q), rel=0.01)


def test_empty_window_is_nan_not_error(engine):
    h = engine.series("idle")
    s = engine.query(h, last="5m")
    assert s.count == 0 and s.sum == 0.0
    assert all(math.isnan(x) for x in (s.min, s.max, s.mean, s.p50, s.p95, s.p99))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.floats(0, 900), st.floats(-1e6, 1e6, allow_nan=False)),
                min_size=1, max_size=300),
       st.sampled_from([1, 7, 60, 61, 300, 3600]))
def test_sliding_window_matches_raw_points(points, span):
    clock = wm.ManualClock(T0)
    engine = wm.MetricsEngine(clock=clock, lateness=0)
    h = engine.series("x")
    points.sort()
    ts = np.array([T0 + p[0] for p in points])
    vals = np.array([p[1] for p in points])
    engine.record_many(np.full(len(ts), h.id), ts, vals)
    now = engine.now()
    s = engine.query(h, last=span)
    # the window covers what was asked, widened by less than one bucket of
    # the finest resolution still holding its start
    asked = math.floor(now) + 1 - math.ceil(span)
    assert s.end == math.floor(now) + 1 and s.start <= asked
    assert asked - s.start < 3600
    b = np.floor(ts)
    expect = vals[(b >= s.start) & (b < s.end)]
    assert s.count == len(expect)
    if len(expect):
        assert s.sum == pytest.approx(expect.sum(), rel=1e-9, abs=1e-6)
        assert (s.min, s.max) == (expect.min(), expect.max())
        # huge dynamic ranges collapse the sketch; it reports the alpha it keeps
        assert s.alpha >= 0.01
        for q in (0.5, 0.95, 0.99):
            want = lower(expect, q)
            # subnormal magnitudes (< 2.2e-308) count as zero: documented
            assert abs(s.quantile(q) - want) <= s.alpha * abs(want) * (1 + 1e-12) + 2.3e-308


def test_query_by_name_merges_label_sets(engine):
    a = engine.series("api.latency", labels={"route": "/a"})
    b = engine.series("api.latency", labels={"route": "/b"})
    a.record(1.0)
    b.record(3.0)
    engine.record("api.latency", 5.0, labels={"route": "/b"})
    assert engine.query("api.latency", last="1m").count == 3
    assert engine.query("api.latency", labels={"route": "/b"}, last="1m").sum == 8.0
    with pytest.raises(wm.UnknownSeriesError, match="no series named"):
        engine.query("nope", last="1m")


def test_record_by_labels_resolves_any_order_and_rejects_bad_labels(engine):
    labels = {"route": "/a", "method": "GET"}
    engine.record("api.latency", 1.0, labels=labels)
    labels["method"] = "POST"                       # a later change to the caller's dict
    engine.record("api.latency", 2.0, labels={"method": "GET", "route": "/a"})
    engine.record("api.latency", 4.0, labels=labels)
    assert engine.series_count() == 2
    get = engine.series("api.latency", labels={"route": "/a", "method": "GET"})
    assert engine.query(get, last="1m").sum == 3.0
    with pytest.raises(TypeError, match="str value"):
        engine.record("api.latency", 1.0, labels={"route": ["/a"]})
    with pytest.raises(TypeError, match="labels must be a dict"):
        engine.record("api.latency", 1.0, labels=[("route", "/a")])
    assert engine.series_count() == 2


def test_series_handle_is_stable_and_kinds_are_checked(engine):
    h1 = engine.series("q", labels={"a": "1"})
    h2 = engine.series("q", labels={"a": "1"})
    assert h1 is h2 and isinstance(h1.id, int)
    with pytest.raises(ValueError, match="is a distribution, not a counter"):
        engine.series("q", labels={"a": "1"}, kind="counter")
    with pytest.raises(TypeError, match="str value"):
        engine.series("q", labels={"a": 1})
    with pytest.raises(ValueError, match="identifier"):
        engine.series("q", labels={"bad-name": "x"})


def test_counters_and_gauges(engine):
    c = engine.counter("uploads")
    c.inc()
    c.inc(4)
    assert engine.query(c, last="1m").sum == 5
    with pytest.raises(wm.InvalidPointError, match="counter increments must be >= 0"):
        c.inc(-1)
    g = engine.gauge("queue.depth")
    assert math.isnan(g.value)
    g.set(7)
    g.set(3)
    assert g.value == 3
    assert engine.query(g, last="1m").max == 7
    assert engine.stats()["refused"]["negative_increment"] == 1   # raised, so not "dropped"
    assert engine.stats()["dropped"]["negative_increment"] == 0


def test_invalid_values_raise_or_are_counted(clock):
    strict = wm.MetricsEngine(clock=clock)
    h = strict.series("x")
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(wm.InvalidPointError, match="finite"):
            h.record(bad)
    with pytest.raises(wm.InvalidPointError, match="real number"):
        h.record("12")
    with pytest.raises(wm.InvalidPointError, match="real number"):
        h.record(None)
    # raised to the caller: counted once, as refused, never also as dropped
    assert strict.stats()["refused"]["invalid_value"] == 5
    assert strict.stats()["dropped"]["invalid_value"] == 0
    assert strict.stats()["accepted"] == 0

    lenient = wm.MetricsEngine(clock=clock, invalid="drop")
    h = lenient.series("x")
    h.record(math.nan)
    h.record("abc")
    h.record(1.0)
    st_ = lenient.stats()
    assert st_["accepted"] == 1 and st_["dropped"]["invalid_value"] == 2


def test_late_points_counted_or_raised(clock):
    eng = wm.MetricsEngine(clock=clock, lateness="5s")
    h = eng.series("x")
    h.record(1.0, ts=T0)
    h.record(2.0, ts=T0 + 100)     # moves now; the bucket of T0 closes
    h.record(3.0, ts=T0 + 96)      # within lateness: accepted
    h.record(4.0, ts=T0)           # late: counted, not recorded
    assert eng.stats()["dropped"]["late"] == 1
    assert eng.query(h, last="10m").count == 3
    strict = wm.MetricsEngine(clock=clock, late="raise")
    h = strict.series("x")
    h.record(1.0, ts=T0 + 100)
    with pytest.raises(wm.LatePointError, match="lateness"):
        h.record(1.0, ts=T0)


def test_replay_history_on_manual_clock_has_no_late_points():
    eng = wm.MetricsEngine(clock=wm.ManualClock(0.0))
    hs = [eng.series("s", labels={"i": str(i)}) for i in range(3)]
    ts = np.repeat(np.arange(1.4e9, 1.4e9 + 7200, 10.0), 3)
    ids = np.tile([h.id for h in hs], len(ts) // 3)
    res = eng.record_many(ids, ts, np.ones(len(ts)))
    assert res.accepted == len(ts) and res.late == 0
    assert eng.query("s", last="5m").count == 30 * 3
    assert eng.query("s", last="2h").count == len(ts)


def test_record_many_policies(clock):
    eng = wm.MetricsEngine(clock=clock)
    h = eng.series("x")
    ids = np.array([h.id, h.id, 99])
    with pytest.raises(wm.InvalidPointError, match="point 2: unknown series id 99"):
        eng.record_many(ids, np.full(3, T0), np.ones(3))
    assert eng.stats()["accepted"] == 0      # atomic under "raise"
    with pytest.raises(wm.InvalidPointError, match="point 1: value must be finite"):
        eng.record_many([h.id] * 2, [T0, T0], [1.0, math.nan])
    lenient = wm.MetricsEngine(clock=clock, invalid="drop")
    h = lenient.series("x")
    res = lenient.record_many([h.id, 7, h.id, h.id], [T0, T0, math.nan, T0],
                              [1.0, 1.0, 1.0, math.inf])
    assert res == (1, 0, 1, 1, 1, 0, 0)
    assert lenient.stats()["dropped"]["unknown_series"] == 1


def test_datetime64_timestamps(engine):
    h = engine.series("x")
    ts = np.array(["2023-11-14T22:13:17", "2023-11-14T22:13:18"], dtype="datetime64[s]")
    engine.record_many([h.id, h.id], ts, [1.0, 2.0])
    b = engine.buckets(h, "1s", start=1699999900, end=1700000000)
    assert list(b.start) == [1699999997.0, 1699999998.0]
    engine.record("y", 1.0, ts=np.datetime64("2023-11-14T22:13:18"))
    assert engine.query("y", last="1m").count == 1


def test_hour_bucket_equals_merge_of_its_minutes():
    clock = wm.ManualClock(0.0)
    eng = wm.MetricsEngine(clock=clock)
    h = eng.series("lat")
    rng = np.random.default_rng(7)
    ts = np.sort(rng.uniform(7200, 7200 + 3 * 3600, 50_000))
    vals = rng.lognormal(-2, 1.2, ts.size)
    eng.record_many(np.full(ts.size, h.id), ts, vals)
    clock.set(7200 + 4 * 3600)
    hours = eng.buckets(h, "1h", 7200, 7200 + 3 * 3600)
    minutes = eng.buckets(h, "1m", 7200, 7200 + 3 * 3600)
    assert hours.closed.all() and len(hours) == 3
    for i, start in enumerate(hours.start):
        m = (minutes.start >= start) & (minutes.start < start + 3600)
        assert hours.count[i] == minutes.count[m].sum()
        assert hours.min[i] == minutes.min[m].min() and hours.max[i] == minutes.max[m].max()
        assert hours.sum[i] == pytest.approx(minutes.sum[m].sum(), rel=1e-12)
        merged = wm.Sketch()
        for sk in minutes.sketch[m]:
            merged.merge(sk)
        assert merged.to_bytes()[-len(hours.sketch[i].body_bytes()):] == \
            hours.sketch[i].body_bytes()
        raw = vals[(ts >= start) & (ts < start + 3600)]
        assert hours.p95[i] == pytest.approx(lower(raw, 0.95), rel=0.01)


def test_buckets_mark_the_open_one(clock):
    engine = wm.MetricsEngine(clock=clock.set(T0 - 120))
    h = engine.series("x")
    h.record(1.0, ts=T0 - 120)
    clock.set(T0)
    h.record(2.0, ts=T0 - 1)
    b = engine.buckets(h, "1m", T0 - 600, T0 + 60)
    assert list(b.count) == [1, 1]
    assert list(b.closed) == [True, False]
    assert b.to_frame().shape[0] == 2


def test_exact_mode(engine):
    h = engine.series("lat", exact=1000)
    vals = np.random.default_rng(3).pareto(1.5, 500)
    for v in vals:
        h.record(float(v))
    s = engine.query(h, last="1m")
    assert s.exact and s.alpha == 0.0
    for q in (0.5, 0.95, 0.99):
        assert s.quantile(q) == lower(vals, q)
    small = engine.series("lat2", exact=10)
    for v in vals:
        small.record(float(v))
    assert not engine.query(small, last="1m").exact  # ring no longer holds the window


def test_cardinality_cap(clock):
    eng = wm.MetricsEngine(clock=clock, max_series_per_name=2)
    eng.series("x", labels={"u": "1"})
    eng.series("x", labels={"u": "2"})
    with pytest.raises(wm.CardinalityError, match="cap"):
        eng.series("x", labels={"u": "3"})
    dropping = wm.MetricsEngine(clock=clock, max_series_per_name=1, cardinality="drop")
    dropping.record("x", 1.0, labels={"u": "1"})
    dropping.record("x", 1.0, labels={"u": "2"})
    assert dropping.stats()["dropped"]["cardinality"] == 1
    assert dropping.stats()["series"] == 1


def test_future_timestamps_refused_with_wall_clock():
    eng = wm.MetricsEngine()
    eng.record("x", 1.0)
    with pytest.raises(wm.InvalidPointError, match="max_future"):
        eng.record("x", 1.0, ts=4e12)
    assert eng.query("x", last="1m").count == 1


def test_threads_lose_no_count(engine):
    h = engine.series("shared")
    c = engine.counter("hits")
    n = 5000

    def work():
        for _ in range(n):
            h.record(1.0)
            c.inc()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert engine.query(h, last="1m").count == 8 * n
    assert engine.query(c, last="1m").sum == 8 * n


def test_stats_and_memory_reporting(engine):
    for i in range(10):
        engine.series("m", labels={"i": str(i)}).record(1.0)
    s = engine.stats()
    assert s["series"] == 10 and s["accepted"] == 10
    assert s["memory_bytes"] > 0


def test_retention_validation():
    with pytest.raises(ValueError, match="not a resolution"):
        wm.MetricsEngine(retention={"2m": "1h"})
    with pytest.raises(ValueError, match="whole multiple"):
        wm.MetricsEngine(resolutions=("1s", "90s", "2m"))
    with pytest.raises(ValueError, match="must cover one"):
        wm.MetricsEngine(retention={"1s": "30s"})


def test_import_stays_light():
    code = ("import sys, wedmetrics; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'numba', 'pandas', 'psycopg', 'matplotlib', 'psutil'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_lazy_public_names_resolve_to_what_they_name():
    import types

    assert callable(wm.backtest) and not isinstance(wm.backtest, types.ModuleType)
    assert isinstance(wm.simulate, types.ModuleType) and callable(wm.simulate.generate)
    for name in wm._LAZY:
        assert getattr(wm, name) is not None


def test_window_starts_are_aligned_alike_one_by_one_and_in_batch():
    # the alert engine aligns many window starts at once; the engine's query one at a time
    engine = wm.MetricsEngine(clock=wm.ManualClock(1_700_000_000.0),
                              retention={"1s": "10m", "1m": "2h"})
    agg = engine.aggregation
    rng = np.random.default_rng(5)
    now = 1_700_000_000.0 + rng.uniform(-1e5, 1e5, 400)
    back = np.where(rng.random(400) < 0.5, rng.integers(0, 500, 400), rng.integers(0, 200_000, 400))
    lo = np.floor(now).astype(np.int64) - back
    batch = agg._held_start_many(lo, now)
    assert batch.tolist() == [agg._held_start(int(a), float(b)) for a, b in zip(lo, now)]
    assert (batch != lo).sum() > 100 and (batch == lo).sum() > 10     # both cases occur
