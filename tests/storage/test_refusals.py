"""What storage can never write: org ids refused at construction, the same way by every
backend, and writes no retry can cure counted as rejected instead of retried as an outage."""
from __future__ import annotations

import sqlite3

import pytest

from wedmetrics.buckets import BucketBatch, SeriesKey
from wedmetrics.storage import Flusher, SQLiteBackend
from wedmetrics.storage.base import ORG_ID_MAX_BYTES, InvalidKeyError, PermanentWriteError

from .conftest import PG_DSN
from .helpers import make_batch, minute_batch

KEY = SeriesKey("orders", (("shop", "a"),), "distribution")
START = 1_700_000_040.0

UNSTORABLE_ORG_IDS = {
    "NUL": ("A\x00B", "NUL character"),
    "lone surrogate": ("org-\udc80", "lone surrogate"),
    "4,000 characters": ("o" * 4000, "4000 bytes of UTF-8, longer than the 255"),
    "256 bytes of UTF-8": ("é" * 128, "256 bytes of UTF-8"),
    "empty": ("", "non-empty str"),
    "not a str": (42, "non-empty str"),
}


@pytest.mark.parametrize("case", sorted(UNSTORABLE_ORG_IDS))
def test_every_backend_refuses_an_unstorable_org_id_when_it_is_made(make_backend, case):
    org_id, why = UNSTORABLE_ORG_IDS[case]
    with pytest.raises(InvalidKeyError, match=why):
        make_backend(org_id=org_id)


def test_the_longest_org_id_allowed_is_stored_and_read_by_every_backend(make_backend):
    org_id = "é" * (ORG_ID_MAX_BYTES // 2) + "x"           # 255 bytes, 128 characters
    assert len(org_id.encode("utf-8")) == ORG_ID_MAX_BYTES
    backend = make_backend(org_id=org_id)
    batch, values = minute_batch(KEY, START, 4)
    assert backend.write_buckets(batch) == 4
    assert backend.read_buckets(KEY, 60.0, START, START + 240).count.tolist() == [5] * 4
    backend.write_rule_state("SlowUploads", {"state": "firing"}, START)
    assert backend.read_rule_state("SlowUploads").state == {"state": "firing"}


# -- writes no retry can cure ---------------------------------------------------------
def with_far_future_row(n: int = 6, bad: int = 4) -> BucketBatch:
    """``n`` minute buckets of one series, row ``bad`` in the year 318,857: a float
    every backend's engine accepts, beyond what a PostgreSQL timestamp can hold."""
    batch, _ = minute_batch(KEY, START, n)
    start = batch.start.copy()
    start[bad] = 1e13
    return BucketBatch(batch.series, batch.width, start, batch.count, batch.sum, batch.min,
                       batch.max, batch.sketch, batch.keys)


class Once:
    """A flusher source that hands out one batch, then nothing."""

    def __init__(self, batch: BucketBatch) -> None:
        self.batch = batch

    def __call__(self) -> BucketBatch:
        batch, self.batch = self.batch, BucketBatch.empty()
        return batch


def test_postgres_refusal_is_permanent_counted_and_the_other_rows_are_written(pg_schema):
    import psycopg

    from wedmetrics.storage import TimescaleBackend

    backend = TimescaleBackend(PG_DSN, "org-a", schema=pg_schema, layout="plain")
    try:
        batch = with_far_future_row()
        with pytest.raises(PermanentWriteError, match=r"\(22008\).*out of range") as info:
            backend.write_buckets(batch)
        assert isinstance(info.value.__cause__, psycopg.DataError)
        flusher = Flusher(Once(batch), backend, thread=False)
        assert flusher.flush() is True             # nothing left to retry
        stats = flusher.close()
        assert stats["dropped"]["rejected"] == 1
        assert stats["retried"] == 0 and stats["written"] == 5
        assert "22008" in stats["last_error"]
        stored = backend.read_buckets(KEY, 60.0, 0.0, 2e9)
        assert stored.start.tolist() == [START + 60 * i for i in (0, 1, 2, 3, 5)]
    finally:
        backend.close()


def test_sqlite_refusal_is_permanent_counted_and_the_other_rows_are_written(tmp_path):
    import numpy as np

    backend = SQLiteBackend(tmp_path / "m.db", "org-a")
    try:
        spread = np.geomspace(1e-3, 1e6, 3000).tolist()     # a sketch of many bins
        rows = [(0, 60.0, START + 60 * i, spread if i == 3 else [1.0, 2.0]) for i in range(6)]
        batch = make_batch(rows, {0: KEY})
        big, small = len(batch.sketch[3]), max(len(batch.sketch[i]) for i in (0, 1, 2, 4, 5))
        assert big > small + 1000
        # a real SQLite limit: rows (here: the one with the big sketch) longer than allowed
        backend._db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, big - 1)
        with pytest.raises(PermanentWriteError, match="too big") as info:
            backend.write_buckets(batch)
        assert isinstance(info.value.__cause__, sqlite3.DataError)
        flusher = Flusher(Once(batch), backend, thread=False)
        assert flusher.flush() is True
        stats = flusher.close()
        assert stats["dropped"]["rejected"] == 1
        assert stats["retried"] == 0 and stats["written"] == 5
        stored = backend.read_buckets(KEY, 60.0, 0.0, 2e9)
        assert stored.start.tolist() == [START + 60 * i for i in (0, 1, 2, 4, 5)]
    finally:
        backend.close()
