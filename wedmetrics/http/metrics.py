"""``GET /metrics``: the Prometheus exposition of the hub's engine and of the hub itself.

An operator (or any caller of a hub without tokens) sees every series and the
hub's own request, cache and rate-limit metrics; a tenant's token sees only the
series of its org (``org_id`` label) and of its weddings (``wedding_id``).
Scrapes are authenticated but not rate limited: a scraper is expected to
come back every interval.
The rendering is :mod:`wedmetrics.http.exposition`, shared with the
standalone :func:`~wedmetrics.http.metrics_app`.
"""
from __future__ import annotations

import functools
from typing import Literal, Optional

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from .exposition import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, Exposition, off_loop
from .tenancy import Tenant

__all__ = ["router"]


def router(hub) -> APIRouter:
    api = APIRouter(tags=["metrics"])
    if getattr(hub, "exposition", None) is None:
        hub.exposition = Exposition(hub.engine, window=getattr(hub, "metrics_window", "5m"),
                                    extra=hub.metrics.families)

    @api.get("/metrics", summary="Prometheus exposition (text 0.0.4, or OpenMetrics 1.0)",
             response_class=Response,
             responses={200: {"content": {TEXT_CONTENT_TYPE: {}, OPENMETRICS_CONTENT_TYPE: {}},
                              "description": "Every visible series: summaries of "
                                             "distributions, counters, gauges"}})
    async def metrics(request: Request, tenant: Tenant = Depends(hub.tenant),
                      format: Optional[Literal["text", "openmetrics"]] = Query(
                          None, description="Overrides the Accept header")) -> Response:
        accept = request.headers.get("accept")
        if tenant.operator:
            render = functools.partial(hub.exposition.render, accept, format=format)
        else:
            render = functools.partial(hub.exposition.render, accept, format=format,
                                       select=_tenant_filter(hub, tenant), cache_key=tenant.org,
                                       include_extra=False)
        body, ctype = await off_loop(render)     # 10,000 series must not hold the loop
        return Response(body, media_type=ctype, headers={"Cache-Control": "no-store"})

    return api


def _tenant_filter(hub, tenant: Tenant):
    # the same rule as every other route: the catalog's
    return lambda handle: hub.catalog.labels_visible(tenant, handle.labels)
