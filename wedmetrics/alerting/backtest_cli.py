"""``python -m wedmetrics backtest [rules.yaml] data.csv [--labels windows.json] [--plot out.png]
[--alerts-out alerts.csv] [--json metrics.json]``: backtest alert rules on a CSV."""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``backtest`` command."""
    p = argparse.ArgumentParser(
        prog="python -m wedmetrics backtest",
        description="Replay a timestamp,value CSV through alert rules and score the alerts. "
                    "Without a rules file the frozen default anomaly rule is used.")
    p.add_argument("files", nargs="+", metavar="[rules.yaml] data.csv")
    p.add_argument("--labels", help="NAB combined_windows.json or a JSON list of [start, end] pairs")
    p.add_argument("--plot", help="write the plot to this PNG")
    p.add_argument("--alerts-out", help="write timestamp,alert (1 while a rule fires) per input "
                                        "row, in time order")
    p.add_argument("--json", help="write the metrics as JSON")
    p.add_argument("--step", type=_step, help="sampling period: seconds (300) or a duration "
                                              "(5m); default the most common gap")
    p.add_argument("--path", choices=("auto", "vectorised", "streaming"), default="auto")
    return p


def _step(text: str) -> "float | str":
    """``--step 300`` means seconds, as ``step=300`` does in Python; ``5m`` stays a duration."""
    try:
        return float(text)
    except ValueError:
        return text


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status (0 ok, 2 bad input)."""
    args = build_parser().parse_args(argv)
    if len(args.files) > 2:
        print(f"backtest: expected [rules.yaml] data.csv, got {len(args.files)} files", file=sys.stderr)
        return 2
    rules_path, data_path = (args.files if len(args.files) == 2 else (None, args.files[0]))
    from .backtest import UnknownStepError, backtest

    try:
        result = backtest(rules_path, data_path, labels=args.labels, step=args.step, path=args.path)
    except UnknownStepError as e:
        print(f"backtest: {e.reason}; give --step", file=sys.stderr)
        return 2
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"backtest: {e}", file=sys.stderr)
        return 2
    print(f"{data_path}: {len(result.timestamps)} rows, step {result.step:g}s, "
          f"{len(result.windows)} labelled windows, {result.path} path")
    print(result.metrics_table())
    if args.alerts_out:
        with open(args.alerts_out, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["timestamp", "alert"])
            stamps = result.timestamps.astype("datetime64[s]").astype(str)
            for t, a in zip(stamps.tolist(), result.alert.tolist()):
                w.writerow([t.replace("T", " "), int(a)])
    if args.json:
        Path(args.json).write_text(json.dumps(_jsonable(result.metrics), indent=2))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        fig = result.plot()
        fig.savefig(args.plot, dpi=110)
        import matplotlib.pyplot as plt

        plt.close(fig)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
