"""Scorer tests: NAB's published figures, a literal port of NAB's loop as
oracle, and the plain notification measures on hand-checked cases."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from wedmetrics.alerting import nab, scoring

DATA = Path(__file__).resolve().parents[1] / "data" / "nab" / "reference_detections.json"


def _reference_corpus(detector):
    spec = json.loads(DATA.read_text())
    for name, entry in sorted(spec["files"].items()):
        n = entry["rows"]
        det = np.zeros(n, dtype=bool)
        for lo, hi in entry["detections"][detector]:
            det[lo:hi + 1] = True
        deltas = np.concatenate([np.full(int(c), d) for d, c in entry["dt_runs"]]) \
            if entry["dt_runs"] else np.empty(0)
        ts = entry["t0"] + np.concatenate(([0.0], np.cumsum(deltas)))
        assert ts.shape == (n,), name
        yield det, np.array(entry["windows"], dtype=np.int64).reshape(-1, 2), ts


@pytest.mark.parametrize("detector, raw, normalized, detected, true_events, false_events", [
    ("numenta", 22.7785, 71.49, 44, 86, 58),
    ("windowedGaussian", -11.5916, 39.06, 35, 100, 168),
])
def test_reproduces_nab_published_figures(detector, raw, normalized, detected,
                                          true_events, false_events):
    corpus = list(_reference_corpus(detector))
    result = scoring.nab_score([(d, w) for d, w, _ in corpus], "standard")
    assert result.windows == 53
    assert (result.perfect, result.null) == (53.0, -53.0)
    assert result.raw == pytest.approx(raw, abs=5e-5)
    assert round(result.normalized, 2) == normalized
    assert result.windows_detected == detected
    events = scoring.combine_event_scores(scoring.score_events(d, w, t) for d, w, t in corpus)
    assert (events.windows_detected, events.true_events, events.false_events) == \
        (detected, true_events, false_events)


def test_profiles_normalise_against_their_own_costs():
    corpus = [(d, w) for d, w, _ in _reference_corpus("numenta")]
    std = scoring.nab_score(corpus, "standard")
    low_fn = scoring.nab_score(corpus, "reward_low_FN_rate")
    low_fp = scoring.nab_score(corpus, "reward_low_FP_rate")
    missed = std.windows - std.windows_detected
    # Only the FN cost changes between standard and low-FN: 9 missed windows cost twice.
    assert low_fn.raw == pytest.approx(std.raw - missed)
    assert (low_fn.perfect, low_fn.null) == (53.0, -106.0)
    assert low_fn.normalized == pytest.approx(100 * (low_fn.raw + 106) / 159)
    # Doubling A_FP doubles exactly the FP part of the score (found with A_FP = 0).
    windows_only = scoring.nab_score(corpus, scoring.NabProfile("no_fp", 1.0, 1.0, 0.0))
    fp_part = std.raw - windows_only.raw
    assert fp_part < 0
    assert low_fp.raw == pytest.approx(windows_only.raw + 2 * fp_part)


def _nab_loop_oracle(n, windows, profile):
    """Literal port of NAB sweeper.calcSweepScore's per-row weights (with
    timestamps equal to row numbers)."""
    def sig(x):
        return -1.0 if x > 3.0 else 2 * (1 / (1 + math.exp(5 * x))) - 1.0
    limits = [tuple(w) for w in windows]
    cur = None
    prev_right = prev_width = None
    out = []
    for i in range(n):
        if limits and i == limits[0][0]:
            cur = limits.pop(0)
            cur_right, cur_width = cur[1], float(cur[1] - cur[0] + 1)
        if cur is not None:
            out.append(sig(-(cur_right - i + 1) / cur_width) * profile.tp_weight / sig(-1.0))
        elif prev_right is None:
            out.append(-1.0 * profile.fp_weight)
        else:
            out.append(sig(abs(i - prev_right) / float(prev_width - 1)) * profile.fp_weight)
        if cur is not None and i == cur[1]:
            prev_right, prev_width, cur = i, cur_width, None
    return np.array(out)


@st.composite
def _file(draw):
    n = draw(st.integers(10, 400))
    cuts = sorted(draw(st.sets(st.integers(0, n - 1), max_size=6)))
    windows = [[cuts[i], cuts[i + 1]] for i in range(0, len(cuts) - 1, 2)
               if cuts[i + 1] > cuts[i]]
    det = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    return n, np.array(windows, dtype=np.int64).reshape(-1, 2), det


@settings(max_examples=60, deadline=None)
@given(_file(), st.sampled_from(sorted(scoring.NAB_PROFILES)))
def test_weights_and_file_score_match_a_literal_nab_port(case, profile_name):
    n, windows, det = case
    profile = scoring.NAB_PROFILES[profile_name]
    weights = _nab_loop_oracle(n, windows.tolist(), profile)
    np.testing.assert_allclose(scoring.nab_row_weights(n, windows, profile), weights,
                               rtol=1e-12, atol=1e-12)
    prob = scoring.probationary_rows(n)
    expected = 0.0
    inside = np.zeros(n, dtype=bool)
    for lo, hi in windows.tolist():
        inside[lo:hi + 1] = True
        hit = [weights[i] for i in range(max(lo, prob), hi + 1) if det[i]]
        expected += max(hit) if hit else -profile.fn_weight
    expected += sum(weights[i] for i in range(prob, n) if det[i] and not inside[i])
    got = scoring.nab_file_score(det, windows, profile)
    assert got.raw == pytest.approx(expected, abs=1e-9)
    scored = np.arange(n) >= prob
    assert got.tp + got.fp == int((det & scored).sum())
    assert got.tp + got.fp + got.fn + got.tn == n - prob


def test_weight_landmarks():
    n = 1000
    w = scoring.nab_row_weights(n, np.array([[200, 299]]), "standard")
    assert w[199] == pytest.approx(-0.11)                  # before any window: full FP cost
    assert w[200] == pytest.approx(1.0)                    # first row of a window: A_TP
    assert 0 < w[299] < 0.05                               # right edge: almost nothing
    assert np.all(np.diff(w[200:300]) < 0)                 # earlier is better
    assert -0.11 < w[300] < 0                              # just after: small penalty
    assert w[700] == pytest.approx(-0.11)                  # far past: full FP cost again


def test_only_the_earliest_detection_in_a_window_counts_and_every_fp_row_costs():
    n = 1000
    windows = np.array([[400, 449]])
    early = np.zeros(n, dtype=bool)
    early[[400, 420, 440]] = True
    assert scoring.nab_file_score(early, windows).raw == pytest.approx(1.0)
    held = np.zeros(n, dtype=bool)
    held[300:310] = True                                   # ten rows before the window
    assert scoring.nab_file_score(held, windows).raw == pytest.approx(-1.0 - 10 * 0.11)
    single = np.zeros(n, dtype=bool)
    single[300] = True
    assert scoring.nab_file_score(single, windows).raw == pytest.approx(-1.0 - 0.11)


def test_probationary_rows_are_ignored():
    assert scoring.probationary_rows(1000) == 150
    assert scoring.probationary_rows(4000) == 600
    assert scoring.probationary_rows(100_000) == 750
    det = np.zeros(1000, dtype=bool)
    det[:150] = True
    score = scoring.nab_file_score(det, np.empty((0, 2)))
    assert (score.raw, score.fp, score.tn) == (0.0, 0, 850)
    assert scoring.score_events(det, np.empty((0, 2))).events == 0
    assert scoring.score_events(det, np.empty((0, 2)), probation=False).events == 1


def test_event_measures_count_onsets_not_rows():
    n = 1000
    ts = 1_400_000_000.0 + 300.0 * np.arange(n)           # 5-minute rows
    windows = np.array([[400, 449], [700, 749]])
    det = np.zeros(n, dtype=bool)
    det[395:405] = True        # carried into window 0 from before: true, delay 0
    det[600:700] = True        # a long false alarm ending the row before window 1
    det[720] = True            # onset 20 rows into window 1
    det[900] = True
    s = scoring.score_events(det, windows, ts)
    assert scoring.alert_events(det).tolist() == [[395, 404], [600, 699], [720, 720], [900, 900]]
    assert (s.true_events, s.false_events, s.windows_detected) == (2, 2, 2)
    assert s.event_precision == 0.5
    assert s.detection_delays == (0.0, 20 * 300.0)
    assert s.median_delay == 10 * 300.0
    assert s.scored_days == pytest.approx((n - 1 - 150) * 300 / 86400)
    assert s.false_alarms_per_day == pytest.approx(2 / s.scored_days)
    no_ts = scoring.score_events(det, windows)
    assert no_ts.detection_delays == (0.0, 20.0) and math.isnan(no_ts.false_alarms_per_day)


def test_empty_measures_are_nan_not_errors():
    s = scoring.score_events(np.zeros(300, dtype=bool), np.empty((0, 2)))
    assert math.isnan(s.event_precision) and math.isnan(s.window_recall)
    assert math.isnan(s.median_delay)
    with pytest.raises(ValueError, match="at least one window"):
        scoring.nab_score([(np.zeros(300, dtype=bool), np.empty((0, 2)))])


@pytest.mark.parametrize("windows, message", [
    ([[5, 3]], r"windows\[0\] = \[5, 3\]"),
    ([[0, 100]], "not inside rows 0..49"),
    ([[10, 20], [15, 30]], r"windows\[1\].*overlaps"),
])
def test_bad_windows_are_named(windows, message):
    with pytest.raises(ValueError, match=message):
        scoring.nab_file_score(np.zeros(50, dtype=bool), np.array(windows))


def test_bad_detections_and_profiles_are_named():
    with pytest.raises(ValueError, match="booleans"):
        scoring.nab_file_score(np.array([0.0, 0.7, 1.0]), np.empty((0, 2)))
    with pytest.raises(ValueError, match="1-D"):
        scoring.score_events(np.zeros((2, 2), dtype=bool), np.empty((0, 2)))
    with pytest.raises(ValueError, match="profile='strict'"):
        scoring.nab_file_score(np.zeros(5, dtype=bool), np.empty((0, 2)), "strict")
    with pytest.raises(ValueError, match="NaN at row 1"):
        scoring.threshold_detections(np.array([0.1, np.nan]), 0.5)
    assert scoring.threshold_detections(np.array([0.4, 0.5, 0.9]), 0.5).tolist() == \
        [False, True, True]


def test_nab_files_load_and_resolve_duplicate_timestamps_to_the_first_row(tmp_path):
    root = tmp_path / "nab"
    (root / "data" / "cat").mkdir(parents=True)
    (root / "labels").mkdir()
    rows = ["2014-11-02 00:30:00", "2014-11-02 01:00:00", "2014-11-02 01:30:00",
            "2014-11-02 01:00:00", "2014-11-02 01:30:00", "2014-11-02 02:00:00"]
    (root / "data" / "cat" / "dst.csv").write_text(
        "timestamp,value\n" + "".join(f"{t},{i}\n" for i, t in enumerate(rows)))
    (root / "labels" / "combined_windows.json").write_text(json.dumps(
        {"cat/dst.csv": [["2014-11-02 01:00:00.000000", "2014-11-02 01:30:00.000000"]]}))
    (series,) = nab.iter_corpus(root)
    assert series.name == "cat/dst.csv"
    assert series.windows.tolist() == [[1, 2]]
    assert series.values.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert series.timestamps[0] == 1414888200.0      # 2014-11-02T00:30:00Z
    with pytest.raises(ValueError, match="not a row timestamp"):
        nab.window_rows(series.timestamps, [(0.0, 1.0)], name="cat/dst.csv")


def test_nab_csv_errors_name_file_and_row(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:05:00,abc\n")
    with pytest.raises(ValueError, match=r"bad.csv:3: value='abc'"):
        nab.read_series_csv(bad)
    bad.write_text("time,value\n")
    with pytest.raises(ValueError, match="expected columns"):
        nab.read_series_csv(bad)
    bad.write_text("timestamp,value\nyesterday,1\n")
    with pytest.raises(ValueError, match="unparseable timestamp"):
        nab.read_series_csv(bad)


def test_profiles_file_matches_builtin_profiles(tmp_path):
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps({name: {"CostMatrix": {
        "tpWeight": p.tp_weight, "fnWeight": p.fn_weight, "fpWeight": p.fp_weight,
        "tnWeight": 1.0}} for name, p in scoring.NAB_PROFILES.items()}))
    loaded = nab.read_profiles(path)
    assert loaded["reward_low_FP_rate"] == {"tp": 1.0, "fn": 1.0, "fp": 0.22}
