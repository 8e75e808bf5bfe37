"""ASGI and WSGI request middleware: labels, counts, bounded cardinality, errors."""
from __future__ import annotations

import asyncio
import io
import wsgiref.util

import pytest

import wedmetrics as wm
from wedmetrics.collect.middleware import OTHER, UNMATCHED

METRIC = "http.server.duration"


def _series(engine):
    return {(h.labels["method"], h.labels["route"], h.labels["status"]):
            engine.query(h, last="1m").count for h in engine.series_list(METRIC)}


def test_fastapi_routes_are_labelled_by_template(engine):
    fastapi = pytest.importorskip("fastapi")
    httpx = pytest.importorskip("httpx")

    api = fastapi.FastAPI()

    @api.get("/weddings/{wedding_id}/guests")
    async def guests(wedding_id: int):
        return {"n": wedding_id}

    @api.post("/rsvp")
    def rsvp():
        raise fastapi.HTTPException(409, "already answered")

    sub = fastapi.FastAPI()

    @sub.get("/photos/{photo_id}")
    def photo(photo_id: str):
        return {}

    api.mount("/media", sub)
    api.add_middleware(wm.ASGIMetricsMiddleware, engine=engine, labels={"service": "rsvp"})
    async def requests():
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://wm.test") as client:
            for i in range(5):
                assert (await client.get(f"/weddings/{i}/guests")).status_code == 200
            assert (await client.post("/rsvp")).status_code == 409
            assert (await client.get("/media/photos/abc")).status_code == 200
            for i in range(3):
                assert (await client.get(f"/scan/{i}.php")).status_code == 404
    asyncio.run(requests())
    assert _series(engine) == {
        ("GET", "/weddings/{wedding_id}/guests", "200"): 5,
        ("POST", "/rsvp", "409"): 1,
        ("GET", "/media/photos/{photo_id}", "200"): 1,
        ("GET", UNMATCHED, "404"): 3,
    }
    assert all(h.labels["service"] == "rsvp" for h in engine.series_list(METRIC))
    stats = engine.query(METRIC, last="1m")
    assert stats.count == 10 and stats.min > 0


def _asgi_call(app, path, method="GET"):
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
    asyncio.run(app(scope, receive, send))
    return sent


def test_plain_asgi_paths_are_bounded_and_errors_count_as_500(engine):
    async def app(scope, receive, send):
        if scope["path"] == "/boom":
            raise RuntimeError("handler failed")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = wm.ASGIMetricsMiddleware(app, engine, max_paths=3)
    for i in range(10):
        assert _asgi_call(app, f"/p{i}")[0]["status"] == 200
    with pytest.raises(RuntimeError, match="handler failed"):
        _asgi_call(app, "/boom")
    series = _series(engine)
    assert series == {("GET", "/p0", "200"): 1, ("GET", "/p1", "200"): 1,
                      ("GET", "/p2", "200"): 1, ("GET", OTHER, "200"): 7,
                      ("GET", OTHER, "500"): 1}


def test_websocket_and_lifespan_pass_through(engine):
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    app = wm.ASGIMetricsMiddleware(app, engine)

    async def nothing():
        return {}

    for kind in ("lifespan", "websocket"):
        asyncio.run(app({"type": kind}, nothing, nothing))
    assert seen == ["lifespan", "websocket"] and engine.series_count() == 0


def _wsgi_call(app, path, method="GET"):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "wsgi.input": io.BytesIO()}
    wsgiref.util.setup_testing_defaults(environ)
    status = []
    body = app(environ, lambda s, h, exc_info=None: status.append(s))
    chunks = b"".join(body)
    body.close()        # the server's duty (PEP 3333); the point is recorded here
    return status[0], chunks


def test_wsgi_with_a_route_hook_and_fallback(engine):
    def app(environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/boom":
            raise ValueError("broken view")
        if path.startswith("/guests/"):
            environ["myframework.rule"] = "/guests/<int:id>"
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"guest"]
        start_response("404 Not Found", [])
        return [b"no"]

    app = wm.WSGIMetricsMiddleware(app, engine, route_of=lambda env: env.get("myframework.rule"))
    for i in range(4):
        assert _wsgi_call(app, f"/guests/{i}") == ("200 OK", b"guest")
    assert _wsgi_call(app, "/wp-admin")[0] == "404 Not Found"
    with pytest.raises(ValueError, match="broken view"):
        _wsgi_call(app, "/boom")
    assert _series(engine) == {("GET", "/guests/<int:id>", "200"): 4,
                               ("GET", UNMATCHED, "404"): 1, ("GET", "/boom", "500"): 1}


def test_wsgi_under_a_real_server(engine):
    import threading
    import urllib.request
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    server = make_server("127.0.0.1", 0, wm.WSGIMetricsMiddleware(app, engine),
                         handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        for _ in range(3):
            with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/hi") as r:
                assert r.read() == b"hello"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert _series(engine) == {("GET", "/hi", "200"): 3}


def test_bad_arguments(engine):
    with pytest.raises(TypeError, match="MetricsEngine"):
        wm.ASGIMetricsMiddleware(lambda *a: None, object())
    with pytest.raises(ValueError, match="max_paths"):
        wm.WSGIMetricsMiddleware(lambda *a: None, engine, max_paths=-1)
