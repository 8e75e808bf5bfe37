"""The hub: the objects one app serves (engine, alerts, calendar, stores) and its policies.

Routers receive the :class:`Hub` when they are built (``router(hub)``), so a
route names everything it uses and there is no module-level state: two apps
in one process never share anything.
"""
from __future__ import annotations

import time
from typing import Mapping

from fastapi import Depends, Request

from ..clock import parse_duration
from .cache import ResponseCache
from .catalog import Catalog
from .selfmetrics import HubMetrics
from .tenancy import Tenant, TokenTable

__all__ = ["Hub"]


class Hub:
    """What :func:`~wedmetrics.http.create_app` was given, plus its per-app helpers.

    Attributes
    ----------
    engine : MetricsEngine or None
        The live engine (its series and windows), if any.
    alerts : AlertEngine or None
    calendar : WeddingCalendar or None
        Default: the alert engine's calendar.
    stores : dict of org to StorageBackend
        Stored series per org (what a fleet flushed); a tenant reads its org's.
    tokens : TokenTable
    metrics : HubMetrics
        The hub's own request, cache and rate-limit counters (``/metrics``).
    catalog : Catalog
        The series a tenant sees, and their windows and buckets.
    cache : ResponseCache
    limiter : RateLimiter or None
    tenant, limited :
        FastAPI dependencies: ``Depends(hub.tenant)`` gives the request's
        :class:`~wedmetrics.http.tenancy.Tenant`; ``Depends(hub.limited)``
        also counts the request against the rate limit (and gives the tenant).
    """

    def __init__(self, engine=None, *, alerts=None, calendar=None, storage=None,
                 tokens: Mapping[str, str] | None = None, cache_ttl=1.0,
                 rate_limit: str | None = None, redis_url: str | None = None,
                 redis_prefix: str = "wedmetrics:", stream_interval=1.0) -> None:
        if engine is None and alerts is not None:
            engine = alerts.engine
        self.engine = engine
        self.alerts = alerts
        if calendar is None and alerts is not None:
            calendar = getattr(alerts, "calendar", None)
        self.calendar = calendar
        self.stores = _stores_by_org(storage)
        self.tokens = TokenTable(tokens)
        self.metrics = HubMetrics()
        self.catalog = Catalog(self)
        own = getattr(engine, "storage", None)
        #: rows the live engine wrote itself are in its memory: stores leave them out
        self.live_writer = getattr(own, "writer_id", None)
        self.live_widths = tuple(w for _, w in engine.resolutions) if engine is not None else ()
        self.stream_interval = parse_duration(stream_interval)
        self.redis_url = redis_url
        self.redis = None
        if redis_url:
            import redis.asyncio

            if not redis_url.startswith(("redis://", "rediss://", "unix://")):
                raise ValueError(f"redis_url must be redis://, rediss:// or unix://, got {redis_url!r}")
            self.redis = redis.asyncio.Redis.from_url(redis_url, socket_timeout=2.0,
                                                      socket_connect_timeout=2.0)
        self.cache = ResponseCache(parse_duration(cache_ttl), self.metrics, self.redis,
                                   redis_prefix)
        self.limiter = None
        if rate_limit:
            from .ratelimit import RateLimiter

            self.limiter = RateLimiter(rate_limit, self.metrics, self.redis, redis_prefix)
        hub = self

        async def limited(tenant: Tenant = Depends(self.tenant)) -> Tenant:
            if hub.limiter is not None:
                await hub.limiter.check(tenant.key)
            return tenant

        self.limited = limited

    # -- dependencies (FastAPI ``Depends``) ------------------------------------
    async def tenant(self, request: Request) -> Tenant:
        """The tenant of a request (401 JSON for a missing or unknown token).  Async, like
        every route here: FastAPI would run a sync dependency on a worker thread."""
        client = request.client.host if request.client else "unknown"
        return self.tokens.resolve(request.headers.get("authorization"), client)

    async def aclose(self) -> None:
        """Close the Redis connections (the app's shutdown calls it)."""
        if self.redis is not None:
            await self.redis.aclose()

    # -- time and health -----------------------------------------------------------
    def now(self) -> float:
        """The engine's now (a simulated clock in the demo), else the wall clock."""
        if self.engine is not None:
            return self.engine.now()
        return time.time()

    def readiness(self) -> dict[str, str]:
        """``{"engine": "ok", "store:<org>": "ok" | error text}``: every store answers a read."""
        checks = {}
        if self.engine is not None:
            try:
                self.engine.stats()
                checks["engine"] = "ok"
            except Exception as exc:  # a broken engine is "not ready", with its reason
                checks["engine"] = f"{type(exc).__name__}: {exc}"[:300]
        for org, store in self.stores.items():
            try:
                store.read_alert_events(0.0, 0.0)     # an empty range: a round trip, no rows
                checks[f"store:{org}"] = "ok"
            except Exception as exc:  # any driver error means "not ready", with its text
                checks[f"store:{org}"] = f"{type(exc).__name__}: {exc}"[:300]
        return checks


def _stores_by_org(storage) -> dict:
    if storage is None:
        return {}
    if isinstance(storage, Mapping):
        stores = dict(storage)
        for org, store in stores.items():
            if getattr(store, "org_id", org) != org:
                raise ValueError(f"storage[{org!r}] is a backend of org {store.org_id!r}")
        return stores
    if isinstance(storage, (list, tuple)):
        return {s.org_id: s for s in storage}
    return {storage.org_id: storage}
