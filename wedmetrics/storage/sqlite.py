"""SQLiteBackend: the embedded default (stdlib ``sqlite3``, WAL mode, batched writes)."""
from __future__ import annotations

import itertools
import json
import sqlite3
import threading
from functools import lru_cache
from typing import Callable, Iterable

from ..aggregation import WindowStats
from ..buckets import BucketBatch, SeriesKey
from .base import (AlertEvent, PermanentWriteError, RuleState, backend_series_ids,
                   batch_from_rows, check_batch, check_org_id, check_writer_id, key_digest, labels_from_text, labels_match, labels_text,
                   merge_rows, parse_retention, state_json)

from .base import silence_json

__all__ = ["SQLiteBackend", "SCHEMA_VERSION"]



def _copy_events_with_digests(db: sqlite3.Connection) -> None:
    """Version 3: every stored alert event gets the digest its writer would compute now,
    so that a retry of an event stored before the migration is still recognised."""
    rows = db.execute("SELECT org_id, alert_id, rule, status, severity, labels, annotations, "
                      "value, ts, wedding_id FROM wm_alert_events").fetchall()
    db.executemany("INSERT INTO wm_alert_events_v3 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [(*r, AlertEvent.from_row(r[1:]).digest) for r in rows])


# Each step moves the schema one version up; a database records the steps it has.
# A step is SQL text or a function of the connection (for what SQL cannot compute).
MIGRATIONS: list[tuple[int, list[str | Callable[[sqlite3.Connection], None]]]] = [
    (1, [
        """CREATE TABLE wm_series (
               series_id INTEGER PRIMARY KEY AUTOINCREMENT,
               org_id TEXT NOT NULL, digest BLOB NOT NULL,
               name TEXT NOT NULL, labels TEXT NOT NULL, kind TEXT NOT NULL,
               UNIQUE (org_id, digest))""",
        "CREATE INDEX wm_series_name ON wm_series (org_id, name)",
        """CREATE TABLE wm_buckets (
               org_id TEXT NOT NULL, series_id INTEGER NOT NULL,
               width REAL NOT NULL, start REAL NOT NULL,
               count INTEGER NOT NULL, sum REAL NOT NULL, min REAL NOT NULL, max REAL NOT NULL,
               sketch BLOB NOT NULL,
               -- a series id belongs to one org, so this is the (org, series,
               -- width, start) key; leaving org_id out makes inserts faster
               PRIMARY KEY (series_id, width, start)) WITHOUT ROWID""",
        """CREATE TABLE wm_alert_events (
               org_id TEXT NOT NULL, alert_id TEXT NOT NULL, rule TEXT NOT NULL,
               status TEXT NOT NULL, severity TEXT NOT NULL, labels TEXT NOT NULL,
               annotations TEXT NOT NULL, value REAL, ts REAL NOT NULL, wedding_id TEXT,
               PRIMARY KEY (org_id, alert_id, status, ts))""",
        """CREATE TABLE wm_rule_state (
               org_id TEXT NOT NULL, rule TEXT NOT NULL, state TEXT NOT NULL,
               updated_at REAL NOT NULL, PRIMARY KEY (org_id, rule))""",
    ]),
    (2, [
        # reading events by time range was a full scan in version 1
        "CREATE INDEX wm_alert_events_ts ON wm_alert_events (org_id, ts)",
    ]),
    (3, [
        # several processes may store the same bucket of the same series:
        # the writer is part of the key, rows from before it belong to writer 0
        """CREATE TABLE wm_buckets_v3 (
               org_id TEXT NOT NULL, series_id INTEGER NOT NULL,
               width REAL NOT NULL, start REAL NOT NULL, writer_id INTEGER NOT NULL,
               count INTEGER NOT NULL, sum REAL NOT NULL, min REAL NOT NULL, max REAL NOT NULL,
               sketch BLOB NOT NULL,
               PRIMARY KEY (series_id, width, start, writer_id)) WITHOUT ROWID""",
        "INSERT INTO wm_buckets_v3 SELECT org_id, series_id, width, start, 0, count, sum, "
        "min, max, sketch FROM wm_buckets",
        "DROP TABLE wm_buckets",
        "ALTER TABLE wm_buckets_v3 RENAME TO wm_buckets",
        # two different events of one alert at one instant (two people's
        # feedback) collapsed into one under the old key
        """CREATE TABLE wm_alert_events_v3 (
               org_id TEXT NOT NULL, alert_id TEXT NOT NULL, rule TEXT NOT NULL,
               status TEXT NOT NULL, severity TEXT NOT NULL, labels TEXT NOT NULL,
               annotations TEXT NOT NULL, value REAL, ts REAL NOT NULL, wedding_id TEXT,
               digest BLOB NOT NULL,
               PRIMARY KEY (org_id, alert_id, status, ts, digest))""",
        _copy_events_with_digests,
        "DROP TABLE wm_alert_events",
        "ALTER TABLE wm_alert_events_v3 RENAME TO wm_alert_events",
        "CREATE INDEX wm_alert_events_ts ON wm_alert_events (org_id, ts)",
    ]),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]

# New files get 16 KB pages (SQLite's default is 4 KB): a bulk write balances
# and logs a quarter as many b-tree pages; measured 15-20 % faster per row.
# The page size of an existing file never changes (see docs/storage.md).
PAGE_SIZE = 16384

# Bucket inserts bind the org (?1) and the writer (?2) once per statement;
# every row binds its 8 own values: series, width, start, count, sum, min, max,
# sketch.  Binding is most of the cost of an insert from Python.
_ROW_VALUES = 8
_ROWS_PER_INSERT = 500        # 4,002 parameters, below SQLite's 32,766 limit


@lru_cache(maxsize=64)
def _bucket_insert(rows: int) -> str:
    """``INSERT OR IGNORE`` of ``rows`` bucket rows in the parameter layout above."""
    values = []
    for r in range(rows):
        p = [3 + _ROW_VALUES * r + k for k in range(_ROW_VALUES)]
        values.append("(?1,?%d,?%d,?%d,?2,?%d,?%d,?%d,?%d,?%d)" % tuple(p))
    return "INSERT OR IGNORE INTO wm_buckets VALUES " + ",".join(values)


_MULTI_INSERT = _bucket_insert(_ROWS_PER_INSERT)
_READ = ("SELECT start, count, sum, min, max, sketch FROM wm_buckets "
         "WHERE org_id = ? AND series_id = ? AND width = ? AND start >= ? AND start < ? ")
_ORDER = "ORDER BY start, writer_id"


class SQLiteBackend:
    """Stores buckets, alert events and rule state in one SQLite file.

    Parameters
    ----------
    path : str or os.PathLike
        Database file (created when missing); ``":memory:"`` for a private
        in-memory database.
    org_id : str
        Tenant whose rows this backend reads and writes.  Several orgs may
        share one file.
    retention : dict, optional
        Keep per resolution, e.g. ``{"1s": "1d", "1m": "30d", "1h": "1y"}``,
        applied by :meth:`apply_retention`; resolutions not named are kept.
    timeout : float
        Seconds to wait for another writer's lock before failing.
    writer_id : int, optional
        Identity of this writer in ``[0, 2**63 - 1]``, stored in every bucket
        row; random by default, so several processes (or several backends on
        one file) never overwrite or skip each other's rows of a bucket.
        Give a fixed id only to a writer that is one process at a time.

    Notes
    -----
    The file uses WAL journaling, so readers never block the flusher, and
    ``synchronous=NORMAL``: a batch is committed to the WAL when
    ``write_buckets`` returns and survives a crash of the process; a power
    cut may lose the batches committed since the last checkpoint but never
    corrupts the file.  New files use 16 KB pages (``PAGE_SIZE``); a file
    keeps the page size it was created with.  The schema version lives in ``wm_schema``;
    opening an older file migrates it in one transaction, opening a newer
    one raises ``RuntimeError``.

    Examples
    --------
    >>> import wedmetrics as wm
    >>> backend = wm.SQLiteBackend(":memory:", org_id="org-1")
    >>> backend.schema_version()
    3
    >>> backend.close()
    """

    def __init__(self, path, org_id: str = "default", retention: dict | None = None,
                 timeout: float = 10.0, writer_id: int | None = None) -> None:
        self.org_id = check_org_id(org_id)
        self.path = str(path)
        self.writer_id = check_writer_id(writer_id)
        self.retention = parse_retention(retention)
        self._lock = threading.RLock()
        # one connection shared by the flusher and readers, serialized by the lock
        self._db = sqlite3.connect(self.path, timeout=timeout, check_same_thread=False,
                                   isolation_level=None)
        self._db.execute(f"PRAGMA page_size={PAGE_SIZE}")   # no-op unless the file is new
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA cache_size=-65536")     # 64 MB: bulk inserts stay in cache
        self._ids: dict[SeriesKey, int] = {}
        self._closed = False
        migrate(self._db)

    # -- schema ---------------------------------------------------------------
    def schema_version(self) -> int:
        with self._lock:
            return _current_version(self._db)

    def _tx(self):
        return _Transaction(self._db)

    # -- buckets ----------------------------------------------------------------
    def _series_ids(self, keys: Iterable[SeriesKey]) -> dict[SeriesKey, int]:
        """Ids of ``keys``, inserting the missing series; call inside a transaction.

        Returns the ids this transaction inserted or looked up without
        caching them: the caller caches them only after COMMIT.  An id cached
        from a transaction that then rolled back (disk full) would name no
        series row, and AUTOINCREMENT would hand it to the next new series.
        """
        fresh: dict[SeriesKey, int] = {}
        for key in keys:
            if key in self._ids or key in fresh:
                continue
            digest = key_digest(key)
            self._db.execute(
                "INSERT OR IGNORE INTO wm_series (org_id, digest, name, labels, kind) "
                "VALUES (?, ?, ?, ?, ?)",
                (self.org_id, digest, key.name, labels_text(key.labels), key.kind))
            (sid,) = self._db.execute(
                "SELECT series_id FROM wm_series WHERE org_id = ? AND digest = ?",
                (self.org_id, digest)).fetchone()
            fresh[key] = sid
        return fresh

    def write_buckets(self, batch: BucketBatch) -> int:
        check_batch(batch)
        if not len(batch):
            return 0
        with self._lock:
            try:
                with self._tx():
                    fresh = self._series_ids(batch.keys.values())
                    written = self._insert_buckets(batch, {**self._ids, **fresh})
            except (sqlite3.DataError, sqlite3.IntegrityError) as exc:
                # "string or blob too big" and the like: the same rows fail every time
                raise PermanentWriteError(f"SQLite refused the batch: {exc}") from exc
            self._ids.update(fresh)      # committed: now the ids name stored series
            return written

    def _insert_buckets(self, batch: BucketBatch, known: dict[SeriesKey, int]) -> int:
        before = self._db.total_changes
        n = len(batch)
        rows = zip(backend_series_ids(batch, known).tolist(), batch.width.tolist(),
                   batch.start.tolist(), batch.count.tolist(), batch.sum.tolist(),
                   batch.min.tolist(), batch.max.tolist(), batch.sketch)
        # many rows per statement: binding is the cost, stepping one
        # statement per row nearly doubles it
        values = itertools.chain.from_iterable(rows)
        per = _ROWS_PER_INSERT
        for _ in range(n // per):
            params = [self.org_id, self.writer_id]
            params.extend(itertools.islice(values, per * _ROW_VALUES))
            self._db.execute(_MULTI_INSERT, params)
        if n % per:
            # one statement for the rest; its text is cached per row count
            self._db.execute(_bucket_insert(n % per), [self.org_id, self.writer_id, *values])
        return self._db.total_changes - before

    def _lookup(self, key: SeriesKey) -> int | None:
        sid = self._ids.get(key)
        if sid is None:
            row = self._db.execute(
                "SELECT series_id FROM wm_series WHERE org_id = ? AND digest = ?",
                (self.org_id, key_digest(key))).fetchone()
            if row is None:
                return None
            sid = self._ids[key] = row[0]
        return sid

    def read_buckets(self, key: SeriesKey, width: float, start: float, end: float, *,
                     exclude_writer: int | None = None,
                     only_writer: int | None = None) -> BucketBatch:
        with self._lock:
            sid = self._lookup(key)
            if sid is None:
                return BucketBatch.empty()
            args: tuple = (self.org_id, sid, float(width), float(start), float(end))
            sql = _READ
            if exclude_writer is not None:
                sql += "AND writer_id != ? "
                args += (int(exclude_writer),)
            if only_writer is not None:
                sql += "AND writer_id = ? "
                args += (int(only_writer),)
            rows = self._db.execute(sql + _ORDER, args).fetchall()
        # rows of the same start from several writers become one
        return batch_from_rows(key, sid, float(width), rows)

    def read_merged(self, name: str, width: float, start: float, end: float,
                    labels: dict | None = None) -> WindowStats:
        keys = [k for k in self.series_keys(name) if labels_match(k.labels, labels)]
        batch = BucketBatch.concat([self.read_buckets(k, width, start, end) for k in keys])
        return merge_rows(batch.count, batch.sum, batch.min, batch.max, batch.sketch,
                          start, end)

    def series_keys(self, name: str | None = None) -> list[SeriesKey]:
        sql = "SELECT name, labels, kind FROM wm_series WHERE org_id = ?"
        args: tuple = (self.org_id,)
        if name is not None:
            sql += " AND name = ?"
            args += (name,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY series_id", args).fetchall()
        return [SeriesKey(n, labels_from_text(lab), kind) for n, lab, kind in rows]

    # -- alerts -----------------------------------------------------------------
    def write_alert_events(self, events: Iterable[AlertEvent]) -> int:
        events = list(events)
        for e in events:
            e.check()
        with self._lock, self._tx():
            before = self._db.total_changes
            self._db.executemany(
                "INSERT OR IGNORE INTO wm_alert_events (org_id, alert_id, rule, status, "
                "severity, labels, annotations, value, ts, wedding_id, digest) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(self.org_id, *e.to_row(), e.digest) for e in events])
            return self._db.total_changes - before

    def read_alert_events(self, start: float, end: float,
                          rule: str | None = None) -> list[AlertEvent]:
        sql = ("SELECT alert_id, rule, status, severity, labels, annotations, value, ts, "
               "wedding_id FROM wm_alert_events WHERE org_id = ? AND ts >= ? AND ts < ?")
        args: tuple = (self.org_id, float(start), float(end))
        if rule is not None:
            sql += " AND rule = ?"
            args += (rule,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY ts, alert_id, status, digest",
                                   args).fetchall()
        return [AlertEvent.from_row(r) for r in rows]

    def write_rule_state(self, rule: str, state: dict, ts: float) -> None:
        text = state_json(rule, state)
        with self._lock, self._tx():
            self._db.execute(
                "INSERT INTO wm_rule_state VALUES (?, ?, ?, ?) ON CONFLICT (org_id, rule) "
                "DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                (self.org_id, rule, text, float(ts)))

    def read_rule_state(self, rule: str) -> RuleState | None:
        with self._lock:
            row = self._db.execute(
                "SELECT state, updated_at FROM wm_rule_state WHERE org_id = ? AND rule = ?",
                (self.org_id, rule)).fetchone()
        return None if row is None else RuleState(rule, json.loads(row[0]), row[1])

    def read_all_rule_states(self) -> dict[str, RuleState]:
        with self._lock:
            rows = self._db.execute(
                "SELECT rule, state, updated_at FROM wm_rule_state WHERE org_id = ?",
                (self.org_id,)).fetchall()
        return {r: RuleState(r, json.loads(s), ts) for r, s, ts in rows}

    # -- silences --------------------------------------------------------------------
    # Their table is made on first use, outside the numbered migrations: it is
    # independent of every other table and older files simply lack it.
    def _silence_table(self) -> None:
        if not getattr(self, "_has_silences", False):
            with self._tx():
                self._db.execute("CREATE TABLE IF NOT EXISTS wm_silences (org_id TEXT NOT NULL, "
                                 "id TEXT NOT NULL, record TEXT NOT NULL, updated_at REAL NOT NULL, "
                                 "PRIMARY KEY (org_id, id))")
            self._has_silences = True

    def write_silence(self, silence_id: str, record: dict, ts: float) -> None:
        text = silence_json(silence_id, record)
        with self._lock:
            self._silence_table()
            with self._tx():
                self._db.execute(
                    "INSERT INTO wm_silences VALUES (?, ?, ?, ?) ON CONFLICT (org_id, id) "
                    "DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at",
                    (self.org_id, silence_id, text, float(ts)))

    def read_silences(self) -> dict[str, dict]:
        with self._lock:
            self._silence_table()
            rows = self._db.execute("SELECT id, record FROM wm_silences WHERE org_id = ?",
                                    (self.org_id,)).fetchall()
        return {i: json.loads(r) for i, r in rows}

    def delete_silences(self, silence_ids) -> int:
        ids = list(silence_ids)
        with self._lock:
            self._silence_table()
            with self._tx():
                return sum(self._db.execute("DELETE FROM wm_silences WHERE org_id = ? AND id = ?",
                                            (self.org_id, i)).rowcount for i in ids)

    # -- retention and lifecycle ---------------------------------------------------
    def apply_retention(self, now: float, retention: dict | None = None) -> int:
        keep = parse_retention(retention) if retention is not None else self.retention
        removed = 0
        with self._lock, self._tx():
            for width, span in keep.items():
                cur = self._db.execute(
                    "DELETE FROM wm_buckets WHERE org_id = ? AND width = ? AND start < ?",
                    (self.org_id, width, float(now) - span))
                removed += cur.rowcount
        return removed

    def row_count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM wm_buckets WHERE org_id = ?",
                                    (self.org_id,)).fetchone()[0]

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    def __enter__(self) -> "SQLiteBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SQLiteBackend {self.path!r} org={self.org_id!r} writer={self.writer_id}>"


class _Transaction:
    """``BEGIN IMMEDIATE`` .. ``COMMIT``, rolled back on any exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self):
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
                return
            except BaseException:
                # a COMMIT that fails (disk full while writing the WAL) may
                # leave the transaction open; the next BEGIN would then fail
                self._rollback()
                raise
        self._rollback()

    def _rollback(self) -> None:
        # SQLite may already have rolled back by itself (SQLITE_FULL, IOERR)
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")


def _current_version(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'wm_schema'"
                     ).fetchone()
    if row is None:
        return 0
    (version,) = db.execute("SELECT coalesce(max(version), 0) FROM wm_schema").fetchone()
    return int(version)


def migrate(db: sqlite3.Connection, upto: int = SCHEMA_VERSION) -> int:
    """Bring the schema to version ``upto``; returns the version found before.

    Raises ``RuntimeError`` when the file was written by a newer wedmetrics.
    """
    with _Transaction(db):
        db.execute("CREATE TABLE IF NOT EXISTS wm_schema "
                   "(version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
        found = _current_version(db)
        if found > SCHEMA_VERSION:
            raise RuntimeError(f"database schema version {found} is newer than this "
                               f"wedmetrics supports ({SCHEMA_VERSION}); upgrade wedmetrics")
        for version, statements in MIGRATIONS:
            if found < version <= upto:
                for step in statements:
                    if callable(step):
                        step(db)
                    else:
                        db.execute(step)
                # the database's clock, not the engine's: this is bookkeeping
                db.execute("INSERT INTO wm_schema VALUES (?, CAST(strftime('%s', 'now') AS REAL))",
                           (version,))
    return found
