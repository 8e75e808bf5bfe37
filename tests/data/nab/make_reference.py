"""Rebuild ``reference_detections.json`` from a NAB checkout (or the dev subset).

Run from the repository root::

    python tests/data/nab/make_reference.py ../shared/data/nab-dev

For every labelled file it keeps only what the scorer test needs: the row
count, the timestamps as run-lengths of their differences, the windows as
row indices, and the rows where each published NAB detector output reaches
NAB's own corpus threshold, as runs ``[first_row, last_row]``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:           # runnable as a plain script from the repo root
    sys.path.insert(0, str(REPO))

from wedmetrics.alerting import nab, scoring  # noqa: E402

# NAB's published thresholds for the standard profile (config/thresholds.json).
THRESHOLDS = {"numenta": 0.5421876907348634, "windowedGaussian": 1.0}


def delta_runs(timestamps: np.ndarray) -> list[list[float]]:
    """``[[delta_seconds, repeat], ...]`` so that the timestamps are recoverable."""
    runs: list[list[float]] = []
    for delta in np.diff(timestamps).tolist():
        if runs and runs[-1][0] == delta:
            runs[-1][1] += 1
        else:
            runs.append([delta, 1])
    return runs


def main(root: str) -> None:
    files = {}
    for series in nab.iter_corpus(root):
        entry = {"rows": len(series), "t0": float(series.timestamps[0]),
                 "dt_runs": delta_runs(series.timestamps),
                 "windows": series.windows.tolist(), "detections": {}}
        for detector, threshold in THRESHOLDS.items():
            scores = nab.read_detector_scores(root, detector, series.name)
            det = scoring.threshold_detections(scores, threshold)
            entry["detections"][detector] = scoring.alert_events(det).tolist()
        files[series.name] = entry
    out = {"source": "numenta/NAB v1.1 commit ea702d75cc2258d9d7dd35ca8e5e2539d71f3140, "
                     "MIT licence (see LICENSE.txt beside this file)",
           "thresholds": THRESHOLDS, "files": files}
    target = Path(__file__).with_name("reference_detections.json")
    target.write_text(json.dumps(out, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/nab-dev")
