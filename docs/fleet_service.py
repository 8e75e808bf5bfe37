"""A FastAPI service instrumented with wedmetrics, ready for a fleet of workers.

    uvicorn fleet_service:app --app-dir docs --workers 4 --port 8000
    gunicorn fleet_service:app --chdir docs -w 4 -k uvicorn.workers.UvicornWorker -b 127.0.0.1:8000

Every worker process imports this module and so has its own engine; all of them
flush into the store named by ``WEDMETRICS_STORE``:

    sqlite:///fleet.db                        one SQLite file (WAL: several writers)
    postgresql://user@db/metrics              one PostgreSQL/TimescaleDB schema

``WEDMETRICS_ORG`` (default ``default``) is the org the rows belong to, and
``WEDMETRICS_REMOTE_WRITE`` (optional) a remote-write URL the buckets are also
pushed to (Prometheus, Mimir, Thanos Receive, VictoriaMetrics).
"""
from __future__ import annotations

import contextlib
import os
import socket

from fastapi import FastAPI

import wedmetrics as wm

STORE = os.environ.get("WEDMETRICS_STORE", "sqlite:///fleet.db")
ORG = os.environ.get("WEDMETRICS_ORG", "default")


def open_store(url: str):
    if url.startswith("sqlite:///"):
        return wm.SQLiteBackend(url[len("sqlite:///"):], ORG)
    if url.startswith(("postgresql://", "postgres://")):
        return wm.TimescaleBackend(url, ORG)
    raise ValueError(f"WEDMETRICS_STORE must be sqlite:///FILE or postgresql://..., got {url!r}")


engine = wm.MetricsEngine(storage=open_store(STORE))
exporter = None
if os.environ.get("WEDMETRICS_REMOTE_WRITE"):
    exporter = wm.RemoteWriteExporter(os.environ["WEDMETRICS_REMOTE_WRITE"], engine,
                                      instance=f"{socket.gethostname()}:{os.getpid()}")


@contextlib.asynccontextmanager
async def lifespan(app):
    yield
    engine.close()              # a graceful stop stores every point at every resolution
    if exporter is not None:
        exporter.close()        # and pushes the last buckets


app = FastAPI(lifespan=lifespan)
app.add_middleware(wm.ASGIMetricsMiddleware, engine=engine)


@app.get("/rsvp/{wedding_id}")
async def rsvp(wedding_id: int):
    return {"wedding": wedding_id, "guests": wedding_id % 120}
