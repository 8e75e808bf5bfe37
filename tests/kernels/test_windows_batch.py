"""Core.windows (many windows in one call, as the alert engine reads them)
equals window() called once per window, in both kernels, bit for bit."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import REFERENCE
from .test_window_cache import CONFIG, moderate

GROUPS = [[0], [1], [0, 1], [], [2, 0], [0]]
QS = [(0.5, 0.95, 0.99), (), (0.0, 1.0), (0.5,), (0.99,), (0.25, 0.75)]


def one_by_one(core, groups, lo, hi, qs):
    """The oracle: window() per window, quantiles from its sketch."""
    rows, quants = [], []
    for g, a, b, q in zip(groups, lo, hi, qs):
        count, total, mn, mx, sketch = core.window(g, int(a), int(b))
        rows.append((count, total, mn, mx))
        quants.extend(sketch.quantile(x) for x in q)
    cols = list(zip(*rows))
    return (np.array(cols[0], dtype=np.int64), *(np.array(c, dtype=np.float64) for c in cols[1:]),
            np.array(quants, dtype=np.float64))


def same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), (x, y)


def run(core_cls, steps, max_bins, spans):
    widths, retention, lateness = CONFIG
    core = core_cls(widths, retention, lateness, 0.01, max_bins)
    for _ in range(3):
        core.add_series(0)
    now, out = 1_700_000_000.25, []
    for points, dt in steps:
        for i, v in enumerate(points):
            core.record(i % 3, v, now + i * dt / (len(points) + 1))
        now += dt
        core.advance(now)
        hi = np.full(len(GROUPS), math.floor(now) + 1, dtype=np.int64)
        lo = hi - np.resize(np.array(spans, dtype=np.int64), len(GROUPS))
        batch = core.windows(GROUPS, lo, hi, QS)
        same(batch, one_by_one(core, GROUPS, lo, hi, QS))
        out.append(batch)
    return out


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(st.lists(moderate, max_size=12),
                                st.sampled_from([0.3, 1.0, 1.0, 2.5, 7.0, 45.0])),
                      min_size=5, max_size=40),
       max_bins=st.sampled_from([16, 2048]),
       spans=st.lists(st.integers(1, 90), min_size=1, max_size=4))
def test_batch_equals_one_by_one_and_the_reference(compiled, steps, max_bins, spans):
    ours = run(compiled.Core, steps, max_bins, spans)
    ref = run(REFERENCE.Core, steps, max_bins, spans)
    for a, b in zip(ours, ref):
        same(a, b)


def test_bad_arguments(impl):
    core = impl.Core([1.0, 60.0], [120, 10], 5.0)
    core.add_series(0)
    with pytest.raises(ValueError, match="one entry per window"):
        core.windows([[0], [0]], [0], [1, 2], [(), ()])
    with pytest.raises(KeyError, match="unknown series id 7"):
        core.windows([[0], [7]], [0, 0], [5, 5], [(), ()])
    with pytest.raises(ValueError, match=r"quantile must be in \[0, 1\]"):
        core.windows([[0]], [0], [5], [(1.5,)])
    count, total, mn, mx, quants = core.windows([], [], [], [])
    assert count.shape == (0,) and quants.shape == (0,)


def test_quantile_lists_that_change_while_read_are_refused_not_overrun(compiled):
    core = compiled.Core([1.0, 60.0], [120, 10], 5.0)
    core.add_series(0)
    core.record(0, 1.0, 100.0)

    class Growing(tuple):
        """Measures as one quantile, then reads as three."""
        calls = 0

        def __len__(self):
            Growing.calls += 1
            return 1 if Growing.calls == 1 else 3

    with pytest.raises(ValueError, match="changed while they were read"):
        core.windows([[0]], [90], [110], [Growing((0.5, 0.5, 0.5))])
