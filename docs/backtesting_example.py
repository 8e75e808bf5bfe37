"""Backtesting alert rules on a NAB series (the script twin of docs/backtesting.ipynb).

Run from the repository root with the package importable (installed, or
``PYTHONPATH=. python docs/backtesting_example.py``).  Cells are
separated by ``# %%`` lines; the notebook is generated from this file.
"""
# %%
# Load a NAB series: from ../shared/data/nab-dev when present, otherwise NAB's real
# timestamps (tests/data/nab) with seeded values carrying a level jump.
import json
import tempfile
from pathlib import Path

import matplotlib
import numpy as np

from wedmetrics.alerting.backtest import backtest, default_anomaly_rules

matplotlib.use("Agg")
ROOT = Path.cwd()
NAB = ROOT.parent / "shared" / "data" / "nab-dev"
NAME = "realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv"
if (NAB / "data" / NAME).exists():
    data = str(NAB / "data" / NAME)
    labels = str(NAB / "labels" / "combined_windows.json")
else:
    ref = json.loads((ROOT / "tests/data/nab/reference_detections.json").read_text())["files"][NAME]
    ts = ref["t0"] + 300.0 * np.arange(ref["rows"])
    rng = np.random.default_rng(3)
    v = 40 + rng.normal(0, 2, ref["rows"])
    v[3000:3100] += 30
    data = {"timestamp": ts, "value": v}
    labels = [[float(ts[2950]), float(ts[3150])]]

# %%
# Rule set A: the frozen default anomaly rule (what the CLI uses without a rules file):
# robust z-scores, ranked against their own last 4,000, through the anomaly likelihood,
# alerting at 5 nines (a tail of 1e-5), one notification per onset, 100 steps of cooldown.
rules_a = default_anomaly_rules("5m")
rule = rules_a[0]
print(rule.detector, rule.scorers, rule.threshold, rule.averaging, rule.calibration)
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
# The plots: series, labelled windows (green), pending/firing strips, notifications.
fig_a = result_a.plot()
fig_b = result_b.plot()
out = Path(tempfile.gettempdir())
fig_a.savefig(out / "backtest_a.png", dpi=100)
fig_b.savefig(out / "backtest_b.png", dpi=100)
print("plots written to", out)
