"""A series that goes quiet still reaches every resolution and the store (issue #11, item 0).

Time passing - the clock, the flusher's tick, ``close()`` - closes and rolls up
every bucket whose end has passed, for every series; ``close()`` stores every
accepted point at every resolution; a read of ``[start, end)`` returns every
bucket that overlaps it, so the points recorded in a span read back whole at
every resolution, from memory and from the store.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import wedmetrics as wm

T0 = 1_700_000_000.0            # not on an hour boundary: the hour bucket starts before it
RESOLUTIONS = ("1s", "1m", "5m", "1h")


def record_2000_seconds(engine, h, writer: int = 0) -> None:
    """The issue's load: 20,000 points over 2,000 s, at 10 per second."""
    ts = T0 + np.arange(20_000) * 0.1
    vals = 1.0 + writer + np.arange(20_000) % 7
    engine.clock.set(T0)
    for t, v in zip(ts.tolist(), vals.tolist()):
        h.record(v, ts=t)


def stored_counts(path, writers: int = 1) -> dict:
    """What a new engine on the file reads for the span, per resolution."""
    reader = wm.MetricsEngine(clock=wm.ManualClock(T0 + 4 * 3600),
                              storage=wm.SQLiteBackend(path))
    reader.series("orders")
    out = {r: int(reader.history("orders", r, start=T0, end=T0 + 2000)["count"].sum())
           for r in RESOLUTIONS}
    reader.close()
    return out


def test_the_issues_numbers_read_back_whole_at_every_resolution(tmp_path):
    path = tmp_path / "m.db"
    clock = wm.ManualClock(T0)
    eng = wm.MetricsEngine(clock=clock, storage=wm.SQLiteBackend(path))
    h = eng.series("orders")
    record_2000_seconds(eng, h)
    clock.advance(7200 + 2000)
    # in memory: the open hour is gone from the 1 s ring by now, yet closed and whole
    mem = {r: eng.buckets(h, r, start=T0, end=T0 + 2000) for r in ("1m", "5m", "1h")}
    assert {r: int(b["count"].sum()) for r, b in mem.items()} == {
        "1m": 20_000, "5m": 20_000, "1h": 20_000}
    assert all(b["closed"].all() for b in mem.values())
    eng.close()
    assert stored_counts(path) == {r: 20_000 for r in RESOLUTIONS}


def test_close_stores_the_open_buckets_of_every_resolution(tmp_path):
    path = tmp_path / "m.db"
    eng = wm.MetricsEngine(clock=wm.ManualClock(T0), storage=wm.SQLiteBackend(path))
    record_2000_seconds(eng, eng.series("orders"))
    eng.close()                    # no time passes: the open minute, 5 minutes and hour
    assert stored_counts(path) == {r: 20_000 for r in RESOLUTIONS}


def test_a_quiet_series_is_closed_and_stored_by_the_flushers_tick(tmp_path):
    path = tmp_path / "m.db"
    clock = wm.ManualClock(T0)
    eng = wm.MetricsEngine(clock=clock, storage=wm.SQLiteBackend(path),
                           flush_options={"thread": False})
    quiet, busy = eng.series("orders"), eng.series("busy")
    for i in range(50):
        quiet.record(1.0, ts=T0 + i)
    clock.advance(4000)            # past the end of the quiet series' hour
    busy.record(1.0)               # a point at the clock's now: the watermark is the clock
    eng._flusher.flush()           # the flusher's tick, as its thread runs it
    backend = eng.storage
    key = wm.SeriesKey("orders", (), "distribution")
    got = {r: int(backend.read_buckets(key, wm.parse_duration(r), T0 - 3600, T0 + 3600)
                  .count.sum()) for r in RESOLUTIONS}
    assert got == {r: 50 for r in RESOLUTIONS}
    eng.close()


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    import wedmetrics as wm
    path, writer = sys.argv[1], int(sys.argv[2])
    t0 = {t0!r}
    clock = wm.ManualClock(t0)
    eng = wm.MetricsEngine(clock=clock, storage=wm.SQLiteBackend(path, timeout=60))
    h = eng.series("orders")
    for t in (t0 + np.arange(20_000) * 0.1).tolist():
        h.record(1.0 + writer, ts=t)
    clock.advance(7200)
    eng.close()
""")


def test_several_writer_processes_on_one_file_lose_nothing(tmp_path):
    path = tmp_path / "m.db"
    wm.SQLiteBackend(path).close()           # create the file once, before the writers race
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(t0=T0))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(wm.__file__)), os.environ.get("PYTHONPATH", "")]))
    procs = [subprocess.Popen([sys.executable, str(script), str(path), str(w)], env=env)
             for w in range(3)]
    for p in procs:
        assert p.wait(timeout=120) == 0
    assert stored_counts(path) == {r: 60_000 for r in RESOLUTIONS}


@pytest.mark.parametrize("resolution, width", [("1m", 60.0), ("1h", 3600.0)])
def test_buckets_overlapping_the_start_are_listed(resolution, width):
    eng = wm.MetricsEngine(clock=wm.ManualClock(T0))
    h = eng.series("x")
    h.record(1.0, ts=T0 + 1)
    b = eng.buckets(h, resolution, start=T0 + 0.5, end=T0 + 2)
    assert list(b["start"]) == [np.floor((T0 + 1) / width) * width]
    assert list(b["count"]) == [1]
