"""The compiled key mapping estimates log() and falls back to libm near bin
edges; its keys must still be exactly the reference's ceil(log(|v|) * mult).

Values are taken on the edges themselves (gamma^k and their float neighbours),
where an estimate that is off by one ulp would land in the next bin.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import REFERENCE


def edge_values(alpha: float, keys) -> list[float]:
    """gamma^k, three floats either side of it, and their negatives."""
    mult = 1.0 / math.log((1.0 + alpha) / (1.0 - alpha))
    out = []
    for k in keys:
        edge = math.exp(k / mult)
        if not (2.2250738585072014e-308 <= edge < 1.7e308):
            continue
        v = edge
        for _ in range(3):
            v = math.nextafter(v, 0.0)
        for _ in range(7):
            out.extend((v, -v))
            v = math.nextafter(v, math.inf)
    return out


def keys_of(impl, alpha, vals):
    s = impl.Sketch(alpha, 1 << 20)
    for v in vals:
        s.add(v)
    return s.bins()


@pytest.mark.parametrize("alpha", [1e-6, 0.001, 0.01, 0.05, 0.3])
def test_keys_on_bin_edges_match_reference(compiled, alpha):
    mult = 1.0 / math.log((1.0 + alpha) / (1.0 - alpha))
    top = int(709 * mult)
    # edges near 1, across the range, and at the ends of the normal floats
    keys = list(range(-300, 301)) + list(np.linspace(-top, top, 1500).astype(int)) + \
        list(range(top - 50, top + 1)) + list(range(-top - 30, -top + 50))
    vals = edge_values(alpha, keys)
    assert len(vals) > 5000
    # one sketch per chunk keeps every key apart (no collapse at 2^20 bins)
    for i in range(0, len(vals), 4000):
        chunk = vals[i:i + 4000]
        assert keys_of(compiled, alpha, chunk) == keys_of(REFERENCE, alpha, chunk)


def test_record_many_keys_on_bin_edges_match_reference(compiled):
    """The batch path computes keys a chunk at a time: same bins as the reference."""
    vals = np.array(edge_values(0.01, range(-400, 400)))
    n = len(vals)
    ts = 1_000.0 + np.arange(n) * (10.0 / n)           # ten one-second buckets
    results = []
    for impl in (REFERENCE, compiled):
        core = impl.Core([1.0, 60.0], [600, 60], 5.0, 0.01, 1 << 20)
        core.add_series(0)
        core.record_many(np.zeros(n, dtype=np.int64), ts, vals)
        idx, count, _, _, _, _, sketches = core.buckets(0, 0, 0, 1 << 40)
        results.append((list(idx), list(count), [s.bins() for s in sketches]))
    assert len(results[0][0]) == 10
    assert results[0] == results[1]


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.floats(min_value=2.2250738585072014e-308, max_value=1e308),
       st.sampled_from([1e-6, 0.001, 0.01, 0.3]))
def test_keys_of_any_magnitude_match_reference(compiled, v, alpha):
    near = [v, math.nextafter(v, 0.0), math.nextafter(v, math.inf), -v]
    assert keys_of(compiled, alpha, near) == keys_of(REFERENCE, alpha, near)
