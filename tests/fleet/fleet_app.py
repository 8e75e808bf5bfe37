"""A FastAPI service instrumented with wedmetrics, as a fleet test runs it (uvicorn --workers N).

Each worker process imports this module and so builds its own engine, which
flushes into the store named by the environment:

``WM_FLEET_SQLITE``   path of the shared SQLite file, or
``WM_FLEET_PG_DSN`` + ``WM_FLEET_PG_SCHEMA``   the shared PostgreSQL schema;
``WM_FLEET_SIDELOG``  a directory where each worker writes ``<pid>.log``: its
                      writer id, then every latency the middleware measured,
                      one write(2) per request so a SIGKILL loses none.
"""
from __future__ import annotations

import asyncio
import contextlib
import os

from fastapi import FastAPI

import wedmetrics as wm
from wedmetrics.collect.middleware import RouteLabels


def _storage():
    if os.environ.get("WM_FLEET_SQLITE"):
        return wm.SQLiteBackend(os.environ["WM_FLEET_SQLITE"], "fleet")
    return wm.TimescaleBackend(os.environ["WM_FLEET_PG_DSN"], "fleet",
                               schema=os.environ["WM_FLEET_PG_SCHEMA"], layout="plain")


class _LoggedHandle:
    """A series handle that also appends each latency it records to the side log."""

    __slots__ = ("handle", "fd", "prefix")

    def __init__(self, handle, fd, prefix):
        self.handle, self.fd, self.prefix = handle, fd, prefix

    def record(self, seconds):
        self.handle.record(seconds)
        os.write(self.fd, f"{self.prefix} {seconds!r}\n".encode())


class _LoggedRoutes(RouteLabels):
    """The middleware's handles, each wrapped to log what it records."""

    __slots__ = ("fd", "logged")

    def handle(self, method, route, status):
        key = (method, route, status)
        if key not in self.logged:
            self.logged[key] = _LoggedHandle(super().handle(method, route, status), self.fd,
                                             f"{route} {status}")
        return self.logged[key]


engine = wm.MetricsEngine(storage=_storage(), lateness="1s", flush_interval=0.2)


@contextlib.asynccontextmanager
async def lifespan(app):
    yield
    engine.close()      # graceful stop: every point recorded reaches the store


api = FastAPI(lifespan=lifespan)


@api.get("/rsvp/{wedding_id}")
async def rsvp(wedding_id: int):
    await asyncio.sleep(0)
    return {"wedding": wedding_id, "guests": wedding_id % 120}


@api.get("/health")
async def health():
    return {"ok": True}


app = wm.ASGIMetricsMiddleware(api, engine)
_log = os.environ.get("WM_FLEET_SIDELOG")
if _log:
    routes = _LoggedRoutes(engine)
    routes.logged = {}
    routes.fd = os.open(os.path.join(_log, f"{os.getpid()}.log"),
                        os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(routes.fd, f"writer {engine.storage.writer_id}\n".encode())
    app.routes = routes
