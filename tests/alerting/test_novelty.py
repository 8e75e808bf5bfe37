"""The novelty detectors: the ART and contextual scorers with their range
normaliser, and the range check (NAB's spatial anomaly): against obvious
computations on the raw data, the Numba twins bit-identical to the streaming
classes (hypothesis), bounded state, and plain behaviour."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from wedmetrics.alerting import art, contextual, detectors as det, spatial
from wedmetrics.alerting.art import ArtNovelty
from wedmetrics.alerting.contextual import ContextNovelty
from wedmetrics.alerting.detectors import DetectorConfig
from wedmetrics.alerting.ensemble import EnsembleDetector
from wedmetrics.alerting.likelihood import MAX_NINES
from wedmetrics.alerting.scorers import RangeNormaliser
from wedmetrics.alerting.spatial import RangeNovelty

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
                                            "learning": 100, "novelty_tolerance": None}
             for r in default_anomaly_rules("5m")]
    fast = backtest(rules, data, path="vectorised")
    slow = backtest(rules, data, path="streaming")
    assert fast.path == "vectorised" and slow.path == "streaming"
    events = [[(e.kind, e.row) for e in res.events] for res in (fast, slow)]
    assert events[0] == events[1]
    assert any(kind == "firing" and 1000 <= row < 1010 for kind, row in events[0])


# -- the range check (wedmetrics.alerting.spatial) ----------------------------

def _brute_force_range(values, span, tolerance, learning, blocks=spatial.BLOCKS):
    """Each value against the values its blocks cover: the completed blocks
    still kept (at most ``n_blocks``) and the block being filled."""
    block, n_blocks = spatial.blocking(span, blocks)
    out = []
    for t, v in enumerate(values):
        start = max(0, (t // block - n_blocks) * block)
        seen = values[start:t]
        if t < learning or not seen or max(seen) <= min(seen):
            out.append(False)
            continue
        lo, hi = min(seen), max(seen)
        margin = tolerance * (hi - lo)
        out.append(v > hi + margin or v < lo - margin)
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0, 2.0, 3.0]) | st.floats(-10, 10), min_size=1,
                max_size=120), st.integers(1, 40), st.sampled_from([0.0, 0.05, 0.5]),
       st.integers(0, 20), st.integers(1, 8))
def test_range_check_is_the_margin_beyond_the_extremes_its_blocks_cover(values, span, tolerance,
                                                                        learning, blocks):
    novelty = RangeNovelty(span, tolerance, learning, blocks)
    assert [novelty.update(v) for v in values] == \
        _brute_force_range(values, span, tolerance, learning, blocks)


def test_range_check_covers_the_previous_span_to_span_plus_a_block():
    block, n_blocks = spatial.blocking(8640)
    assert (block, n_blocks) == (90, 96)
    assert spatial.blocking(40) == (1, 40)           # short spans: exactly the last ``span``
    for span in (1, 7, 95, 97, 100, 8640, 10_001):
        block, n_blocks = spatial.blocking(span)
        assert n_blocks <= spatial.BLOCKS and span <= block * n_blocks < span + block


def test_range_check_flags_a_jump_at_once_and_never_a_steady_cycle():
    x = np.tile(50 + 20 * np.sin(2 * np.pi * np.arange(100) / 100), 30)   # exactly periodic
    x[2500:] += 30
    flags = spatial.novel_rows(x, 1000, learning=100, use_numba=False)
    assert not flags[:2500].any() and flags[2500]
    # the margin: 5 % of the range (30..70) beyond the maximum is 72
    answers = []
    for probe in (71.9, 72.1, 27.9, 28.1):
        novelty = RangeNovelty(1000, learning=100)
        for v in x[:500]:
            novelty.update(float(v))
        answers.append(novelty.update(probe))
        answers.append(novelty.update(probe))        # once seen, it is in range
    assert answers == [False, False, True, False, True, False, False, False]


def test_range_check_is_silent_while_learning_and_on_a_flat_series():
    novelty = RangeNovelty(50, learning=10)
    assert not any(novelty.update(v) for v in [0.0, 100.0, -100.0, 0.0, 1000.0])
    flat = RangeNovelty(50)
    assert not any(flat.update(3.0) for _ in range(100))
    assert not flat.update(4.0)                      # no range yet to measure a margin in
    assert flat.update(9.0)                          # range 3..4: beyond 4 + 0.05


def test_range_check_state_is_bounded_on_a_long_stream():
    novelty = RangeNovelty(8640)
    for v in np.random.default_rng(4).normal(size=30_000).cumsum():   # a random walk
        novelty.update(float(v))
    assert len(novelty._lows) == len(novelty._highs) == spatial.BLOCKS


@pytest.mark.parametrize("make, message", [
    (lambda: RangeNovelty(0), "span"), (lambda: RangeNovelty(10, -0.1), "tolerance"),
    (lambda: RangeNovelty(10, float("nan")), "tolerance"),
    (lambda: RangeNovelty(10, learning=-1), "learning"),
    (lambda: RangeNovelty(10, blocks=0), "blocks")])
def test_bad_range_check_parameters_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("fields, message", [
    ({"novelty_tolerance": -0.5}, "novelty_tolerance"),
    ({"novelty_tolerance": float("inf")}, "novelty_tolerance"),
    ({"novelty_tolerance": True}, "novelty_tolerance"),
    ({"method": "robust", "novelty_tolerance": 0.05}, "needs method='ensemble'")])
def test_bad_range_check_configuration_is_named(fields, message):
    with pytest.raises(ValueError, match=message):
        DetectorConfig(**{"method": "ensemble", **fields})


@pytest.mark.skipif(not det.HAVE_NUMBA, reason="numba is not installed")
@settings(max_examples=60, deadline=None)
@given(values_st, st.integers(1, 60), st.sampled_from([0.0, 0.05, 0.3]), st.integers(0, 20),
       st.integers(1, 8))
def test_numba_range_check_is_bit_identical(values, span, tolerance, learning, blocks):
    novelty = RangeNovelty(span, tolerance, learning, blocks)
    np.testing.assert_array_equal(
        _numba.range_novelty(np.asarray(values), span, tolerance, learning, blocks),
        [novelty.update(v) for v in values])


@pytest.mark.skipif(not det.HAVE_NUMBA, reason="numba is not installed")
@settings(max_examples=40, deadline=None)
@given(values_st, st.sampled_from([("knn",), ("robust",), ("robust", "knn", "context")]),
       st.integers(1, 10), st.sampled_from([0.0, 0.05]))
def test_numba_ensemble_with_the_range_check_is_bit_identical(values, scorers, averaging,
                                                              tolerance):
    cfg = DetectorConfig(method="ensemble", window=20, min_periods=5, knn_dim=3, knn_k=2,
                         knn_history=15, calibration=30, likelihood_window=40, learning=10,
                         scorers=scorers, averaging=averaging, threshold=5.0,
                         novelty_tolerance=tolerance)
    streaming = EnsembleDetector(cfg)
    slow = [streaming.update(v) for v in values]
    fast = det.detect(np.asarray(values), cfg, use_numba=True)
    np.testing.assert_array_equal(fast.scores, [d.score for d in slow])
    np.testing.assert_array_equal(fast.anomalous, [d.anomalous for d in slow])
    flags = spatial.novel_rows(values, 40, tolerance, 10)
    assert (fast.scores[flags] == MAX_NINES).all()


def test_the_default_rule_sends_one_pulse_per_onset_on_both_paths():
    from wedmetrics.alerting.backtest import backtest, default_anomaly_rules

    rng = np.random.default_rng(8)
    x = np.tile(np.sin(2 * np.pi * np.arange(50) / 50), 40) + 0.05 * rng.normal(size=2000)
    x[1500:] += 3.0                 # a level jump: out of range for many rows in a row
    data = {"timestamp": 1.7e9 + 300.0 * np.arange(len(x)), "value": x}
    rules = default_anomaly_rules("5m")
    assert rules[0].novelty_tolerance == 0.05
    fast = backtest(rules, data, path="vectorised")
    slow = backtest(rules, data, path="streaming")
    assert fast.path == "vectorised" and slow.path == "streaming"
    events = [[(e.kind, e.row) for e in res.events] for res in (fast, slow)]
    assert events[0] == events[1]
    firing = [row for kind, row in events[0] if kind == "firing"]
    # the jump notifies at once, then the cooldown (100 rows) holds the rule quiet
    assert 1500 in firing
    assert all(b - a > 100 for a, b in zip(firing, firing[1:]))
    assert [row for kind, row in events[0] if kind == "resolved"] == [r + 1 for r in firing]


def test_the_rule_field_reaches_the_detector_and_is_validated():
    import pydantic

    from wedmetrics.alerting.rules import AnomalyRule

    rule = AnomalyRule(name="a", metric="m", step=300, detector="ensemble",
                       novelty_tolerance=0.1)
    assert rule.detector_config().novelty_tolerance == 0.1
    assert AnomalyRule(name="a", metric="m", detector="ensemble").novelty_tolerance is None
    for bad in ({"detector": "ensemble", "novelty_tolerance": -1.0},
                {"detector": "ensemble", "novelty_tolerance": float("nan")},
                {"detector": "robust", "novelty_tolerance": 0.05}):
        with pytest.raises(pydantic.ValidationError, match="novelty_tolerance"):
            AnomalyRule(name="a", metric="m", **bad)
