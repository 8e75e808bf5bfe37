"""``/api/metrics/real-time``, ``/series``, ``/range`` and ``/hub``: the series a tenant sees."""
from __future__ import annotations

import math
from typing import Optional

from fastapi import APIRouter, Depends, Query, Request

from ..engine import DEFAULT_RESOLUTIONS
from ..clock import parse_duration
from . import params
from .errors import ERROR_RESPONSES, ApiError
from .models import HubStats, Range, RealTime, SeriesBuckets, SeriesInfo, SeriesList
from .tenancy import Tenant
from .views import MAX_SERIES, answer, realtime

__all__ = ["router", "MAX_BUCKETS", "MAX_WINDOW"]

MAX_WINDOW = 86400.0            # real-time windows up to a day
MAX_BUCKETS = 10_000            # buckets of one series in one /range answer
MAX_POINTS = 200_000            # buckets over all series of one /range answer

# one Query object per route: FastAPI binds a parameter object to the route using it
def _name():
    return Query(None, min_length=1, max_length=200, description="Metric name, e.g. api.latency")


def _match():
    return Query([], description='Label matchers, repeatable: route="/photos", status=~"5..", '
                                 'or a selector {route="/photos",status!="200"}')


def _limit():
    return Query(1000, ge=1, le=MAX_SERIES, description="At most this many series")


def router(hub) -> APIRouter:
    api = APIRouter(prefix="/api/metrics", tags=["metrics"], responses=ERROR_RESPONSES)

    @api.get("/real-time", response_model=RealTime, summary="Per series statistics over a window")
    async def real_time(request: Request, tenant: Tenant = Depends(hub.limited),
                        name: Optional[str] = _name(), match: list[str] = _match(),
                        window: str = Query("5m", max_length=40,
                                            description="Window length, e.g. 30s, 5m, 1h"),
                        limit: int = _limit()):
        seconds = params.duration(window, "window", least=1.0, most=MAX_WINDOW)
        matchers = params.matchers(match)
        return await answer(hub, request, tenant,
                            lambda: realtime(hub, tenant, name, matchers, seconds, limit))

    @api.get("/series", response_model=SeriesList, summary="Names and label sets")
    async def series(request: Request, tenant: Tenant = Depends(hub.limited),
                     name: Optional[str] = _name(), match: list[str] = _match(),
                     limit: int = _limit()):
        matchers = params.matchers(match)

        def build() -> SeriesList:
            refs, truncated = hub.catalog.select(tenant, name, matchers, limit=limit)
            if not refs and name is not None and not hub.catalog.select(tenant, name)[0]:
                raise ApiError(404, "name", f"no series named {name!r}")
            return SeriesList(names=sorted({r.name for r in refs}), truncated=truncated,
                              series=[SeriesInfo(name=r.name, labels=r.labels, kind=r.kind,
                                                 live=r.handle is not None,
                                                 stored=bool(r.stores)) for r in refs])

        return await answer(hub, request, tenant, build)

    @api.get("/range", response_model=Range, summary="Buckets of one resolution over a range")
    async def range_(request: Request, tenant: Tenant = Depends(hub.limited),
                     name: str = Query(..., min_length=1, max_length=200,
                                       description="Metric name"),
                     match: list[str] = _match(),
                     resolution: str = Query("1m", max_length=40,
                                             description="Bucket width: one of the resolutions "
                                                         "(1s, 1m, 5m, 1h by default)"),
                     start: Optional[str] = Query(None, max_length=40,
                                                  description="Epoch seconds or ISO 8601; "
                                                              "default end - 1h"),
                     end: Optional[str] = Query(None, max_length=40,
                                                description="Epoch seconds or ISO 8601; "
                                                            "default now"),
                     limit: int = Query(100, ge=1, le=1000, description="At most this many series")):
        width = params.duration(resolution, "resolution", least=0.001, most=86400.0 * 7)
        allowed = hub.live_widths or tuple(parse_duration(r) for r in DEFAULT_RESOLUTIONS)
        if width not in allowed:
            raise ApiError(400, "resolution", f"resolution must be one of "
                                              f"{', '.join(f'{w:g}s' for w in allowed)}")
        matchers = params.matchers(match)
        now = hub.now()
        t1 = params.instant(end, "end", now)
        t0 = params.instant(start, "start", t1 - 3600.0)
        if t0 > t1:
            raise ApiError(400, "start", f"start ({t0:g}) is after end ({t1:g})")
        n_buckets = math.ceil((t1 - t0) / width)
        if n_buckets > MAX_BUCKETS:
            raise ApiError(400, "resolution", f"{n_buckets} buckets of {resolution} from start "
                                              f"to end; at most {MAX_BUCKETS}: use a coarser "
                                              f"resolution or a shorter range")

        def build() -> Range:
            refs, truncated = hub.catalog.select(tenant, name, matchers, limit=limit)
            if not refs and not hub.catalog.select(tenant, name)[0]:
                raise ApiError(404, "name", f"no series named {name!r}")
            if n_buckets * len(refs) > MAX_POINTS:
                raise ApiError(400, "match", f"{len(refs)} series x {n_buckets} buckets is over "
                                             f"{MAX_POINTS}: narrow the matchers or the range")
            return Range(resolution=width, start=t0, end=t1, truncated=truncated, series=[
                SeriesBuckets(name=r.name, labels=r.labels, kind=r.kind,
                              buckets=hub.catalog.buckets(r, width, t0, t1)) for r in refs])

        return await answer(hub, request, tenant, build)

    @api.get("/hub", response_model=HubStats, summary="The hub's own counters (operators)")
    async def hub_stats(tenant: Tenant = Depends(hub.limited)) -> HubStats:
        if not tenant.operator:
            raise ApiError(403, "Authorization", "the hub's own counters are for operators")
        snap = hub.metrics.snapshot()
        return HubStats(requests=snap["requests"], cache=snap["cache"],
                        cache_hit_ratio=hub.metrics.cache_hit_ratio(),
                        rate_limited=snap["rate_limited"],
                        stream_clients=snap["stream_clients"])

    return api
