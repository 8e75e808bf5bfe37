"""A fleet of uvicorn workers, each with its own engine, flushing into one store, loaded by wrk.

The fleet's request count read back from the store equals what wrk reports
it completed (wrk's threads stop themselves after a fixed number of
responses, one connection each, so no request is in flight at the end, and
readiness is checked without any HTTP request); percentiles are within alpha
of the percentiles of every latency the workers measured (their side logs);
a worker killed with SIGKILL mid-run is restarted and loses nothing it had
flushed.
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

import wedmetrics as wm
from tests.peers import free_port, require_binary, stop

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

METRIC = "http.server.duration"
APP_DIR = Path(__file__).parent
WORKERS = 4
WRK_SCRIPT = r"""
local per_thread = tonumber(os.getenv("WM_WRK_REQUESTS"))
local answered, n = 0, 0
request = function()
  n = n + 1
  if n % 10 == 0 then return wrk.format("GET", "/health") end
  return wrk.format("GET", "/rsvp/" .. (n % 97))
end
response = function(status, headers, body)
  answered = answered + 1
  if answered == per_thread then
    io.stderr:write("WM_THREAD_DONE\n")   -- wrk's main thread waits for -d: the test interrupts it
    wrk.thread:stop()
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WM_SUMMARY requests=%d connect=%d read=%d write=%d status=%d "
                         .. "timeout=%d\n", summary.requests, e.connect, e.read, e.write,
                         e.status, e.timeout))
end
"""


class Fleet:
    """``uvicorn --workers 4`` serving tests/fleet/fleet_app.py into one store."""

    def __init__(self, tmp: Path, store_env: dict) -> None:
        self.port = free_port()
        self.sidelog = tmp / "sidelog"
        self.sidelog.mkdir()
        env = dict(os.environ, **store_env, WM_FLEET_SIDELOG=str(self.sidelog),
                   PYTHONPATH=os.pathsep.join([str(Path(wm.__file__).parents[1]),
                                               os.environ.get("PYTHONPATH", "")]))
        self.log = open(tmp / "uvicorn.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "fleet_app:app", "--app-dir", str(APP_DIR),
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(WORKERS),
             "--no-access-log", "--log-level", "warning"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_workers(WORKERS)

    def workers(self) -> dict[int, int]:
        """pid -> writer id of every worker that has started (side-log headers)."""
        out = {}
        for f in self.sidelog.glob("*.log"):
            first = f.read_text().split("\n", 1)[0].split()
            if len(first) == 2:
                out[int(f.stem)] = int(first[1])
        return out

    def wait_workers(self, n: int, timeout: float = 60.0) -> None:
        # a worker writes its header at import; the listening socket exists
        # before any worker does, so wrk's connections queue until one accepts
        deadline = time.monotonic() + timeout
        while len(self.workers()) < n:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail("uvicorn workers did not start: "
                            + (Path(self.log.name).read_text()[-2000:]))
            time.sleep(0.1)

    def latencies(self, pid: int | None = None) -> np.ndarray:
        files = [self.sidelog / f"{pid}.log"] if pid else self.sidelog.glob("*.log")
        values = [float(line.rsplit(" ", 1)[1]) for f in files
                  for line in f.read_text().splitlines()[1:]]
        return np.array(values, dtype=np.float64)

    def lines(self) -> list[tuple[str, str]]:
        return [tuple(line.split()[:2]) for f in self.sidelog.glob("*.log")
                for line in f.read_text().splitlines()[1:]]

    def stop(self) -> None:
        stop(self.proc, signal.SIGTERM, timeout=60)
        self.log.close()


@contextlib.contextmanager
def run_wrk(port: int, tmp: Path, per_thread: int):
    """wrk loading the fleet until the block ends; then it is killed and its pipes closed."""
    script = tmp / "fleet.lua"
    script.write_text(WRK_SCRIPT)
    wrk = subprocess.Popen(
        [require_binary("wrk"), "-t4", "-c4", "-d120s", "--timeout", "20s", "-s", str(script),
         f"http://127.0.0.1:{port}"],
        env=dict(os.environ, WM_WRK_REQUESTS=str(per_thread)), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        yield wrk
    finally:
        stop(wrk, signal.SIGKILL)
        wrk.stdout.close()
        wrk.stderr.close()


def wrk_summary(proc: subprocess.Popen) -> dict:
    """wrk's totals once its four threads have stopped after their responses.

    Its main thread sleeps for the whole ``-d`` whatever the threads do;
    SIGINT ends that sleep and it prints the summary of what was answered.
    """
    done = 0
    for line in proc.stderr:
        done += line.strip() == "WM_THREAD_DONE"
        if done == 4:
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=60)
    m = re.search(r"WM_SUMMARY (.*)", out)
    assert m, out + err
    return {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}


def check_fleet(storage, fleet: Fleet, sent: int, t0: float, t1: float) -> None:
    """The store answers for every worker: counts exact, percentiles within alpha."""
    reader = wm.MetricsEngine(storage=storage)
    try:
        for resolution in ("1s", "1m"):
            cols = reader.history(METRIC, resolution, t0 - 3600, t1 + 3600)
            assert int(cols["count"].sum()) == sent, resolution
        keys = storage.series_keys(METRIC)
        routes = {dict(k.labels)["route"] for k in keys}
        assert routes == {"/rsvp/{wedding_id}", "/health"}     # templates, not raw paths
        assert {dict(k.labels)["status"] for k in keys} == {"200"}
        merged = storage.read_merged(METRIC, 1.0, t0 - 60, t1 + 60)
        measured = fleet.latencies()
        assert merged.count == len(measured) == sent
        assert merged.sum == pytest.approx(measured.sum(), rel=1e-9)
        assert merged.max == measured.max() and merged.min == measured.min()
        for q in (0.5, 0.9, 0.99):
            exact = float(np.quantile(measured, q, method="lower"))
            assert abs(merged.sketch.quantile(q) - exact) <= merged.alpha * exact * (1 + 1e-9)
        per_route = dict(zip(*np.unique([r for r, _ in fleet.lines()], return_counts=True)))
        for route, n in per_route.items():
            assert storage.read_merged(METRIC, 1.0, t0 - 60, t1 + 60,
                                       labels={"route": route}).count == n
        assert _hub_count(storage, t0, t1) == sent
    finally:
        reader.close()


def _hub_count(storage, t0: float, t1: float) -> int:
    """The fleet's request count as the HTTP hub serves it from the store."""
    import asyncio

    import httpx

    from wedmetrics.http import create_app

    async def ask():
        app = create_app(storage=storage, cache_ttl=0)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://hub.test") as client:
            r = await client.get("/api/metrics/range", params={
                "name": METRIC, "resolution": "1m", "start": t0 - 120, "end": t1 + 120})
            assert r.status_code == 200, r.text
            body = r.json()
            assert not body["truncated"]
            return sum(b["count"] for s in body["series"] for b in s["buckets"])
    return asyncio.run(ask())


def _fleet_run(tmp_path, store_env, storage_factory, per_thread=600):
    fleet = Fleet(tmp_path, store_env)
    t0 = time.time()
    try:
        with run_wrk(fleet.port, tmp_path, per_thread) as wrk:
            summary = wrk_summary(wrk)
    finally:
        fleet.stop()
    assert fleet.proc.returncode == 0
    assert summary["requests"] == 4 * per_thread
    assert summary["status"] == summary["read"] == summary["connect"] == 0, summary
    check_fleet(storage_factory(), fleet, summary["requests"], t0, time.time())


def test_uvicorn_workers_into_one_sqlite_file(tmp_path):
    path = tmp_path / "fleet.db"
    wm.SQLiteBackend(path, "fleet").close()      # created once; the workers open it
    _fleet_run(tmp_path, {"WM_FLEET_SQLITE": str(path)},
               lambda: wm.SQLiteBackend(path, "fleet"))


def test_uvicorn_workers_into_one_postgres_schema(tmp_path):
    from tests.storage.conftest import PG_DSN, drop_schema, require_pg

    require_pg()
    schema = f"wm_t_{uuid.uuid4().hex[:12]}"
    wm.TimescaleBackend(PG_DSN, "fleet", schema=schema, layout="plain").close()
    try:
        _fleet_run(tmp_path, {"WM_FLEET_PG_DSN": PG_DSN, "WM_FLEET_PG_SCHEMA": schema},
                   lambda: wm.TimescaleBackend(PG_DSN, "fleet", schema=schema, layout="plain"))
    finally:
        drop_schema(schema)


def _stored_rows(path: Path, writer: int) -> dict:
    """One writer's 1 s rows: (series, start) -> (count, sum)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        rows = db.execute("SELECT series_id, start, count, sum FROM wm_buckets "
                          "WHERE writer_id = ? AND width = 1.0", (writer,)).fetchall()
    return {r[:2]: r[2:] for r in rows}


def _count(rows: dict) -> int:
    return sum(c for c, _ in rows.values())


def test_a_worker_killed_mid_run_loses_nothing_it_flushed(tmp_path):
    path = tmp_path / "fleet.db"
    wm.SQLiteBackend(path, "fleet").close()
    fleet = Fleet(tmp_path, {"WM_FLEET_SQLITE": str(path)})
    t0 = time.time()
    try:
        with run_wrk(fleet.port, tmp_path, per_thread=1500) as wrk:
            deadline = time.monotonic() + 60
            flushed = {}
            while not flushed:
                assert time.monotonic() < deadline, "no worker flushed in time"
                time.sleep(0.05)
                # the victim: a worker the kernel gave connections to, once it has flushed
                for victim, writer in fleet.workers().items():
                    if len(fleet.latencies(victim)) and (flushed := _stored_rows(path, writer)):
                        break
            os.kill(victim, signal.SIGKILL)
            fleet.wait_workers(WORKERS + 1)        # the supervisor starts a replacement
            summary = wrk_summary(wrk)
    finally:
        fleet.stop()
    assert summary["requests"] == 4 * 1500
    assert all(_stored_rows(path, writer)[k] == v for k, v in flushed.items())  # all survive
    workers = fleet.workers()
    assert len(workers) == WORKERS + 1
    # the replacement adopted the crashed worker's writer lease: it writes as
    # that writer (and resumed its open coarse buckets), so one id has two pids
    assert len(set(workers.values())) == WORKERS
    for w in set(workers.values()):
        pids = [pid for pid, x in workers.items() if x == w]
        stored = _count(_stored_rows(path, w))
        logged = sum(len(fleet.latencies(pid)) for pid in pids)
        if victim in pids:
            # only what it recorded after its last flush died with it
            assert _count(flushed) <= stored <= logged
            lost = logged - stored
        else:
            assert stored == logged
    storage = wm.SQLiteBackend(path, "fleet")
    try:
        merged = storage.read_merged(METRIC, 1.0, t0 - 60, time.time() + 60)
        assert merged.count == len(fleet.latencies()) - lost
        # the fleet answered every request wrk saw, and at most the few the
        # victim took with it in flight besides
        assert summary["requests"] <= len(fleet.latencies()) <= summary["requests"] + 4
    finally:
        storage.close()
