"""Helpers of the hub tests: the app under a real uvicorn server on a free 127.0.0.1 port, and Redis for the shared parts.

Redis is the machine's server at ``WEDMETRICS_REDIS_URL`` (default
``redis://127.0.0.1:6379/0``); tests using it are skipped when it does not
answer, unless ``CI`` is set, where they fail.
"""
from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid

import pytest


import httpx
import uvicorn

REDIS_URL = os.environ.get("WEDMETRICS_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false")


@contextlib.contextmanager
def live_server(app, *, timeout: float = 10.0):
    """Serve ``app`` with uvicorn in a thread; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


def redis_problem() -> str | None:
    try:
        import redis
    except ImportError as exc:
        return f"redis-py is not installed ({exc})"
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
        client.close()
    except Exception as exc:
        return f"no Redis server at {REDIS_URL}: {exc}"
    return None


def require_redis() -> None:
    problem = redis_problem()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"CI is set, so the Redis tests must run: {problem}")
        pytest.skip(problem)


def get(base: str, path: str, token: str | None = None, **params) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(base + path, params=params, headers=headers, timeout=10.0)
