"""HTTP middleware (ASGI and WSGI) recording each request's latency by route and status.

One distribution series per ``(method, route, status)``: its bucket count is
the request count, its sketch the latency distribution, so a request costs
one clock reading pair, one dict lookup and one ``record`` call.

>>> import wedmetrics as wm
>>> from wedmetrics.collect import ASGIMetricsMiddleware
>>> engine = wm.MetricsEngine(clock=wm.ManualClock(0.0))
>>> async def app(scope, receive, send):
...     await send({"type": "http.response.start", "status": 204, "headers": []})
...     await send({"type": "http.response.body", "body": b""})
>>> app = ASGIMetricsMiddleware(app, engine)

The route label is the route *template* (``/weddings/{wedding_id}``) where
the framework exposes it: Starlette and FastAPI leave the matched route in
``scope["route"]``.  Elsewhere (plain ASGI apps, WSGI apps without a
``route_of`` hook) the raw path is used for the first ``max_paths``
distinct paths and ``"<other>"`` after that, and a 404 without a matched
route is always ``"<unmatched>"``, so a scanner walking random URLs cannot
create series without bound.
"""
from __future__ import annotations

import threading
from time import perf_counter as _perf_counter
from typing import Any, Callable, Iterable, Mapping

__all__ = ["ASGIMetricsMiddleware", "WSGIMetricsMiddleware", "RouteLabels",
           "DEFAULT_METRIC", "UNMATCHED", "OTHER"]

DEFAULT_METRIC = "http.server.duration"
UNMATCHED = "<unmatched>"
OTHER = "<other>"


class RouteLabels:
    """The handle of each ``(method, route, status)``, created on first use.

    Shared by both middlewares.  ``max_paths`` bounds how many raw paths
    become labels when no route template is known; the cap is per
    middleware, below the engine's own ``max_series_per_name``.
    """

    __slots__ = ("engine", "name", "labels", "max_paths", "_handles", "_paths", "_lock")

    def __init__(self, engine: Any, name: str = DEFAULT_METRIC,
                 labels: "Mapping[str, str] | None" = None, max_paths: int = 100) -> None:
        if not hasattr(engine, "series"):
            raise TypeError(f"expected a MetricsEngine, got {engine!r}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"metric name must be a non-empty str, got {name!r}")
        if int(max_paths) < 0:
            raise ValueError(f"max_paths must be >= 0, got {max_paths!r}")
        self.engine = engine
        self.name = name
        self.labels = dict(labels or {})
        self.max_paths = int(max_paths)
        self._handles: dict[tuple, Any] = {}
        self._paths: set[str] = set()
        self._lock = threading.Lock()

    def fallback(self, path: str, status: int) -> str:
        """The label of a path without a known route template."""
        if status == 404:
            return UNMATCHED
        if path in self._paths:
            return path
        with self._lock:
            if len(self._paths) < self.max_paths:
                self._paths.add(path)
                return path
        return OTHER

    def handle(self, method: str, route: str, status: int):
        key = (method, route, status)
        h = self._handles.get(key)
        if h is None:
            labels = dict(self.labels, method=method, route=route, status=str(status))
            h = self.engine.series(self.name, labels=labels, kind="distribution")
            if h is None:   # dropped by the engine's cardinality policy (counted there)
                return None
            self._handles[key] = h
        return h

    def record(self, method: str, route: str, status: int, seconds: float) -> None:
        h = self._handles.get((method, route, status)) or self.handle(method, route, status)
        if h is not None:
            h.record(seconds)


def _template(route: Any, root_path: str, inner_root_path: str) -> "str | None":
    """The route template of a matched Starlette/FastAPI route, mount prefix included."""
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(path, str):
        return None
    # a route inside a Mount knows only its own part of the path; the mount
    # prefix is what Starlette added to root_path on the way in
    prefix = inner_root_path[len(root_path):]
    return prefix + path if prefix else path


class ASGIMetricsMiddleware:
    """ASGI middleware timing every HTTP request from first call to last byte.

    Parameters
    ----------
    app : ASGI application
    engine : MetricsEngine
    name : str
        Metric name (default ``"http.server.duration"``, seconds).
    labels : mapping, optional
        Constant labels added to every series (e.g. ``{"service": "rsvp"}``).
    max_paths : int
        Raw paths kept as labels when no route template is known.

    With FastAPI: ``app.add_middleware(ASGIMetricsMiddleware, engine=engine)``.
    Requests whose app raises are recorded with status 500 and the error
    propagates; websocket and lifespan scopes pass through untouched.
    """

    def __init__(self, app: Callable, engine: Any, *, name: str = DEFAULT_METRIC,
                 labels: "Mapping[str, str] | None" = None, max_paths: int = 100) -> None:
        self.app = app
        self.routes = RouteLabels(engine, name, labels, max_paths)
        # (id of the route, method, status, root path) -> (route, handle): a
        # request of a known route costs one dict lookup, no string work
        self._by_route: dict[tuple, Any] = {}

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        root_path = scope.get("root_path", "")
        t0 = _perf_counter()

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = _perf_counter() - t0
            route = scope.get("route")
            # the server's root_path is the same for every request, so the
            # inner one (grown by mounts) alone decides the mount prefix
            key = (id(route), scope["method"], status, scope.get("root_path", ""))
            entry = self._by_route.get(key)
            if entry is not None and entry[0] is route:
                entry[1].record(elapsed)
            else:
                h = self._resolve(route, key, root_path, scope.get("path", ""))
                if h is not None:
                    h.record(elapsed)

    def _resolve(self, route: Any, key: tuple, root_path: str, path: str):
        _, method, status, inner_root_path = key
        template = _template(route, root_path, inner_root_path) if route is not None else None
        if template is None:
            return self.routes.handle(method, self.routes.fallback(path, status), status)
        h = self.routes.handle(method, template, status)
        if h is not None:
            # keyed by id (routes need not be hashable); the entry keeps the
            # route alive, so its id cannot be reused by another object
            self._by_route[key] = (route, h)
        return h


class WSGIMetricsMiddleware:
    """WSGI middleware timing every request until its response body is closed.

    Parameters are those of :class:`ASGIMetricsMiddleware`, plus
    ``route_of(environ) -> str | None``: the route template of a request
    (WSGI has no standard place for it; return ``None`` to fall back to the
    bounded raw path).  It is called after the app has run, so a framework
    hook that stores the matched rule in ``environ`` can be read there.
    """

    def __init__(self, app: Callable, engine: Any, *, name: str = DEFAULT_METRIC,
                 labels: "Mapping[str, str] | None" = None, max_paths: int = 100,
                 route_of: "Callable[[dict], str | None] | None" = None) -> None:
        self.app = app
        self.routes = RouteLabels(engine, name, labels, max_paths)
        self.route_of = route_of

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        t0 = _perf_counter()
        status = [500]

        def start(status_line: str, headers, exc_info=None):
            status[0] = int(status_line.split(" ", 1)[0])
            return start_response(status_line, headers, exc_info)

        try:
            body = self.app(environ, start)
        except BaseException:
            self._record(environ, 500, t0)
            raise
        return _TimedBody(body, lambda: self._record(environ, status[0], t0))

    def _record(self, environ: dict, status: int, t0: float) -> None:
        elapsed = _perf_counter() - t0
        route = self.route_of(environ) if self.route_of is not None else None
        if route is None:
            route = self.routes.fallback(environ.get("PATH_INFO", ""), status)
        self.routes.record(environ.get("REQUEST_METHOD", "GET"), route, status, elapsed)


class _TimedBody:
    """The app's body iterable; records once when the server closes it (PEP 3333)."""

    __slots__ = ("_body", "_done", "_recorded")

    def __init__(self, body: Iterable[bytes], done: Callable[[], None]) -> None:
        self._body = body
        self._done = done
        self._recorded = False

    def __iter__(self):
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            if not self._recorded:
                self._recorded = True
                self._done()
