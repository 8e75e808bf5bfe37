"""TimescaleBackend: PostgreSQL storage with TimescaleDB when available (psycopg 3, binary COPY).

Two layouts of the same tables, chosen when the schema is first created:

``timescale``
    ``wm_buckets`` is a hypertable (1-day chunks) compressed after 7 days
    with ``segmentby = org_id, series_id``; continuous aggregates
    ``wm_rollup_hourly`` and ``wm_rollup_daily`` keep count/sum/min/max
    roll-ups; per-resolution retention runs as a TimescaleDB job.
``plain``
    ``wm_buckets`` is range-partitioned on ``(width, bucket_start)``, one
    partition per resolution and day (30 days for hourly and coarser
    buckets); retention drops whole partitions.

Percentiles over any range are computed by merging the stored sketches
(``read_merged``), never by ``percentile_cont``, which does not roll up.
"""
from __future__ import annotations

import json
import logging
import math
import re
import struct
import threading
from typing import Iterable

import numpy as np

try:
    import psycopg
    from psycopg import sql
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("TimescaleBackend needs psycopg 3: pip install 'wedmetrics[timescale]'"
                      ) from exc

from .._kernels import Sketch
from ..aggregation import Columns, WindowStats
from ..buckets import BucketBatch, SeriesKey
from .base import (AlertEvent, Lease, PermanentWriteError, RuleState, backend_series_ids,
                   batch_from_rows, check_batch, check_org_id, check_text, check_writer_id,
                   key_digest, labels_from_text, labels_match, labels_text, merge_rows,
                   parse_retention, state_json)

from .base import silence_json

__all__ = ["TimescaleBackend", "SCHEMA_VERSION", "LAYOUTS", "timescale_usable"]

log = logging.getLogger("wedmetrics.storage")

LAYOUTS = ("auto", "timescale", "plain")
SCHEMA_VERSION = 4
_PG_EPOCH = 946684800.0          # 2000-01-01T00:00:00Z, the zero of PostgreSQL timestamps
_DAY = 86400.0
# in the order of iter_copy's binary rows: the variable-length sketch comes last
_COLUMNS = ("org_id, series_id, width, bucket_start, writer_id, count, sum, min, max, partial, "
            "sketch")
_EVENT_COLUMNS = ("org_id, alert_id, rule, status, severity, labels, annotations, value, ts, "
                  "wedding_id, digest")
_PART_NAME = re.compile(r"^wm_buckets_w(\d+)_p(-?\d+)$")


def _partition_span(width: float) -> float:
    """Seconds of one plain-layout partition: a day, or 30 days for coarse buckets."""
    return _DAY if width < 3600.0 else 30 * _DAY


def _partition_keys(width: np.ndarray, start: np.ndarray) -> set[tuple[int, int]]:
    """The ``(width in ms, period)`` of every plain-layout partition the rows fall in.

    A batch comes series by series, so the key changes only every few thousand
    rows: only the first row of each run becomes a Python tuple (a set over
    every row's tuple cost 15 ms per 200,000 rows, before the COPY could start).
    """
    if not len(width):
        return set()
    span = np.where(width < 3600.0, _DAY, 30 * _DAY)
    wms = np.round(width * 1000).astype(np.int64)
    period = np.floor(start / span).astype(np.int64)
    first = np.flatnonzero(np.concatenate(([True], (wms[1:] != wms[:-1])
                                           | (period[1:] != period[:-1]))))
    return set(zip(wms[first].tolist(), period[first].tolist()))


NOT_AVAILABLE = "the timescaledb extension is not available on this server"


def timescale_usable(conn) -> tuple[bool, str]:
    """Whether TimescaleDB can run in this database, and why not.

    The extension's files on disk are not enough: ``CREATE EXTENSION`` fails
    unless the library is also in ``shared_preload_libraries`` (a server whose
    configuration was reset after the package was installed is in exactly
    that state).  An extension already created here is usable as it stands.
    """
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone():
        return True, ""
    if conn.execute("SELECT 1 FROM pg_available_extensions "
                    "WHERE name = 'timescaledb'").fetchone() is None:
        return False, NOT_AVAILABLE
    preload = conn.execute("SHOW shared_preload_libraries").fetchone()[0]
    if not any(lib.strip().rsplit("/", 1)[-1] == "timescaledb" for lib in preload.split(",")):
        return False, ("the timescaledb extension is installed on this server but not in "
                       "shared_preload_libraries (add it to postgresql.conf and restart)")
    return True, ""


class TimescaleBackend:
    """Stores buckets, alert events and rule state in PostgreSQL, per org.

    Parameters
    ----------
    dsn : str
        libpq connection string, e.g. ``"postgresql://app@db:5432/metrics"``.
    org_id : str
        Tenant: every row carries it and every read filters on it.
    schema : str
        PostgreSQL schema holding the tables (created when missing).
    layout : {"auto", "timescale", "plain"}
        ``auto`` uses TimescaleDB when ``pg_available_extensions`` lists it.
        Only consulted when the schema is created; afterwards the recorded
        layout wins.
    retention : dict, optional
        Keep per resolution, e.g. ``{"1s": "1d", "1m": "30d"}``.
    compress_after : str
        Age after which TimescaleDB compresses chunks (timescale layout).
    rollup_width : float or str
        Bucket width the hourly/daily roll-ups are built from (default 1m).
    connect_timeout : float
        Seconds to wait for the server; the flusher retries after failures.
    writer_id : int, optional
        Identity of this writer in ``[0, 2**63 - 1]``, stored in every bucket
        row; random by default, so several processes writing the same series
        each keep their rows of a bucket and reads merge them.

    Notes
    -----
    Writes are idempotent on ``(org_id, series_id, width, bucket_start,
    writer_id)`` (the primary key leaves ``org_id`` out: a series id belongs
    to exactly one org, and a shorter key makes COPY faster).  A
    batch is first sent by binary ``COPY`` straight into ``wm_buckets``; if
    any row is already there (a retried batch that had committed), the
    transaction rolls back and the batch goes through a staging table with
    ``INSERT .. ON CONFLICT DO NOTHING``.  Metric names and labels are data
    (query parameters, COPY fields), never SQL text.
    """

    def __init__(self, dsn: str, org_id: str = "default", *, schema: str = "wedmetrics",
                 layout: str = "auto", retention: dict | None = None,
                 compress_after: str = "7 days", rollup_width=60.0,
                 connect_timeout: float = 5.0, writer_id: int | None = None) -> None:
        check_org_id(org_id)
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
            raise ValueError(f"schema must be a lower-case SQL identifier, got {schema!r}")
        from ..clock import parse_duration

        self.dsn = dsn
        self.org_id = org_id
        self._marked: set[int] = set()    # series ids noted in wm_writer_series
        self.fixed_writer = writer_id is not None
        self.writer_id = check_writer_id(writer_id)
        self.schema = schema
        self.retention = parse_retention(retention)
        self.compress_after = compress_after
        self.rollup_width = parse_duration(rollup_width)
        self.connect_timeout = float(connect_timeout)
        self._requested_layout = layout
        self.layout: str | None = None
        self._lock = threading.RLock()
        self._conn: psycopg.Connection | None = None
        self._ids: dict[SeriesKey, int] = {}
        self._partitions: set[tuple[int, int]] = set()
        self._closed = False
        self._org_bytes = org_id.encode("utf-8")
        self._s = sql.Identifier(schema)
        with self._lock:
            self._connection()

    @property
    def writer_id(self) -> int:
        return self._writer_id

    @writer_id.setter
    def writer_id(self, value: int) -> None:
        # an engine that adopts a crashed writer's id writes as that writer from now on
        self._writer_id = check_writer_id(value)
        self._marked = set()

    # -- connection and schema ------------------------------------------------
    def _connection(self) -> "psycopg.Connection":
        if self._closed:
            raise RuntimeError("TimescaleBackend is closed")
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if conn is not None:
            conn.close()     # a broken connection left to the GC warns (unraisable) in tests
        self._conn = None
        conn = psycopg.connect(self.dsn, autocommit=True,
                               connect_timeout=max(1, int(round(self.connect_timeout))))
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _run(self, fn):
        """Run ``fn(conn)``; a broken connection is dropped so the next call reconnects."""
        with self._lock:
            conn = self._connection()
            try:
                return fn(conn)
            except psycopg.OperationalError:
                if conn.broken or conn.closed:
                    self._conn = None
                    conn.close()
                raise

    def _q(self, text: str, **parts) -> sql.Composed:
        """SQL text with ``{s}`` standing for the (quoted) schema."""
        return sql.SQL(text).format(s=self._s, **parts)

    def _prepare(self, conn) -> None:
        with conn.transaction():
            # two processes opening a fresh database must not both create it
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                         (f"wedmetrics:{self.schema}",))
            conn.execute(self._q("CREATE SCHEMA IF NOT EXISTS {s}"))
            conn.execute(self._q("CREATE TABLE IF NOT EXISTS {s}.wm_schema ("
                                 "version int PRIMARY KEY, layout text NOT NULL, "
                                 "applied_at timestamptz NOT NULL DEFAULT now())"))
            row = conn.execute(self._q("SELECT max(version), max(layout) FROM {s}.wm_schema")
                               ).fetchone()
            found, layout = (row[0] or 0), row[1]
            if found > SCHEMA_VERSION:
                raise RuntimeError(f"schema {self.schema!r} is at version {found}, newer than "
                                   f"this wedmetrics supports ({SCHEMA_VERSION})")
            if layout is None:
                layout = self._choose_layout(conn)
            self.layout = layout
            if found < 1:
                self._create_v1(conn, layout)
                if layout == "timescale":
                    self._create_timescale_objects(conn)
                conn.execute(self._q("INSERT INTO {s}.wm_schema (version, layout) "
                                     "VALUES (1, %s)"), (layout,))
            if found < 2:
                self._create_v2(conn)
                conn.execute(self._q("INSERT INTO {s}.wm_schema (version, layout) "
                                     "VALUES (2, %s)"), (layout,))
            if found < 3:
                self._migrate_v3(conn, layout)
                conn.execute(self._q("INSERT INTO {s}.wm_schema (version, layout) "
                                     "VALUES (3, %s)"), (layout,))
            if found < 4:
                self._migrate_v4(conn)
                conn.execute(self._q("INSERT INTO {s}.wm_schema (version, layout) "
                                     "VALUES (4, %s)"), (layout,))
        self._partitions.clear()

    def _choose_layout(self, conn) -> str:
        usable, why = timescale_usable(conn)
        if self._requested_layout == "timescale" and not usable:
            raise RuntimeError(f"layout='timescale' but {why}")
        if self._requested_layout == "plain":
            return "plain"
        if not usable and why != NOT_AVAILABLE:
            # files on disk but not loadable: say why auto did not pick it
            log.warning("TimescaleBackend: schema %r uses the plain layout, because %s",
                        self.schema, why)
        return "timescale" if usable else "plain"

    def _create_v1(self, conn, layout: str) -> None:
        ex = conn.execute
        ex(self._q("""CREATE TABLE {s}.wm_series (
            series_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            org_id text NOT NULL, digest bytea NOT NULL,
            name text NOT NULL, labels text NOT NULL, kind text NOT NULL,
            UNIQUE (org_id, digest))"""))
        ex(self._q("CREATE INDEX ON {s}.wm_series (org_id, name)"))
        partition = " PARTITION BY RANGE (width, bucket_start)" if layout == "plain" else ""
        ex(self._q("""CREATE TABLE {s}.wm_buckets (
            org_id text NOT NULL, series_id bigint NOT NULL,
            width double precision NOT NULL, bucket_start timestamptz NOT NULL,
            count bigint NOT NULL, sum double precision NOT NULL,
            min double precision NOT NULL, max double precision NOT NULL,
            sketch bytea NOT NULL,
            PRIMARY KEY (series_id, width, bucket_start))""" + partition))
        ex(self._q("""CREATE TABLE {s}.wm_alert_events (
            org_id text NOT NULL, alert_id text NOT NULL, rule text NOT NULL,
            status text NOT NULL, severity text NOT NULL, labels jsonb NOT NULL,
            annotations jsonb NOT NULL, value double precision, ts double precision NOT NULL,
            wedding_id text, PRIMARY KEY (org_id, alert_id, status, ts))"""))
        ex(self._q("""CREATE TABLE {s}.wm_rule_state (
            org_id text NOT NULL, rule text NOT NULL, state jsonb NOT NULL,
            updated_at double precision NOT NULL, PRIMARY KEY (org_id, rule))"""))
        # tenancy for SQL consumers: a role sees the orgs mapped to it, through
        # security_barrier views (RLS does not combine with TimescaleDB
        # compression or continuous aggregates, so it is not used)
        ex(self._q("CREATE TABLE {s}.wm_org_roles (role name NOT NULL, org_id text NOT NULL, "
                   "PRIMARY KEY (role, org_id))"))
        ex(self._q("""CREATE VIEW {s}.wm_tenant_buckets WITH (security_barrier) AS
            SELECT b.org_id, s.name, s.labels, s.kind, b.width, b.bucket_start,
                   b.count, b.sum, b.min, b.max, b.sketch
            FROM {s}.wm_buckets b JOIN {s}.wm_series s
              ON s.series_id = b.series_id AND s.org_id = b.org_id
            WHERE b.org_id IN (SELECT r.org_id FROM {s}.wm_org_roles r
                               WHERE r.role = current_user)"""))
        ex(self._q("""CREATE VIEW {s}.wm_tenant_alert_events WITH (security_barrier) AS
            SELECT * FROM {s}.wm_alert_events e
            WHERE e.org_id IN (SELECT r.org_id FROM {s}.wm_org_roles r
                               WHERE r.role = current_user)"""))

    def _create_v2(self, conn) -> None:
        conn.execute(self._q("CREATE INDEX IF NOT EXISTS wm_alert_events_ts "
                             "ON {s}.wm_alert_events (org_id, ts)"))

    def _migrate_v3(self, conn, layout: str) -> None:
        """Version 3: the writer joins the bucket key, a digest joins the event key.

        Rows stored before belong to writer 0.  On the timescale layout the
        primary key and the compression order cannot change while chunks
        are compressed: they are decompressed here (the compression policy,
        re-added with its old ``compress_after``, compresses them again).
        Continuous aggregates need nothing: they already sum every row of a
        bucket, whichever writer stored it.
        """
        ex = conn.execute
        table = f"{self.schema}.wm_buckets"
        compress_after = None
        if layout == "timescale":
            row = ex("SELECT config->>'compress_after' FROM timescaledb_information.jobs "
                     "WHERE hypertable_schema = %s AND hypertable_name = 'wm_buckets' "
                     "AND proc_name = 'policy_compression'", (self.schema,)).fetchone()
            compress_after = row[0] if row and row[0] else self.compress_after
            ex("SELECT remove_compression_policy(%s::regclass, if_exists => true)", (table,))
            ex("SELECT decompress_chunk(c, if_compressed => true) FROM show_chunks(%s::regclass) c",
               (table,))
        ex(self._q("ALTER TABLE {s}.wm_buckets ADD COLUMN writer_id bigint NOT NULL DEFAULT 0"))
        ex(self._q("ALTER TABLE {s}.wm_buckets DROP CONSTRAINT wm_buckets_pkey"))
        ex(self._q("ALTER TABLE {s}.wm_buckets "
                   "ADD PRIMARY KEY (series_id, width, bucket_start, writer_id)"))
        if layout == "timescale":
            ex(self._q("ALTER TABLE {s}.wm_buckets SET (timescaledb.compress, "
                       "timescaledb.compress_segmentby = 'org_id, series_id', "
                       "timescaledb.compress_orderby = 'width, bucket_start, writer_id')"))
            ex("SELECT add_compression_policy(%s::regclass, compress_after => %s::interval, "
               "if_not_exists => true)", (table, compress_after))
        # SQL consumers see each writer's row; appending a column keeps the view's others
        ex(self._q("""CREATE OR REPLACE VIEW {s}.wm_tenant_buckets WITH (security_barrier) AS
            SELECT b.org_id, s.name, s.labels, s.kind, b.width, b.bucket_start,
                   b.count, b.sum, b.min, b.max, b.sketch, b.writer_id
            FROM {s}.wm_buckets b JOIN {s}.wm_series s
              ON s.series_id = b.series_id AND s.org_id = b.org_id
            WHERE b.org_id IN (SELECT r.org_id FROM {s}.wm_org_roles r
                               WHERE r.role = current_user)"""))
        # events: the digest every writer computes in Python, filled in for old rows
        ex(self._q("ALTER TABLE {s}.wm_alert_events ADD COLUMN digest bytea"))
        old = ex(self._q("SELECT org_id, alert_id, rule, status, severity, labels::text, "
                         "annotations::text, value, ts, wedding_id FROM {s}.wm_alert_events")
                 ).fetchall()
        if old:
            with conn.cursor() as cur:
                cur.executemany(self._q(
                    "UPDATE {s}.wm_alert_events SET digest = %s WHERE org_id = %s "
                    "AND alert_id = %s AND status = %s AND ts = %s"),
                    [(AlertEvent.from_row(r[1:]).digest, r[0], r[1], r[3], r[8]) for r in old])
        ex(self._q("ALTER TABLE {s}.wm_alert_events ALTER COLUMN digest SET NOT NULL"))
        ex(self._q("ALTER TABLE {s}.wm_alert_events DROP CONSTRAINT wm_alert_events_pkey"))
        ex(self._q("ALTER TABLE {s}.wm_alert_events "
                   "ADD PRIMARY KEY (org_id, alert_id, status, ts, digest)"))

    def _migrate_v4(self, conn) -> None:
        """Version 4: partial buckets (stored at ``close()`` before their end, replaced
        by the same writer's fuller row), which series each writer stored, and
        writer leases (a crashed writer's id is adopted by the next engine)."""
        ex = conn.execute
        ex(self._q("ALTER TABLE {s}.wm_buckets ADD COLUMN partial boolean NOT NULL DEFAULT false"))
        ex(self._q("""CREATE TABLE {s}.wm_writer_series (
            org_id text NOT NULL, writer_id bigint NOT NULL, series_id bigint NOT NULL,
            PRIMARY KEY (writer_id, series_id))"""))
        ex(self._q("""CREATE TABLE {s}.wm_writers (
            org_id text NOT NULL, writer_id bigint NOT NULL, host text NOT NULL,
            pid bigint NOT NULL, token text NOT NULL, started double precision NOT NULL,
            heartbeat double precision NOT NULL, state text NOT NULL,
            PRIMARY KEY (org_id, writer_id))"""))

    def _create_timescale_objects(self, conn) -> None:
        ex = conn.execute
        ex("CREATE EXTENSION IF NOT EXISTS timescaledb")
        table = f"{self.schema}.wm_buckets"
        # no default index on bucket_start: chunks already bound time, and the
        # primary key serves every read; a second index halves COPY speed
        ex("SELECT create_hypertable(%s::regclass, by_range('bucket_start', "
           "interval '1 day'), create_default_indexes => false, if_not_exists => true)",
           (table,))
        ex(self._q("ALTER TABLE {s}.wm_buckets SET (timescaledb.compress, "
                   "timescaledb.compress_segmentby = 'org_id, series_id', "
                   "timescaledb.compress_orderby = 'width, bucket_start')"))
        ex("SELECT add_compression_policy(%s::regclass, compress_after => %s::interval, "
           "if_not_exists => true)", (table, self.compress_after))
        ex(self._q("""CREATE MATERIALIZED VIEW IF NOT EXISTS {s}.wm_rollup_hourly
            WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
            SELECT org_id, series_id, time_bucket(interval '1 hour', bucket_start) AS bucket,
                   sum(count)::bigint AS count, sum(sum) AS sum, min(min) AS min,
                   max(max) AS max
            FROM {s}.wm_buckets WHERE width = {w}
            GROUP BY org_id, series_id, time_bucket(interval '1 hour', bucket_start)
            WITH NO DATA""", w=sql.Literal(self.rollup_width)))
        ex(self._q("""CREATE MATERIALIZED VIEW IF NOT EXISTS {s}.wm_rollup_daily
            WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
            SELECT org_id, series_id, time_bucket(interval '1 day', bucket) AS bucket,
                   sum(count)::bigint AS count, sum(sum) AS sum, min(min) AS min,
                   max(max) AS max
            FROM {s}.wm_rollup_hourly
            GROUP BY org_id, series_id, time_bucket(interval '1 day', bucket)
            WITH NO DATA"""))
        for view, start_offset, end_offset, every in (
                ("wm_rollup_hourly", "3 days", "1 hour", "30 minutes"),
                ("wm_rollup_daily", "30 days", "1 day", "1 hour")):
            ex("SELECT add_continuous_aggregate_policy(%s::regclass, start_offset => "
               "%s::interval, end_offset => %s::interval, schedule_interval => %s::interval, "
               "if_not_exists => true)",
               (f"{self.schema}.{view}", start_offset, end_offset, every))
        # retention per resolution as a TimescaleDB job; its config is kept
        # in sync with ``retention`` by set_retention_policy
        ex(self._q("""CREATE OR REPLACE PROCEDURE {s}.wm_retention(job_id int, config jsonb)
            LANGUAGE plpgsql AS $$
            DECLARE w text; keep double precision;
            BEGIN
              FOR w, keep IN SELECT key, value::double precision
                             FROM jsonb_each_text(config->'keep') LOOP
                DELETE FROM {s}.wm_buckets WHERE width = w::double precision
                  AND bucket_start < now() - make_interval(secs => keep);
              END LOOP;
            END $$"""))

    # -- series ids ------------------------------------------------------------
    def _series_ids(self, conn, keys: Iterable[SeriesKey]) -> dict[SeriesKey, int]:
        """Ids of ``keys``, inserting the missing series in their own transaction.

        The ids are cached only once that transaction has committed: a
        connection lost before COMMIT must not leave ids that name no series
        row, or the retry would store buckets no reader can find.
        """
        keys = list(keys)
        missing = list({k for k in keys if k not in self._ids})
        if missing:
            with conn.transaction():
                fresh = self._insert_series(conn, missing)
            self._ids.update(fresh)
        new = {self._ids[k] for k in keys} - self._marked
        if new:
            # which series this writer stores, committed before any of its rows
            ids = sorted(new)
            conn.execute(self._q(
                "INSERT INTO {s}.wm_writer_series SELECT %s, %s, u FROM unnest(%s::bigint[]) u "
                "ON CONFLICT DO NOTHING"), (self.org_id, self.writer_id, ids))
            self._marked.update(new)
        return self._ids

    def _insert_series(self, conn, missing: list[SeriesKey]) -> dict[SeriesKey, int]:
        digests = [key_digest(k) for k in missing]
        conn.execute(self._q(
            "INSERT INTO {s}.wm_series (org_id, digest, name, labels, kind) "
            "SELECT %s, d, n, l, k FROM unnest(%s::bytea[], %s::text[], %s::text[], "
            "%s::text[]) AS u(d, n, l, k) ON CONFLICT (org_id, digest) DO NOTHING"),
            (self.org_id, digests, [k.name for k in missing],
             [labels_text(k.labels) for k in missing], [k.kind for k in missing]))
        rows = conn.execute(self._q(
            "SELECT digest, series_id FROM {s}.wm_series "
            "WHERE org_id = %s AND digest = ANY(%s)"), (self.org_id, digests)).fetchall()
        by_digest = {bytes(d): sid for d, sid in rows}
        return {key: by_digest[d] for key, d in zip(missing, digests)}

    def _lookup(self, conn, key: SeriesKey) -> int | None:
        sid = self._ids.get(key)
        if sid is None:
            row = conn.execute(self._q("SELECT series_id FROM {s}.wm_series "
                                       "WHERE org_id = %s AND digest = %s"),
                               (self.org_id, key_digest(key))).fetchone()
            if row is None:
                return None
            sid = self._ids[key] = row[0]
        return sid

    # -- writing buckets ----------------------------------------------------------
    def write_buckets(self, batch: BucketBatch, *, partial_after: float = math.inf) -> int:
        """Store closed buckets (see :class:`StorageBackend`); rows ending after
        ``partial_after`` are stored as partial (closed early by ``close()``),
        and a later row of this writer for the same bucket replaces them."""
        check_batch(batch)
        if not len(batch):
            return 0
        try:
            return self._run(lambda conn: self._write(conn, batch, partial_after))
        except (psycopg.DataError, psycopg.IntegrityError,
                psycopg.errors.ProgramLimitExceeded) as exc:
            # SQLSTATE classes 22, 23 and 54 (a timestamp out of range, a
            # value too long): the same rows fail every time, however often retried
            raise PermanentWriteError(f"PostgreSQL refused the batch ({exc.sqlstate}): "
                                      f"{str(exc).strip()[:300]}") from exc

    def _write(self, conn, batch: BucketBatch, partial_after: float = math.inf) -> int:
        known = self._series_ids(conn, batch.keys.values())
        sids = backend_series_ids(batch, known)
        if self.layout == "plain":
            self._ensure_partitions(conn, batch.width, batch.start)

        def payload():
            return iter_copy(self._org_bytes, sids, batch, self.writer_id, partial_after)
        try:
            return self._copy(conn, payload, len(batch))
        except psycopg.errors.CheckViolation:
            if self.layout != "plain":
                raise
            # "no partition found for row": another process's retention
            # dropped a partition this one remembered; create it again
            self._partitions.clear()
            self._ensure_partitions(conn, batch.width, batch.start)
            return self._copy(conn, payload, len(batch))

    def _copy(self, conn, payload, rows: int) -> int:
        """COPY the chunks ``payload()`` yields; encoding the next chunk overlaps
        with the server storing the previous one."""
        try:
            with conn.transaction():
                with conn.cursor() as cur:
                    with cur.copy(self._q(f"COPY {{s}}.wm_buckets ({_COLUMNS}) "
                                          "FROM STDIN (FORMAT BINARY)")) as copy:
                        for chunk in payload():
                            copy.write(chunk)
            return rows
        except psycopg.errors.UniqueViolation:
            pass   # some rows are already stored: go through the staging table
        with conn.transaction():
            # named per schema version: a session that made it before an upgrade
            # would lack the new columns
            conn.execute(self._q("CREATE TEMP TABLE IF NOT EXISTS wm_stage4 "
                                 "(LIKE {s}.wm_buckets) ON COMMIT DELETE ROWS"))
            with conn.cursor() as cur:
                with cur.copy(f"COPY wm_stage4 ({_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                    for chunk in payload():
                        copy.write(chunk)
                # a row this writer stored is kept, unless it is partial and the
                # new one holds at least its points (the bucket continued)
                cur.execute(self._q(
                    f"INSERT INTO {{s}}.wm_buckets AS b ({_COLUMNS}) "
                    f"SELECT {_COLUMNS} FROM wm_stage4 "
                    "ON CONFLICT (series_id, width, bucket_start, writer_id) DO UPDATE SET "
                    "count = excluded.count, sum = excluded.sum, min = excluded.min, "
                    "max = excluded.max, sketch = excluded.sketch, partial = excluded.partial "
                    "WHERE b.partial AND excluded.count >= b.count"))
                return cur.rowcount

    def _ensure_partitions(self, conn, width: np.ndarray, start: np.ndarray) -> None:
        wanted = _partition_keys(width, start)
        for wms, period in sorted(wanted - self._partitions):
            w = wms / 1000.0
            sp = _partition_span(w)
            name = f"wm_buckets_w{wms}_p{period}"
            lo, hi = period * sp, (period + 1) * sp
            try:
                with conn.transaction():
                    conn.execute(sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {s}.{p} PARTITION OF {s}.wm_buckets "
                        "FOR VALUES FROM ({w}, to_timestamp({lo})) TO ({w}, to_timestamp({hi}))"
                    ).format(s=self._s, p=sql.Identifier(name), w=sql.Literal(w),
                             lo=sql.Literal(lo), hi=sql.Literal(hi)))
            except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
                pass   # another process created it at the same moment
            self._partitions.add((wms, period))

    # -- reading buckets -------------------------------------------------------------
    def read_buckets(self, key: SeriesKey, width: float, start: float, end: float, *,
                     exclude_writer: int | None = None,
                     only_writer: int | None = None) -> BucketBatch:
        def read(conn):
            sid = self._lookup(conn, key)
            if sid is None:
                return BucketBatch.empty()
            q = ("SELECT extract(epoch FROM bucket_start)::float8, count, sum, min, max, sketch "
                 "FROM {s}.wm_buckets WHERE org_id = %s AND series_id = %s AND width = %s "
                 "AND bucket_start >= to_timestamp(%s) AND bucket_start < to_timestamp(%s) ")
            args: tuple = (self.org_id, sid, float(width), float(start), float(end))
            if exclude_writer is not None:
                q += "AND writer_id <> %s "
                args += (int(exclude_writer),)
            if only_writer is not None:
                q += "AND writer_id = %s "
                args += (int(only_writer),)
            rows = conn.execute(self._q(q + "ORDER BY bucket_start, writer_id"), args,
                                binary=True).fetchall()
            # rows of the same start from several writers become one
            return batch_from_rows(key, sid, float(width), rows)
        return self._run(read)

    # -- restart: this writer's rows, its lease -------------------------------------------
    def read_writer_rows(self, writer_id: int, width: float, start: float, end: float,
                         since: dict | None = None) -> dict:
        """Rows one writer stored at ``width`` with ``start <= bucket start < end``,
        for every series it stored (or those of ``since``, each from its own
        lower bound), in one query: ``{SeriesKey: [(start, sketch, partial)]}``."""
        def read(conn):
            if since is None:
                rows = conn.execute(self._q(
                    "SELECT b.series_id, extract(epoch FROM b.bucket_start)::float8, b.sketch, "
                    "b.partial FROM {s}.wm_writer_series w JOIN {s}.wm_buckets b "
                    "ON b.series_id = w.series_id WHERE w.org_id = %s AND w.writer_id = %s "
                    "AND b.org_id = %s AND b.writer_id = %s AND b.width = %s "
                    "AND b.bucket_start >= to_timestamp(%s) AND b.bucket_start < to_timestamp(%s) "
                    "ORDER BY b.series_id, b.bucket_start"),
                    (self.org_id, int(writer_id), self.org_id, int(writer_id), float(width),
                     float(start), float(end)), binary=True).fetchall()
            else:
                ids = {self._lookup(conn, k): max(float(start), float(v))
                       for k, v in since.items()}
                ids.pop(None, None)
                if not ids:
                    return [], {}
                rows = conn.execute(self._q(
                    "SELECT b.series_id, extract(epoch FROM b.bucket_start)::float8, b.sketch, "
                    "b.partial FROM unnest(%s::bigint[], %s::float8[]) AS u(sid, since) "
                    "JOIN {s}.wm_buckets b ON b.series_id = u.sid "
                    "AND b.bucket_start >= to_timestamp(u.since) "
                    "WHERE b.org_id = %s AND b.writer_id = %s AND b.width = %s "
                    "AND b.bucket_start < to_timestamp(%s) ORDER BY b.series_id, b.bucket_start"),
                    (list(ids), list(ids.values()), self.org_id, int(writer_id), float(width),
                     float(end)), binary=True).fetchall()
            sids = sorted({r[0] for r in rows})
            keys = {}
            if sids:
                for sid, n, lab, kind in conn.execute(self._q(
                        "SELECT series_id, name, labels, kind FROM {s}.wm_series "
                        "WHERE series_id = ANY(%s)"), (sids,)).fetchall():
                    keys[sid] = key = SeriesKey(n, labels_from_text(lab), kind)
                    self._ids.setdefault(key, sid)
            return rows, keys
        rows, keys = self._run(read)
        out: dict = {}
        for sid, st, sketch, partial in rows:
            out.setdefault(keys[sid], []).append((float(st), bytes(sketch), bool(partial)))
        return out

    def writer_series(self, writer_id: int) -> list[SeriesKey]:
        """Keys of the series ``writer_id`` has stored."""
        rows = self._run(lambda c: c.execute(self._q(
            "SELECT s.series_id, s.name, s.labels, s.kind FROM {s}.wm_writer_series w "
            "JOIN {s}.wm_series s ON s.series_id = w.series_id WHERE w.org_id = %s "
            "AND w.writer_id = %s ORDER BY s.series_id"), (self.org_id, int(writer_id))
        ).fetchall())
        out = []
        for sid, n, lab, kind in rows:
            out.append(key := SeriesKey(n, labels_from_text(lab), kind))
            self._ids.setdefault(key, sid)
        return out

    def read_leases(self) -> list[Lease]:
        """Every writer lease of this org."""
        rows = self._run(lambda c: c.execute(self._q(
            "SELECT writer_id, host, pid, token, started, heartbeat, state FROM {s}.wm_writers "
            "WHERE org_id = %s ORDER BY heartbeat DESC"), (self.org_id,)).fetchall())
        return [Lease(*r) for r in rows]

    def hold_lease(self, writer_id: int, host: str, pid: int, token: str, now: float, *,
                   adopt: Lease | None = None) -> bool:
        """Take the lease of ``writer_id`` for this process.  ``adopt``: only if it
        is still that dead lease (no other engine took it first); otherwise the
        lease is written as this process' own."""
        def run(c):
            if adopt is not None:
                return c.execute(self._q(
                    "UPDATE {s}.wm_writers SET host = %s, pid = %s, token = %s, started = %s, "
                    "heartbeat = %s, state = 'live' WHERE org_id = %s AND writer_id = %s "
                    "AND token = %s AND heartbeat = %s AND state = 'live'"),
                    (host, pid, token, now, now, self.org_id, int(writer_id), adopt.token,
                     adopt.heartbeat)).rowcount == 1
            c.execute(self._q(
                "INSERT INTO {s}.wm_writers VALUES (%s, %s, %s, %s, %s, %s, %s, 'live') "
                "ON CONFLICT (org_id, writer_id) DO UPDATE SET host = excluded.host, "
                "pid = excluded.pid, token = excluded.token, started = excluded.started, "
                "heartbeat = excluded.heartbeat, state = 'live'"),
                (self.org_id, int(writer_id), host, pid, token, now, now))
            return True
        return self._run(run)

    def renew_lease(self, writer_id: int, token: str, now: float, *,
                    state: str = "live") -> bool:
        """Heartbeat (or, with ``state="closed"``, end) this process' lease;
        ``False`` when another engine holds it now."""
        return self._run(lambda c: c.execute(self._q(
            "UPDATE {s}.wm_writers SET heartbeat = %s, state = %s WHERE org_id = %s "
            "AND writer_id = %s AND token = %s"),
            (now, state, self.org_id, int(writer_id), token)).rowcount == 1)

    def read_merged(self, name: str, width: float, start: float, end: float,
                    labels: dict | None = None) -> WindowStats:
        def read(conn):
            series = conn.execute(self._q(
                "SELECT series_id, labels FROM {s}.wm_series WHERE org_id = %s AND name = %s"),
                (self.org_id, name)).fetchall()
            ids = [sid for sid, lab in series if labels_match(labels_from_text(lab), labels)]
            if not ids:
                return merge_rows([], [], [], [], [], start, end)
            rows = conn.execute(self._q(
                "SELECT count, sum, min, max, sketch FROM {s}.wm_buckets "
                "WHERE org_id = %s AND series_id = ANY(%s) AND width = %s "
                "AND bucket_start >= to_timestamp(%s) AND bucket_start < to_timestamp(%s)"),
                (self.org_id, ids, float(width), float(start), float(end)),
                binary=True).fetchall()
            if not rows:
                return merge_rows([], [], [], [], [], start, end)
            count, total, lo, hi, sketches = zip(*rows)
            return merge_rows(count, total, lo, hi, sketches, start, end)
        return self._run(read)

    def read_rollup(self, target, period: str, start: float, end: float,
                    labels: dict | None = None) -> Columns:
        """Hourly or daily roll-ups over ``[start, end)`` of one series or a whole fleet.

        ``target`` is a :class:`~wedmetrics.SeriesKey`, or a metric name: then
        every stored series of that name whose labels include ``labels`` is
        merged, whichever process or host wrote it (the fleet view).  Count,
        sum, min and max come from the ``rollup_width`` buckets by SQL: the
        continuous aggregates on the timescale layout, a ``date_bin`` GROUP BY
        on the plain one.  ``p50``/``p95``/``p99`` merge the same buckets'
        stored sketches per period, so they are within alpha of the
        percentiles of every point (continuous aggregates cannot merge
        sketches).
        """
        if period not in ("hour", "day"):
            raise ValueError(f"period must be 'hour' or 'day', got {period!r}")
        if isinstance(target, SeriesKey) and labels:
            raise ValueError("labels select series of a metric name; a SeriesKey is one series")

        def read(conn):
            ids = self._rollup_ids(conn, target, labels)
            rows, sketches = [], []
            if ids:
                rows = conn.execute(*self._rollup_query(ids, period, start, end)).fetchall()
                sketches = conn.execute(self._q(
                    "SELECT extract(epoch FROM date_bin(%s::interval, bucket_start, "
                    "'2000-01-01'))::float8 AS b, sketch FROM {s}.wm_buckets "
                    "WHERE org_id = %s AND series_id = ANY(%s) AND width = %s "
                    "AND bucket_start >= to_timestamp(%s) AND bucket_start < to_timestamp(%s) "
                    "ORDER BY b"),
                    (f"1 {period}", self.org_id, ids, self.rollup_width, float(start),
                     float(end)), binary=True).fetchall()
            return _rollup_columns(rows, sketches)
        return self._run(read)

    def _rollup_ids(self, conn, target, labels: dict | None) -> list[int]:
        if isinstance(target, SeriesKey):
            sid = self._lookup(conn, target)
            return [] if sid is None else [sid]
        if not isinstance(target, str):
            raise TypeError(f"target must be a SeriesKey or a metric name, got {target!r}")
        series = conn.execute(self._q(
            "SELECT series_id, labels FROM {s}.wm_series WHERE org_id = %s AND name = %s"),
            (self.org_id, target)).fetchall()
        return [sid for sid, lab in series if labels_match(labels_from_text(lab), labels)]

    def _rollup_query(self, ids: list[int], period: str, start: float, end: float) -> tuple:
        if self.layout == "timescale":
            # the views are per series; summing their rows per bucket across
            # series (hosts, label sets) keeps count/sum/min/max exact
            view = "wm_rollup_hourly" if period == "hour" else "wm_rollup_daily"
            q = sql.SQL("SELECT extract(epoch FROM bucket)::float8, sum(count)::bigint, "
                        "sum(sum), min(min), max(max) FROM {s}.{v} "
                        "WHERE org_id = %s AND series_id = ANY(%s) "
                        "AND bucket >= to_timestamp(%s) AND bucket < to_timestamp(%s) "
                        "GROUP BY bucket ORDER BY bucket").format(s=self._s,
                                                                  v=sql.Identifier(view))
            return q, (self.org_id, ids, float(start), float(end))
        q = self._q(
            "SELECT extract(epoch FROM b)::float8, sum(count)::bigint, sum(sum), "
            "min(min), max(max) FROM (SELECT date_bin(%s::interval, bucket_start, "
            "'2000-01-01') AS b, count, sum, min, max FROM {s}.wm_buckets "
            "WHERE org_id = %s AND series_id = ANY(%s) AND width = %s) r "
            "WHERE b >= to_timestamp(%s) AND b < to_timestamp(%s) "
            "GROUP BY b ORDER BY b")
        return q, (f"1 {period}", self.org_id, ids, self.rollup_width, float(start), float(end))

    def series_keys(self, name: str | None = None) -> list[SeriesKey]:
        q = "SELECT name, labels, kind FROM {s}.wm_series WHERE org_id = %s"
        args: tuple = (self.org_id,)
        if name is not None:
            q += " AND name = %s"
            args += (name,)
        rows = self._run(lambda c: c.execute(self._q(q + " ORDER BY series_id"), args)
                         .fetchall())
        return [SeriesKey(n, labels_from_text(lab), kind) for n, lab, kind in rows]

    # -- alerts -------------------------------------------------------------------------
    def write_alert_events(self, events: Iterable[AlertEvent]) -> int:
        events = list(events)
        for e in events:
            e.check()
        if not events:
            return 0

        def write(conn):
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(self._q(
                    f"INSERT INTO {{s}}.wm_alert_events ({_EVENT_COLUMNS}) VALUES "
                    "(%s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s, %s) "
                    "ON CONFLICT DO NOTHING"),
                    [(self.org_id, *e.to_row(), e.digest) for e in events], returning=False)
                return cur.rowcount
        return self._run(write)

    def read_alert_events(self, start: float, end: float,
                          rule: str | None = None) -> list[AlertEvent]:
        q = ("SELECT alert_id, rule, status, severity, labels::text, annotations::text, value, "
             "ts, wedding_id FROM {s}.wm_alert_events WHERE org_id = %s AND ts >= %s "
             "AND ts < %s")
        args: tuple = (self.org_id, float(start), float(end))
        if rule is not None:
            q += " AND rule = %s"
            args += (rule,)
        rows = self._run(lambda c: c.execute(self._q(q + " ORDER BY ts, alert_id, status, digest"),
                                             args).fetchall())
        return [AlertEvent.from_row(r) for r in rows]

    def write_rule_state(self, rule: str, state: dict, ts: float) -> None:
        text = state_json(rule, state)
        self._run(lambda c: c.execute(self._q(
            "INSERT INTO {s}.wm_rule_state VALUES (%s, %s, %s::jsonb, %s) "
            "ON CONFLICT (org_id, rule) DO UPDATE SET state = excluded.state, "
            "updated_at = excluded.updated_at"), (self.org_id, rule, text, float(ts))))

    def read_rule_state(self, rule: str) -> RuleState | None:
        row = self._run(lambda c: c.execute(self._q(
            "SELECT state::text, updated_at FROM {s}.wm_rule_state "
            "WHERE org_id = %s AND rule = %s"), (self.org_id, rule)).fetchone())
        return None if row is None else RuleState(rule, json.loads(row[0]), row[1])

    def read_all_rule_states(self) -> dict[str, RuleState]:
        rows = self._run(lambda c: c.execute(self._q(
            "SELECT rule, state::text, updated_at FROM {s}.wm_rule_state WHERE org_id = %s"),
            (self.org_id,)).fetchall())
        return {r: RuleState(r, json.loads(s), ts) for r, s, ts in rows}

    # -- silences ---------------------------------------------------------------------------
    # Made on first use, outside the numbered schema versions: the table is
    # independent of every other one.
    def _silence_table(self, conn) -> None:
        if not getattr(self, "_has_silences", False):
            conn.execute(self._q("CREATE TABLE IF NOT EXISTS {s}.wm_silences (org_id text NOT NULL, "
                                 "id text NOT NULL, record jsonb NOT NULL, "
                                 "updated_at double precision NOT NULL, PRIMARY KEY (org_id, id))"))
            self._has_silences = True

    def write_silence(self, silence_id: str, record: dict, ts: float) -> None:
        text = silence_json(silence_id, record)

        def run(c):
            self._silence_table(c)
            c.execute(self._q("INSERT INTO {s}.wm_silences VALUES (%s, %s, %s::jsonb, %s) "
                              "ON CONFLICT (org_id, id) DO UPDATE SET record = excluded.record, "
                              "updated_at = excluded.updated_at"),
                      (self.org_id, silence_id, text, float(ts)))
        self._run(run)

    def read_silences(self) -> dict[str, dict]:
        def run(c):
            self._silence_table(c)
            return c.execute(self._q("SELECT id, record::text FROM {s}.wm_silences WHERE org_id = %s"),
                             (self.org_id,)).fetchall()
        return {i: json.loads(r) for i, r in self._run(run)}

    def delete_silences(self, silence_ids) -> int:
        ids = list(silence_ids)

        def run(c):
            self._silence_table(c)
            return c.execute(self._q("DELETE FROM {s}.wm_silences WHERE org_id = %s AND id = ANY(%s)"),
                             (self.org_id, ids)).rowcount
        return self._run(run)

    # -- tenancy --------------------------------------------------------------------------
    def grant_tenant_role(self, role: str) -> None:
        """Let database role ``role`` read this org's rows through the
        ``wm_tenant_*`` security_barrier views (and nothing else).

        The role must exist; it gets ``USAGE`` on the schema and ``SELECT``
        on the views only, never on the base tables.
        """
        check_text("role", role)

        def grant(conn):
            with conn.transaction():
                conn.execute(self._q("INSERT INTO {s}.wm_org_roles VALUES (%s, %s) "
                                     "ON CONFLICT DO NOTHING"), (role, self.org_id))
                r = sql.Identifier(role)
                conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {s} TO {r}").format(s=self._s, r=r))
                conn.execute(sql.SQL("GRANT SELECT ON {s}.wm_tenant_buckets, "
                                     "{s}.wm_tenant_alert_events TO {r}").format(s=self._s, r=r))
        self._run(grant)

    # -- retention ------------------------------------------------------------------------
    def apply_retention(self, now: float, retention: dict | None = None, *,
                        all_orgs: bool = False) -> int:
        """Remove rows with ``bucket_start < now - keep[width]``; returns rows removed.

        By default only this org's rows are deleted.  ``all_orgs=True`` is
        the operator's clean-up for the whole schema: on the plain layout it
        first drops every partition that ends before the cutoff (no row by
        row delete), then deletes what is left before the cutoff.
        """
        keep = parse_retention(retention) if retention is not None else self.retention

        def apply(conn):
            removed = 0
            with conn.transaction():
                for width, span in sorted(keep.items()):
                    cutoff = float(now) - span
                    if all_orgs and self.layout == "plain":
                        removed += self._drop_partitions(conn, width, cutoff)
                    q = ("DELETE FROM {s}.wm_buckets WHERE width = %s "
                         "AND bucket_start < to_timestamp(%s)")
                    args: tuple = (width, cutoff)
                    if not all_orgs:
                        q += " AND org_id = %s"
                        args += (self.org_id,)
                    removed += conn.execute(self._q(q), args).rowcount
            return removed
        return self._run(apply)

    def _drop_partitions(self, conn, width: float, cutoff: float) -> int:
        names = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass", (f"{self.schema}.wm_buckets",)).fetchall()
        span = _partition_span(width)
        removed = 0
        for (name,) in names:
            m = _PART_NAME.match(name)
            if not m or int(m.group(1)) != round(width * 1000):
                continue
            if (int(m.group(2)) + 1) * span <= cutoff:
                ident = sql.SQL("{s}.{p}").format(s=self._s, p=sql.Identifier(name))
                removed += conn.execute(sql.SQL("SELECT count(*) FROM {t}").format(t=ident)
                                        ).fetchone()[0]
                conn.execute(sql.SQL("DROP TABLE {t}").format(t=ident))
                self._partitions.discard((int(m.group(1)), int(m.group(2))))
        return removed

    def set_retention_policy(self, retention: dict | None = None,
                             schedule: str = "1 hour") -> int | None:
        """Timescale layout: (re)register the per-resolution retention job that
        deletes old rows of every org inside the database; returns its job id.
        Plain layout: ``None`` (call :meth:`apply_retention` periodically)."""
        if self.layout != "timescale":
            return None
        keep = parse_retention(retention) if retention is not None else self.retention
        config = json.dumps({"keep": {repr(w): k for w, k in keep.items()}})
        proc = f"{self.schema}.wm_retention"

        def register(conn):
            with conn.transaction():
                for (job,) in conn.execute("SELECT job_id FROM timescaledb_information.jobs "
                                           "WHERE proc_schema = %s AND proc_name = "
                                           "'wm_retention'", (self.schema,)).fetchall():
                    conn.execute("SELECT delete_job(%s)", (job,))
                return conn.execute("SELECT add_job(%s::regproc, %s::interval, "
                                    "config => %s::jsonb)", (proc, schedule, config)
                                    ).fetchone()[0]
        return self._run(register)

    # -- introspection and lifecycle ----------------------------------------------------------
    def row_count(self) -> int:
        return self._run(lambda c: c.execute(self._q(
            "SELECT count(*) FROM {s}.wm_buckets WHERE org_id = %s"), (self.org_id,)
        ).fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> "TimescaleBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<TimescaleBackend schema={self.schema!r} layout={self.layout} "
                f"org={self.org_id!r} writer={self.writer_id}>")


_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_TRAILER = struct.pack(">h", -1)


def encode_copy(org: bytes, series_ids: np.ndarray, batch: BucketBatch,
                writer_id: int, partial_after: float = math.inf) -> bytes:
    """The whole PostgreSQL binary COPY payload of ``batch`` as one bytes object."""
    return b"".join(iter_copy(org, series_ids, batch, writer_id, partial_after))


_COPY_CHUNK_ROWS = 20_000


def iter_copy(org: bytes, series_ids: np.ndarray, batch: BucketBatch, writer_id: int,
              partial_after: float = math.inf, chunk_rows: int = _COPY_CHUNK_ROWS):
    """PostgreSQL binary COPY payload of ``batch`` (columns as in ``_COLUMNS``), in chunks.

    The fixed-width part of every row is built at once as a big-endian numpy
    record array; only the variable-length sketch is interleaved per row.
    Format: https://www.postgresql.org/docs/15/sql-copy.html (Binary Format).
    """
    n = len(batch)
    dt = np.dtype([("nf", ">i2"), ("l0", ">i4"), ("org", f"S{len(org)}"),
                   ("l1", ">i4"), ("sid", ">i8"), ("l2", ">i4"), ("width", ">f8"),
                   ("l3", ">i4"), ("ts", ">i8"), ("lw", ">i4"), ("writer", ">i8"),
                   ("l4", ">i4"), ("count", ">i8"),
                   ("l5", ">i4"), ("sum", ">f8"), ("l6", ">i4"), ("min", ">f8"),
                   ("l7", ">i4"), ("max", ">f8"), ("lp", ">i4"), ("partial", "u1"),
                   ("l8", ">i4")])
    sketches = batch.sketch
    yield _HEADER
    size = dt.itemsize
    for lo in range(0, n, chunk_rows):
        hi = min(n, lo + chunk_rows)
        rec = np.empty(hi - lo, dtype=dt)
        rec["nf"] = 11
        rec["l0"] = len(org)
        rec["org"] = org
        for name in ("l1", "l2", "l3", "lw", "l4", "l5", "l6", "l7"):
            rec[name] = 8
        rec["writer"] = writer_id
        rec["sid"] = series_ids[lo:hi]
        rec["width"] = batch.width[lo:hi]
        rec["ts"] = np.round((batch.start[lo:hi] - _PG_EPOCH) * 1e6).astype(np.int64)
        rec["count"] = batch.count[lo:hi]
        rec["sum"] = batch.sum[lo:hi]
        rec["min"] = batch.min[lo:hi]
        rec["max"] = batch.max[lo:hi]
        rec["lp"] = 1
        rec["partial"] = (batch.start[lo:hi] + batch.width[lo:hi]) > partial_after
        part = sketches[lo:hi]
        rec["l8"] = list(map(len, part))
        fixed = rec.tobytes()
        parts: list = [None] * (2 * (hi - lo))
        parts[0::2] = [fixed[i:i + size] for i in range(0, len(fixed), size)]
        parts[1::2] = part
        yield b"".join(parts)
    yield _TRAILER


def _rollup_columns(rows: list, sketches: list) -> Columns:
    """Roll-up rows ``(start, count, sum, min, max)`` plus percentiles merged from
    ``(period start, sketch bytes)`` rows sorted by period start."""
    cols = list(zip(*rows)) if rows else [(), (), (), (), ()]
    starts = np.array(cols[0], dtype=np.float64)
    merged: dict[float, Sketch] = {}
    for b, blob in sketches:
        sk = Sketch.from_bytes(blob)
        if b in merged:
            merged[b].merge(sk)
        else:
            merged[b] = sk
    qs = np.full((len(starts), 3), np.nan)
    for i, b in enumerate(starts.tolist()):
        sk = merged.get(b)
        if sk is not None and sk.count:
            qs[i] = sk.quantiles((0.5, 0.95, 0.99))
    return Columns(start=starts, count=np.array(cols[1], dtype=np.int64),
                   sum=np.array(cols[2], dtype=np.float64),
                   min=np.array(cols[3], dtype=np.float64),
                   max=np.array(cols[4], dtype=np.float64),
                   p50=qs[:, 0], p95=qs[:, 1], p99=qs[:, 2])
