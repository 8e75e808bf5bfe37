"""Quantiles within alpha of the exact answer; count, sum, min and max exact."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

QS = [0.0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0]


def _data(name: str, rng: np.random.Generator) -> np.ndarray:
    n = 5000
    if name == "lognormal":
        return rng.lognormal(0.0, 2.0, n)
    if name == "pareto":
        return (rng.pareto(1.2, n) + 1.0) * 3.0
    if name == "uniform":
        return rng.uniform(-50.0, 150.0, n)
    if name == "bimodal":
        return np.concatenate([rng.normal(0.05, 0.005, n // 2), rng.normal(4.0, 0.4, n // 2)])
    if name == "constant":
        return np.full(n, 0.123)
    if name == "negative":
        return -rng.lognormal(1.0, 1.0, n)
    if name == "zero-heavy":
        x = rng.lognormal(0.0, 1.0, n)
        x[rng.random(n) < 0.7] = 0.0
        return x
    raise ValueError(name)


DISTRIBUTIONS = ["lognormal", "pareto", "uniform", "bimodal", "constant", "negative",
                 "zero-heavy"]


def assert_within(sketch, data: np.ndarray, alpha: float) -> None:
    for q in QS:
        truth = float(np.quantile(data, q, method="lower"))
        est = sketch.quantile(q)
        # relative error alpha, plus a few ulps for the float arithmetic
        assert abs(est - truth) <= alpha * abs(truth) * (1 + 1e-12) + 1e-300, (q, est, truth)


def assert_exact_stats(sketch, data: np.ndarray) -> None:
    total = 0.0
    for v in data.tolist():     # the same left-to-right sum the sketch does
        total += v
    assert sketch.count == len(data)
    assert sketch.sum == total
    assert sketch.min == data.min() and sketch.max == data.max()


@pytest.mark.parametrize("name", DISTRIBUTIONS)
@pytest.mark.parametrize("alpha", [0.01, 0.05])
def test_quantiles_within_alpha(impl, name, alpha):
    data = _data(name, np.random.default_rng(11))
    s = impl.Sketch(alpha).add_many(data)
    assert s.collapses == 0 and s.alpha == alpha
    assert_within(s, data, alpha)
    assert_exact_stats(s, data)


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_merged_parts_keep_the_guarantee(impl, name):
    data = _data(name, np.random.default_rng(12))
    parts = np.array_split(data, 7)
    merged = impl.Sketch(0.01)
    for p in parts:
        merged += impl.Sketch(0.01).add_many(p)
    assert_within(merged, data, 0.01)
    assert merged.count == len(data)
    assert merged.min == data.min() and merged.max == data.max()
    assert math.isclose(merged.sum, float(np.sum(data)), rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.parametrize("max_bins", [16, 40, 128])
def test_collapse_reports_degraded_alpha_and_meets_it(impl, max_bins):
    data = np.random.default_rng(13).lognormal(0.0, 4.0, 20_000)
    data[::3] *= -1.0
    s = impl.Sketch(0.01, max_bins).add_many(data)
    assert s.collapses > 0
    neg, _, pos, _ = s.bins()
    span = (neg[-1] - neg[0] + 1 if neg else 0) + (pos[-1] - pos[0] + 1 if pos else 0)
    assert span <= max_bins
    gamma = (1 + 0.01) / (1 - 0.01)
    g = gamma ** (2 ** s.collapses)
    assert math.isclose(s.alpha, (g - 1) / (g + 1), rel_tol=1e-9)
    # each collapse turns alpha into 2 alpha / (1 + alpha^2)
    a = 0.01
    for _ in range(s.collapses):
        a = 2 * a / (1 + a * a)
    assert math.isclose(s.alpha, a, rel_tol=1e-9)
    assert s.alpha > 0.01
    assert_within(s, data, s.alpha)
    assert_exact_stats(s, data)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(vals=st.lists(st.one_of(st.floats(1e-200, 1e200), st.floats(-1e200, -1e-200),
                               st.just(0.0)), min_size=1, max_size=300),
       max_bins=st.sampled_from([16, 64, 2048]))
def test_any_stream_meets_its_reported_alpha(impl, vals, max_bins):
    data = np.array(vals)
    s = impl.Sketch(0.01, max_bins).add_many(data)
    assert_within(s, data, s.alpha)
    assert_exact_stats(s, data)
