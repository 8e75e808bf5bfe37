"""The figures a benchmark run reports: printed as they come (run pytest with
``-s`` to see them) and, with ``WEDMETRICS_BENCH_JSON=path``, written as JSON
when the run ends (``conftest.py``)."""
from __future__ import annotations

import json
import os

FIGURES: dict = {}


def report(name: str, **values) -> None:
    FIGURES[name] = values
    print(f"\n{name}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                     for k, v in values.items()))


def write_json() -> None:
    path = os.environ.get("WEDMETRICS_BENCH_JSON")
    if path and FIGURES:
        with open(path, "w") as f:
            json.dump(FIGURES, f, indent=2)
