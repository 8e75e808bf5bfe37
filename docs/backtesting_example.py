"""Backtesting alert rules on a NAB series (the script twin of docs/backtesting.ipynb).

Run it with the package importable (installed, or ``PYTHONPATH=.``), from any
directory: ``python docs/backtesting_example.py``.  Cells are separated by
``# %%`` lines; ``python scripts/make_backtesting_notebook.py`` writes the
notebook from this file, where the plots show inline.
"""
# %%
# Load a NAB series: from shared/data/nab-dev beside the checkout when present, otherwise
# NAB's real timestamps (tests/data/nab) with seeded values carrying a level jump.
import json
import tempfile
from pathlib import Path

import numpy as np

import wedmetrics
from wedmetrics.alerting.backtest import backtest, default_anomaly_rules

# A notebook's kernel starts in the notebook's folder, a script anywhere: find the
# checkout from here, or from the package when it is installed in development mode.
AS_SCRIPT = "__file__" in globals()
HERE = Path(__file__).resolve().parent if AS_SCRIPT else Path.cwd()
REFERENCE = Path("tests/data/nab/reference_detections.json")
ROOT = next(d for d in (HERE, *HERE.parents, Path(wedmetrics.__file__).resolve().parents[1])
            if (d / REFERENCE).exists())
NAB = next((d / "shared/data/nab-dev" for d in ROOT.parents
            if (d / "shared/data/nab-dev").is_dir()), None)
NAME = "realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv"
if NAB is not None and (NAB / "data" / NAME).exists():
    data = str(NAB / "data" / NAME)
    labels = str(NAB / "labels" / "combined_windows.json")
else:
    ref = json.loads((ROOT / REFERENCE).read_text())["files"][NAME]
    ts = ref["t0"] + 300.0 * np.arange(ref["rows"])
    rng = np.random.default_rng(3)
    v = 40 + rng.normal(0, 2, ref["rows"])
    v[3000:3100] += 30
    data = {"timestamp": ts, "value": v}
    labels = [[float(ts[2950]), float(ts[3150])]]

# %%
# Rule set A: the frozen default anomaly rule (what the CLI uses without a rules file):
# KNN CAD distances of the last 10 values, ranked against their own last 4,000, through
# the anomaly likelihood (mean of the last 10 surprises), alerting at 5 nines (a tail of
# 1e-5), plus NAB's range check (a value 5 % beyond the last 8,640's range alerts at once);
# one notification per onset, 100 steps of cooldown.
rules_a = default_anomaly_rules("5m")
rule = rules_a[0]
print(rule.detector, rule.scorers, rule.threshold, rule.averaging, rule.calibration,
      rule.novelty_tolerance)
result_a = backtest(rules_a, data, labels=labels)
print(result_a)
print(result_a.metrics_table())

# %%
# Rule set B: a plain static threshold on the value, with `for` and hysteresis.
rules_b = [{"kind": "threshold", "name": "cpu_high", "metric": "value", "stat": "mean",
            "window": "5m", "op": ">", "threshold": 50.0, "recovery_threshold": 40.0,
            "for": "5m", "keep_firing_for": "30m", "severity": "critical"}]
result_b = backtest(rules_b, data, labels=labels)
print(result_b.metrics_table())

# %%
# Compare the two rule sets side by side.
for name, res in (("A: default anomaly", result_a), ("B: static threshold", result_b)):
    m = res.metrics["overall"]
    print(f"{name:22s} windows {m['windows_detected']}/{m['windows']}  "
          f"notifications {m['notifications']}  precision {m['event_precision']:.2f}  "
          f"NAB standard {m['nab_standard']:.1f}")

# %%
# Every notification rule set A would have sent, and the per-row frame.
print(result_a.events_frame()[["time", "kind", "rule", "severity", "value"]])
frame = result_a.to_frame()
print(frame[frame["alert"]].head())

# %%
# Rule set A's plot: the series, labelled windows (green), pending/firing strips and
# notifications. The notebook shows it inline; run as a script, it goes to a PNG file.
fig_a = result_a.plot()
if AS_SCRIPT:
    fig_a.savefig(Path(tempfile.gettempdir()) / "backtest_a.png", dpi=100)

# %%
# Rule set B's plot.
fig_b = result_b.plot()
if AS_SCRIPT:
    fig_b.savefig(Path(tempfile.gettempdir()) / "backtest_b.png", dpi=100)
    print("plots written to", tempfile.gettempdir())
