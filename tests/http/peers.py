"""The real peers of the exposition and page tests: promtool, a scraping Prometheus, a WSGI server.

Finding binaries (skip, or fail under ``CI``), free ports and stopping
processes come from the shared :mod:`tests.peers`; what only these tests
need is here.
"""
from __future__ import annotations

import contextlib
import subprocess
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from tests.peers import free_port, require_binary, stop, wait_http, wait_until


def promtool_check(body: bytes) -> subprocess.CompletedProcess:
    promtool = require_binary("/usr/bin/promtool")
    return subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                          timeout=60)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:   # keep test output clean
        pass


@contextlib.contextmanager
def wsgi_server(app):
    """``app`` under the stdlib's WSGI server on a free 127.0.0.1 port."""
    server = make_server("127.0.0.1", 0, app, server_class=WSGIServer,
                         handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="test-wsgi", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def prometheus(targets: list[dict], tmp_path, *, timeout: float = 30.0):
    """A real Prometheus scraping ``targets`` every second; yields its base URL.

    ``targets`` are scrape jobs: ``{"job": name, "target": "127.0.0.1:port",
    "path": "/metrics", "params": {...}, "token": ...}``.
    """
    binary = require_binary("/usr/bin/prometheus")
    port = free_port()
    lines = ["global:", "  scrape_interval: 1s", "  scrape_timeout: 900ms", "scrape_configs:"]
    for t in targets:
        lines += [f"  - job_name: {t['job']}", f"    metrics_path: {t.get('path', '/metrics')}",
                  "    static_configs:", f"      - targets: ['{t['target']}']"]
        if t.get("params"):
            lines.append("    params:")
            lines += [f"      {k}: ['{v}']" for k, v in t["params"].items()]
        if t.get("token"):
            lines += ["    authorization:", f"      credentials: {t['token']}"]
    config = tmp_path / "prometheus.yml"
    config.write_text("\n".join(lines) + "\n")
    log = open(tmp_path / "prometheus.log", "wb")
    proc = subprocess.Popen([binary, f"--config.file={config}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}",
                             "--storage.tsdb.retention.time=1h"],
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_http(base + "/-/ready", timeout=timeout, proc=proc)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError("prometheus did not become ready:\n"
                               + (tmp_path / "prometheus.log").read_text()[-2000:]) from exc
        yield base
    finally:
        stop(proc, timeout=10)
        log.close()


def wait_for(predicate, *, timeout: float = 30.0, interval: float = 0.2):
    """Poll ``predicate()`` until it returns something truthy, at most ``timeout`` s."""
    return wait_until(predicate, timeout=timeout, step=interval)
