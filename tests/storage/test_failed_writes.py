"""A write that fails and is retried never attaches rows to the wrong series.

The failures are real: a full disk under SQLite (a small tmpfs mounted by the
test when it runs as root, otherwise a file capped with ``PRAGMA
max_page_count``) and a PostgreSQL connection killed by
``pg_terminate_backend`` while its transaction waits to commit.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import threading
import time

import pytest

from wedmetrics.buckets import SeriesKey
from wedmetrics.storage import SQLiteBackend

from .conftest import PG_DSN
from .helpers import minute_batch

KEY_A = SeriesKey("orders", (("shop", "a"),), "distribution")
KEY_B = SeriesKey("refunds", (("shop", "b"),), "distribution")
START = 1_700_000_040.0


class FullDisk:
    """Where a SQLite file can run out of space for real, and be given space again."""

    def __init__(self, tmp_path) -> None:
        self.mount = tmp_path / "small-disk"
        self.mount.mkdir()
        self.tmpfs = os.geteuid() == 0 and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(self.mount)],
            capture_output=True).returncode == 0
        self.path = self.mount / "metrics.db"
        self._filler = self.mount / "filler"

    def fill(self, backend: SQLiteBackend) -> None:
        if self.tmpfs:
            # leave a few KB: the series row fits, a batch of buckets does not
            with open(self._filler, "wb", buffering=0) as f:
                with contextlib.suppress(OSError):
                    while True:
                        f.write(b"\0" * 4096)
            size = os.path.getsize(self._filler)
            os.truncate(self._filler, max(0, size - 8 * 4096))
        else:
            pages = backend._db.execute("PRAGMA page_count").fetchone()[0]
            backend._db.execute(f"PRAGMA max_page_count={pages}")

    def free(self, backend: SQLiteBackend) -> None:
        if self.tmpfs:
            self._filler.unlink()
        else:
            backend._db.execute("PRAGMA max_page_count=1073741823")

    def close(self) -> None:
        if self.tmpfs:
            subprocess.run(["umount", "-l", str(self.mount)], check=True)


@pytest.fixture
def full_disk(tmp_path):
    disk = FullDisk(tmp_path)
    yield disk
    disk.close()


def stored_series_rows(backend) -> dict[SeriesKey, int]:
    return {key: int(backend.read_buckets(key, 60.0, 0.0, 2e9).count.sum())
            for key in backend.series_keys()}


def test_sqlite_disk_full_then_retry_keeps_every_row_with_its_series(full_disk):
    backend = SQLiteBackend(full_disk.path, "org-a")
    batch_a, _ = minute_batch(KEY_A, START, 2000, seed=1)
    full_disk.fill(backend)
    with pytest.raises(sqlite3.OperationalError, match="full"):
        backend.write_buckets(batch_a)
    full_disk.free(backend)
    assert backend.write_buckets(batch_a) == 2000          # the flusher's retry
    batch_b, _ = minute_batch(KEY_B, START, 3, seed=2)
    assert backend.write_buckets(batch_b) == 3             # a new series after the retry
    backend.close()

    reader = SQLiteBackend(full_disk.path, "org-a")
    try:
        assert stored_series_rows(reader) == {KEY_A: 2000 * 5, KEY_B: 3 * 5}
    finally:
        reader.close()
    with contextlib.closing(sqlite3.connect(full_disk.path)) as db:
        orphans = db.execute("SELECT count(*) FROM wm_buckets b LEFT JOIN wm_series s "
                             "ON s.series_id = b.series_id WHERE s.series_id IS NULL"
                             ).fetchone()[0]
    assert orphans == 0


# -- PostgreSQL ---------------------------------------------------------------------
def hold_commits(conn, schema: str) -> None:
    """Make every COMMIT that inserted a series wait for advisory lock 4711,
    which the test holds: a deferred constraint trigger runs at COMMIT."""
    conn.execute(f"""CREATE FUNCTION "{schema}".wait_at_commit() RETURNS trigger
        LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_lock_shared(4711);
        PERFORM pg_advisory_unlock_shared(4711); RETURN NULL; END $$""")
    conn.execute(f"""CREATE CONSTRAINT TRIGGER wait_at_commit AFTER INSERT
        ON "{schema}".wm_series DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
        EXECUTE FUNCTION "{schema}".wait_at_commit()""")


def kill_when_waiting_at_commit(conn, application_name: str, seconds: float = 20.0) -> bool:
    """Terminate the backend of ``application_name`` once it waits on the advisory lock."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        row = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s "
                           "AND wait_event = 'advisory'", (application_name,)).fetchone()
        if row is not None:
            return conn.execute("SELECT pg_terminate_backend(%s)", row).fetchone()[0]
        time.sleep(0.02)
    return False


def test_postgres_connection_killed_before_commit_then_retry_keeps_rows_with_series(pg_schema):
    import psycopg

    from wedmetrics.storage import TimescaleBackend

    name = f"wm-killed-{pg_schema}"
    dsn = f"{PG_DSN}{'&' if '?' in PG_DSN else '?'}application_name={name}"
    backend = TimescaleBackend(dsn, "org-a", schema=pg_schema, layout="plain")
    admin = psycopg.connect(PG_DSN, autocommit=True)
    try:
        hold_commits(admin, pg_schema)
        admin.execute("SELECT pg_advisory_lock(4711)")
        killed: list[bool] = []
        killer = threading.Thread(target=lambda: killed.append(
            kill_when_waiting_at_commit(admin, name)))
        killer.start()
        batch_a, _ = minute_batch(KEY_A, START, 50, seed=1)
        with pytest.raises(psycopg.OperationalError):
            backend.write_buckets(batch_a)
        killer.join()
        assert killed == [True]
        admin.execute("SELECT pg_advisory_unlock(4711)")
        admin.execute(f'DROP TRIGGER wait_at_commit ON "{pg_schema}".wm_series')

        assert backend.write_buckets(batch_a) == 50       # the flusher's retry
        batch_b, _ = minute_batch(KEY_B, START, 3, seed=2)
        assert backend.write_buckets(batch_b) == 3
        orphans = admin.execute(
            f'SELECT count(*) FROM "{pg_schema}".wm_buckets b LEFT JOIN "{pg_schema}".wm_series s '
            "ON s.series_id = b.series_id WHERE s.series_id IS NULL").fetchone()[0]
        assert orphans == 0
    finally:
        backend.close()
        admin.close()
    reader = TimescaleBackend(PG_DSN, "org-a", schema=pg_schema, layout="plain")
    try:
        assert stored_series_rows(reader) == {KEY_A: 50 * 5, KEY_B: 3 * 5}
    finally:
        reader.close()
