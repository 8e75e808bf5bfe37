"""PostgreSQL-only behaviour: outage recovery, tenant views, layouts, migrations, roll-ups."""
from __future__ import annotations

import subprocess
import time
import uuid

import numpy as np
import pytest

import wedmetrics as wm
from wedmetrics.buckets import SeriesKey
from wedmetrics.storage import AlertEvent

from .conftest import PG_DSN, drop_schema, require_pg, require_timescale
from .helpers import minute_batch

T0 = 1_699_999_200.0          # a whole hour
KEY = SeriesKey.of("api.latency", {"route": "/photos"})

pytestmark = pytest.mark.postgres


def backend(schema, org="org-a", layout="plain", **kw):
    from wedmetrics.storage import TimescaleBackend

    return TimescaleBackend(PG_DSN, org, schema=schema, layout=layout, **kw)


def connect():
    import psycopg

    return psycopg.connect(PG_DSN, autocommit=True)


LAYOUTS = ["plain", "timescale"]


@pytest.fixture(params=LAYOUTS)
def layout(request):
    if request.param == "timescale":
        require_timescale()
    else:
        require_pg()
    return request.param


def pg_ctl(action: str) -> None:
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", action],
                   check=True, capture_output=True, timeout=120)


def wait_for_server(deadline_s: float = 60.0) -> None:
    import psycopg

    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with psycopg.connect(PG_DSN, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_outage_while_flushing_loses_and_duplicates_nothing(pg_schema):
    clock = wm.ManualClock(T0)
    engine = wm.MetricsEngine(clock=clock, storage=backend(pg_schema, connect_timeout=2),
                              flush_interval=0.05,
                              flush_options={"backoff": 0.05, "max_backoff": 0.2})
    h = engine.series("api.latency", labels={"route": "/photos"})
    rng = np.random.default_rng(11)
    recorded = 0

    def record(minutes):
        nonlocal recorded
        for _ in range(minutes):
            t = clock.now()
            vals = rng.lognormal(-2, 1, size=30)
            engine.record_many(np.full(30, h.id), t + np.arange(30) * 2.0, vals)
            recorded += 30
            clock.advance(60.0)
            engine.advance()
            time.sleep(0.01)     # let the flusher run between minutes

    record(20)
    try:
        pg_ctl("stop")
        record(20)               # recording goes on while the database is down
        time.sleep(0.3)
        assert engine.stats()["storage"]["last_error"] is not None
    finally:
        pg_ctl("start")
        wait_for_server()
    record(20)
    engine.close(timeout=60)
    st = engine.stats()["storage"]
    assert st["retried"] >= 1 and st["buffered"] == 0
    assert sum(st["dropped"].values()) == 0
    reader = backend(pg_schema)
    for width in (1.0, 60.0, 300.0, 3600.0):
        assert reader.read_merged("api.latency", width, 0, 2e9).count == recorded, width
    rows = reader.read_buckets(KEY, 60.0, 0, 2e9)
    assert len(rows) == 60 and len(np.unique(rows.start)) == 60
    assert st["written"] == reader.row_count()
    reader.close()


def test_layout_is_detected_and_recorded(pg_schema, layout):
    b = backend(pg_schema, layout=layout)
    assert b.layout == layout
    with connect() as conn:
        rows = conn.execute(f'SELECT version, layout FROM "{pg_schema}".wm_schema '
                            "ORDER BY version").fetchall()
        assert rows == [(1, layout), (2, layout), (3, layout), (4, layout)]
        kind = conn.execute("SELECT c.relkind FROM pg_class c JOIN pg_namespace n "
                            "ON n.oid = c.relnamespace WHERE n.nspname = %s "
                            "AND c.relname = 'wm_buckets'", (pg_schema,)).fetchone()[0]
        assert kind == ("p" if layout == "plain" else "r")
    b.close()
    # reopening with another preference keeps what the schema records
    again = backend(pg_schema, layout="auto")
    assert again.layout == layout
    again.close()


def test_auto_layout_takes_timescale_only_where_it_can_run(pg_schema, caplog):
    """The server decides: a timescaledb whose files are installed but which is not
    preloaded cannot run (CREATE EXTENSION fails), so auto must not pick it."""
    from wedmetrics.storage.timescale import timescale_usable

    with connect() as conn:
        usable, why = timescale_usable(conn)
        available = conn.execute("SELECT 1 FROM pg_available_extensions "
                                 "WHERE name = 'timescaledb'").fetchone() is not None
        preloaded = "timescaledb" in conn.execute("SHOW shared_preload_libraries").fetchone()[0]
        created = conn.execute("SELECT 1 FROM pg_extension "
                               "WHERE extname = 'timescaledb'").fetchone() is not None
    assert usable == (created or (available and preloaded))
    with caplog.at_level("WARNING", logger="wedmetrics.storage"):
        auto = backend(pg_schema, layout="auto")
    assert auto.layout == ("timescale" if usable else "plain")
    auto.close()
    if usable:
        return
    # installed but not loadable: auto says so; an explicit request names the cause
    assert ("shared_preload_libraries" in caplog.text) == available
    with pytest.raises(RuntimeError, match="layout='timescale' but the timescaledb extension"):
        backend(f"{pg_schema}_x", layout="timescale")


def test_newer_schema_is_refused(pg_schema):
    backend(pg_schema).close()
    with connect() as conn:
        conn.execute(f'INSERT INTO "{pg_schema}".wm_schema (version, layout) '
                     "VALUES (99, 'plain')")
    with pytest.raises(RuntimeError, match="version 99, newer"):
        backend(pg_schema)


def test_copy_fast_path_and_staged_retry(pg_schema, layout):
    b = backend(pg_schema, layout=layout)
    batch, _ = minute_batch(KEY, T0, 3000, seed=1)
    assert b.write_buckets(batch.take(slice(0, 1000))) == 1000
    assert b.write_buckets(batch) == 2000          # staged: 1000 already there
    assert b.row_count() == 3000
    b.close()


def test_plain_partitions_are_created_and_dropped(pg_schema):
    b = backend(pg_schema, org="org-a", retention={"1m": "1d"})
    other = backend(pg_schema, org="org-b")
    day = 86400.0
    start = np.floor(T0 / day) * day
    b.write_buckets(minute_batch(KEY, start, 3 * 1440, seed=2)[0])      # 3 days
    other.write_buckets(minute_batch(KEY, start, 1440, seed=3)[0])
    with connect() as conn:
        parts = conn.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = %s::regclass",
                             (f"{pg_schema}.wm_buckets",)).fetchone()[0]
    assert parts == 3
    now = start + 3 * day
    # the org's own retention deletes its rows only
    assert b.apply_retention(now) == 2 * 1440
    assert other.row_count() == 1440
    # the operator's clean-up drops whole partitions of every org
    assert b.apply_retention(now, all_orgs=True) == 1440
    with connect() as conn:
        parts = conn.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = %s::regclass",
                             (f"{pg_schema}.wm_buckets",)).fetchone()[0]
    assert parts == 1 and other.row_count() == 0 and b.row_count() == 1440
    # a dropped partition is created again when old data arrives late
    assert b.write_buckets(minute_batch(KEY, start, 10, seed=4)[0]) == 10
    b.close()
    other.close()


def test_tenant_views_show_each_role_its_own_org(pg_schema, layout):
    a, other = backend(pg_schema, "org-a", layout), backend(pg_schema, "org-b", layout)
    a.write_buckets(minute_batch(KEY, T0, 4, seed=5)[0])
    other.write_buckets(minute_batch(KEY, T0, 6, seed=6)[0])
    a.write_alert_events([AlertEvent("al-1", "r", "firing", "page", T0)])
    other.write_alert_events([AlertEvent("al-2", "r", "firing", "page", T0)])
    roles = [f"wm_role_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    with connect() as conn:
        for r in roles:
            conn.execute(f'CREATE ROLE "{r}"')
    try:
        a.grant_tenant_role(roles[0])
        other.grant_tenant_role(roles[1])
        with connect() as conn:
            for role, org, n, alert in ((roles[0], "org-a", 4, "al-1"),
                                        (roles[1], "org-b", 6, "al-2")):
                conn.execute(f'SET ROLE "{role}"')
                got = conn.execute(f'SELECT DISTINCT org_id, count(*) OVER () FROM '
                                   f'"{pg_schema}".wm_tenant_buckets').fetchall()
                assert got == [(org, n)]
                assert conn.execute(f'SELECT alert_id FROM "{pg_schema}".wm_tenant_alert_events'
                                    ).fetchall() == [(alert,)]
                with pytest.raises(Exception, match="permission denied"):
                    conn.execute(f'SELECT * FROM "{pg_schema}".wm_buckets')
                conn.execute("RESET ROLE")
    finally:
        a.close()
        other.close()
        drop_schema(pg_schema)
        with connect() as conn:
            for r in roles:
                conn.execute(f'DROP ROLE IF EXISTS "{r}"')


def test_rollups_hourly_and_daily(pg_schema, layout):
    b = backend(pg_schema, layout=layout)
    batch, values = minute_batch(KEY, T0, 3 * 60, seed=7)        # three hours of minutes
    b.write_buckets(batch)
    if layout == "timescale":
        # with materialized_only = false the views are right before a refresh
        # too; refreshing checks the materialized path
        for view in ("wm_rollup_hourly", "wm_rollup_daily"):
            refresh(f"{pg_schema}.{view}")
    hourly = b.read_rollup(KEY, "hour", T0, T0 + 3 * 3600)
    np.testing.assert_array_equal(hourly.start, T0 + 3600 * np.arange(3))
    np.testing.assert_array_equal(hourly.count, [300, 300, 300])
    per_hour = values.reshape(3, 60 * 5)
    np.testing.assert_allclose(hourly.sum, per_hour.sum(axis=1), rtol=1e-9)
    np.testing.assert_array_equal(hourly.max, per_hour.max(axis=1))
    daily = b.read_rollup(KEY, "day", T0 - 86400, T0 + 86400)
    assert int(daily.count.sum()) == 900
    with pytest.raises(ValueError, match="period"):
        b.read_rollup(KEY, "week", 0, 1)
    b.close()


def refresh(view: str) -> None:
    """Refresh a continuous aggregate; its policy job may be refreshing it right now."""
    import psycopg

    for attempt in range(20):
        try:
            with connect() as conn:
                conn.execute(f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)")
            return
        except psycopg.errors.LockNotAvailable:
            time.sleep(0.2)
    raise AssertionError(f"{view} stayed locked by a concurrent refresh")


def test_timescale_hypertable_compression_and_exactly_once(pg_schema):
    require_timescale()
    b = backend(pg_schema, layout="timescale")
    batch, values = minute_batch(KEY, T0, 3 * 1440, seed=8)
    b.write_buckets(batch)
    with connect() as conn:
        ht = conn.execute("SELECT compression_enabled FROM timescaledb_information.hypertables "
                          "WHERE hypertable_schema = %s", (pg_schema,)).fetchone()
        assert ht == (True,)
        seg = conn.execute("SELECT attname FROM timescaledb_information.compression_settings "
                           "WHERE hypertable_schema = %s AND segmentby_column_index IS NOT NULL "
                           "ORDER BY segmentby_column_index", (pg_schema,)).fetchall()
        assert seg == [("org_id",), ("series_id",)]
        # the compression policy may already be at work on these old chunks
        chunks = conn.execute("SELECT compress_chunk(c, if_not_compressed => true) "
                              "FROM show_chunks(%s::regclass) c",
                              (f"{pg_schema}.wm_buckets",)).fetchall()
        assert len(chunks) >= 3
        compressed = conn.execute(
            "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_schema = %s "
            "AND is_compressed", (pg_schema,)).fetchone()[0]
        assert compressed == len(chunks)
    # reads and retried writes still work on compressed chunks
    assert b.write_buckets(batch) == 0
    assert b.row_count() == 3 * 1440
    s = b.read_merged("api.latency", 60.0, 0, 2e9)
    exact = np.sort(values.ravel())[int(np.floor(0.95 * (values.size - 1)))]
    assert s.count == values.size and abs(s.p95 - exact) <= 0.01 * exact * 1.0001
    b.close()


def test_timescale_retention_job_per_resolution(pg_schema):
    require_timescale()
    b = backend(pg_schema, layout="timescale", retention={"1m": "2h", "5m": "30d"})
    now = time.time()
    start = np.floor(now / 300) * 300 - 6 * 3600
    b.write_buckets(minute_batch(KEY, start, 6 * 60, seed=9)[0])
    b.write_buckets(minute_batch(KEY, start, 6 * 12, seed=10, width=300.0)[0])
    job = b.set_retention_policy()
    with connect() as conn:
        conn.execute("CALL run_job(%s)", (job,))
    left = b.read_buckets(KEY, 60.0, 0, 2e9)
    assert 0 < len(left) <= 2 * 60 + 1 and left.start[0] >= now - 2 * 3600 - 60
    assert len(b.read_buckets(KEY, 300.0, 0, 2e9)) == 72
    b.close()


def test_partition_dropped_by_another_process_is_recreated(pg_schema):
    writer = backend(pg_schema, org="org-a")
    cleaner = backend(pg_schema, org="org-b")
    day = 86400.0
    start = np.floor(T0 / day) * day
    writer.write_buckets(minute_batch(KEY, start, 10, seed=1)[0])
    assert cleaner.apply_retention(start + 10 * day, {"1m": "1d"}, all_orgs=True) == 10
    # the writer still believes the partition exists
    assert writer.write_buckets(minute_batch(KEY, start + 3600, 10, seed=2)[0]) == 10
    assert writer.row_count() == 10
    writer.close()
    cleaner.close()


def test_engine_history_merges_postgres_and_memory(pg_schema, layout):
    clock = wm.ManualClock(T0)
    engine = wm.MetricsEngine(clock=clock, storage=backend(pg_schema, layout=layout),
                              retention={"1m": "20m"}, flush_options={"thread": False})
    h = engine.series("api.latency", labels={"route": "/photos"})
    rng = np.random.default_rng(12)
    values = rng.lognormal(-2, 1, size=(60, 10))
    ts = T0 + np.repeat(np.arange(60) * 60.0, 10) + np.tile(np.arange(10) * 5.0, 60)
    engine.record_many(np.full(600, h.id), ts, values.ravel())
    clock.set(T0 + 3600 + 10)
    hist = engine.history(h, "1m", T0, T0 + 3600)
    np.testing.assert_array_equal(hist.start, T0 + 60 * np.arange(60))
    np.testing.assert_array_equal(hist.count, np.full(60, 10))
    np.testing.assert_allclose(hist.sum, values.sum(axis=1), rtol=1e-9)
    engine.close()


def version_2_schema(schema, layout, org="org-a"):
    """A schema as wedmetrics with schema version 2 left it (no writer column, no
    event digest); returns the id of ``KEY``'s series in it."""
    from wedmetrics.storage import TimescaleBackend

    class Version2(TimescaleBackend):
        def _migrate_v3(self, conn, layout):
            pass

        def _migrate_v4(self, conn):
            pass

    old = Version2(PG_DSN, org, schema=schema, layout=layout)
    sid = old._run(lambda c: old._insert_series(c, [KEY]))[KEY]
    old.close()
    with connect() as conn:
        conn.execute(f'DELETE FROM "{schema}".wm_schema WHERE version >= 3')
    return sid


def test_version_2_schema_is_migrated(pg_schema, layout):
    sid = version_2_schema(pg_schema, layout)
    day = 86400.0
    start = np.floor(T0 / day) * day
    batch, values = minute_batch(KEY, start, 2 * 1440, seed=21)           # two days
    event = AlertEvent("al-1", "r", "feedback", "info", T0, labels={"route": "/photos"},
                       annotations={"verdict": "noise", "by": "ana"}, value=1.5)
    with connect() as conn:
        if layout == "plain":
            for d in range(2):
                part = f"wm_buckets_w60000_p{int(start // day) + d}"
                conn.execute(f'CREATE TABLE "{pg_schema}".{part} '
                             f'PARTITION OF "{pg_schema}".wm_buckets FOR VALUES FROM '
                             f'(60, to_timestamp({start + d * day})) '
                             f'TO (60, to_timestamp({start + (d + 1) * day}))')
        with conn.cursor() as cur:
            cur.executemany(
                f'INSERT INTO "{pg_schema}".wm_buckets VALUES '
                "('org-a', %s, 60.0, to_timestamp(%s), %s, %s, %s, %s, %s)",
                [(sid, float(batch.start[i]), int(batch.count[i]), float(batch.sum[i]),
                  float(batch.min[i]), float(batch.max[i]), batch.sketch[i])
                 for i in range(len(batch))])
            cur.execute(f'INSERT INTO "{pg_schema}".wm_alert_events VALUES '
                        "('org-a', %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s)",
                        event.to_row())
        if layout == "timescale":
            compressed = conn.execute(
                "SELECT count(compress_chunk(c, if_not_compressed => true)) "
                "FROM show_chunks(%s::regclass) c", (f"{pg_schema}.wm_buckets",)).fetchone()[0]
            assert compressed >= 2
    b = backend(pg_schema, layout="auto", writer_id=9)
    assert b.layout == layout
    with connect() as conn:
        versions = conn.execute(f'SELECT version FROM "{pg_schema}".wm_schema ORDER BY 1'
                                ).fetchall()
        assert versions == [(1,), (2,), (3,), (4,)]
        assert conn.execute(f'SELECT DISTINCT writer_id FROM "{pg_schema}".wm_buckets'
                            ).fetchall() == [(0,)]
        key_cols = conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary "
            "ORDER BY array_position(i.indkey, a.attnum)", (f"{pg_schema}.wm_buckets",)
        ).fetchall()
        assert key_cols == [("series_id",), ("width",), ("bucket_start",), ("writer_id",)]
        view_cols = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = 'wm_tenant_buckets' ORDER BY ordinal_position", (pg_schema,)
        ).fetchall()
        assert view_cols[-1] == ("writer_id",)
        if layout == "timescale":
            orderby = conn.execute(
                "SELECT attname FROM timescaledb_information.compression_settings "
                "WHERE hypertable_schema = %s AND orderby_column_index IS NOT NULL "
                "ORDER BY orderby_column_index", (pg_schema,)).fetchall()
            assert orderby == [("width",), ("bucket_start",), ("writer_id",)]
            policy = conn.execute(
                "SELECT config->>'compress_after' FROM timescaledb_information.jobs "
                "WHERE hypertable_schema = %s AND proc_name = 'policy_compression'",
                (pg_schema,)).fetchall()
            assert policy == [("7 days",)]
    got = b.read_buckets(KEY, 60.0, 0, 2e9)
    np.testing.assert_array_equal(got.count, batch.count)
    assert got.sketch == batch.sketch
    # a writer with an id now adds to the migrated rows
    assert b.write_buckets(batch) == len(batch)
    assert b.write_buckets(batch) == 0
    got = b.read_buckets(KEY, 60.0, 0, 2e9)
    np.testing.assert_array_equal(got.count, 2 * batch.count)
    np.testing.assert_allclose(got.sum, 2 * values.sum(axis=1), rtol=1e-12)
    s = b.read_merged("api.latency", 60.0, 0, 2e9)
    exact = np.sort(values.ravel())[int(np.floor(0.95 * (values.size - 1)))]
    assert s.count == 2 * values.size and abs(s.p95 - exact) <= 0.01 * exact * 1.0001
    if layout == "timescale":
        for view in ("wm_rollup_hourly", "wm_rollup_daily"):
            refresh(f"{pg_schema}.{view}")
    daily = b.read_rollup(KEY, "day", start, start + 2 * day)
    np.testing.assert_array_equal(daily.count, [2 * 1440 * 5, 2 * 1440 * 5])
    # the migrated event keeps its identity; a different one at the same instant lands
    assert b.read_alert_events(0, 2e9) == [event]
    assert b.write_alert_events([event]) == 0
    other = AlertEvent("al-1", "r", "feedback", "info", T0, annotations={"verdict": "useful"})
    assert b.write_alert_events([other, event]) == 1
    assert len(b.read_alert_events(0, 2e9)) == 2
    b.close()
