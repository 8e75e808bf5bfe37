"""Detection quality of the frozen default detector on the NAB development subset.

Reads ``../shared/data/nab-dev`` relative to the repository root (override
with ``WEDMETRICS_NAB_ROOT``); skips cleanly when it is absent.

Run either way, from the repository root::

    python benchmarks/bench_detection.py            # prints the markdown table
    python -m pytest benchmarks/bench_detection.py --benchmark-only -s

Every series is run through :func:`wedmetrics.alerting.detectors.detect` with
``default_detector_config()`` (no per-file setting, nothing read from the
labels), and the decisions are turned into notifications with
:func:`alert_onsets` (one row per firing, then ``cooldown`` rows of quiet),
exactly as an alert rule would.  NAB's two published detectors, thresholded
at NAB's own corpus thresholds, are scored alongside as peers.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:           # runnable as a plain script from anywhere
    sys.path.insert(0, str(REPO))

from wedmetrics.alerting import detectors, nab, scoring  # noqa: E402

NAB_ROOT = Path(os.environ.get("WEDMETRICS_NAB_ROOT", REPO.parent / "shared" / "data" / "nab-dev"))
# NAB's published standard-profile thresholds for its own detectors.
PEERS = {"numenta (HTM, NAB output)": ("numenta", 0.5421876907348634),
         "windowedGaussian (NAB output)": ("windowedGaussian", 1.0)}


@dataclass(frozen=True)
class Row:
    """One line of the figures table."""

    name: str
    standard: float
    low_fp: float
    low_fn: float
    events: scoring.EventScore


def score_detections(name: str, per_file: list[tuple[np.ndarray, nab.NabSeries]]) -> Row:
    """Score one detector's per-file detections with every measure."""
    pairs = [(det, series.windows) for det, series in per_file]
    events = scoring.combine_event_scores(
        scoring.score_events(det, series.windows, series.timestamps) for det, series in per_file)
    return Row(name=name,
               standard=scoring.nab_score(pairs, "standard").normalized,
               low_fp=scoring.nab_score(pairs, "reward_low_FP_rate").normalized,
               low_fn=scoring.nab_score(pairs, "reward_low_FN_rate").normalized,
               events=events)


def run_default(corpus: list[nab.NabSeries], config: detectors.DetectorConfig | None = None,
                *, use_numba: bool | None = None) -> list[tuple[np.ndarray, nab.NabSeries]]:
    """Notification onsets of a detector configuration on every series."""
    config = config or detectors.default_detector_config()
    out = []
    for series in corpus:
        result = detectors.detect(series.values, config, use_numba=use_numba)
        out.append((detectors.alert_onsets(result.anomalous, config.consecutive,
                                           config.cooldown), series))
    return out


def run_peer(corpus: list[nab.NabSeries], detector: str, threshold: float):
    """NAB's published outputs of a detector, thresholded (alerts held while above)."""
    return [(scoring.threshold_detections(nab.read_detector_scores(NAB_ROOT, detector, s.name),
                                          threshold), s) for s in corpus]


def markdown(rows: list[Row]) -> str:
    """The figures table, goals in the header."""
    lines = ["| detector | NAB standard (goal >= 70) | reward_low_FP | reward_low_FN "
             "| windows detected (goal >= 85 %) | notification precision (goal >= 60 %) "
             "| true / false notifications | false alarms per day | median detection delay |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        e = r.events
        lines.append(
            f"| {r.name} | {r.standard:.2f} | {r.low_fp:.2f} | {r.low_fn:.2f} "
            f"| {e.windows_detected} / {e.windows} ({100 * e.window_recall:.0f} %) "
            f"| {100 * e.event_precision:.0f} % | {e.true_events} / {e.false_events} "
            f"| {e.false_alarms_per_day:.3f} | {e.median_delay / 3600:.2f} h |")
    return "\n".join(lines)


def figures() -> tuple[list[Row], float]:
    """All rows (default detector first) and the seconds the default took."""
    corpus = list(nab.iter_corpus(NAB_ROOT))
    detectors.detect(corpus[0].values[:50])          # compile (or load) the kernels first
    start = time.perf_counter()
    mine = run_default(corpus)
    elapsed = time.perf_counter() - start
    rows = [score_detections("wedmetrics default (robust, frozen)", mine)]
    rows += [score_detections(label, run_peer(corpus, det, thr))
             for label, (det, thr) in PEERS.items()]
    return rows, elapsed


def test_detection_quality(benchmark):
    import pytest
    if not (NAB_ROOT / "labels" / "combined_windows.json").exists():
        pytest.skip(f"NAB development data not found at {NAB_ROOT}")
    corpus = list(nab.iter_corpus(NAB_ROOT))
    detectors.detect(corpus[0].values[:50])
    mine = benchmark.pedantic(run_default, args=(corpus,), rounds=3, iterations=1)
    rows = [score_detections("wedmetrics default (robust, frozen)", mine)]
    rows += [score_detections(label, run_peer(corpus, det, thr))
             for label, (det, thr) in PEERS.items()]
    print("\n" + markdown(rows))
    # The scorer must agree with NAB's published figures for its own detectors.
    assert round(rows[1].standard, 2) == 71.49 and round(rows[2].standard, 2) == 39.06
    # The rule-shaped output is one row per notification, never a held alert.
    assert all(not (det[1:] & det[:-1]).any() for det, _ in mine)


def test_numba_batch_vs_streaming_speed(benchmark):
    """The batch twin against the pure streaming path on the same series (a ratio)."""
    import pytest
    if not detectors.HAVE_NUMBA:
        pytest.skip("numba is not installed")
    if not (NAB_ROOT / "labels" / "combined_windows.json").exists():
        pytest.skip(f"NAB development data not found at {NAB_ROOT}")
    series = next(nab.iter_corpus(NAB_ROOT))
    detectors.detect(series.values[:50], use_numba=True)
    start = time.perf_counter()
    slow = detectors.detect(series.values, use_numba=False)
    pure_s = time.perf_counter() - start
    fast = benchmark(detectors.detect, series.values, use_numba=True)
    np.testing.assert_array_equal(fast.scores, slow.scores)
    ratio = pure_s / benchmark.stats.stats.min
    print(f"\nstreaming path {pure_s:.3f} s, numba {benchmark.stats.stats.min:.4f} s: "
          f"{ratio:.0f}x on {len(series)} rows")
    assert ratio > 5


def main() -> int:
    if not (NAB_ROOT / "labels" / "combined_windows.json").exists():
        print(f"NAB development data not found at {NAB_ROOT}; nothing to do")
        return 0
    rows, elapsed = figures()
    cfg = detectors.default_detector_config()
    print(f"default configuration: {cfg.to_dict()}")
    print(f"numba kernels: {detectors.HAVE_NUMBA}; default detector over "
          f"{sum(1 for _ in nab.iter_corpus(NAB_ROOT))} files in {elapsed:.2f} s\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
