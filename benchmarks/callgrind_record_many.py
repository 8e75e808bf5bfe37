"""Instructions per point of one ``record_many`` call, under callgrind.

Run (from the repository root, compiled core built in place)::

    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.full python benchmarks/callgrind_record_many.py full
    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.base python benchmarks/callgrind_record_many.py base

and subtract the two totals (``callgrind_annotate`` prints them as
"PROGRAM TOTALS"): ``base`` builds the same arrays and engine and stops, so
the difference is the call alone. Instruction counts do not depend on how
busy the machine is, unlike wall-clock times.
"""
from __future__ import annotations

import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])

from bench_core import _fresh_engine, batch_points  # noqa: E402

N = int(sys.argv[2]) if sys.argv[2:] else 1_000_000

if __name__ == "__main__":
    ids, ts, vals = batch_points(N)
    eng = _fresh_engine()
    if sys.argv[1] == "full":
        eng.record_many(ids, ts, vals)
