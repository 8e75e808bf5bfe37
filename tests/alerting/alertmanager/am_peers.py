"""Real peers for the Alertmanager tests: binaries, a uvicorn server, free ports.

A missing binary skips the test with the reason, unless ``CI`` is set, where
it fails (the tests are required there).
"""
from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import socket
import threading
import time

import pytest

IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false")


def require_binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
    if path is None:
        if IN_CI:
            pytest.fail(f"CI is set, so the {name} tests must run, but {name} is not installed")
        pytest.skip(f"{name} is not installed (Debian package: prometheus / prometheus-alertmanager)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(app):
    """Run an ASGI app with uvicorn on 127.0.0.1 in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_until(predicate, timeout: float = 20.0, step: float = 0.1, info=None):
    """Poll ``predicate`` (bounded in time); returns its last truthy value or fails."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s" + (f": {info()}" if info else ""))
        time.sleep(step)


class Hook:
    """A local webhook receiver recording Alertmanager-format bodies."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        hook = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length", 0))
                hook.bodies.append(json.loads(self.rfile.read(n)))
                self.send_response(200)
                self.end_headers()

            def do_GET(self):  # noqa: N802 - a tiny /metrics for Prometheus to scrape
                body = b"# TYPE wedding_guests gauge\nwedding_guests 150\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.server.serve_forever, name="hook", daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
