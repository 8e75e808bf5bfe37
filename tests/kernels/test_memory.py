"""The compiled core's memory layout: compact closed buckets, rings grown on demand."""
from __future__ import annotations

import numpy as np


def test_one_point_buckets_cost_a_slot_and_rings_grow_on_demand(compiled):
    core = compiled.Core([1.0, 60.0, 300.0, 3600.0], [600, 360, 288, 168], 5.0)
    sid = core.add_series(0)
    empty = core._memory_breakdown()
    assert empty["slots_0"] == empty["arena_0"] == 0       # nothing preallocated
    for i in range(40):                                      # one point per second
        core.record(sid, 0.25 + i, 1000.0 + i)
    parts = core._memory_breakdown()
    closed = 40 - 6                                          # 5 s lateness keeps 6 open
    # one-point buckets live in their 16-byte slot alone: no arena bytes
    assert parts["arena_0"] == 0
    assert parts["slots_0"] <= 64 * 16                      # doubling, not 600 slots
    assert parts["slots_0"] / closed < 64 * 0.5
    per_series = sum(v for k, v in parts.items() if k not in ("accumulators", "outbox"))
    assert per_series < 6000    # open buckets dominate: 8 of ~490 bytes (24-bin small lists)


def test_memory_stays_bounded_by_retention(compiled):
    core = compiled.Core([1.0, 60.0], [120, 10], 5.0)
    ids = np.array([core.add_series(0) for _ in range(3)], dtype=np.int64)
    rng = np.random.default_rng(3)
    sizes = []
    for hour in range(3):
        n = 3 * 3600 * 4
        ts = 10_000.0 + hour * 3600 + np.repeat(np.arange(3600 * 4) * 0.25, 3)
        core.record_many(np.tile(ids, 3600 * 4), ts, rng.lognormal(0, 1, n))
        sizes.append(core.memory_bytes())
    parts = core._memory_breakdown()
    assert parts["slots_0"] == 3 * 120 * 16                 # capped at the retention
    assert parts["slots_1"] <= 3 * 10 * 16
    # steady state: the third hour costs no more than the second (plus slack
    # for the arenas' growth steps)
    assert sizes[2] <= sizes[1] * 1.1
    assert sum(parts.values()) <= core.memory_bytes()
