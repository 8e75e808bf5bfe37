"""``/api/metrics/stream``: server-sent events, once a second, framed by sse-starlette.

Events:

* ``realtime``: what ``/real-time`` answers for the same parameters (through
  the same cache, so a thousand dashboards cost one computation a TTL);
* ``alerts``: the tenant's active alerts, sent first and whenever the set or
  a state changes (fired, resolved, acknowledged, silenced).
"""
from __future__ import annotations

import asyncio
import json
from typing import Optional

from fastapi import APIRouter, Depends, Query, Request
from sse_starlette.sse import EventSourceResponse

from . import params
from .errors import ERROR_RESPONSES
from .metrics_api import MAX_WINDOW
from .models import AlertList
from .tenancy import Tenant
from .views import realtime, to_json, visible_alerts

__all__ = ["router"]


def router(hub) -> APIRouter:
    api = APIRouter(prefix="/api/metrics", tags=["stream"], responses=ERROR_RESPONSES)

    @api.get("/stream", summary="Server-sent events: the real-time view and alert changes",
             response_class=EventSourceResponse,
             responses={200: {"content": {"text/event-stream": {}},
                              "description": "events `realtime` and `alerts`, JSON data"}})
    async def stream(request: Request, tenant: Tenant = Depends(hub.limited),
                     name: Optional[str] = Query(None, min_length=1, max_length=200),
                     match: list[str] = Query([]),
                     window: str = Query("5m", max_length=40),
                     limit: int = Query(200, ge=1, le=2000)):
        seconds = params.duration(window, "window", least=1.0, most=MAX_WINDOW)
        matchers = params.matchers(match)
        # an unknown name answers 404 now, not as a broken stream later
        realtime(hub, tenant, name, matchers, seconds, limit)
        key = f"{tenant.org}\x00stream\x00{name}\x00{[str(m) for m in matchers]}\x00{seconds}\x00{limit}"

        async def events():
            last_alerts = None
            hub.metrics.stream_clients += 1
            try:
                while True:
                    if await request.is_disconnected():
                        return
                    body, _ = await hub.cache.get_or_compute(
                        key, lambda: to_json(realtime(hub, tenant, name, matchers, seconds,
                                                      limit)))
                    yield {"event": "realtime", "data": body.decode("utf-8")}
                    alerts = AlertList(alerts=visible_alerts(hub, tenant)).model_dump(mode="json")
                    # a change is an alert's arrival, departure or state, not its value
                    digest = json.dumps([(a["id"], a["state"], a["acked_by"], a["silenced_by"])
                                         for a in alerts["alerts"]])
                    if digest != last_alerts:
                        last_alerts = digest
                        yield {"event": "alerts", "data": json.dumps(alerts)}
                    await asyncio.sleep(hub.stream_interval)
            finally:
                hub.metrics.stream_clients -= 1

        return EventSourceResponse(events(), ping=15, send_timeout=10)

    return api
