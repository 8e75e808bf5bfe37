"""Response cache per tenant with a TTL; concurrent identical misses compute once.

In one process a miss in progress is a future the identical requests wait
for.  With Redis the answer is shared by every hub process: the first
process to miss takes a short lock key (``SET NX PX``), computes and stores
the body with the TTL; the others wait for it (bounded) instead of
computing too.  A Redis failure never fails a request: it is counted
(``errors``) and the answer is computed here.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Callable

__all__ = ["ResponseCache"]

log = logging.getLogger("wedmetrics.http.cache")

_WAIT_STEP = 0.005        # seconds between looks at Redis while another process computes


class ResponseCache:
    """Bodies by key for ``ttl`` seconds (``ttl <= 0``: no caching).

    Parameters
    ----------
    ttl : float
        Seconds an answer is reused.
    metrics : HubMetrics
        Where hits, misses, coalesced waits, shared (Redis) hits and errors are counted.
    redis : redis.asyncio.Redis, optional
        Shared store; keys are ``{prefix}cache:{sha256 of the key}``.
    max_entries : int
        Bound of the in-process part (expired entries go first, then the oldest).
    """

    def __init__(self, ttl: float, metrics, redis=None, prefix: str = "wedmetrics:",
                 max_entries: int = 10_000) -> None:
        self.ttl = float(ttl)
        self.metrics = metrics
        self.redis = redis
        self.prefix = prefix
        self.max_entries = max_entries
        self._local: dict[str, tuple[float, bytes]] = {}
        self._inflight: dict[str, asyncio.Future] = {}

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def peek(self, key: str) -> bytes | None:
        """The body of ``key`` while it is fresh in this process (counted as a hit), or None."""
        if self.ttl <= 0:
            return None
        entry = self._local.get(key)
        if entry is None or entry[0] <= time.monotonic():
            return None
        self.metrics.count_cache("hits")
        return entry[1]

    async def get_or_compute(self, key: str, compute: Callable[[], bytes]) -> tuple[bytes, str]:
        """The body for ``key`` and how it was found: ``hit``, ``coalesced``,
        ``shared`` (from Redis), ``miss`` or ``off``.  An exception of
        ``compute`` reaches every waiter and is not cached."""
        if self.ttl <= 0:
            return compute(), "off"
        now = time.monotonic()
        entry = self._local.get(key)
        if entry is not None and entry[0] > now:
            self.metrics.count_cache("hits")
            return entry[1], "hit"
        waiting = self._inflight.get(key)
        if waiting is not None:
            self.metrics.count_cache("coalesced")
            return await asyncio.shield(waiting), "coalesced"
        future = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            body, outcome = await self._fill(key, compute)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()          # retrieved: waiters re-raise it, nobody else must
            raise
        finally:
            del self._inflight[key]
        self._remember(key, body)
        future.set_result(body)
        return body, outcome

    async def _fill(self, key: str, compute: Callable[[], bytes]) -> tuple[bytes, str]:
        if self.redis is None:
            self.metrics.count_cache("misses")
            return compute(), "miss"
        rkey = f"{self.prefix}cache:{hashlib.sha256(key.encode()).hexdigest()}"
        ttl_ms = max(1, int(self.ttl * 1000))
        try:
            body = await self.redis.get(rkey)
            if body is not None:
                self.metrics.count_cache("shared_hits")
                return body, "shared"
            mine = await self.redis.set(rkey + ":lock", b"1", nx=True, px=max(ttl_ms, 1000))
            if not mine:
                deadline = time.monotonic() + min(1.0, max(0.05, self.ttl))
                while time.monotonic() < deadline:
                    await asyncio.sleep(_WAIT_STEP)
                    body = await self.redis.get(rkey)
                    if body is not None:
                        self.metrics.count_cache("coalesced")
                        return body, "coalesced"
        except Exception as exc:   # Redis down or slow: answer anyway, count it
            self.metrics.count_cache("errors")
            log.warning("response cache: Redis failed (%s); computing locally", exc)
            self.metrics.count_cache("misses")
            return compute(), "miss"
        self.metrics.count_cache("misses")
        body = compute()
        try:
            await self.redis.set(rkey, body, px=ttl_ms)
            if mine:
                await self.redis.delete(rkey + ":lock")
        except Exception as exc:
            self.metrics.count_cache("errors")
            log.warning("response cache: storing in Redis failed (%s)", exc)
        return body, "miss"

    def _remember(self, key: str, body: bytes) -> None:
        now = time.monotonic()
        if len(self._local) >= self.max_entries:
            for k in [k for k, (exp, _) in self._local.items() if exp <= now]:
                del self._local[k]
            while len(self._local) >= self.max_entries:
                del self._local[next(iter(self._local))]
        self._local[key] = (now + self.ttl, body)
