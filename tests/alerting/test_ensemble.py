"""Ensemble tests: the conformal rank, KNN distance and anomaly likelihood
against obvious computations, the Numba twins bit-identical to the streaming
classes (hypothesis), and the detector's behaviour on plain signals."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from wedmetrics.alerting import detectors as det
from wedmetrics.alerting.detectors import DetectorConfig
from wedmetrics.alerting.ensemble import EnsembleDetector
from wedmetrics.alerting.likelihood import (MAX_NINES, MEAN_FLOOR, VARIANCE_FLOOR,
                                             AnomalyLikelihood)
from wedmetrics.alerting.scorers import ConformalRank, KnnDistance

if det.HAVE_NUMBA:
    from wedmetrics._kernels import _numba

SMALL = dict(method="ensemble", window=20, min_periods=5, knn_dim=3, knn_k=2, knn_history=15,
             calibration=30, likelihood_window=40, learning=10, season_lag=7)
values_st = st.lists(st.sampled_from([0.0, 1.0, 2.0, 50.0]) | st.floats(-1e3, 1e3),
                     min_size=1, max_size=150)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0, 2.0]) | st.floats(0, 10), min_size=1, max_size=80),
       st.integers(1, 12))
def test_conformal_rank_is_the_log_p_value_over_the_last_scores(scores, size):
    rank = ConformalRank(size)
    for t, s in enumerate(scores):
        past = scores[max(0, t - size):t]
        expected = 0.0 if not past else \
            math.log((len(past) + 1) / (1 + sum(p >= s for p in past))) / math.log(size + 1)
        assert rank.update(s) == pytest.approx(expected, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-100, 100), min_size=1, max_size=60), st.integers(1, 4),
       st.integers(1, 3), st.integers(3, 12))
def test_knn_distance_is_the_mean_of_the_k_smallest_distances(values, dim, k, history):
    knn = KnnDistance(dim, k, history)
    x = np.asarray(values)
    for i, v in enumerate(values):
        got = knn.update(v)
        ends = [j for j in range(max(dim - 1, i - dim - history + 1), i - dim + 1)]
        if i < dim - 1 or len(ends) < k:
            assert got == 0.0
            continue
        d = sorted(float(np.sqrt(np.sum((x[i - dim + 1:i + 1] - x[j - dim + 1:j + 1]) ** 2)))
                   for j in ends)
        assert got == pytest.approx(sum(d[:k]) / k, rel=1e-9, abs=1e-9)


@pytest.mark.skipif(not det.HAVE_NUMBA, reason="numba is not installed")
@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0, 2.0, 50.0]) | st.floats(-1e3, 1e3), min_size=1,
                max_size=90), st.integers(1, 5), st.integers(1, 4), st.integers(4, 25))
def test_numba_knn_distance_is_bit_identical_to_the_streaming_class(values, dim, k, history):
    # ties (the sampled values) and every warm-up length: the kernel's running
    # k smallest must sum the same numbers in the same order as the class's sort
    knn = KnnDistance(dim, k, history)
    np.testing.assert_array_equal(_numba.knn_distance(np.asarray(values), dim, k, history),
                                  [knn.update(v) for v in values])


def test_likelihood_is_the_gaussian_tail_of_the_short_average():
    rng = np.random.default_rng(5)
    raw = rng.uniform(0, 0.5, 400)
    lik = AnomalyLikelihood(window=100, averaging=5, learning=50, reestimate=1)
    got = [lik.update(r) for r in raw]
    assert got[:50] == [0.0] * 50
    for t in (60, 200, 399):
        avgs = [raw[max(0, u - 4):u + 1].mean() for u in range(max(0, t - 99), t + 1)]
        mu = max(float(np.mean(avgs)), MEAN_FLOOR)
        sd = math.sqrt(max(float(np.var(avgs)), VARIANCE_FLOOR))
        tail = 0.5 * math.erfc((avgs[-1] - mu) / sd / math.sqrt(2))
        assert got[t] == pytest.approx(-math.log10(tail), rel=1e-9)


def test_ensemble_flags_a_spike_and_a_new_shape_and_rarely_a_steady_signal():
    t = np.arange(2000)
    base = np.sin(2 * np.pi * t / 50) + 0.05 * np.random.default_rng(2).normal(size=len(t))
    cfg = DetectorConfig(method="ensemble", threshold=5.0, calibration=1000, knn_history=100,
                         likelihood_window=2000)
    quiet = det.detect(base, cfg)
    # ranks of pure noise are uniform: a few chance records, no storm
    assert det.alert_onsets(quiet.anomalous[1000:], 1, 100).sum() <= 4
    spiked = base.copy()
    spiked[1500] += 8.0
    flagged = det.detect(spiked, cfg).anomalous
    assert flagged[1500:1506].any() and not quiet.anomalous[1500:1506].any()
    # the same range, a new shape: the knn scorer sees the change
    reshaped = base.copy()
    reshaped[1500:1600] = np.sin(2 * np.pi * t[1500:1600] / 7)
    knn_only = DetectorConfig(**{**cfg.to_dict(), "scorers": ("knn",)})
    assert det.detect(reshaped, knn_only).anomalous[1500:1600].any()


def test_ensemble_score_is_the_largest_nines_of_its_scorers():
    rng = np.random.default_rng(9)
    x = np.cumsum(rng.normal(size=600))
    cfg = DetectorConfig(**{**SMALL, "scorers": ("robust", "knn", "seasonal")})
    alone = [det.detect(x, DetectorConfig(**{**SMALL, "scorers": (s,)}), use_numba=False).scores
             for s in cfg.scorers]
    np.testing.assert_array_equal(det.detect(x, cfg, use_numba=False).scores,
                                  np.max(alone, axis=0))


@pytest.mark.skipif(not det.HAVE_NUMBA, reason="numba is not installed")
@settings(max_examples=40, deadline=None)
@given(values_st, st.sampled_from([("robust",), ("knn",), ("seasonal",), ("robust", "knn"),
                                   ("knn", "robust", "seasonal")]),
       st.integers(1, 4), st.sampled_from([1e-12, 2.0, 5.0]))
def test_numba_ensemble_is_bit_identical_to_the_streaming_detector(values, scorers, averaging,
                                                                   threshold):
    cfg = DetectorConfig(**{**SMALL, "scorers": scorers, "averaging": averaging,
                            "threshold": threshold})
    x = np.asarray(values)
    fast = det.detect(x, cfg, use_numba=True)
    streaming = EnsembleDetector(cfg)
    slow = [streaming.update(v) for v in values]
    np.testing.assert_array_equal(fast.scores, [d.score for d in slow])
    np.testing.assert_array_equal(fast.anomalous, [d.anomalous for d in slow])


@pytest.mark.skipif(not det.HAVE_NUMBA, reason="numba is not installed")
@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=120), st.integers(2, 30),
       st.integers(1, 5), st.integers(0, 20), st.integers(1, 7))
def test_numba_likelihood_and_rank_match_the_streaming_classes(raw, window, averaging,
                                                               learning, reestimate):
    x = np.asarray(raw)
    lik = AnomalyLikelihood(window, averaging, learning, reestimate)
    np.testing.assert_array_equal(
        _numba.likelihood_nines(x, window, averaging, learning, reestimate, MEAN_FLOOR,
                                VARIANCE_FLOOR, 300.0),
        [lik.update(r) for r in raw])
    rank = ConformalRank(window)
    np.testing.assert_array_equal(_numba.conformal_surprise(x, window),
                                  [rank.update(r) for r in raw])


def test_state_stays_bounded_on_a_long_stream():
    cfg = DetectorConfig(**{**SMALL, "scorers": ("robust", "knn", "seasonal")})
    detector = EnsembleDetector(cfg)
    for i in range(2000):
        detector.update(float(i % 13))
    assert all(len(r._ring) <= cfg.calibration for r in detector._ranks)
    assert all(len(lik._ring) <= cfg.likelihood_window for lik in detector._likelihoods)


@pytest.mark.parametrize("field, value, message", [
    ("scorers", ("robust", "magic"), "scorers"), ("scorers", (), "scorers"),
    ("scorers", ("knn", "knn"), "scorers"), ("calibration", 0, "calibration"),
    ("knn_k", 400, "knn_k"), ("likelihood_window", 1, "likelihood_window"),
    ("averaging", 0, "averaging")])
def test_bad_ensemble_configuration_is_named(field, value, message):
    with pytest.raises(ValueError, match=message):
        DetectorConfig(method="ensemble", **{field: value})


def test_default_flags_a_spike_and_its_rule_form_matches():
    from wedmetrics.alerting.backtest import default_anomaly_rules

    rng = np.random.default_rng(11)
    values = rng.normal(50.0, 2.0, 1500)
    values[1200] = 90.0
    cfg = det.default_detector_config()
    result = det.detect(values, cfg, use_numba=False)
    # 20 sigma beyond every value seen: the range check flags it at once
    assert result.anomalous[1200] and result.scores[1200] == MAX_NINES
    # Gaussian noise: the conformal ranks are uniform and the range's records
    # beyond a 5 % margin rare, so the rule notifies only now and then
    onsets = det.alert_onsets(result.anomalous[:1200], cfg.consecutive, cfg.cooldown)
    assert onsets.sum() <= 1200 // 200
    (rule,) = default_anomaly_rules("5m")
    frozen = {k: v for k, v in cfg.to_dict().items() if k not in ("threshold", "cooldown")}
    assert {k: v for k, v in rule.detector_config().to_dict().items()
            if k not in ("threshold", "cooldown")} == frozen
    assert (rule.threshold, rule.cooldown) == (cfg.threshold, cfg.cooldown * 300.0)


def test_bad_values_are_named_and_not_learnt():
    detector = EnsembleDetector(DetectorConfig(**SMALL))
    detector.update(1.0)
    with pytest.raises(ValueError, match="finite"):
        detector.update(math.nan)
    with pytest.raises(TypeError, match="real number"):
        detector.update("3")
    assert detector.n_seen == 1
