"""The compiled kernels give exactly the reference's results, bit for bit."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wedmetrics import errors
from wedmetrics.clock import ManualClock

from .conftest import REFERENCE

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

# Finite values of every kind the mapping treats differently: zeros of both
# signs, subnormals (counted as zero), the smallest normal, tiny and huge
# magnitudes.  Bounded by 1e300 so sums of a few hundred stay finite.
SPECIAL = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, -2.2250738585072014e-308,
           1e-300, -1e-300, 1e300, -1e300, 1.0, -1.0]
values = st.one_of(
    st.floats(min_value=-1e300, max_value=1e300, allow_nan=False, allow_infinity=False),
    st.floats(min_value=1e-6, max_value=1e6),
    st.floats(min_value=-1e3, max_value=-1e-3),
    st.sampled_from(SPECIAL),
)
streams = st.lists(values, max_size=120)
alphas = st.sampled_from([0.001, 0.01, 0.05, 0.3])
bins_bounds = st.sampled_from([16, 17, 24, 64, 2048])
QS = [0.0, 1e-9, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0]


def same_float(a: float, b: float) -> bool:
    """Bitwise equality (NaN equals NaN, 0.0 differs from -0.0)."""
    return np.float64(a).tobytes() == np.float64(b).tobytes()


def assert_same_sketch(a, b) -> None:
    assert a.to_bytes() == b.to_bytes()
    assert a.body_bytes() == b.body_bytes()
    assert a.bins() == b.bins()
    assert (a.count, a.collapses, a.zero_count, a.num_bins, a.max_bins, len(a)) == \
        (b.count, b.collapses, b.zero_count, b.num_bins, b.max_bins, len(b))
    for x, y in ((a.sum, b.sum), (a.min, b.min), (a.max, b.max), (a.mean, b.mean),
                 (a.alpha, b.alpha), (a.base_alpha, b.base_alpha)):
        assert same_float(x, y), (x, y)
    for q in QS:
        assert same_float(a.quantile(q), b.quantile(q)), q


def build(cls, alpha, max_bins, vals):
    s = cls(alpha, max_bins)
    for v in vals:
        s.add(v)
    return s


@SETTINGS
@given(vals=streams, alpha=alphas, max_bins=bins_bounds)
def test_sketch_add_matches(compiled, vals, alpha, max_bins):
    a = build(REFERENCE.Sketch, alpha, max_bins, vals)
    b = build(compiled.Sketch, alpha, max_bins, vals)
    assert_same_sketch(a, b)
    c = compiled.Sketch(alpha, max_bins).add_many(np.array(vals, dtype=np.float64))
    assert_same_sketch(a, c)
    assert repr(a) == repr(b)


@SETTINGS
@given(parts=st.lists(streams, min_size=1, max_size=6), alpha=alphas, max_bins=bins_bounds,
       order=st.randoms(use_true_random=False))
def test_merge_in_any_order_matches(compiled, parts, alpha, max_bins, order):
    refs = [build(REFERENCE.Sketch, alpha, max_bins, p) for p in parts]
    comps = [build(compiled.Sketch, alpha, max_bins, p) for p in parts]
    # the same random merge tree on both sides
    while len(refs) > 1:
        i, j = order.sample(range(len(refs)), 2)
        refs[i].merge(refs[j])
        comps[i] += comps[j]
        del refs[j], comps[j]
        assert_same_sketch(refs[i if i < j else i - 1], comps[i if i < j else i - 1])
    assert_same_sketch(refs[0], comps[0])


@SETTINGS
@given(vals=streams, alpha=alphas, max_bins=bins_bounds)
def test_codec_round_trips_across_implementations(compiled, vals, alpha, max_bins):
    a = build(REFERENCE.Sketch, alpha, max_bins, vals)
    b = build(compiled.Sketch, alpha, max_bins, vals)
    data = a.to_bytes()
    assert_same_sketch(compiled.Sketch.from_bytes(data), a)
    assert_same_sketch(REFERENCE.Sketch.from_bytes(b.to_bytes()), b)
    assert_same_sketch(compiled.Sketch.from_bytes(bytearray(data)), a.copy())
    assert b.copy() == b
    # decoded sketches keep building identically
    more = [1.5, -2.5, 0.0, 1e200]
    assert_same_sketch(REFERENCE.Sketch.from_bytes(data).add_many(more),
                       compiled.Sketch.from_bytes(data).add_many(more))


def test_sketch_errors_match(compiled):
    for cls in (REFERENCE.Sketch, compiled.Sketch):
        for bad in (0.0, 1.0, -0.1, math.nan, 1e-7):
            with pytest.raises(ValueError, match="alpha"):
                cls(bad)
        for bad in (15, 1 << 21):
            with pytest.raises(ValueError, match="max_bins"):
                cls(0.01, bad)
        s = cls(0.01)
        for bad in (math.nan, math.inf, -math.inf):
            with pytest.raises(ValueError, match="finite"):
                s.add(bad)
        with pytest.raises(ValueError, match="finite"):
            s.add_many([1.0, math.nan])
        assert s.count == 0          # add_many checks everything first
        for q in (-0.1, 1.1, math.nan):
            with pytest.raises(ValueError, match="quantile"):
                s.quantile(q)
        assert math.isnan(s.quantile(0.5)) and math.isnan(s.mean)
        with pytest.raises(TypeError):
            s.merge(REFERENCE.Sketch(0.01) if cls is compiled.Sketch else compiled.Sketch(0.01))
        with pytest.raises(ValueError, match="different alpha"):
            s.merge(cls(0.02).add(1.0))
        with pytest.raises(TypeError):
            hash(s)


# -- the bucket core -------------------------------------------------------------

CONFIGS = [
    # widths, retention, lateness
    ([1.0, 5.0, 10.0], [20, 8, 6], 2.0),
    ([1.0, 60.0, 300.0, 3600.0], [600, 360, 288, 168], 5.0),
    ([0.5, 1.0], [8, 4], 0.0),
]

record_op = st.tuples(st.just("record"), st.integers(0, 3),
                      st.one_of(values, st.sampled_from([math.nan, math.inf])),
                      st.one_of(st.floats(-30.0, 4.0), st.sampled_from([math.nan, 1e300])))
advance_op = st.tuples(st.just("advance"), st.floats(0.0, 40.0))
window_op = st.tuples(st.just("window"), st.lists(st.integers(0, 2), min_size=1, max_size=3,
                                                  unique=True),
                      st.integers(-120, 5), st.integers(0, 130))
buckets_op = st.tuples(st.just("buckets"), st.integers(0, 2), st.integers(0, 3),
                       st.integers(-60, 5), st.integers(0, 70))
many_op = st.tuples(st.just("many"), st.lists(st.tuples(st.integers(-1, 3), values,
                                                        st.floats(-20.0, 3.0)), max_size=30))
ops = st.lists(st.one_of(record_op, record_op, record_op, advance_op, window_op, buckets_op,
                         many_op, st.just(("drain",)), st.just(("exact",))), max_size=60)


def assert_same_columns(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype
            assert x.tobytes() == y.tobytes()
        elif isinstance(x, list):
            assert len(x) == len(y)
            for u, v in zip(x, y):
                if isinstance(u, bytes):
                    assert u == v
                else:
                    assert_same_sketch(u, v)
        else:
            assert x == y


def run_ops(core_cls, config, operations, start):
    widths, retention, lateness = config
    core = core_cls(widths, retention, lateness, 0.01, 64)
    core.outbox_enabled = True
    for _ in range(3):
        core.add_series(8)
    now = start
    out = []
    for op in operations:
        kind = op[0]
        if kind == "record":
            _, sid, v, dt = op
            ts = now + dt if abs(dt) < 1e6 else dt     # NaN and 1e300 pass through
            out.append(core.record(sid, v, ts))
            now += 0.37
            if abs(dt) < 1e6:
                now = max(now, ts)
        elif kind == "advance":
            now += op[1]
            core.advance(now)
        elif kind == "many":
            rows = op[1]
            sids = np.array([r[0] for r in rows], dtype=np.int64)
            vals = np.array([r[1] for r in rows], dtype=np.float64)
            ts = now + np.array([r[2] for r in rows], dtype=np.float64) + \
                np.arange(len(rows)) * 0.21
            out.append(core.first_invalid(sids, ts, vals))
            out.append(core.record_many(sids, ts, vals))
            now = max(now, float(ts.max())) if len(rows) else now
        elif kind == "window":
            _, sids, a, b = op
            base = math.floor(now / widths[0])
            res = core.window(sids, base + a, base + a + b)
            out.append(res)
        elif kind == "buckets":
            _, sid, level, a, b = op
            level = min(level, len(widths) - 1)
            base = math.floor(now / widths[level])
            out.append(core.buckets(sid, level, base + a, base + a + b))
        elif kind == "drain":
            out.append(core.drain())
        elif kind == "exact":
            out.append(core.exact_values(1, now - 6.0, now))
            out.append(core.last(1))
        out.append((core.watermark, tuple(core.outcomes), core.n_series))
    core.advance(now + 10_000.0)
    out.append(core.drain())
    out.append(core.window([0, 1, 2], -(1 << 70), 1 << 70))
    for level in range(len(widths)):
        out.append(core.buckets(2, level, -(1 << 70), 1 << 70))
    return out


def assert_same_results(ra, rb) -> None:
    assert len(ra) == len(rb)
    for a, b in zip(ra, rb):
        if isinstance(a, tuple) and a and isinstance(a[-1], (REFERENCE.Sketch,)):
            assert a[0] == b[0]
            for x, y in zip(a[1:4], b[1:4]):
                assert same_float(x, y)
            assert_same_sketch(a[4], b[4])
        elif isinstance(a, tuple) and any(isinstance(x, (np.ndarray, list)) for x in a):
            assert_same_columns(a, b)
        elif isinstance(a, tuple):
            assert len(a) == len(b)
            for x, y in zip(a, b):
                if isinstance(x, float):
                    assert same_float(x, y)
                else:
                    assert x == y
        else:
            assert a == b


@pytest.mark.parametrize("config", CONFIGS, ids=["small", "default", "half-second"])
@SETTINGS
@given(operations=ops, start=st.sampled_from([1000.0, 1_700_000_000.25, -500.5]))
def test_core_operation_streams_match(compiled, config, operations, start):
    ra = run_ops(REFERENCE.Core, config, operations, start)
    rb = run_ops(compiled.Core, config, operations, start)
    assert_same_results(ra, rb)


def test_core_one_hour_of_points_matches(compiled):
    rng = np.random.default_rng(7)
    n = 30_000
    sids = rng.integers(0, 4, n)
    ts = 1_700_000_000.0 + np.sort(rng.uniform(0, 7200, n))
    ts[::97] -= rng.uniform(0, 9, len(ts[::97]))       # some late, some just in time
    vals = rng.lognormal(0, 1.5, n) * rng.choice([-1.0, 1.0, 0.0], n, p=[0.2, 0.75, 0.05])
    results = []
    for cls in (REFERENCE.Core, compiled.Core):
        core = cls([1.0, 60.0, 300.0, 3600.0], [600, 360, 288, 168], 5.0, 0.01, 2048)
        core.outbox_enabled = True
        for _ in range(4):
            core.add_series(0)
        counts = core.record_many(sids, ts, vals)
        now = float(ts.max())
        lo = math.floor(now) - 7200
        r = [counts, core.drain(), core.window([0, 1, 2, 3], lo, math.floor(now) + 1),
             core.window([2], math.floor(now) - 299, math.floor(now) + 1)]
        for level in range(4):
            r.append(core.buckets(1, level, lo // int(core.ratios[level]), 1 << 40))
        core.advance(now + 4000)
        r.append(core.drain())
        r.append(tuple(core.outcomes))
        results.append(r)
    assert results[0][0][1] > 0      # the late points were exercised
    assert_same_results(*results)


# -- handles ------------------------------------------------------------------------


def make_handles(impl, kind, raise_invalid=True, raise_late=True, clock=None):
    core = impl.Core([1.0, 60.0], [120, 10], 5.0)
    sid = core.add_series(0)
    clock = clock or ManualClock(1000.0)
    return core, impl.Handle(core, sid, "api.latency", {"route": "/x"}, kind, clock,
                             raise_invalid, raise_late)


@pytest.mark.parametrize("kind", ["distribution", "counter", "gauge"])
def test_handle_behaviour_matches(compiled, kind):
    class NumberLike:
        def __float__(self):
            return 2.5

    inputs = [0.5, 3, -1.0, -2, np.float64(1.25), np.int64(7), True, "1.0", None, b"1",
              NumberLike(), math.nan, math.inf, (1.0, 1001.0), (1.0, math.nan),
              (1.0, "soon"), (1.0, 900.0), (2.0, np.float64(1002.0)), (1 << 2000)]
    for raising in (True, False):
        seen = []
        for impl in (REFERENCE, compiled):
            core, h = make_handles(impl, kind, raising, raising)
            log = []
            for item in inputs:
                value, ts = item if isinstance(item, tuple) else (item, None)
                try:
                    h.record(value, ts)
                    log.append("ok")
                except (errors.InvalidPointError, errors.LatePointError) as exc:
                    log.append(f"{type(exc).__name__}: {exc}")
                except OverflowError as exc:
                    log.append(f"OverflowError: {exc}")
            h.inc(2.0, 1003.0)
            h.set(4.0, 1004.0)
            log.append((tuple(core.outcomes), h.value, core.last(h.id), h.id, h.name, h.kind,
                        repr(h), h.labels))
            seen.append(log)
        assert seen[0] == seen[1]


def test_handle_policies_match(compiled):
    """max_future, lateness against the clock, bad timestamps, overflow, and
    recording after close: same outcomes, messages and counts (issue #11)."""
    from fractions import Fraction

    inputs = [(1.0, None), (1.0, 1030.0), (1.0, 1061.0), (1.0, 5000), (1.0, 10 ** 400),
              (10 ** 400, None), (1 + 2j, None), (Fraction(1, 3), None), (1.0, "soon"),
              (1.0, np.datetime64("NaT")), (1.0, np.datetime64(1010, "s")), (1.0, 990.0),
              "tick", (2.0, 1000.0), (3.0, None), (np.float64(4.0), np.float64(1012.0)),
              "close", (5.0, None), (6.0, 1012.0)]
    for raising in (True, False):
        seen = []
        for impl in (REFERENCE, compiled):
            core = impl.Core([1.0, 60.0], [120, 10], 5.0)
            clock = ManualClock(1000.0)
            core.advance(clock.now())
            refused = [0] * 7
            h = impl.Handle(core, core.add_series(0), "x", {}, "gauge", clock, raising,
                            raising, 60.0, refused)
            log = []
            for item in inputs:
                if item == "tick":
                    clock.advance(20.0)
                    continue
                if item == "close":
                    core.close()
                    continue
                try:
                    h.record(*item)
                    log.append("ok")
                except (errors.InvalidPointError, errors.LatePointError,
                        errors.EngineClosedError) as exc:
                    log.append(f"{type(exc).__name__}: {exc}")
            log.append((tuple(core.outcomes), tuple(refused), h.value, core.watermark))
            seen.append(log)
        assert seen[0] == seen[1]
        outcomes = seen[0][-1][0]
        assert outcomes[6] == 2 and outcomes[3] >= 5     # closed, bad/future timestamps


def test_wall_clock_handle_records_now(compiled):
    from wedmetrics.clock import WallClock
    import time

    core, h = make_handles(compiled, "distribution", clock=WallClock())
    before = time.time()
    h.record(1.0)
    after = time.time()
    value, ts = core.last(h.id)
    assert value == 1.0
    assert before - 0.01 <= ts <= after + 0.01
    assert core.outcomes[0] == 1


def test_core_errors_match(compiled):
    for cls in (REFERENCE.Core, compiled.Core):
        with pytest.raises(ValueError, match="equal length"):
            cls([1.0, 60.0], [10])
        with pytest.raises(ValueError, match="whole multiple"):
            cls([1.0, 1.5], [10, 10])
        with pytest.raises(ValueError, match="lateness"):
            cls([1.0], [10], -1.0)
        with pytest.raises(ValueError, match="retention"):
            cls([1.0, 60.0], [30, 10])
        with pytest.raises(ValueError, match="alpha"):
            cls([1.0], [10], 1.0, 2.0)
        core = cls([1.0], [10], 1.0)
        with pytest.raises(KeyError):
            core.window([0], 0, 10)
        with pytest.raises(KeyError):
            core.buckets(3, 0, 0, 10)
        with pytest.raises(ValueError, match="exact_capacity"):
            core.add_series(-1)
        with pytest.raises(ValueError, match="finite"):
            core.advance(math.inf)
        with pytest.raises(ValueError, match="1-d"):
            core.record_many([0, 0], [1.0], [1.0, 2.0])
        assert core.record(0, 1.0, 1.0) == 4
        sid = core.add_series()
        assert core.record(sid, 1.0, 1e300) == 3       # index beyond 2**52
        assert core.record(sid, 1.0, 5.0) == 0
        assert core.first_invalid([sid, sid], [1.0, 1e300], [1.0, 1.0]) == (1, 3)
        for bad in (-1, 2**70, sid + 1):
            with pytest.raises(KeyError, match="unknown series id"):
                core.window([sid] * 9 + [bad], 0, 10)     # past the stack ids too
        core.count_drop(5, 3)
        assert core.outcomes == [1, 0, 0, 1, 1, 3, 0]
