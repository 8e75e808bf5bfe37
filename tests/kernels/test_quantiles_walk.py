"""Sketch.quantiles (one walk over the bins for many quantiles) answers
exactly what quantile() answers for each, in any order, in both kernels."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .test_parity import alphas, bins_bounds, same_float, streams

qs_lists = st.lists(st.one_of(st.sampled_from([0.0, 1.0, 0.5, 0.95, 0.99, 1e-9]),
                              st.floats(0.0, 1.0)), max_size=40)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=streams, alpha=alphas, max_bins=bins_bounds, qs=qs_lists)
def test_quantiles_equal_one_by_one(impl, stream, alpha, max_bins, qs):
    sketch = impl.Sketch(alpha, max_bins)
    sketch.add_many(stream)
    got = sketch.quantiles(qs)
    assert len(got) == len(qs)
    for q, v in zip(qs, got):
        assert same_float(v, sketch.quantile(q)), (q, v, sketch.quantile(q))


def test_quantiles_validate_and_take_iterables(impl):
    sketch = impl.Sketch(0.01)
    sketch.add_many(np.arange(1.0, 101.0))
    assert sketch.quantiles(q for q in (0.99, 0.5)) == [sketch.quantile(0.99), sketch.quantile(0.5)]
    assert sketch.quantiles([]) == []
    with pytest.raises(ValueError, match=r"quantile must be in \[0, 1\]"):
        sketch.quantiles([0.5, -0.1])
