"""Helpers of the hub tests: the app under a real uvicorn server on a free 127.0.0.1 port, and Redis for the shared parts.

Redis is the machine's server at ``WEDMETRICS_REDIS_URL`` (default
``redis://127.0.0.1:6379/0``); tests using it are skipped when it does not
answer, unless ``CI`` is set, where they fail.
"""
from __future__ import annotations

import contextlib
import os
import time
import uuid

import pytest


import httpx

from tests.peers import IN_CI, free_port, stop
from tests.peers import serve_asgi as live_server  # noqa: F401 - the hub tests import it from here

REDIS_URL = os.environ.get("WEDMETRICS_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_problem() -> str | None:
    try:
        import redis
    except ImportError as exc:
        return f"redis-py is not installed ({exc})"
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
        client.close()
    except Exception as exc:
        return f"no Redis server at {REDIS_URL}: {exc}"
    return None


def require_redis() -> None:
    problem = redis_problem()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"CI is set, so the Redis tests must run: {problem}")
        pytest.skip(problem)


def get(base: str, path: str, token: str | None = None, **params) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(base + path, params=params, headers=headers, timeout=10.0)


# -- a small multi-tenant world ------------------------------------------------------
T0 = 1_781_362_800.0          # 2026-06-13 15:00 UTC, a Saturday: both weddings are today
TOKENS = {"tok-bliss-0123456789": "bliss-events", "tok-forever-0123456789": "forever-planners",
          "tok-ops-0123456789": "*"}
BLISS, FOREVER, OPS = TOKENS


class World:
    """Two tenants' series, weddings and alerts in one engine on a manual clock.

    bliss-events: wedding ``w-bliss`` and series labelled with it or with its org,
    all values below 1.  forever-planners: ``w-forever``, values 10-20, so a leak of
    its numbers into a bliss answer shows in any statistic.
    """

    def __init__(self, storage=None) -> None:
        import numpy as np

        import wedmetrics as wm
        from wedmetrics.alerting import AlertEngine

        self.clock = wm.ManualClock(T0 - 60.0)
        self.engine = wm.MetricsEngine(clock=self.clock, storage=storage)
        self.calendar = wm.WeddingCalendar([
            {"id": "w-bliss", "org_id": "bliss-events", "date": "2026-06-13",
             "timezone": "Europe/London", "guest_count": 120, "venue": "Kew Gardens"},
            {"id": "w-forever", "org_id": "forever-planners", "date": "2026-06-13",
             "timezone": "Europe/Paris", "guest_count": 300, "venue": "Chateau Rose"},
        ])
        rng = np.random.default_rng(3)
        self.values = {}
        specs = [("api.latency", {"route": "/photos", "wedding_id": "w-bliss"}, 0.1, 0.9),
                 ("api.latency", {"route": "/photos", "wedding_id": "w-forever"}, 10.0, 20.0),
                 ("api.latency", {"route": "/rsvp", "org_id": "bliss-events"}, 0.2, 0.8),
                 ("api.latency", {"route": "/rsvp", "org_id": "forever-planners"}, 12.0, 18.0),
                 ("internal.gc", {}, 1.0, 2.0)]
        points = []
        for name, labels, lo, hi in specs:
            h = self.engine.series(name, labels)
            vals = rng.uniform(lo, hi, 400)
            points.extend((T0 - 59.0 + k * 60 // len(vals), h, float(v))
                          for k, v in enumerate(vals))
            self.values[(name, tuple(sorted(labels.items())))] = vals
        for ts, h, v in sorted(points, key=lambda p: p[0]):    # in time order: none is late
            h.record(v, ts)
        self.requests = self.engine.counter("api.requests", {"org_id": "bliss-events"})
        for _ in range(30):
            self.requests.inc(2, T0 - 1.0)
        assert sum(self.engine.stats()["dropped"].values()) == 0
        self.clock.set(T0)
        self.alerts = AlertEngine(self.engine, calendar=self.calendar, rules=[
            {"kind": "threshold", "name": "SlowRsvp", "metric": "api.latency",
             "match": ['route="/rsvp"'], "stat": "max", "window": "5m", "op": ">",
             "threshold": 0.5, "severity": "warning",
             "feedback": {"step": 0.5, "mode": "absolute"}},
            {"kind": "threshold", "name": "SlowPhotos", "metric": "api.latency",
             "match": ['route="/photos"'], "stat": "max", "window": "5m", "op": ">",
             "threshold": 5.0, "severity": "critical"},
        ])
        self.alerts.evaluate()

    def alert_id(self, rule: str, **labels) -> str:
        for a in self.alerts.active():
            if a.rule == rule and all(a.labels.get(k) == v for k, v in labels.items()):
                return a.id
        raise KeyError((rule, labels))

    def close(self) -> None:
        self.alerts.close()
        self.engine.close()


def auth(token: str | None) -> dict:
    return {"Authorization": f"Bearer {token}"} if token else {}


# -- `python -m wedmetrics serve` as a real process -----------------------------------------
PG_DSN = os.environ.get("WEDMETRICS_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@contextlib.contextmanager
def serve_process(*args: str, timeout: float = 30.0):
    """``python -m wedmetrics serve ARGS --port P`` until the block ends; yields the base URL."""
    import subprocess
    import sys

    port = free_port()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "wedmetrics", "serve", *args, "--port",
                             str(port), "--log-level", "warning"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited {proc.returncode}: "
                                   f"{proc.stdout.read().decode(errors='replace')}")
            try:
                if httpx.get(base + "/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("serve did not answer /healthz")
            time.sleep(0.1)
        yield base
    finally:
        stop(proc, timeout=10)
        proc.stdout.close()


def pg_problem() -> str | None:
    try:
        import psycopg
    except ImportError as exc:
        return f"psycopg is not installed ({exc})"
    try:
        with psycopg.connect(PG_DSN, connect_timeout=3):
            pass
    except Exception as exc:
        return f"no PostgreSQL server at {PG_DSN}: {exc}"
    return None


def require_pg() -> None:
    problem = pg_problem()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"CI is set, so the PostgreSQL tests must run: {problem}")
        pytest.skip(problem)
