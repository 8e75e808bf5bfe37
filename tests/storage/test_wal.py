"""durability="wal" in one process: replay, torn tails, hostile files, truncation, policy errors."""
from __future__ import annotations

import os

import pytest

import wedmetrics as wm
from wedmetrics.storage import SQLiteBackend
from wedmetrics.wal import _format

T0 = 1_699_999_200.0


def _engine(tmp_path, clock, **wal_options):
    return wm.MetricsEngine(clock=clock, storage=SQLiteBackend(tmp_path / "m.db"),
                            durability="wal", wal_dir=tmp_path / "wal",
                            wal_options=wal_options or None, flush_options={"thread": False})


def _crash(engine):
    """What a kill -9 leaves: the log's files as they are, nothing closed cleanly."""
    engine._wal.close(everything_stored=False)


def _segments(tmp_path):
    return sorted(p for p in os.listdir(tmp_path / "wal") if p.endswith(".wal"))


def _held(engine, name="p"):
    return int(engine.history(name, "1s", T0 - 10, T0 + 7200).count.sum())


def test_points_never_flushed_come_back_at_every_resolution(tmp_path):
    clock = wm.ManualClock(T0)
    first = _engine(tmp_path, clock)
    h = first.series("p", {"k": "v"})
    for i in range(500):
        h.record(float(i), ts=T0 + i * 0.01)
    _crash(first)
    # restarted ten minutes on: the logged points are far older than now - lateness,
    # and still come back (they close at once and are stored)
    again = _engine(tmp_path, wm.ManualClock(T0 + 600))
    assert again.stats()["restart"]["wal"]["replayed"] == 500
    for res in ("1s", "1m", "5m", "1h"):
        cols = again.history("p", res, T0 - 3600, T0 + 3600)
        assert int(cols.count.sum()) == 500 and float(cols.sum.sum()) == sum(range(500))
    assert again.series_list("p")[0].labels == {"k": "v"}
    again.close()
    assert _segments(tmp_path) == []          # a clean close empties the log
    store = SQLiteBackend(tmp_path / "m.db")
    assert store.read_merged("p", 3600.0, 0, 2e10).count == 500


def test_the_writer_id_lives_in_the_log(tmp_path):
    first = _engine(tmp_path, wm.ManualClock(T0))
    wid = first.storage.writer_id
    first.close()
    again = _engine(tmp_path, wm.ManualClock(T0))
    assert again.storage.writer_id == wid
    again.close()


def test_a_torn_tail_is_cut_counted_and_the_rest_replayed(tmp_path):
    first = _engine(tmp_path, wm.ManualClock(T0))
    h = first.series("p")
    for i in range(100):
        h.record(1.0, ts=T0 + i * 0.01)
    pos, _ = first._core.wal_state()
    _crash(first)
    (seg,) = _segments(tmp_path)
    with open(tmp_path / "wal" / seg, "r+b") as f:
        f.seek(pos - 10)
        f.write(b"\xff" * 30)                 # the last record torn, garbage after it
    again = _engine(tmp_path, wm.ManualClock(T0 + 5))
    report = again.stats()["restart"]["wal"]
    assert report["torn_segments"] == 1 and report["replayed"] == 99
    assert _held(again) == 99
    again.close()


def test_a_torn_series_line_is_counted_and_its_points_left_out(tmp_path):
    first = _engine(tmp_path, wm.ManualClock(T0))
    first.series("a").record(1.0, ts=T0)
    first.series("b").record(1.0, ts=T0)
    _crash(first)
    (log,) = [p for p in os.listdir(tmp_path / "wal") if p.startswith("series-")]
    with open(tmp_path / "wal" / log, "r+b") as f:
        data = f.read()
        f.seek(0)
        f.truncate()
        f.write(data[:-5])                    # the line of "b" torn
    again = _engine(tmp_path, wm.ManualClock(T0 + 5))
    report = again.stats()["restart"]["wal"]
    assert report["torn_series_lines"] == 1 and report["unknown_series"] == 1
    assert report["replayed"] == 1 and again.names() == ["a"]
    again.close()


@pytest.mark.parametrize("head", [b"\x01" * 64, _format.encode_header(5, 1, 1)[:-1] + b"\x00",
                                  b"WMWAL\x00\x00\x02" + bytes(56)])
def test_hostile_segment_headers_refuse_to_start_with_value_error(tmp_path, head):
    _engine(tmp_path, wm.ManualClock(T0)).close()
    with open(tmp_path / "wal" / "seg-00000009-00000001.wal", "wb") as f:
        f.write(head + os.urandom(240))
    with pytest.raises(ValueError, match="write-ahead log"):
        _engine(tmp_path, wm.ManualClock(T0))


def test_a_segment_killed_before_its_header_holds_nothing(tmp_path):
    _engine(tmp_path, wm.ManualClock(T0)).close()
    with open(tmp_path / "wal" / "seg-00000009-00000001.wal", "wb") as f:
        f.write(bytes(4096))
    again = _engine(tmp_path, wm.ManualClock(T0))
    assert again.stats()["restart"]["wal"]["replayed"] == 0
    again.close()


def test_one_live_engine_per_log(tmp_path):
    first = _engine(tmp_path, wm.ManualClock(T0))
    with pytest.raises(RuntimeError, match="another live engine"):
        _engine(tmp_path, wm.ManualClock(T0))
    first.close()
    _engine(tmp_path, wm.ManualClock(T0)).close()


def test_segments_are_deleted_once_the_store_holds_their_seconds(tmp_path):
    clock = wm.ManualClock(T0)
    engine = _engine(tmp_path, clock, segment_bytes=_format.HEADER + 10 * _format.RECORD)
    h = engine.series("p")
    for i in range(200):
        h.record(1.0, ts=T0 + i * 0.1)
    assert len(_segments(tmp_path)) == 20
    # one segment a second; the newest point is at 19.9 s, so with 5 s of lateness the
    # seconds before 14 s are closed, and stored by this flush
    engine._flusher.flush()
    left = len(_segments(tmp_path))
    assert left == 6
    assert engine.stats()["restart"]["wal"]["truncated_segments"] == 20 - left
    _crash(engine)
    again = _engine(tmp_path, wm.ManualClock(T0 + 10))
    report = again.stats()["restart"]["wal"]
    # the segments kept may hold seconds already stored: skipped, never doubled
    assert report["replayed"] + report["already_stored"] == report["records"]
    assert _held(again) == 200
    again.close()
    assert SQLiteBackend(tmp_path / "m.db").read_merged("p", 60.0, 0, 2e10).count == 200


def test_policy_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="storage backend and a wal_dir"):
        wm.MetricsEngine(durability="wal", wal_dir=tmp_path)
    with pytest.raises(ValueError, match="storage backend and a wal_dir"):
        wm.MetricsEngine(durability="wal", storage=SQLiteBackend(tmp_path / "x.db"))
    with pytest.raises(ValueError, match="durability"):
        wm.MetricsEngine(durability="fsync")
    with pytest.raises(ValueError, match="need durability='wal'"):
        wm.MetricsEngine(wal_dir=tmp_path)
    with pytest.raises(ValueError, match="sync"):
        _engine(tmp_path, wm.ManualClock(T0), sync="always")
    with pytest.raises(ValueError, match="segment_bytes"):
        _engine(tmp_path, wm.ManualClock(T0), segment_bytes=10)


def test_interval_sync_and_sync_wal(tmp_path):
    engine = _engine(tmp_path, wm.ManualClock(T0), sync="interval", sync_interval=0.01)
    engine.series("p").record(1.0, ts=T0)
    engine._flusher.flush()
    engine.sync_wal()
    _crash(engine)
    again = _engine(tmp_path, wm.ManualClock(T0 + 1))
    assert again.stats()["restart"]["wal"]["replayed"] == 1
    again.close()
