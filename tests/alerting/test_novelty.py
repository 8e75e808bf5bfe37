"""The ART and contextual novelty scorers and their range normaliser: against
obvious computations on the raw data, the Numba twins bit-identical to the
streaming classes (hypothesis), bounded state, and plain behaviour."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from wedmetrics.alerting import art, contextual, detectors as det
from wedmetrics.alerting.art import ArtNovelty
from wedmetrics.alerting.contextual import ContextNovelty
from wedmetrics.alerting.detectors import DetectorConfig
from wedmetrics.alerting.ensemble import EnsembleDetector
from wedmetrics.alerting.scorers import RangeNormaliser

if det.HAVE_NUMBA:
    from wedmetrics._kernels import _numba

values_st = st.lists(st.sampled_from([0.0, 1.0, 2.0, 50.0]) | st.floats(-1e3, 1e3),
                     min_size=1, max_size=150)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0, 2.0]) | st.floats(-10, 10), min_size=1,
                max_size=80), st.integers(1, 12))
def test_range_normaliser_is_the_position_between_the_span_extremes(values, size):
    norm = RangeNormaliser(size)
    for t, v in enumerate(values):
        span = values[max(0, t - size + 1):t + 1]
        lo, hi = min(span), max(span)
        expected = 0.5 if hi <= lo else (v - lo) / (hi - lo)
        assert norm.update(v) == expected


def _brute_force_art(u_rows, vigilance, capacity):
    """Fuzzy ART as the paper states it, over explicit complement-coded vectors."""
    boxes, used, out = [], [], []
    for t, u in enumerate(u_rows):
        x = np.concatenate([u, 1.0 - u])
        matches = [np.minimum(x, w).sum() / len(u) for w in boxes]
        out.append(1.0 - max(matches, default=0.0))
        ok = [j for j, m in enumerate(matches) if m >= vigilance]
        if ok:
            j = max(ok, key=lambda j: (np.minimum(x, boxes[j]).sum()
                                       / (art.ALPHA + boxes[j].sum()), -j))
            boxes[j] = np.minimum(x, boxes[j])
        elif len(boxes) < capacity:
            j = len(boxes)
            boxes.append(x.copy())
            used.append(0)
        else:
            j = int(np.argmin(used))
            boxes[j] = x.copy()
        used[j] = t
    return out


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-100, 100), min_size=1, max_size=80), st.integers(1, 4),
       st.integers(2, 20), st.integers(1, 5), st.sampled_from([0.5, 0.8, 0.95]))
def test_art_scores_are_one_minus_the_best_fuzzy_art_match(values, dim, span, capacity,
                                                           vigilance):
    scorer = ArtNovelty(dim, span, vigilance=vigilance, categories=capacity)
    got = [scorer.update(v) for v in values]
    norm = RangeNormaliser(span)
    u = np.array([norm.update(v) for v in values])
    rows = [u[i - dim + 1:i + 1] for i in range(dim - 1, len(values))]
    assert got[:dim - 1] == [0.0] * min(dim - 1, len(values))
    np.testing.assert_allclose(got[dim - 1:], _brute_force_art(rows, vigilance, capacity),
                               rtol=0, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0, 2.0, 3.0]) | st.floats(0, 3), min_size=1,
                max_size=80), st.integers(1, 4), st.integers(2, 5), st.sampled_from([8, 4096]))
def test_context_score_is_the_share_of_contexts_never_followed_by_the_symbol(values, order,
                                                                              levels, slots):
    scorer = ContextNovelty(20, order=order, levels=levels, slots=slots)
    norm = RangeNormaliser(20)
    symbols, table = [], {}              # slot -> the (context, symbol) it remembers
    for t, v in enumerate(values):
        s = min(levels - 1, int(norm.update(v) * levels))
        unseen, known = 0, min(t, order)
        for k in range(1, known + 1):
            context = symbols[t - k:t]
            key = k
            for digit in context + [s]:  # k, then the symbols oldest first, base levels
                key = key * levels + digit
            slot = (key * contextual.GOLDEN % 2 ** 32) * slots // 2 ** 32
            unseen += table.get(slot) != key
            table[slot] = key
        symbols.append(s)
        assert scorer.update(v) == (unseen / known if known else 0.0)


def test_novelty_scorers_see_a_level_jump_a_steady_cycle_does_not_show():
    x = np.tile(50 + 20 * np.sin(2 * np.pi * np.arange(100) / 100), 30)   # exactly periodic
    x[2500:] += 30
    ctx, shape = ContextNovelty(1000), ArtNovelty(10, 1000)
    ctx_scores = np.array([ctx.update(v) for v in x])
    art_scores = np.array([shape.update(v) for v in x])
    # a direct-mapped table forgets a few of the cycle's transitions (collisions): rare, partial
    assert (ctx_scores[1500:2500] > 0).mean() < 0.05 and ctx_scores[1500:2500].max() < 0.5
    assert ctx_scores[2500:2510].max() == 1.0
    assert art_scores[2500:2510].max() > 1.4 * art_scores[1500:2500].max()


def test_state_stays_bounded_on_a_long_stream():
    rng = np.random.default_rng(3)
    scorer_a, scorer_c = ArtNovelty(4, 50, categories=8), ContextNovelty(50, slots=64)
    for v in rng.normal(size=5000):
        scorer_a.update(float(v))
        scorer_c.update(float(v))
    assert len(scorer_a._weights) == 8 * 2 * 4 and len(scorer_c._table) == 64
    for norm in (scorer_a._norm, scorer_c._norm):
        assert len(norm._lows) <= 50 and len(norm._highs) <= 50


@pytest.mark.parametrize("make, message", [
    (lambda: ArtNovelty(0, 10), "dim"), (lambda: ArtNovelty(2, 10, vigilance=1.5), "vigilance"),
    (lambda: ArtNovelty(2, 10, categories=0), "categories"),
    (lambda: ContextNovelty(10, levels=1), "levels"),
    (lambda: ContextNovelty(10, order=12, levels=8), "2\\*\\*31"),
    (lambda: ContextNovelty(10, slots=2 ** 25), "slots"),
    (lambda: RangeNormaliser(0), "size")])
def test_bad_scorer_parameters_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.skipif(not det.HAVE_NUMBA, reason="numba is not installed")
@settings(max_examples=40, deadline=None)
@given(values_st, st.integers(1, 5), st.integers(1, 30), st.integers(1, 6),
       st.sampled_from([0.5, 0.9]))
def test_numba_art_and_normaliser_are_bit_identical(values, dim, span, capacity, vigilance):
    x = np.asarray(values)
    norm = RangeNormaliser(span)
    np.testing.assert_array_equal(_numba.range_normalise(x, span),
                                  [norm.update(v) for v in values])
    scorer = ArtNovelty(dim, span, vigilance=vigilance, categories=capacity)
    np.testing.assert_array_equal(
        _numba.art_novelty(x, dim, span, vigilance, capacity, art.ALPHA),
        [scorer.update(v) for v in values])


@pytest.mark.skipif(not det.HAVE_NUMBA, reason="numba is not installed")
@settings(max_examples=40, deadline=None)
@given(values_st, st.integers(1, 30), st.integers(1, 7), st.integers(2, 8),
       st.integers(1, 64))
def test_numba_context_is_bit_identical(values, span, order, levels, slots):
    scorer = ContextNovelty(span, order=order, levels=levels, slots=slots)
    np.testing.assert_array_equal(
        _numba.context_novelty(np.asarray(values), span, order, levels, slots,
                               contextual.GOLDEN),
        [scorer.update(v) for v in values])


@pytest.mark.skipif(not det.HAVE_NUMBA, reason="numba is not installed")
@settings(max_examples=30, deadline=None)
@given(values_st, st.sampled_from([("art",), ("context",), ("robust", "art"),
                                   ("context", "knn", "art")]), st.integers(1, 3))
def test_numba_ensemble_with_novelty_scorers_is_bit_identical(values, scorers, averaging):
    cfg = DetectorConfig(method="ensemble", window=20, min_periods=5, knn_dim=3, knn_k=2,
                         knn_history=15, calibration=30, likelihood_window=40, learning=10,
                         scorers=scorers, averaging=averaging, threshold=2.0)
    streaming = EnsembleDetector(cfg)
    slow = [streaming.update(v) for v in values]
    fast = det.detect(np.asarray(values), cfg, use_numba=True)
    np.testing.assert_array_equal(fast.scores, [d.score for d in slow])
    np.testing.assert_array_equal(fast.anomalous, [d.anomalous for d in slow])


def test_a_rule_with_the_novelty_scorers_backtests_the_same_on_both_paths():
    from wedmetrics.alerting.backtest import backtest, default_anomaly_rules

    rng = np.random.default_rng(8)
    x = np.tile(np.sin(2 * np.pi * np.arange(50) / 50), 24) + 0.05 * rng.normal(size=1200)
    x[1000:] += 3.0                                  # a level jump beyond every range seen
    data = {"timestamp": 1.7e9 + 300.0 * np.arange(len(x)), "value": x}
    rules = [r.model_dump(by_alias=True) | {"scorers": ["art", "context"], "calibration": 400,
                                            "learning": 100}
             for r in default_anomaly_rules("5m")]
    fast = backtest(rules, data, path="vectorised")
    slow = backtest(rules, data, path="streaming")
    assert fast.path == "vectorised" and slow.path == "streaming"
    events = [[(e.kind, e.row) for e in res.events] for res in (fast, slow)]
    assert events[0] == events[1]
    assert any(kind == "firing" and 1000 <= row < 1010 for kind, row in events[0])
