"""The app the fleet benchmark serves, in three variants chosen by ``WM_BENCH_VARIANT``.

``bare``         FastAPI, no instrumentation.
``wedmetrics``   the same app with :class:`wedmetrics.ASGIMetricsMiddleware`; each
                 worker's engine flushes into ``WM_BENCH_SQLITE``.
``prometheus``   the same app with prometheus_client in multiprocess mode
                 (``PROMETHEUS_MULTIPROC_DIR``): a pure ASGI middleware observing a
                 ``Histogram`` labelled by method, route template and status, its
                 labelled children cached (prometheus_client's fastest idiom).

Both middlewares read the route template the same way and time the same span.
"""
from __future__ import annotations

import contextlib
import os
import time

from fastapi import FastAPI

VARIANT = os.environ.get("WM_BENCH_VARIANT", "bare")


def build_api(lifespan=None) -> FastAPI:
    api = FastAPI(lifespan=lifespan)

    @api.get("/rsvp/{wedding_id}")
    async def rsvp(wedding_id: int):
        return {"wedding": wedding_id}

    return api


class PrometheusMiddleware:
    def __init__(self, app, histogram):
        self.app = app
        self.histogram = histogram
        self.children = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        t0 = time.perf_counter()

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)
        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - t0
            route = scope.get("route")
            key = (scope["method"], route.path if route is not None else "<unmatched>", status)
            child = self.children.get(key)
            if child is None:
                child = self.children[key] = self.histogram.labels(key[0], key[1], str(status))
            child.observe(elapsed)


def build(variant: str = VARIANT):
    if variant == "bare":
        return build_api()
    if variant == "wedmetrics":
        import wedmetrics as wm

        path = os.environ.get("WM_BENCH_SQLITE")
        storage = wm.SQLiteBackend(path, "bench") if path else None
        engine = wm.MetricsEngine(storage=storage)

        @contextlib.asynccontextmanager
        async def lifespan(app):
            yield
            engine.close()
        return wm.ASGIMetricsMiddleware(build_api(lifespan), engine)
    if variant == "prometheus":
        from prometheus_client import Histogram

        histogram = Histogram("http_server_duration_seconds", "request latency",
                              ["method", "route", "status"])
        return PrometheusMiddleware(build_api(), histogram)
    raise ValueError(f"unknown variant {variant!r}")


app = build()


# -- per-request cost of each middleware alone, in-process (run as a script) ----------
class _Route:
    path = "/rsvp/{wedding_id}"


async def _trivial(scope, receive, send):
    """An app that only routes (as Starlette leaves it in the scope) and answers."""
    scope["route"] = _Route
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def wrap_trivial(variant: str):
    if variant == "bare":
        return _trivial
    if variant == "wedmetrics":
        import wedmetrics as wm

        return wm.ASGIMetricsMiddleware(_trivial, wm.MetricsEngine())
    from prometheus_client import Histogram

    return PrometheusMiddleware(_trivial, Histogram("bench_seconds", "latency",
                                                    ["method", "route", "status"]))


def per_request_ns(variants=("bare", "wedmetrics", "prometheus"), n: int = 2000,
                   rounds: int = 40) -> dict:
    """Nanoseconds per request through each variant around ``_trivial``: the
    best of ``rounds`` interleaved rounds of ``n`` requests (on a shared
    machine the minimum is the least disturbed measure).  prometheus_client
    must already be in multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``)."""
    import asyncio

    apps = {v: wrap_trivial(v) for v in variants}

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        pass

    async def drive():
        best = dict.fromkeys(apps, float("inf"))
        for _ in range(rounds):
            for variant, app in apps.items():
                t0 = time.perf_counter_ns()
                for _ in range(n):
                    await app({"type": "http", "method": "GET", "path": "/rsvp/7",
                               "root_path": ""}, receive, send)
                best[variant] = min(best[variant], (time.perf_counter_ns() - t0) / n)
        return best
    return asyncio.run(drive())


if __name__ == "__main__":
    import json

    print(json.dumps(per_request_ns()))
