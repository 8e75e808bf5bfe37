"""The compiled core's sliding-window cache gives the uncached result, bit for bit.

A one-series window query goes through a per-(series, window length) cache
that adds newly covered buckets and subtracts those that left.  The oracle is
the reference core (a plain cover walk on every query) and, inside the
compiled core, the same query over two series one of which is empty (which
bypasses the cache).
"""
from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import REFERENCE
from .test_parity import assert_same_results

# Values whose keys fit 2048 bins uncollapsed (the cached case), with
# zeros of both signs and subnormals (counted as zero); max_bins=16 forces
# collapses (the cache steps aside).
moderate = st.one_of(st.floats(1e-3, 1e3), st.floats(-1e3, -1e-3),
                     st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 1.0, -1.0]))

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

CONFIG = ([1.0, 10.0, 30.0], [60, 20, 8], 2.0)

step = st.tuples(st.lists(moderate, max_size=12),            # points this step
                 st.sampled_from([0.3, 1.0, 1.0, 1.0, 1.0, 1.0, 2.5, 7.0, 45.0]))   # then time advances


def run_sliding(core_cls, steps, max_bins, widths_q, start):
    widths, retention, lateness = CONFIG
    core = core_cls(widths, retention, lateness, 0.01, max_bins)
    core.add_series(0)
    core.add_series(0)                                        # stays empty
    now = start
    out = []
    for points, dt in steps:
        for i, v in enumerate(points):
            out.append(core.record(0, v, now + i * dt / (len(points) + 1)))
        now += dt
        core.advance(now)
        hi = math.floor(now) + 1
        for w in widths_q:
            out.append(core.window([0], hi - w, hi))
    return core, out


@SETTINGS
@given(steps=st.lists(step, min_size=20, max_size=60),
       max_bins=st.sampled_from([16, 2048, 2048]),
       widths_q=st.lists(st.integers(1, 70), min_size=1, max_size=3, unique=True),
       start=st.sampled_from([1000.0, -333.5, 1_700_000_000.25]))
def test_sliding_queries_match_the_reference(compiled, steps, max_bins, widths_q, start):
    _, ra = run_sliding(REFERENCE.Core, steps, max_bins, widths_q, start)
    _, rb = run_sliding(compiled.Core, steps, max_bins, widths_q, start)
    assert_same_results(ra, rb)


def test_five_minute_window_slid_over_an_hour_matches(compiled):
    rng = np.random.default_rng(11)
    n = 20 * 3600                                             # 20 points/s
    ts = 1_700_000_000.0 + np.sort(rng.uniform(0, 3600, n))
    vals = rng.lognormal(0, 1.2, n) * rng.choice([-1.0, 1.0, 0.0], n, p=[0.1, 0.85, 0.05])
    sids = np.zeros(n, dtype=np.int64)
    cores = []
    for cls in (REFERENCE.Core, compiled.Core):
        core = cls([1.0, 60.0, 300.0, 3600.0], [600, 360, 288, 168], 5.0, 0.01, 2048)
        core.add_series(0)
        core.add_series(0)
        cores.append(core)
    chunks = np.searchsorted(ts, 1_700_000_000.0 + np.arange(0, 3600, 7.0))
    for a, b in zip(chunks, list(chunks[1:]) + [n]):
        results = []
        for core in cores:
            core.record_many(sids[a:b], ts[a:b], vals[a:b])
            hi = math.floor(float(ts[b - 1])) + 1
            results.append([core.window([0], hi - 300, hi), core.window([0], hi - 60, hi)])
        assert_same_results(*results)


def test_cached_and_uncached_paths_agree_inside_the_compiled_core(compiled):
    core = compiled.Core([1.0, 60.0], [600, 60], 5.0, 0.01, 2048)
    core.add_series(0)
    core.add_series(0)                                        # empty: forces the plain walk
    rng = np.random.default_rng(5)
    t = 10_000.0
    for tick in range(400):
        k = int(rng.integers(0, 30))
        core.record_many(np.zeros(k, dtype=np.int64), t + np.sort(rng.uniform(0, 1, k)),
                         rng.normal(0.0, 3.0, k))
        t += 1.0
        core.advance(t)
        hi = math.floor(t) + 1
        assert_same_results([core.window([0], hi - 300, hi)], [core.window([0, 1], hi - 300, hi)])


def test_the_cache_is_bounded_and_counted_in_memory_bytes(compiled):
    core = compiled.Core([1.0, 60.0], [600, 60], 5.0, 0.01, 2048)
    ids = np.array([core.add_series(0) for _ in range(8)], dtype=np.int64)
    ts = 1000.0 + np.repeat(np.arange(600.0), 8)
    core.record_many(np.tile(ids, 600), ts, np.tile(np.arange(1.0, 9.0), 600))
    before = core._memory_breakdown()["window_cache"]
    for sid in ids:
        for width in range(10, 600):                          # 4,720 distinct windows
            core.window([int(sid)], 1600 - width, 1600)
    parts = core._memory_breakdown()
    assert before == 0
    assert parts["window_cache"] > 0
    assert sum(parts.values()) <= core.memory_bytes()
    # at most 4,096 entries, each a sketch of at most the 8 keys seen plus its key list
    assert parts["window_cache"] < 4096 * (300 + 8 * 610 * 16 // 8)
    # evicted entries are rebuilt correctly
    ref = REFERENCE.Core([1.0, 60.0], [600, 60], 5.0, 0.01, 2048)
    for _ in ids:
        ref.add_series(0)
    ref.record_many(np.tile(ids, 600), ts, np.tile(np.arange(1.0, 9.0), 600))
    for sid, width in ((0, 10), (3, 299), (7, 599)):
        assert_same_results([ref.window([sid], 1600 - width, 1600)],
                            [core.window([sid], 1600 - width, 1600)])
