"""SQLiteBackend: the embedded default (stdlib ``sqlite3``, WAL mode, batched writes)."""
from __future__ import annotations

import itertools
import json
import math
import sqlite3
import threading
from functools import lru_cache
from typing import Callable, Iterable

from ..aggregation import WindowStats
from ..buckets import BucketBatch, SeriesKey
from .base import (AlertEvent, Lease, PermanentWriteError, RuleState, backend_series_ids,
                   batch_from_rows, check_batch, check_org_id, check_writer_id, key_digest,
                   labels_from_text, labels_match, labels_text, merge_rows, parse_retention,
                   state_json)

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
    (4, [
        # a bucket an engine stored at close() before its end is partial: the
        # same writer's later, fuller row of it replaces it (docs/storage.md)
        "ALTER TABLE wm_buckets ADD COLUMN partial INTEGER NOT NULL DEFAULT 0",
        # which series each writer has stored: a restart reads only its own
        """CREATE TABLE wm_writer_series (
               org_id TEXT NOT NULL, writer_id INTEGER NOT NULL, series_id INTEGER NOT NULL,
               PRIMARY KEY (writer_id, series_id)) WITHOUT ROWID""",
        # writer leases: a crashed writer's id is adopted by the next engine
        """CREATE TABLE wm_writers (
               org_id TEXT NOT NULL, writer_id INTEGER NOT NULL, host TEXT NOT NULL,
               pid INTEGER NOT NULL, token TEXT NOT NULL, started REAL NOT NULL,
               heartbeat REAL NOT NULL, state TEXT NOT NULL,
               PRIMARY KEY (org_id, writer_id))""",
    ]),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]

# New files get 16 KB pages (SQLite's default is 4 KB): a bulk write balances
# and logs a quarter as many b-tree pages; measured 15-20 % faster per row.
# The page size of an existing file never changes (see docs/storage.md).
PAGE_SIZE = 16384

# Bucket inserts bind the org (?1), the writer (?2) and the partial horizon
# (?3) once per statement; every row binds its 8 own values: series, width,
# start, count, sum, min, max, sketch (its partial flag is computed from its
# width and start).  Binding is most of the cost of an insert from Python.
_ROW_VALUES = 8
_ROWS_PER_INSERT = 500        # 4,002 parameters, below SQLite's 32,766 limit


@lru_cache(maxsize=64)
def _bucket_insert(rows: int) -> str:
    """Insert of ``rows`` bucket rows in the parameter layout above: a row this
    writer already stored is kept, unless it is partial and the new one holds
    at least its points (the same bucket, continued after a restart)."""
    values = []
    for r in range(rows):
        p = [4 + _ROW_VALUES * r + k for k in range(_ROW_VALUES)]
        values.append("(?1,?%d,?%d,?%d,?2,?%d,?%d,?%d,?%d,?%d,?%d+?%d>?3)"
                      % (*p, p[2], p[1]))
    return ("INSERT INTO wm_buckets (org_id, series_id, width, start, writer_id, count, sum, "
            "min, max, sketch, partial) VALUES " + ",".join(values) + _UPSERT)


_UPSERT = (" ON CONFLICT (series_id, width, start, writer_id) DO UPDATE SET "
           "count = excluded.count, sum = excluded.sum, min = excluded.min, max = excluded.max, "
           "sketch = excluded.sketch, partial = excluded.partial "
           "WHERE wm_buckets.partial AND excluded.count >= wm_buckets.count")


_MULTI_INSERT = _bucket_insert(_ROWS_PER_INSERT)
#: SQLite binds 8-byte floats: the horizon "never partial"
_NEVER = 1e300
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
    4
    >>> backend.close()
    """

    def __init__(self, path, org_id: str = "default", retention: dict | None = None,
                 timeout: float = 10.0, writer_id: int | None = None) -> None:
        self.org_id = check_org_id(org_id)
        self.path = str(path)
        self._marked: set[int] = set()    # series ids noted in wm_writer_series
        self.fixed_writer = writer_id is not None
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

    @property
    def writer_id(self) -> int:
        return self._writer_id

    @writer_id.setter
    def writer_id(self, value: int) -> None:
        # an engine that adopts a crashed writer's id writes as that writer from now on
        self._writer_id = check_writer_id(value)
        self._marked = set()

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

    def write_buckets(self, batch: BucketBatch, *, partial_after: float = math.inf) -> int:
        """Store closed buckets (see :class:`StorageBackend`).  Rows ending after
        ``partial_after`` are stored as partial: an engine closed them at
        ``close()`` before their end, and its writer may store them again,
        fuller, after a restart."""
        check_batch(batch)
        if not len(batch):
            return 0
        with self._lock:
            try:
                with self._tx():
                    fresh = self._series_ids(batch.keys.values())
                    known = {**self._ids, **fresh}
                    marked = self._mark_writer_series(known[k] for k in batch.keys.values())
                    written = self._insert_buckets(batch, known, partial_after)
            except (sqlite3.DataError, sqlite3.IntegrityError) as exc:
                # "string or blob too big" and the like: the same rows fail every time
                raise PermanentWriteError(f"SQLite refused the batch: {exc}") from exc
            self._ids.update(fresh)      # committed: now the ids name stored series
            self._marked.update(marked)
            return written

    def _mark_writer_series(self, series_ids) -> set:
        """Note (inside the transaction) which series this writer stores."""
        new = {int(i) for i in series_ids} - self._marked
        if new:
            self._db.executemany("INSERT OR IGNORE INTO wm_writer_series VALUES (?, ?, ?)",
                                 [(self.org_id, self.writer_id, i) for i in sorted(new)])
        return new

    def _insert_buckets(self, batch: BucketBatch, known: dict[SeriesKey, int],
                        partial_after: float) -> int:
        before = self._db.total_changes
        n = len(batch)
        rows = zip(backend_series_ids(batch, known).tolist(), batch.width.tolist(),
                   batch.start.tolist(), batch.count.tolist(), batch.sum.tolist(),
                   batch.min.tolist(), batch.max.tolist(), batch.sketch)
        # many rows per statement: binding is the cost, stepping one
        # statement per row nearly doubles it
        values = itertools.chain.from_iterable(rows)
        per = _ROWS_PER_INSERT
        head = [self.org_id, self.writer_id,
                float(partial_after) if math.isfinite(partial_after) else _NEVER]
        for _ in range(n // per):
            params = list(head)
            params.extend(itertools.islice(values, per * _ROW_VALUES))
            self._db.execute(_MULTI_INSERT, params)
        if n % per:
            # one statement for the rest; its text is cached per row count
            self._db.execute(_bucket_insert(n % per), [*head, *values])
        return self._db.total_changes - before

    # -- restart: this writer's rows, its lease ---------------------------------
    def read_writer_rows(self, writer_id: int, width: float, start: float, end: float,
                         since: dict | None = None) -> dict:
        """Rows one writer stored at ``width`` with ``start <= bucket start < end``,
        for every series it stored (or those of ``since``, each from its own
        lower bound), in one query: ``{SeriesKey: [(start, sketch, partial)]}``."""
        with self._lock:
            if since is None:
                sql = ("SELECT b.series_id, b.start, b.sketch, b.partial FROM wm_writer_series w "
                       "JOIN wm_buckets b ON b.series_id = w.series_id "
                       "WHERE w.org_id = ? AND w.writer_id = ? AND b.writer_id = ? "
                       "AND b.width = ? AND b.start >= ? AND b.start < ? "
                       "ORDER BY b.series_id, b.start")
                rows = self._db.execute(sql, (self.org_id, int(writer_id), int(writer_id),
                                              float(width), float(start), float(end))).fetchall()
            else:
                ids = {self._lookup(k): max(float(start), float(v)) for k, v in since.items()}
                ids.pop(None, None)
                rows = []
                items = sorted(ids.items())
                for i in range(0, len(items), 10_000):
                    part = items[i:i + 10_000]
                    values = ",".join("(?, ?)" for _ in part)
                    sql = (f"WITH u(sid, since) AS (VALUES {values}) "
                           "SELECT b.series_id, b.start, b.sketch, b.partial FROM u "
                           "JOIN wm_buckets b ON b.series_id = u.sid "
                           "WHERE b.org_id = ? AND b.writer_id = ? AND b.width = ? "
                           "AND b.start >= u.since AND b.start < ? "
                           "ORDER BY b.series_id, b.start")
                    args = [x for pair in part for x in pair]
                    rows += self._db.execute(sql, (*args, self.org_id, int(writer_id),
                                                   float(width), float(end))).fetchall()
            keys = self._keys_of({r[0] for r in rows})
        out: dict = {}
        for sid, st, sketch, partial in rows:
            out.setdefault(keys[sid], []).append((float(st), bytes(sketch), bool(partial)))
        return out

    def writer_series(self, writer_id: int) -> list[SeriesKey]:
        """Keys of the series ``writer_id`` has stored."""
        with self._lock:
            rows = self._db.execute(
                "SELECT s.series_id, s.name, s.labels, s.kind FROM wm_writer_series w "
                "JOIN wm_series s ON s.series_id = w.series_id WHERE w.org_id = ? "
                "AND w.writer_id = ? ORDER BY s.series_id", (self.org_id, int(writer_id))
            ).fetchall()
            out = []
            for sid, n, lab, kind in rows:
                out.append(key := SeriesKey(n, labels_from_text(lab), kind))
                self._ids.setdefault(key, sid)
        return out

    def _keys_of(self, series_ids) -> dict:
        out = {}
        ids = sorted(series_ids)
        for i in range(0, len(ids), 10_000):
            part = ids[i:i + 10_000]
            rows = self._db.execute(
                "SELECT series_id, name, labels, kind FROM wm_series WHERE series_id IN (%s)"
                % ",".join("?" * len(part)), part).fetchall()
            for sid, n, lab, kind in rows:
                out[sid] = key = SeriesKey(n, labels_from_text(lab), kind)
                self._ids.setdefault(key, sid)
        return out

    def read_leases(self) -> list[Lease]:
        """Every writer lease of this org."""
        with self._lock:
            rows = self._db.execute(
                "SELECT writer_id, host, pid, token, started, heartbeat, state FROM wm_writers "
                "WHERE org_id = ? ORDER BY heartbeat DESC", (self.org_id,)).fetchall()
        return [Lease(*r) for r in rows]

    def hold_lease(self, writer_id: int, host: str, pid: int, token: str, now: float, *,
                   adopt: Lease | None = None) -> bool:
        """Take the lease of ``writer_id`` for this process.  ``adopt``: only if it
        is still that dead lease (no other engine took it first); otherwise the
        lease is written as this process' own."""
        with self._lock, self._tx():
            if adopt is not None:
                cur = self._db.execute(
                    "UPDATE wm_writers SET host = ?, pid = ?, token = ?, started = ?, "
                    "heartbeat = ?, state = 'live' WHERE org_id = ? AND writer_id = ? "
                    "AND token = ? AND heartbeat = ? AND state = 'live'",
                    (host, pid, token, now, now, self.org_id, int(writer_id), adopt.token,
                     adopt.heartbeat))
                return cur.rowcount == 1
            self._db.execute(
                "INSERT INTO wm_writers VALUES (?, ?, ?, ?, ?, ?, ?, 'live') "
                "ON CONFLICT (org_id, writer_id) DO UPDATE SET host = excluded.host, "
                "pid = excluded.pid, token = excluded.token, started = excluded.started, "
                "heartbeat = excluded.heartbeat, state = 'live'",
                (self.org_id, int(writer_id), host, pid, token, now, now))
            return True

    def renew_lease(self, writer_id: int, token: str, now: float, *,
                    state: str = "live") -> bool:
        """Heartbeat (or, with ``state="closed"``, end) this process' lease;
        ``False`` when another engine holds it now."""
        with self._lock, self._tx():
            cur = self._db.execute(
                "UPDATE wm_writers SET heartbeat = ?, state = ? WHERE org_id = ? "
                "AND writer_id = ? AND token = ?", (now, state, self.org_id, int(writer_id),
                                                     token))
            return cur.rowcount == 1

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
