"""Real peers for the Alertmanager tests: a uvicorn server without lifespan, a webhook receiver.

Binaries (skip, or fail under ``CI``), free ports and polling come from the
shared :mod:`tests.peers` and are re-exported here for these tests.
"""
from __future__ import annotations

import functools
import http.server
import json
import threading

from tests.peers import free_port, require_binary, serve_asgi, wait_until

__all__ = ["Hook", "free_port", "require_binary", "serve", "wait_until"]

# the v2 router is mounted on a bare FastAPI app whose engines the tests start and close
serve = functools.partial(serve_asgi, lifespan="off")


class Hook:
    """A local webhook receiver recording Alertmanager-format bodies."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.paths: list[str] = []     # the path of each body, in order
        hook = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length", 0))
                hook.paths.append(self.path)
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

    def to(self, path: str) -> list[dict]:
        """The bodies posted to ``path``."""
        return [b for p, b in zip(list(self.paths), list(self.bodies)) if p == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
