"""Real peers of the tests (binaries, uvicorn servers): found, started on free ports, stopped.

The one home of what every test package needs from a peer (import it as
``tests.peers``); helpers of a single package live beside its tests
(``tests/http/peers.py``, ``tests/alerting/alertmanager/am_peers.py``).
Like the PostgreSQL tests, a test that needs a missing binary is skipped with
the reason, except under ``CI=true``, where it fails.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false")


def require_binary(name: str) -> str:
    """The path of binary ``name`` (a name or an absolute path); skips or, in CI, fails."""
    path = shutil.which(name) or shutil.which(name, path="/usr/bin")   # also when PATH is bare
    if path is None:
        why = f"{name} is not installed (a Debian package .ci/run installs)"
        if IN_CI:
            pytest.fail(f"CI is set, so this test must run: {why}")
        pytest.skip(why)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers 200 (or fail once ``timeout`` passes)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before {url} "
                               f"answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError as exc:
            last = exc
            if isinstance(exc, urllib.error.HTTPError):
                exc.close()     # "not ready yet" holds its response open
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {last!r}")


def stop(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 20.0) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_until(predicate, timeout: float = 20.0, step: float = 0.1, info=None):
    """Poll ``predicate`` (bounded in time); returns its first truthy value or fails the test.

    ``info``, if given, is called on failure for what to add to the message.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s" + (f": {info()}" if info else ""))
        time.sleep(step)


@contextlib.contextmanager
def serve_asgi(app, *, lifespan: str = "on", timeout: float = 10.0):
    """Serve ASGI ``app`` with uvicorn in a thread on a free 127.0.0.1 port; yields the base URL.

    The socket is bound here and handed to uvicorn, so no other process can
    take the port between choosing and listening.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan=lifespan,
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            thread.join(timeout)
            sock.close()
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


class Prometheus:
    """A Prometheus server with the remote-write receiver on, data in ``data_dir``."""

    def __init__(self, binary: str, work: Path) -> None:
        self.binary = binary
        self.work = work
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (work / "prometheus.yml").write_text("global:\n  scrape_interval: 1m\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Prometheus":
        log = open(self.work / "prometheus.log", "ab")
        self.proc = subprocess.Popen(
            [self.binary, f"--config.file={self.work / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.work / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-remote-write-receiver",
             "--storage.tsdb.retention.time=1d"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_http(self.url + "/-/ready", proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None

    def samples(self, selector: str, at: float, span: str = "2h") -> dict:
        """Raw samples of every series matching ``selector``: {labels: [(ts, value)]}."""
        import json

        q = urllib.parse.urlencode({"query": f"{selector}[{span}]", "time": f"{at:.3f}"})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{q}", timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return {tuple(sorted(s["metric"].items())): [(float(t), float(v)) for t, v in s["values"]]
                for s in body["data"]["result"]}

