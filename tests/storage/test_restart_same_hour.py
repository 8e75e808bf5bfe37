"""A clean close() and a restart in the same hour lose nothing, whatever the writer id.

close() stores the open minute, five minutes and hour early, as partial rows.
The next engine of the same writer (a fixed writer_id, or the write-ahead
log's pinned one) resumes them and its fuller rows replace them; an engine
with a fresh id stores its own rows beside them.  Each case is read back at
every resolution, on SQLite and on PostgreSQL.
"""
from __future__ import annotations

import uuid

import pytest

import wedmetrics as wm

from .conftest import PG_DSN, drop_schema, require_pg

T0 = 1_699_999_200.0 + 600      # ten minutes into an hour
WIDTHS = (1.0, 60.0, 300.0, 3600.0)


@pytest.fixture(params=["sqlite", "postgres"])
def opener(request, tmp_path):
    if request.param == "sqlite":
        yield lambda writer_id=None: wm.SQLiteBackend(tmp_path / "m.db", writer_id=writer_id)
        return
    require_pg()
    schema = f"wm_t_{uuid.uuid4().hex[:12]}"
    yield lambda writer_id=None: wm.TimescaleBackend(PG_DSN, schema=schema, layout="plain",
                                                     writer_id=writer_id)
    drop_schema(schema)


def _run(opener, mode, tmp_path, start, n):
    kw = {}
    if mode == "wal":
        kw = {"durability": "wal", "wal_dir": tmp_path / "wal"}
    store = opener(7 if mode == "fixed" else None)
    clock = wm.ManualClock(start)
    engine = wm.MetricsEngine(clock=clock, storage=store, flush_options={"thread": False}, **kw)
    h = engine.series("orders")
    for i in range(n):
        clock.set(start + i * 0.5)
        h.record(float(i), ts=start + i * 0.5)
    report = engine.stats().get("restart")
    engine.close()
    return report


@pytest.mark.parametrize("mode", ["random", "fixed", "wal"])
def test_close_and_restart_in_the_same_hour_keeps_every_point(opener, mode, tmp_path):
    _run(opener, mode, tmp_path, T0, 100)
    # the same minute even: the second run starts 10 s after the first stopped
    report = _run(opener, mode, tmp_path, T0 + 60, 100)
    if mode != "random":
        # the same writer: its partial rows were resumed, and replaced
        assert report["resumed"]["series"] == 1
    reader = opener()
    got = {w: reader.read_merged("orders", w, T0 - 3600, T0 + 3600) for w in WIDTHS}
    reader.close()
    assert {w: s.count for w, s in got.items()} == dict.fromkeys(WIDTHS, 200)
    assert {w: s.sum for w, s in got.items()} == dict.fromkeys(WIDTHS, 2 * sum(range(100)))


def test_a_third_run_after_two_clean_closes_still_counts_each_point_once(opener, tmp_path):
    for k in range(3):
        _run(opener, "fixed", tmp_path, T0 + 100 * k, 50)
    reader = opener()
    counts = {w: reader.read_merged("orders", w, T0 - 3600, T0 + 3600).count for w in WIDTHS}
    reader.close()
    assert counts == dict.fromkeys(WIDTHS, 150)
