"""A hub over a store: a fleet's stored sketches merged, the live engine beside them, `serve`."""
from __future__ import annotations

import time
import uuid

import httpx
import numpy as np
import pytest
from hubserver import PG_DSN, auth, live_server, require_pg, require_redis, serve_process

import wedmetrics as wm
from wedmetrics.http import create_app

ALPHA = 0.01


def _fleet(make_store, now: float, writers: int = 3, seed: int = 5) -> np.ndarray:
    """``writers`` service processes (engines, each its own backend) recording one series
    over the 90 s before ``now``; returns every value they recorded."""
    rng = np.random.default_rng(seed)
    everything = []
    for w in range(writers):
        clock = wm.ManualClock(now - 100.0)
        engine = wm.MetricsEngine(clock=clock, storage=make_store())
        h = engine.series("api.latency", {"route": "/photos"})
        vals = rng.lognormal(-2.0 + w, 0.6, 3000)          # each writer its own spread
        ts = np.sort(rng.uniform(now - 90.0, now - 10.0, len(vals)))
        other = engine.counter("api.errors", {"route": "/photos"})
        other.inc(5, now - 95.0)                              # before the others: not late
        engine.record_many(np.full(len(vals), h.id), ts, vals)
        clock.set(now - 5.0)
        engine.close()                                        # every bucket stored
        everything.append(vals)
    return np.concatenate(everything)


def _check_fleet(series: dict, values: np.ndarray) -> None:
    assert series["count"] == len(values)
    assert series["min"] == pytest.approx(values.min()) and series["max"] == pytest.approx(values.max())
    assert series["mean"] == pytest.approx(values.mean())
    for q, key in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        exact = float(np.quantile(values, q, method="lower"))
        assert abs(series[key] - exact) <= ALPHA * exact, (key, series[key], exact)


def test_fleet_p95_is_the_p95_of_all_points(tmp_path):
    db = tmp_path / "fleet.db"
    now = time.time()
    values = _fleet(lambda: wm.SQLiteBackend(db, org_id="bliss-events"), now)
    store = wm.SQLiteBackend(db, org_id="bliss-events")
    app = create_app(storage=store)
    try:
        with live_server(app) as base, httpx.Client(base_url=base) as c:
            body = c.get("/api/metrics/real-time", params={"name": "api.latency",
                                                           "window": "5m"}).json()
            (series,) = body["series"]
            _check_fleet(series, values)
            assert body["engine"] is None
            info = c.get("/api/metrics/series").json()["series"]
            assert {(s["name"], s["live"], s["stored"]) for s in info} == {
                ("api.latency", False, True), ("api.errors", False, True)}
            (errors,) = c.get("/api/metrics/real-time", params={"name": "api.errors",
                                                                "window": "5m"}).json()["series"]
            assert errors["kind"] == "counter" and errors["count"] == 3
            assert errors["rate"] == pytest.approx(15 / 300)
            rng = c.get("/api/metrics/range", params={
                "name": "api.latency", "resolution": "1m", "start": str(now - 600),
                "end": str(now)}).json()
            buckets = rng["series"][0]["buckets"]
            assert sum(b["count"] for b in buckets) == len(values)
            assert c.get("/readyz").json()["checks"] == {"store:bliss-events": "ok"}
    finally:
        store.close()


def test_live_engine_and_store_merge_without_counting_twice(tmp_path):
    db = tmp_path / "mixed.db"
    now = time.time()
    stored = _fleet(lambda: wm.SQLiteBackend(db, org_id="default"), now, writers=2)
    # the hub's own engine records the same series and flushes into the same store
    engine = wm.MetricsEngine(storage=wm.SQLiteBackend(db, org_id="default"), flush_interval=0.05)
    h = engine.series("api.latency", {"route": "/photos"})
    live = np.random.default_rng(9).uniform(0.5, 3.0, 500)
    for v in live:
        h.record(float(v))
    reader = wm.SQLiteBackend(db, org_id="default")
    try:
        with live_server(create_app(engine, storage=reader, cache_ttl=0)) as base:
            time.sleep(0.2)                 # the flusher may store some live buckets now
            body = httpx.get(base + "/api/metrics/real-time",
                             params={"name": "api.latency", "window": "5m"}).json()
        (series,) = body["series"]
        _check_fleet(series, np.concatenate([stored, live]))
        assert body["engine"]["accepted"] == 500
    finally:
        engine.close()
        reader.close()


def test_a_tenant_reads_its_orgs_store_only(tmp_path):
    db = tmp_path / "orgs.db"
    now = time.time()
    _fleet(lambda: wm.SQLiteBackend(db, org_id="bliss-events"), now, writers=1)
    forever = _fleet(lambda: wm.SQLiteBackend(db, org_id="forever-planners"), now, writers=1,
                     seed=11)
    stores = {org: wm.SQLiteBackend(db, org_id=org) for org in ("bliss-events", "forever-planners")}
    tokens = {"tok-bliss-0123456789": "bliss-events", "tok-forever-0123456789": "forever-planners"}
    try:
        with live_server(create_app(storage=stores, tokens=tokens)) as base:
            mine = httpx.get(base + "/api/metrics/real-time", params={"name": "api.latency"},
                             headers=auth("tok-forever-0123456789")).json()["series"]
            assert len(mine) == 1
            _check_fleet(mine[0], forever)
            bliss = httpx.get(base + "/api/metrics/real-time", params={"name": "api.latency"},
                              headers=auth("tok-bliss-0123456789")).json()["series"]
            assert bliss[0]["count"] == 3000 and bliss[0]["max"] != mine[0]["max"]
    finally:
        for s in stores.values():
            s.close()


def test_serve_over_sqlite(tmp_path):
    db = tmp_path / "metrics.db"
    now = time.time()
    values = _fleet(lambda: wm.SQLiteBackend(db, org_id="bliss-events"), now)
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("tok-bliss-0123456789: bliss-events\ntok-ops-0123456789: '*'\n")
    with serve_process("--storage", f"sqlite:///{db}", "--tokens", str(tokens)) as base:
        assert httpx.get(base + "/api/metrics/series").status_code == 401
        r = httpx.get(base + "/api/metrics/real-time", params={"name": "api.latency"},
                      headers=auth("tok-bliss-0123456789"))
        assert r.status_code == 200
        _check_fleet(r.json()["series"][0], values)
        ready = httpx.get(base + "/readyz").json()
        assert ready == {"status": "ok", "checks": {"store:default": "ok",
                                                    "store:bliss-events": "ok"}}


def test_serve_refuses_a_public_bind_and_bad_arguments(tmp_path, capsys):
    from wedmetrics.http.serve import main

    with pytest.raises(SystemExit) as exit_:
        main(["--storage", f"sqlite:///{tmp_path / 'x.db'}", "--host", "0.0.0.0"])
    assert exit_.value.code == 2
    assert "refusing to bind 0.0.0.0 without --tokens" in capsys.readouterr().err
    assert main(["--storage", "mysql://nope"]) == 2
    err = capsys.readouterr().err
    assert "--storage must be" in err and "Traceback" not in err
    bad = tmp_path / "tokens.yaml"
    bad.write_text("- just\n- a list\n")
    assert main(["--storage", f"sqlite:///{tmp_path / 'x.db'}", "--tokens", str(bad)]) == 2
    assert "tokens must be a mapping" in capsys.readouterr().err


def test_serve_over_postgresql():
    require_pg()
    import psycopg

    schema = f"hub_{uuid.uuid4().hex[:10]}"
    now = time.time()
    try:
        values = _fleet(lambda: wm.TimescaleBackend(PG_DSN, org_id="bliss-events",
                                                    schema=schema), now, writers=2)
        with serve_process("--storage", PG_DSN, "--schema", schema, "--org",
                           "bliss-events") as base:
            body = httpx.get(base + "/api/metrics/real-time",
                             params={"name": "api.latency"}).json()
            _check_fleet(body["series"][0], values)
            assert httpx.get(base + "/readyz").json()["checks"] == {"store:bliss-events": "ok"}
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_two_hub_processes_share_one_cache_and_one_rate_limit(tmp_path, redis_prefix):
    require_redis()
    from hubserver import REDIS_URL

    db = tmp_path / "shared.db"
    now = time.time()
    _fleet(lambda: wm.SQLiteBackend(db, org_id="default"), now, writers=1)
    common = ("--storage", f"sqlite:///{db}", "--redis", REDIS_URL, "--redis-prefix",
              redis_prefix, "--cache-ttl", "30s", "--rate-limit", "5/minute")
    with serve_process(*common) as a, serve_process(*common) as b:
        params = {"name": "api.latency", "window": "5m"}
        first = httpx.get(a + "/api/metrics/real-time", params=params)
        shared = httpx.get(b + "/api/metrics/real-time", params=params)
        assert (first.headers["X-Cache"], shared.headers["X-Cache"]) == ("miss", "shared")
        assert shared.content == first.content
        codes = [httpx.get(url + "/api/metrics/series").status_code for url in (a, b, a, b)]
        assert codes == [200, 200, 200, 429]           # 5 per minute over both processes
