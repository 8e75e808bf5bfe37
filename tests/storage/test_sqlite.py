"""SQLite specifics: WAL, schema versions and migration, persistence across processes."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from wedmetrics.buckets import BucketBatch, SeriesKey
from wedmetrics.storage import AlertEvent, SQLiteBackend
from wedmetrics.storage.history import merge_history
from wedmetrics.storage.sqlite import SCHEMA_VERSION, migrate

from .helpers import make_batch, minute_batch

T0 = 1_699_999_200.0
KEY = SeriesKey.of("api.latency", {"route": "/photos"})


def test_wal_mode_and_schema_version(tmp_path):
    b = SQLiteBackend(tmp_path / "m.db")
    assert b.schema_version() == SCHEMA_VERSION == 4
    b.close()
    db = sqlite3.connect(tmp_path / "m.db")
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert [r[0] for r in db.execute("SELECT version FROM wm_schema ORDER BY version")
            ] == [1, 2, 3, 4]


def test_version_1_file_is_migrated_with_its_data(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    assert migrate(db, upto=1) == 0
    db.execute("INSERT INTO wm_rule_state VALUES ('org-a', 'r', '{\"n\": 1}', 5.0)")
    db.close()
    b = SQLiteBackend(path, org_id="org-a")
    assert b.schema_version() == 4
    assert b.read_rule_state("r").state == {"n": 1}
    names = {r[0] for r in b._db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "wm_alert_events_ts" in names
    b.close()


def test_newer_file_is_refused(tmp_path):
    path = tmp_path / "new.db"
    SQLiteBackend(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("INSERT INTO wm_schema VALUES (7, 0.0)")
    db.close()
    with pytest.raises(RuntimeError, match="version 7 is newer"):
        SQLiteBackend(path)


def test_rows_survive_reopening_and_series_ids_are_the_files(tmp_path):
    path = tmp_path / "m.db"
    first = SQLiteBackend(path, org_id="org-a", writer_id=7)
    # engine-local id 42 in one process, 0 in the next: storage keys by SeriesKey
    first.write_buckets(minute_batch(KEY, T0, 10, seed=1, local_id=42)[0])
    first.close()
    # the same writer reopening the file retries: what it stored is skipped
    second = SQLiteBackend(path, org_id="org-a", writer_id=7)
    assert second.write_buckets(minute_batch(KEY, T0, 20, seed=1, local_id=0)[0]) == 10
    got = second.read_buckets(KEY, 60.0, 0, 2e9)
    assert len(got) == 20 and len(set(got.series.tolist())) == 1
    assert int(got.count.sum()) == 100
    second.close()
    # a new process (a random writer id) adds its own rows of the same buckets
    third = SQLiteBackend(path, org_id="org-a")
    assert third.writer_id not in (0, 7)
    assert third.write_buckets(minute_batch(KEY, T0, 5, seed=2)[0]) == 5
    got = third.read_buckets(KEY, 60.0, 0, 2e9)
    assert len(got) == 20
    np.testing.assert_array_equal(got.count, [10] * 5 + [5] * 15)
    assert third.row_count() == 25
    third.close()


def test_version_2_file_is_migrated_rows_become_writer_0(tmp_path):
    path = tmp_path / "v2.db"
    db = sqlite3.connect(path, isolation_level=None)
    assert migrate(db, upto=2) == 0
    batch, values = minute_batch(KEY, T0, 4, seed=3)
    db.execute("INSERT INTO wm_series (org_id, digest, name, labels, kind) "
               "VALUES ('org-a', x'00', ?, ?, ?)",
               (KEY.name, '[["route","/photos"]]', KEY.kind))
    # the version 2 columns: no writer_id
    db.executemany("INSERT INTO wm_buckets VALUES ('org-a', 1, 60.0, ?, ?, ?, ?, ?, ?)",
                   [(float(batch.start[i]), int(batch.count[i]), float(batch.sum[i]),
                     float(batch.min[i]), float(batch.max[i]), batch.sketch[i])
                    for i in range(4)])
    event = AlertEvent("al-1", "r", "feedback", "info", T0, annotations={"verdict": "noise"})
    db.execute("INSERT INTO wm_alert_events VALUES ('org-a', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               event.to_row())
    db.close()
    b = SQLiteBackend(path, org_id="org-a", writer_id=5)
    assert b.schema_version() == 4
    assert b._db.execute("SELECT DISTINCT writer_id FROM wm_buckets").fetchall() == [(0,)]
    # the series row's digest was made up above: point the backend at id 1
    b._ids[KEY] = 1
    got = b.read_buckets(KEY, 60.0, 0, 2e9)
    np.testing.assert_array_equal(got.count, batch.count)
    assert got.sketch == batch.sketch
    # a writer with an id adds to the migrated rows instead of being skipped
    assert b.write_buckets(batch) == 4
    got = b.read_buckets(KEY, 60.0, 0, 2e9)
    np.testing.assert_array_equal(got.count, 2 * batch.count)
    np.testing.assert_allclose(got.sum, 2 * values.sum(axis=1), rtol=1e-12)
    # the migrated event keeps its identity: a retry of it is still a duplicate
    assert b.read_alert_events(0, 2e9) == [event]
    assert b.write_alert_events([event]) == 0
    second = AlertEvent("al-1", "r", "feedback", "info", T0, annotations={"verdict": "useful"})
    assert b.write_alert_events([second, event]) == 1
    assert len(b.read_alert_events(0, 2e9)) == 2
    names = {r[0] for r in b._db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "wm_alert_events_ts" in names
    b.close()


def test_writer_id_is_checked(tmp_path):
    for bad in (-1, 2 ** 63, 1.5, "7", True):
        with pytest.raises(ValueError, match="writer_id must be an int"):
            SQLiteBackend(tmp_path / "w.db", writer_id=bad)
    with SQLiteBackend(tmp_path / "w.db", writer_id=2 ** 63 - 1) as b:
        assert b.writer_id == 2 ** 63 - 1


def test_bulk_write_uses_multi_row_statements_exactly(tmp_path):
    b = SQLiteBackend(tmp_path / "m.db")
    keys = {i: SeriesKey.of("bulk", {"i": str(i)}) for i in range(3)}
    rows = [(i % 3, 60.0, T0 + 60 * (i // 3), [float(i)]) for i in range(1234)]
    assert b.write_buckets(make_batch(rows, keys)) == 1234
    assert b.write_buckets(make_batch(rows[:700], keys)) == 0
    assert b.row_count() == 1234
    got = b.read_buckets(keys[1], 60.0, 0, 2e9)
    assert got.sum.tolist() == [float(i) for i in range(1, 1234, 3)]
    b.close()


def test_merge_history_memory_wins_and_ids_are_matched_by_key():
    other = SeriesKey.of("api.latency", {"route": "/other"})
    stored = make_batch([(5, 60.0, T0, [1.0]), (5, 60.0, T0 + 60, [2.0]),
                         (6, 60.0, T0, [9.0])], {5: KEY, 6: other})
    memory = make_batch([(0, 60.0, T0 + 60, [3.0, 4.0]), (0, 60.0, T0 + 120, [5.0])],
                        {0: KEY})
    out = merge_history(stored, memory)
    assert len(out) == 4
    assert out.keys[0] == KEY and out.keys[1] == other
    mine = out.take(out.series == 0)
    np.testing.assert_array_equal(mine.start, [T0, T0 + 60, T0 + 120])
    np.testing.assert_array_equal(mine.count, [1, 2, 1])    # memory's row at T0 + 60
    assert merge_history(BucketBatch.empty(), BucketBatch.empty()).series.shape == (0,)


def test_new_files_get_16k_pages_and_older_files_keep_theirs(tmp_path):
    b = SQLiteBackend(tmp_path / "new.db")
    assert b._db.execute("PRAGMA page_size").fetchone() == (16384,)
    b.close()
    # a file made with SQLite's default 4 KB pages (as before) works unchanged
    db = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    migrate(db)
    db.close()
    b = SQLiteBackend(tmp_path / "old.db", writer_id=1)
    assert b._db.execute("PRAGMA page_size").fetchone() == (4096,)
    batch, _ = minute_batch(KEY, T0, 600, seed=3)
    assert b.write_buckets(batch) == 600 and b.write_buckets(batch) == 0
    got = b.read_buckets(KEY, 60.0, T0, T0 + 600 * 60)
    np.testing.assert_array_equal(got.start, batch.start)
    assert got.sketch == batch.sketch
    b.close()
