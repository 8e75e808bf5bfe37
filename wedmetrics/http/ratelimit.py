"""Rate limits per token (or client address), in process or shared through Redis.

The counting is the ``limits`` package's moving window over its own storage
(memory, or Redis so that every hub process counts against one limit).  Past
the limit a request answers 429 with ``Retry-After``.  A Redis failure lets
the request through (counted and logged): losing the limiter must not take
the dashboards down with it.
"""
from __future__ import annotations

import logging
import math
import time

from .errors import ApiError

__all__ = ["RateLimiter"]

log = logging.getLogger("wedmetrics.http.ratelimit")


class RateLimiter:
    """``spec`` such as ``"100/minute"`` or ``"10 per second"`` (``limits`` notation);
    ``redis`` a ``redis.asyncio.Redis`` whose pool the shared counts use."""

    def __init__(self, spec: str, metrics, redis=None, prefix: str = "wedmetrics:") -> None:
        from limits import parse
        from limits.aio.storage import MemoryStorage, RedisStorage
        from limits.aio.strategies import MovingWindowRateLimiter

        try:
            self.item = parse(spec)
        except ValueError as exc:
            raise ValueError(f"rate_limit {spec!r}: {exc}") from None
        self.spec = spec
        self.metrics = metrics
        if redis is not None:
            # the hub's own connection pool (closed with the hub); the URI only names the kind
            self.storage = RedisStorage("async+redis://", implementation="redispy",
                                        key_prefix=f"{prefix}limits",
                                        connection_pool=redis.connection_pool)
        else:
            self.storage = MemoryStorage()
        self.limiter = MovingWindowRateLimiter(self.storage)

    async def check(self, key: str) -> None:
        """Count one request of ``key``; raise the 429 :class:`ApiError` past the limit."""
        try:
            allowed = await self.limiter.hit(self.item, key)
            if allowed:
                return
            stats = await self.limiter.get_window_stats(self.item, key)
        except Exception as exc:    # the shared storage failed: let the request through
            self.metrics.count_limit_error()
            log.warning("rate limit: storage failed (%s); request allowed", exc)
            return
        self.metrics.count_rate_limited()
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        raise ApiError(429, "Authorization", f"rate limit of {self.spec} exceeded; retry in "
                                             f"{retry} s", {"Retry-After": str(retry)})
