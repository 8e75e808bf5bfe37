"""Fixtures for storage tests: every backend behind one factory, on the real PostgreSQL server.

PostgreSQL tests use ``WEDMETRICS_PG_DSN`` (default
``postgresql://postgres@127.0.0.1:5432/test``).  Without a reachable server
they are skipped with the reason, unless ``CI`` is set, where they fail.
Each test gets its own PostgreSQL schema, dropped afterwards.
"""
from __future__ import annotations

import os
import uuid

import pytest

PG_DSN = os.environ.get("WEDMETRICS_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false")


def _probe() -> tuple[str | None, bool]:
    """(why PostgreSQL is unusable or None, whether timescaledb is available)."""
    try:
        import psycopg
    except ImportError as exc:
        return f"psycopg is not installed ({exc})", False
    try:
        from wedmetrics.storage.timescale import timescale_usable

        with psycopg.connect(PG_DSN, connect_timeout=3) as conn:
            # the backend's own rule: files on disk are not enough, it must be preloaded
            ts = timescale_usable(conn)[0]
    except Exception as exc:
        return f"no PostgreSQL server at {PG_DSN}: {exc}", False
    return None, ts


PG_PROBLEM, HAVE_TIMESCALE = _probe()


def require_pg() -> None:
    if PG_PROBLEM is not None:
        if IN_CI:
            pytest.fail(f"CI is set, so PostgreSQL tests must run: {PG_PROBLEM}")
        pytest.skip(PG_PROBLEM)


def require_timescale() -> None:
    require_pg()
    if not HAVE_TIMESCALE:
        # CI runs the plain-PostgreSQL path only; TimescaleDB is not in Debian
        pytest.skip("the timescaledb extension is not installed and preloaded on this server")


def drop_schema(schema: str) -> None:
    import time

    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone():
            # background jobs of the schema's policies race a DROP ("tuple
            # concurrently deleted"): remove them first, retry the drop
            conn.execute("SELECT delete_job(job_id) FROM timescaledb_information.jobs "
                         "WHERE hypertable_schema = %s OR proc_schema = %s", (schema, schema))
        for attempt in range(5):
            try:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                return
            except psycopg.errors.InternalError_:
                time.sleep(0.2 * (attempt + 1))
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def pg_schema():
    """A fresh schema name, dropped after the test."""
    require_pg()
    schema = f"wm_t_{uuid.uuid4().hex[:12]}"
    yield schema
    drop_schema(schema)


BACKENDS = ["memory", "sqlite", "pg-plain", "pg-timescale"]


@pytest.fixture(params=BACKENDS)
def make_backend(request, tmp_path):
    """``make_backend(org_id="org-a", **options)``: backends of one shared store."""
    from wedmetrics.storage import MemoryBackend, SQLiteBackend

    kind = request.param
    made = []
    schema = None
    if kind.startswith("pg-"):
        if kind == "pg-timescale":
            require_timescale()
        else:
            require_pg()
        schema = f"wm_t_{uuid.uuid4().hex[:12]}"
    store = MemoryBackend.shared_store()

    def factory(org_id: str = "org-a", **options):
        if kind == "memory":
            b = MemoryBackend(org_id, store=store, **options)
        elif kind == "sqlite":
            b = SQLiteBackend(tmp_path / "metrics.db", org_id, **options)
        else:
            from wedmetrics.storage import TimescaleBackend

            b = TimescaleBackend(PG_DSN, org_id, schema=schema,
                                 layout=kind.split("-")[1], **options)
        made.append(b)
        return b

    factory.kind = kind
    yield factory
    for b in made:
        b.close()
    if schema is not None:
        drop_schema(schema)
