"""Real peer programs for tests (Prometheus, wrk, uvicorn): found, started on free ports, stopped.

Like the PostgreSQL tests, a test that needs a missing binary is skipped with
the reason, except under ``CI=true``, where it fails.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false")


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        why = f"{name} is not installed (Debian package {name!r})"
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

