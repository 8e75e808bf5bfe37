"""Concurrent recording into shared series loses no point."""
from __future__ import annotations

import threading

import numpy as np

from wedmetrics.clock import ManualClock

THREADS = 8
PER_THREAD = 3000


def test_eight_threads_lose_no_count(impl):
    core = impl.Core([1.0, 60.0], [600, 10], 5.0)
    clock = ManualClock(10_000.0)
    handles = [impl.Handle(core, core.add_series(0), f"s{i}", {}, "distribution", clock,
                           True, False) for i in range(2)]
    start = threading.Barrier(THREADS)

    def work(k: int) -> None:
        start.wait()
        for i in range(PER_THREAD):
            # both series, with explicit and clock timestamps, across buckets
            handles[i % 2].record(float(k * PER_THREAD + i), 10_000.0 + (i % 50) * 0.1)
            if i % 7 == 0:
                handles[(i + 1) % 2].record(1.0)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    extra = THREADS * len(range(0, PER_THREAD, 7))
    total = THREADS * PER_THREAD + extra
    assert core.outcomes[0] == total
    count, total_sum, lo, hi, sketch = core.window([0, 1], 0, 1 << 40)
    assert count == total == sketch.count
    assert lo == 0.0 and hi == float(THREADS * PER_THREAD - 1)
    expected = float(np.arange(THREADS * PER_THREAD, dtype=np.float64).sum()) + extra
    assert abs(total_sum - expected) <= 1e-9 * expected


def test_threads_recording_batches_and_points_together(impl):
    core = impl.Core([1.0, 60.0], [600, 10], 5.0)
    sid = core.add_series(0)
    start = threading.Barrier(4)

    def batches() -> None:
        start.wait()
        for j in range(50):
            n = 100
            core.record_many(np.full(n, sid), np.full(n, 500.0 + j * 0.01), np.ones(n))

    def points() -> None:
        start.wait()
        for j in range(2000):
            core.record(sid, 1.0, 500.0 + (j % 100) * 0.01)

    threads = [threading.Thread(target=f) for f in (batches, batches, points, points)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    count, total, *_ = core.window([sid], 0, 1 << 40)
    assert count == 2 * 50 * 100 + 2 * 2000 == core.outcomes[0]
    assert total == float(count)
