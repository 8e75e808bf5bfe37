"""``create_app``: the hub as an ASGI app over the objects it is given.

Adding a router
---------------
Each resource is one module of this package with a function
``router(hub) -> fastapi.APIRouter``; ``create_app`` includes every module
named in :data:`ROUTERS`, in order.  A new resource is a new module plus one
line there.  The router gets the :class:`~wedmetrics.http.hub.Hub` (engine,
alerts, calendar, stores, tokens, cache, limits, self-metrics) and states what
each route needs with ``Depends(hub.tenant)`` / ``Depends(hub.limited)``.
"""
from __future__ import annotations

import contextlib
import time
from importlib import import_module
from typing import Mapping, Sequence

from fastapi import FastAPI
from fastapi.responses import Response

from .errors import ApiError, error_response, install_error_handlers
from .hub import Hub
from .views import cache_key

__all__ = ["create_app", "ROUTERS", "MAX_QUERY_STRING", "MAX_BODY"]

#: modules of ``wedmetrics.http`` whose ``router(hub)`` the app includes, in order
ROUTERS: tuple[str, ...] = (
    "health",
    "metrics_api",
    "weddings_api",
    "alerts_api",
    "alertmanager_api",
    "stream",
    "metrics",
    "page",
)

#: ``/api/v1/metrics/...`` answers as ``/api/metrics/...`` (kept out of the schema)
VERSIONED_PREFIX = "/api/v1/metrics/"

MAX_QUERY_STRING = 4096          # bytes; longer query strings answer 414
MAX_BODY = 64 * 1024             # bytes; larger request bodies answer 413


def create_app(engine=None, alerts=None, calendar=None, storage=None,
               tokens: Mapping[str, str] | None = None,
               cors_origins: Sequence[str] | None = None, cache_ttl="1s",
               rate_limit: str | None = None, redis_url: str | None = None, *,
               redis_prefix: str = "wedmetrics:", stream_interval=1.0,
               metrics_window="5m", title: str = "wedmetrics hub") -> FastAPI:
    """The hub's ASGI app (FastAPI) over the given objects.

    Parameters
    ----------
    engine : MetricsEngine, optional
        The live engine whose series are served.
    alerts : AlertEngine, optional
        Active alerts, history, ack, feedback and silences.
    calendar : WeddingCalendar, optional
        Weddings (default: the alert engine's calendar).
    storage : StorageBackend, or dict of org to StorageBackend, optional
        Stored series (what a fleet flushed), merged with the live engine's.
    tokens : dict of str to str, optional
        Bearer token -> org, or ``"*"`` for operators.  Without tokens every
        caller is an operator: serve such an app on 127.0.0.1 only.
    cors_origins : list of str, optional
        Origins allowed to call from a browser (none by default).
    cache_ttl : float or str
        Identical GET requests of one tenant within this time are answered
        from the cache (``0`` turns it off).
    rate_limit : str, optional
        Per token (or client address), e.g. ``"100/minute"``; 429 with
        ``Retry-After`` beyond it.
    redis_url : str, optional
        ``redis://...``: cache and rate limits shared by every hub process.
    redis_prefix : str
        Prefix of every Redis key of this hub (hubs sharing a prefix share
        their cache and limits).
    stream_interval : float or str
        Period of the server-sent events of ``/api/metrics/stream``.
    metrics_window : float or str
        The window of the quantiles ``/metrics`` exposes (default ``"5m"``).

    Returns
    -------
    fastapi.FastAPI
        Mount it (``parent.mount("/monitoring", app)``) or run it with uvicorn.
    """
    hub = Hub(engine, alerts=alerts, calendar=calendar, storage=storage, tokens=tokens,
              cache_ttl=cache_ttl, rate_limit=rate_limit, redis_url=redis_url,
              redis_prefix=redis_prefix, stream_interval=stream_interval)
    hub.metrics_window = metrics_window

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await hub.aclose()

    app = FastAPI(title=title, version=_version(), lifespan=lifespan,
                  description="Dashboard API of a wedmetrics hub: real-time windows with "
                              "percentiles, buckets, weddings, alerts and silences.")
    app.state.wedmetrics_hub = hub
    install_error_handlers(app)
    for name in ROUTERS:
        app.include_router(import_module(f"{__package__}.{name}").router(hub))
    app.add_middleware(_Guard, hub=hub)
    if cors_origins:       # outside the guard: its answers (cache hits, 413, 414) get CORS too
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins),
                           allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                           allow_headers=["Authorization", "Content-Type"], max_age=600)
    return app


class _Guard:
    """Refuses oversized query strings and bodies before routing, answers fresh cache
    hits without routing (the tenant resolved and the rate limit counted as the routes
    would), and counts every request (route template, method, status, seconds) in the
    hub's self-metrics; cache hits answered here count under the route ``cached``."""

    def __init__(self, app, hub: Hub) -> None:
        self.app = app
        self.hub = hub

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        root = scope.get("root_path", "")      # where a parent app mounted us
        route_path = scope["path"][len(root):] if scope["path"].startswith(root) else scope["path"]
        if route_path.startswith(VERSIONED_PREFIX):
            path = root + "/api/metrics/" + route_path[len(VERSIONED_PREFIX):]
            scope = dict(scope, path=path, raw_path=path.encode("utf-8"))
        started = time.perf_counter()
        status = 500
        if len(scope.get("query_string", b"")) > MAX_QUERY_STRING:
            status = 414
            response = error_response(414, "query", f"query string longer than "
                                                    f"{MAX_QUERY_STRING} bytes")
            await response(scope, receive, send)
            self._count(scope, status, started)
            return
        length = _content_length(scope)
        if length is not None and length > MAX_BODY:
            status = 413
            response = error_response(413, "body", f"request body over {MAX_BODY} bytes")
            await response(scope, receive, send)
            self._count(scope, status, started)
            return

        if scope.get("method") == "GET" and self.hub.cache.enabled:
            if await self._answer_from_cache(scope, receive, send, started):
                return

        async def counting_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, _bounded(receive), counting_send)
        finally:
            self._count(scope, status, started)

    async def _answer_from_cache(self, scope, receive, send, started: float) -> bool:
        headers = dict(scope.get("headers", ()))
        client = scope.get("client")
        try:
            tenant = self.hub.tokens.resolve(
                headers.get(b"authorization", b"").decode("latin-1") or None,
                client[0] if client else "unknown")
        except ApiError:
            return False               # the routes answer the 401
        body = self.hub.cache.peek(cache_key(tenant.org, scope))
        if body is None:
            return False
        if self.hub.limiter is not None:
            try:
                await self.hub.limiter.check(tenant.key)
            except ApiError as exc:
                response = error_response(exc.status, exc.parameter, exc.message, exc.headers)
                await response(scope, receive, send)
                self.hub.metrics.observe_request("cached", "GET", exc.status,
                                                 time.perf_counter() - started)
                return True
        response = Response(body, media_type="application/json", headers={"X-Cache": "hit"})
        await response(scope, receive, send)
        self.hub.metrics.observe_request("cached", "GET", 200, time.perf_counter() - started)
        return True

    def _count(self, scope, status: int, started: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        self.hub.metrics.observe_request(path, scope.get("method", ""), status,
                                         time.perf_counter() - started)


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _bounded(receive):
    """A receive that stops a chunked body at MAX_BODY (no Content-Length to check)."""
    seen = 0

    async def bounded():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > MAX_BODY:
                raise ApiError(413, "body", f"request body over {MAX_BODY} bytes")
        return message

    return bounded


def _version() -> str:
    from .. import __version__

    return __version__
