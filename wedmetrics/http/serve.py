"""``python -m wedmetrics serve``: a standalone hub over a store.

It serves what any number of service instances flushed into the store: their
stored buckets merged (rows of every writer, sketches merged), per org.  Each
org a token names (and each ``--org``) gets its own backend on the store.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import sys

__all__ = ["main", "open_store", "is_loopback", "BackgroundServer"]

DEFAULT_STORAGE = "sqlite:///metrics.db"


def open_store(url: str, org: str, *, schema: str = "wedmetrics"):
    """A backend of ``org`` on ``sqlite:///path`` or ``postgresql://...``."""
    from ..storage import SQLiteBackend, TimescaleBackend

    if url.startswith("sqlite://"):
        path = url[len("sqlite://"):]
        if path.startswith("/"):
            path = path[1:]          # sqlite:///rel.db -> rel.db, sqlite:////abs.db -> /abs.db
        if not path:
            raise ValueError(f"no file in {url!r}: use sqlite:///metrics.db")
        return SQLiteBackend(path, org_id=org)
    if url.startswith(("postgresql://", "postgres://")):
        return TimescaleBackend(url, org_id=org, schema=schema)
    raise ValueError(f"--storage must be sqlite:///FILE or postgresql://..., got {url!r}")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_mapping(path: str, what: str):
    import yaml

    with open(path, encoding="utf-8") as f:
        text = f.read()
    data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    if what == "tokens" and not isinstance(data, dict):
        raise ValueError(f"{path}: tokens must be a mapping of token to org")
    if what == "weddings" and not isinstance(data, list):
        raise ValueError(f"{path}: weddings must be a list of weddings")
    return data


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m wedmetrics serve",
                                description="Serve the dashboard API over a store")
    p.add_argument("--storage", default=DEFAULT_STORAGE,
                   help=f"sqlite:///FILE or postgresql://... (default {DEFAULT_STORAGE})")
    p.add_argument("--org", action="append", default=[],
                   help="org whose stored series are served (repeatable; default: 'default', "
                        "plus every org a token names)")
    p.add_argument("--schema", default="wedmetrics", help="PostgreSQL schema")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--tokens", help="YAML or JSON file: bearer token -> org (or '*')")
    p.add_argument("--weddings", help="YAML or JSON file: a list of weddings")
    p.add_argument("--redis", help="redis://...: cache and rate limits shared by hub processes")
    p.add_argument("--redis-prefix", default="wedmetrics:")
    p.add_argument("--cors", action="append", default=[], help="allowed origin (repeatable)")
    p.add_argument("--cache-ttl", default="1s")
    p.add_argument("--rate-limit", default="1200/minute",
                   help="per token or client address; 'none' for no limit")
    p.add_argument("--insecure", action="store_true",
                   help="allow a public bind without tokens (everyone is an operator)")
    p.add_argument("--log-level", default="info")
    return p


def build_app(args):
    """The app and the stores it opened (the caller closes them)."""
    from ..weddings import WeddingCalendar
    from .app import create_app

    tokens = _read_mapping(args.tokens, "tokens") if args.tokens else None
    orgs = list(args.org) or ["default"]
    for org in (tokens or {}).values():
        if org != "*" and org not in orgs:
            orgs.append(org)
    calendar = WeddingCalendar(_read_mapping(args.weddings, "weddings")) if args.weddings else None
    stores = {}
    try:
        for org in orgs:
            stores[org] = open_store(args.storage, org, schema=args.schema)
        rate = None if args.rate_limit.lower() == "none" else args.rate_limit
        app = create_app(None, calendar=calendar, storage=stores, tokens=tokens,
                         cors_origins=args.cors or None, cache_ttl=args.cache_ttl,
                         rate_limit=rate, redis_url=args.redis, redis_prefix=args.redis_prefix)
    except BaseException:
        for store in stores.values():
            store.close()
        raise
    return app, stores


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not is_loopback(args.host) and not args.tokens and not args.insecure:
        parser.error(f"refusing to bind {args.host} without --tokens: every caller would be an "
                     f"operator seeing every org (give --tokens FILE, or --insecure)")
    try:
        app, stores = build_app(args)
    except Exception as exc:    # a bad file, URL or unreachable store: say which, no traceback
        print(f"wedmetrics serve: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    finally:
        for store in stores.values():
            store.close()
    return 0


class BackgroundServer:
    """An app served by uvicorn on a thread of this process (the demo's ``--serve``).

    The socket is bound here, so a port in use fails at once with ``OSError``.
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0,
                 log_level: str = "warning") -> None:
        import socket
        import threading

        import uvicorn

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError:
            self._sock.close()
            raise
        self.port = self._sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level=log_level,
                                                     timeout_graceful_shutdown=2))
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._sock]},
                                        name="wedmetrics-hub", daemon=True)
        self._thread.start()

    def wait_started(self, timeout: float = 10.0) -> bool:
        import time

        deadline = time.monotonic() + timeout
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return self._server.started

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        self._sock.close()
