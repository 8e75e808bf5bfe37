"""Detector tests: obvious computations on the raw window as oracles, the
Numba twins bit-identical to the streaming path, the surprise gate and the
alert lifecycle, and named errors for bad input."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from wedmetrics.alerting import detectors as det
from wedmetrics.alerting.detectors import DetectorConfig

if det.HAVE_NUMBA:        # installed numba must import: a broken kernel module fails loudly
    from wedmetrics._kernels import _numba


def _obvious_robust_z(history, value):
    med = float(np.median(history))
    mad = float(np.median(np.abs(np.asarray(history) - med)))
    scale = det.MAD_TO_SIGMA * mad
    if scale <= 0:
        scale = det.MEAN_AD_TO_SIGMA * float(np.mean(np.abs(np.asarray(history) - med)))
    if scale <= 0:
        return 0.0 if value == med else math.inf
    return abs(value - med) / scale


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0, 1.5, 2.0, 7.0, -3.0]) | st.floats(-1e6, 1e6),
                min_size=1, max_size=120),
       st.integers(2, 25))
def test_rolling_robust_z_matches_median_and_mad_of_the_raw_window(stream, window):
    rolling = det._RollingRobustZ(window, 2)
    history: list[float] = []
    for value in stream:
        expected = _obvious_robust_z(history, value) if len(history) >= 2 else 0.0
        got = rolling.zscore(value)
        if math.isinf(expected):
            assert math.isinf(got)
        else:
            assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)
        rolling.push(value)
        history = (history + [value])[-window:]


def test_robust_detector_scores_are_the_max_of_level_step_and_mean_views():
    rng = np.random.default_rng(7)
    values = rng.normal(100.0, 5.0, 300)
    cfg = DetectorConfig(window=50, min_periods=10, mean_span=4, surprise_window=0)
    result = det.detect(values, cfg, use_numba=False)
    steps = np.diff(values)
    means = np.array([values[max(0, i - 3):i + 1].mean() for i in range(len(values))])
    for i in (60, 150, 299):
        expected = max(_obvious_robust_z(values[i - 50:i], values[i]),
                       _obvious_robust_z(steps[i - 51:i - 1], steps[i - 1]),
                       _obvious_robust_z(means[i - 50:i], means[i]))
        assert result.scores[i] == pytest.approx(expected, rel=1e-9)


def test_ewma_matches_the_explicit_weighted_mean_and_variance():
    rng = np.random.default_rng(3)
    values = rng.normal(0.0, 1.0, 60)
    alpha = 0.1
    cfg = DetectorConfig(method="ewma", alpha=alpha, min_periods=5, surprise_window=0)
    result = det.detect(values, cfg, use_numba=False)
    for t in (10, 30, 59):
        past = values[:t]
        weights = alpha * (1 - alpha) ** np.arange(t - 1, -1, -1)
        weights[0] = (1 - alpha) ** (t - 1)      # the first value seeds the mean
        mean = float(np.sum(weights * past))
        var = float(np.sum(weights * (past - mean) ** 2))
        assert result.scores[t] == pytest.approx(abs(values[t] - mean) / math.sqrt(var),
                                                 rel=1e-9)


def test_a_spike_alerts_once_and_quiet_noise_does_not():
    rng = np.random.default_rng(11)
    values = rng.normal(50.0, 2.0, 1500)
    values[1200] = 90.0
    result = det.detect(values, DetectorConfig(), use_numba=False)
    assert result.anomalous[1200]
    assert not result.anomalous[:1200].any()
    onsets = det.alert_onsets(result.anomalous, 1, 100)
    assert np.flatnonzero(onsets).tolist() == [1200]


def test_flat_history_broken_gives_infinite_score_and_flat_stays_silent():
    cfg = DetectorConfig(window=20, min_periods=5, surprise_window=0)
    flat = det.detect(np.full(100, 3.0), cfg, use_numba=False)
    assert not flat.anomalous.any() and not flat.scores.any()
    broken = det.detect(np.r_[np.full(50, 3.0), 3.5], cfg, use_numba=False)
    assert math.isinf(broken.scores[-1]) and broken.anomalous[-1]


def test_surprise_gate_needs_a_new_record_within_its_span():
    values = np.tile([10.0, 11.0, 9.0, 10.0], 100)
    values[[200, 260, 390]] = 40.0
    gated = det.detect(values, DetectorConfig(window=100, min_periods=20, mean_span=1,
                                              surprise_window=100), use_numba=False)
    # The repeat 60 rows later is no news; 130 rows after it, the record has aged out.
    assert gated.anomalous[200] and not gated.anomalous[260] and gated.anomalous[390]
    plain = det.detect(values, DetectorConfig(window=100, min_periods=20, mean_span=1,
                                              surprise_window=0), use_numba=False)
    assert plain.anomalous[[200, 260, 390]].all()


def _spike_then_shift():
    rng = np.random.default_rng(21)
    values = rng.normal(0.0, 1.0, 900)
    values[400] += 12.0     # one row: level/step z ~12-15, the 6-row mean view only ~12/sqrt(6)
    values[700:] += 4.0     # sustained: level z ~4, the mean view climbs to ~4 sqrt(6)
    return values


def test_per_view_gate_sees_a_shift_that_a_bigger_spike_hides_from_the_combined_gate():
    values = _spike_then_shift()
    alerts = {}
    for gate in ("score", "view"):
        cfg = DetectorConfig(window=300, min_periods=30, threshold=6.0, surprise_window=2000,
                             gate=gate)
        result = det.detect(values, cfg, use_numba=False)
        alerts[gate] = np.flatnonzero(det.alert_onsets(result.anomalous, 1, 100)).tolist()
    # One record for the combined score: the shift's ~10 never beats the spike's ~15.
    assert alerts["score"] == [400]
    # The mean view's own record is the spike's ~5: the shift beats it on its 4th row.
    assert alerts["view"] == [400, 703]


def _obvious_per_view(values, cfg):
    """Per-view z-scores from raw windows, then the records, by brute force."""
    n = len(values)
    steps = np.r_[np.nan, np.diff(values)]
    means = np.array([values[max(0, i - cfg.mean_span + 1):i + 1].mean() for i in range(n)])
    feats = [values, steps, means]
    z = np.zeros((3, n))
    for v, f in enumerate(feats):
        for i in range(n):
            start = 1 if v == 1 else 0
            hist = f[max(start, i - cfg.window):i]
            if i >= start and len(hist) >= cfg.min_periods:
                z[v, i] = _obvious_robust_z(hist, f[i])
    scores = np.zeros(n)
    anomalous = np.zeros(n, dtype=bool)
    for i in range(n):
        fresh = [z[v, i] > z[v, max(0, i - cfg.surprise_window):i].max(initial=-1.0)
                 for v in range(3)]
        best = max((z[v, i] for v in range(3) if fresh[v]), default=None)
        scores[i] = z[:, i].max() if best is None else best
        anomalous[i] = best is not None and best >= cfg.threshold
    return scores, anomalous


def test_per_view_gate_matches_brute_force_records():
    rng = np.random.default_rng(4)
    values = np.round(rng.standard_t(3, 260) * 3.0, 1)
    values[150:] += 6.0
    cfg = DetectorConfig(window=40, min_periods=10, mean_span=4, threshold=3.0,
                         surprise_window=60)
    result = det.detect(values, cfg, use_numba=False)
    scores, anomalous = _obvious_per_view(values, cfg)
    np.testing.assert_allclose(result.scores, scores, rtol=1e-9)
    np.testing.assert_array_equal(result.anomalous, anomalous)
    assert anomalous.any() and not anomalous.all()


@pytest.mark.parametrize("gate", ["view", "score"])
def test_a_tiny_detector_threshold_then_score_at_least_t_is_the_threshold_t_verdict(gate):
    # Alert rules keep the detector's threshold tiny (its verdict carries only
    # the gate) and compare the score with their own, feedback-moved threshold.
    values = _spike_then_shift()
    tiny = det.detect(values, DetectorConfig(threshold=1e-12, gate=gate), use_numba=False)
    for t in (2.0, 4.0, 6.0, 9.0):
        direct = det.detect(values, DetectorConfig(threshold=t, gate=gate), use_numba=False)
        np.testing.assert_array_equal(tiny.anomalous & (tiny.scores >= t), direct.anomalous)


def test_seasonal_differencing_ignores_the_daily_pattern():
    period = 48
    t = np.arange(period * 20)
    rng = np.random.default_rng(5)
    values = 100 + 40 * np.sin(2 * np.pi * t / period) + rng.normal(0, 1.0, len(t))
    values[period * 15 + 7] += 15.0          # small next to the daily swing
    seasonal = det.detect(values, DetectorConfig(window=300, min_periods=30, season=period,
                                                 surprise_window=0), use_numba=False)
    spike = period * 15 + 7
    alerts = set(np.flatnonzero(seasonal.anomalous).tolist())
    assert spike in alerts
    # Differencing echoes the spike one season later; the 6-row mean view
    # stretches both by up to mean_span rows.  Nothing else may alert.
    allowed = set(range(spike, spike + 6)) | set(range(spike + period, spike + period + 6))
    assert alerts <= allowed
    assert not seasonal.scores[:period].any()                     # first season: learning


def test_streaming_update_matches_batch_detect():
    values = np.random.default_rng(1).normal(0, 1, 400)
    cfg = DetectorConfig(window=40, min_periods=10, surprise_window=50)
    stream = det.make_detector(cfg)
    decisions = [stream.update(v) for v in values]
    batch = det.detect(values, cfg, use_numba=False)
    assert [d.score for d in decisions] == batch.scores.tolist()
    assert [d.anomalous for d in decisions] == batch.anomalous.tolist()
    assert stream.n_seen == 400


def test_alert_onsets_lifecycle():
    flags = np.array([1, 1, 1, 1, 0, 1, 0, 1, 1, 1, 1, 1], dtype=bool)
    assert np.flatnonzero(det.alert_onsets(flags, 1, 0)).tolist() == [0, 1, 2, 3, 5, 7, 8, 9,
                                                                        10, 11]
    assert np.flatnonzero(det.alert_onsets(flags, 1, 3)).tolist() == [0, 5, 9]
    assert np.flatnonzero(det.alert_onsets(flags, 2, 2)).tolist() == [1, 8, 11]
    assert np.flatnonzero(det.alert_onsets(flags, 5, 0)).tolist() == [11]


_configs = st.builds(
    DetectorConfig,
    method=st.sampled_from(["robust", "ewma"]),
    window=st.integers(2, 30), min_periods=st.just(2),
    threshold=st.floats(0.5, 8.0), surprise_window=st.integers(0, 40),
    gate=st.sampled_from(["view", "score"]),
    mean_span=st.integers(1, 6), alpha=st.floats(0.01, 0.9), season=st.integers(0, 6))

_values = st.lists(st.sampled_from([0.0, 1.0, 1.0, 2.5, -4.0, 100.0]) | st.floats(-1e9, 1e9),
                   min_size=0, max_size=200)


@pytest.mark.skipif(not det.HAVE_NUMBA, reason="the Numba twins need numba installed")
@settings(max_examples=150, deadline=None)
@given(_values, _configs)
def test_numba_kernels_are_bit_identical_to_the_streaming_detectors(values, config):
    arr = np.asarray(values, dtype=np.float64)
    pure = det.detect(arr, config, use_numba=False)
    fast = det.detect(arr, config, use_numba=True)
    np.testing.assert_array_equal(fast.scores, pure.scores)
    np.testing.assert_array_equal(fast.anomalous, pure.anomalous)


@pytest.mark.skipif(not det.HAVE_NUMBA, reason="the Numba twins need numba installed")
@settings(max_examples=100, deadline=None)
@given(st.lists(st.booleans(), max_size=200), st.integers(1, 5), st.integers(0, 30))
def test_numba_alert_onsets_match(flags, consecutive, cooldown):
    arr = np.asarray(flags, dtype=bool)
    np.testing.assert_array_equal(_numba.alert_onsets(arr, consecutive, cooldown),
                                  det.alert_onsets(arr, consecutive, cooldown))


def test_importing_the_detectors_does_not_import_numba():
    code = ("import sys, wedmetrics.alerting.detectors, wedmetrics.alerting.scoring; "
            "assert 'numba' not in sys.modules, 'numba imported'; "
            "assert 'pandas' not in sys.modules, 'pandas imported'")
    env = dict(os.environ, PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", code], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("field, value, message", [
    ("method", "lstm", "method='lstm'"),
    ("gate", "both", "gate='both'"),
    ("window", 1, "window=1"),
    ("min_periods", 700, "min_periods=700 exceeds window=300"),
    ("threshold", float("nan"), "threshold=nan"),
    ("threshold", 0, "threshold=0"),
    ("alpha", 1.0, "alpha=1.0"),
    ("cooldown", -1, "cooldown=-1"),
    ("consecutive", 0, "consecutive=0"),
    ("season", 2.5, "season=2.5"),
    ("surprise_window", True, "surprise_window=True"),
])
def test_bad_configuration_is_named(field, value, message):
    with pytest.raises(ValueError, match=message):
        DetectorConfig(**{field: value})


def test_bad_values_are_named_and_not_learnt():
    stream = det.make_detector()
    with pytest.raises(ValueError, match="value=nan"):
        stream.update(float("nan"))
    with pytest.raises(TypeError, match="value='3'"):
        stream.update("3")
    with pytest.raises(TypeError, match="value=True"):
        stream.update(True)
    assert stream.n_seen == 0
    with pytest.raises(ValueError, match=r"values\[2\]=inf"):
        det.detect(np.array([1.0, 2.0, np.inf]))
    with pytest.raises(ValueError, match="1-D"):
        det.detect(np.zeros((3, 3)))
    with pytest.raises(TypeError, match="dtype"):
        det.detect(np.array(["a", "b"]))
    with pytest.raises(ValueError, match="needs method='robust'"):
        det.RobustZDetector(DetectorConfig(method="ewma"))
    with pytest.raises(ValueError, match="cooldown=-2"):
        det.alert_onsets(np.zeros(3, dtype=bool), 1, -2)


def test_default_configuration_is_frozen():
    cfg = det.default_detector_config()
    assert cfg.to_dict() == {"method": "ensemble", "window": 300, "min_periods": 30,
                             "threshold": 5.0, "surprise_window": 2000, "gate": "view",
                             "mean_span": 6, "alpha": 0.02, "season": 0, "consecutive": 1,
                             "cooldown": 100, "scorers": ("knn",), "season_lag": 288,
                             "knn_dim": 10, "knn_k": 3, "knn_history": 300,
                             "calibration": 4000, "likelihood_window": 8640, "averaging": 10,
                             "learning": 300, "novelty_tolerance": 0.05}
    with pytest.raises(AttributeError):
        cfg.threshold = 3.0  # type: ignore[misc]


def test_mean_view_does_not_drift_on_a_mostly_zero_series():
    # A running sum leaves ~1e-17 after a spike leaves the mean window; on a
    # flat view that residue would score astronomically.  Exact re-summing
    # brings every view back to exactly 0.
    values = np.zeros(400)
    values[200:203] = [0.1, 0.2, 0.3]   # 0.1 + 0.2 + 0.3 - 0.1 - 0.2 - 0.3 != 0 in floats
    values[230:232] = [7.3, 1.1]
    result = det.detect(values, DetectorConfig(window=100, min_periods=10, mean_span=6,
                                               surprise_window=0), use_numba=False)
    assert math.isinf(result.scores[200]) and result.anomalous[200]
    assert not result.scores[209:230].any() and not result.scores[238:].any()
