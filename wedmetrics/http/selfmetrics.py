"""The hub's own metrics: requests, latency, cache and rate-limit counters.

They live here, in a small object of the hub, not as series of the engine:
the engine belongs to the service (and its tenants), and a request counter of
the hub must not show up in a tenant's series or move its alerts.
:meth:`HubMetrics.families` is what ``/metrics`` renders (Prometheus names,
already expanded into samples).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from .. import Sketch

__all__ = ["HubMetrics", "Family"]

_QUANTILES = (0.5, 0.95, 0.99)


@dataclass
class Family:
    """One metric family: ``samples`` are ``(name, labels, value)`` with the
    name already suffixed (``_total``, ``_count``, ``_sum``) as the text
    format wants it."""

    name: str
    type: str                    # "counter", "gauge" or "summary"
    help: str
    samples: list = field(default_factory=list)


class HubMetrics:
    """Thread-safe counters of one hub (one process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = {}
        self._latency: dict[str, list] = {}          # route -> [count, sum, Sketch]
        self.cache = {"hits": 0, "misses": 0, "coalesced": 0, "shared_hits": 0, "errors": 0}
        self.rate_limited = 0
        self.rate_limit_errors = 0
        self.stream_clients = 0

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (route, method, status)
            self._requests[key] = self._requests.get(key, 0) + 1
            slot = self._latency.get(route)
            if slot is None:
                slot = self._latency[route] = [0, 0.0, Sketch()]
            slot[0] += 1
            slot[1] += seconds
            slot[2].add(seconds if seconds > 0 else 0.0)

    def count_cache(self, outcome: str, n: int = 1) -> None:
        with self._lock:
            self.cache[outcome] += n

    def count_rate_limited(self) -> None:
        with self._lock:
            self.rate_limited += 1

    def count_limit_error(self) -> None:
        with self._lock:
            self.rate_limit_errors += 1

    def cache_hit_ratio(self) -> float:
        """Hits (own and shared) over lookups; 0 before the first lookup."""
        with self._lock:
            hits = self.cache["hits"] + self.cache["shared_hits"] + self.cache["coalesced"]
            total = hits + self.cache["misses"]
        return hits / total if total else 0.0

    def snapshot(self) -> dict:
        """Plain numbers, for tests and the JSON stats."""
        with self._lock:
            return {"requests": sum(self._requests.values()), "cache": dict(self.cache),
                    "rate_limited": self.rate_limited,
                    "rate_limit_errors": self.rate_limit_errors, "stream_clients": self.stream_clients}

    def families(self) -> list[Family]:
        """The families ``/metrics`` exposes, sorted by name within each."""
        with self._lock:
            requests = Family("wedmetrics_hub_requests", "counter",
                              "HTTP requests answered by the hub, by route, method and status")
            for (route, method, status), n in sorted(self._requests.items()):
                requests.samples.append(("wedmetrics_hub_requests_total",
                                         {"route": route, "method": method,
                                          "status": str(status)}, float(n)))
            latency = Family("wedmetrics_hub_request_seconds", "summary",
                             "Time to answer a request, by route (quantiles since start)")
            for route, (count, total, sketch) in sorted(self._latency.items()):
                for q, v in zip(_QUANTILES, sketch.quantiles(_QUANTILES)):
                    latency.samples.append(("wedmetrics_hub_request_seconds",
                                            {"route": route, "quantile": f"{q:g}"}, float(v)))
                latency.samples.append(("wedmetrics_hub_request_seconds_count",
                                        {"route": route}, float(count)))
                latency.samples.append(("wedmetrics_hub_request_seconds_sum",
                                        {"route": route}, float(total)))
            cache = Family("wedmetrics_hub_cache_lookups", "counter",
                           "Response cache lookups by outcome: hits, shared_hits (Redis), "
                           "coalesced (waited for an identical miss), misses, errors")
            for outcome, n in sorted(self.cache.items()):
                cache.samples.append(("wedmetrics_hub_cache_lookups_total",
                                      {"outcome": outcome}, float(n)))
            limited = Family("wedmetrics_hub_rate_limited", "counter",
                             "Requests answered 429 by the rate limit")
            limited.samples.append(("wedmetrics_hub_rate_limited_total", {},
                                    float(self.rate_limited)))
            limit_errors = Family("wedmetrics_hub_rate_limit_errors", "counter",
                                  "Rate-limit checks whose shared storage failed (let through)")
            limit_errors.samples.append(("wedmetrics_hub_rate_limit_errors_total", {},
                                         float(self.rate_limit_errors)))
            streams = Family("wedmetrics_hub_stream_clients", "gauge",
                             "Server-sent event streams open now")
            streams.samples.append(("wedmetrics_hub_stream_clients", {},
                                    float(self.stream_clients)))
        ratio = Family("wedmetrics_hub_cache_hit_ratio", "gauge",
                       "Cache hits over lookups since start")
        ratio.samples.append(("wedmetrics_hub_cache_hit_ratio", {}, self.cache_hit_ratio()))
        return [cache, ratio, limit_errors, limited, latency, requests, streams]
