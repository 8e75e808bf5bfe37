"""Core.restore: a new core resumes the open coarse buckets from an earlier core's closed ones.

The oracle is one uninterrupted core fed the whole stream: an interrupted run
(stored rows of the first core, plus what the second closes after restoring
them and being fed the points the first never stored) must hold exactly its
buckets at every level, and both implementations must agree bit for bit.
"""
from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import REFERENCE, compiled_impl

WIDTHS = [1.0, 4.0, 8.0, 32.0]
RETENTION = [64, 32, 32, 16]
LATENESS = 2.0
T0 = 1000.0

points = st.lists(st.tuples(st.integers(0, 2), st.floats(0.0, 200.0), st.floats(0.5, 100.0)),
                  min_size=1, max_size=60)


def _core(impl):
    core = impl.Core(WIDTHS, RETENTION, LATENESS, 0.01, 2048)
    for _ in range(3):
        core.add_series(0)
    core.outbox_enabled = True
    return core


def _rows(drained):
    sid, level, idx, count, tot, lo, hi, blobs = drained
    return [(int(sid[i]), int(level[i]), int(idx[i]), int(count[i]), float(tot[i]),
             float(lo[i]), float(hi[i]), blobs[i]) for i in range(len(sid))]


def _to_restore(stored):
    """The prefix rule of wedmetrics.storage.resume: per series and level, rows
    after the newest stored row one level up."""
    out = []
    top = len(WIDTHS) - 1
    for sid in range(3):
        since = -math.inf
        for level in range(top, -1, -1):
            rows = sorted(r for r in stored if r[0] == sid and r[1] == level
                          and r[2] * WIDTHS[level] >= since)
            if level < top:
                out.extend(rows)
            if rows:
                since = max(since, (rows[-1][2] + 1) * WIDTHS[level])
    return out


def _run(impl, stream, cut, keep):
    """Uninterrupted rows, and (stored by the first core + closed by the second)."""
    ts = [(sid, T0 + t, v) for sid, t, v in sorted(stream, key=lambda p: p[1])]
    whole = _core(impl)
    for sid, t, v in ts:
        whole.record(sid, v, t)
    whole.advance(T0 + 10_000)
    expected = _rows(whole.drain())

    first = _core(impl)
    for sid, t, v in ts[:cut]:
        first.record(sid, v, t)
    closed = _rows(first.drain())
    stored = closed[:keep]                     # a flush cut anywhere: a prefix is stored
    second = _core(impl)
    restore = _to_restore(stored)
    for sid, level, idx, *_, blob in sorted(restore, key=lambda r: (r[0], -r[1], r[2])):
        second.restore(sid, level, idx, impl.Sketch.from_bytes(blob))
    stored_1s = {(r[0], r[2]) for r in stored if r[1] == 0}
    # what the first core never stored at 1 s comes back (as a write-ahead log
    # gives it), before the horizon moves past the restored buckets: one
    # series' stored prefix may reach further than another's
    for sid, t, v in ts[:cut]:
        if (sid, math.floor(t)) not in stored_1s:
            assert second.record(sid, v, t) == 0
    if restore:
        newest = max((r[2] + 1) * WIDTHS[r[1]] for r in restore)
        second.advance(newest + LATENESS)
    for sid, t, v in ts[cut:]:
        second.record(sid, v, t)
    second.advance(T0 + 10_000)
    return expected, stored + _rows(second.drain())


def _by_key(rows):
    out = {}
    for sid, level, idx, count, tot, lo, hi, blob in rows:
        assert (sid, level, idx) not in out, "a bucket stored twice"
        out[sid, level, idx] = (count, lo, hi, tot, blob)
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(points, st.data())
def test_an_interrupted_run_holds_what_an_uninterrupted_one_does(stream, data):
    cut = data.draw(st.integers(0, len(stream)))
    keep = data.draw(st.integers(0, 4 * len(stream)))
    results = []
    for impl in (REFERENCE, compiled_impl()):
        expected, got = _run(impl, stream, cut, keep)
        want, have = _by_key(expected), _by_key(got)
        assert want.keys() == have.keys()
        for k in want:
            assert want[k][:3] == have[k][:3], k
            assert have[k][3] == pytest.approx(want[k][3], rel=1e-12, abs=1e-9)
        results.append(sorted(got, key=lambda r: r[:3]))
    ref, comp = results
    assert [r[:7] for r in ref] == [r[:7] for r in comp]
    assert [r[7] for r in ref] == [r[7] for r in comp]


@pytest.mark.parametrize("which", ["reference", "compiled"])
def test_restore_refuses_what_it_cannot_place(which):
    impl = REFERENCE if which == "reference" else compiled_impl()
    core = _core(impl)
    sk = impl.Sketch(0.01, 2048)
    sk.add(1.0)
    core.restore(0, 1, 10, sk)
    for sid, level, idx in ((0, 1, 10), (0, 1, 9), (5, 0, 1), (0, 7, 1), (-1, 0, 1)):
        with pytest.raises(ValueError):
            core.restore(sid, level, idx, sk)
    with pytest.raises(ValueError):
        core.restore(0, 0, 100, impl.Sketch(0.01, 2048))          # empty
    with pytest.raises(ValueError, match="alpha"):
        other = impl.Sketch(0.05, 2048)
        other.add(1.0)
        core.restore(0, 0, 100, other)
    with pytest.raises(TypeError):
        core.restore(0, 0, 100, b"not a sketch")
    core.record(1, 1.0, 50.0)
    with pytest.raises(ValueError):                                 # open buckets exist
        core.restore(1, 0, 60, sk)
    # a restored bucket is not re-emitted; its parent closes and is
    core.advance(10_000.0)
    levels = sorted(zip(*core.drain()[:3]))
    assert (0, 1, 10) not in [(int(s), int(lv), int(i)) for s, lv, i in levels]
    assert (0, 2, 5) in [(int(s), int(lv), int(i)) for s, lv, i in levels]
