"""The answers the routers share: real-time statistics, alert views, cached JSON.

Plain functions of the hub and the tenant, so the stream and the wedding page
answer with exactly what ``/real-time`` and ``/alerts`` would.
"""
from __future__ import annotations

from urllib.parse import parse_qsl

import pydantic_core

from fastapi import Request
from fastapi.responses import Response

from .errors import ApiError
from .models import AlertModel, finite
from .tenancy import ORG_LABEL, Tenant

__all__ = ["realtime", "series_stats", "visible_alerts", "alert_model", "alert_visible",
           "answer", "cache_key", "to_json", "MAX_SERIES"]

MAX_SERIES = 10_000


def series_stats(hub, refs, seconds: float, now: float) -> list[dict]:
    """Window statistics of every ref (one batch read of the live engine), as the JSON
    objects of :class:`~wedmetrics.http.models.SeriesStats` (built as plain dicts: the
    hot path of the dashboards, where a pydantic model per series costs more than the
    windows themselves; the schema tests check the shape)."""
    out = []
    for ref, (count, total, lo, hi, p50, p95, p99, alpha) in zip(
            refs, hub.catalog.windows(refs, seconds, now)):
        per = total if ref.kind == "counter" else count
        item = {"name": ref.name, "labels": ref.labels, "kind": ref.kind, "count": count,
                "rate": per / seconds}
        if count:
            item.update(mean=finite(total / count), min=finite(lo), max=finite(hi),
                        p50=finite(p50), p95=finite(p95), p99=finite(p99), alpha=finite(alpha))
        else:
            item.update(dict.fromkeys(("mean", "min", "max", "p50", "p95", "p99", "alpha")))
        out.append(item)
    return out


def realtime(hub, tenant: Tenant, name: str | None, matchers, seconds: float,
             limit: int) -> dict:
    """The JSON object of :class:`~wedmetrics.http.models.RealTime`."""
    refs, truncated = hub.catalog.select(tenant, name, matchers, limit=limit)
    # a name nobody (visible) records is unknown; a known name the matchers
    # exclude is an empty answer
    if not refs and name is not None and (not matchers or not hub.catalog.select(tenant, name)[0]):
        raise ApiError(404, "name", f"no series named {name!r}")
    now = hub.now()
    engine = None
    if tenant.operator and hub.engine is not None:
        st = hub.engine.stats()
        engine = {"accepted": st["accepted"], "dropped": st["dropped"], "series": st["series"],
                  "memory_bytes": st["memory_bytes"]}
    return {"now": now, "window": seconds, "series": series_stats(hub, refs, seconds, now),
            "truncated": truncated, "engine": engine}


def alert_visible(hub, tenant: Tenant, labels: dict, wedding_id: str | None = None) -> bool:
    if tenant.operator:
        return True
    if labels.get(ORG_LABEL) == tenant.org:
        return True
    probe = dict(labels)
    if wedding_id and "wedding_id" not in probe:
        probe["wedding_id"] = wedding_id
    return hub.catalog.wedding_org(probe) == tenant.org


def alert_model(view) -> AlertModel:
    return AlertModel(id=view.id, rule=view.rule, state=view.state, labels=dict(view.labels),
                      annotations={k: str(v) for k, v in view.annotations.items()},
                      severity=view.severity, value=finite(view.value),
                      active_since=finite(view.active_since), fired_at=finite(view.fired_at),
                      acked_by=view.acked_by, wedding_id=view.wedding_id,
                      silenced_by=list(view.silenced_by), inhibited_by=list(view.inhibited_by))


def visible_alerts(hub, tenant: Tenant, wedding_id: str | None = None) -> list[AlertModel]:
    if hub.alerts is None:
        return []
    out = []
    for view in hub.alerts.active():
        if wedding_id is not None and view.wedding_id != wedding_id:
            continue
        if alert_visible(hub, tenant, view.labels, view.wedding_id):
            out.append(alert_model(view))
    return out


def to_json(answer) -> bytes:
    """A model or a plain JSON object (already without NaN) as UTF-8 JSON."""
    if isinstance(answer, dict):
        return pydantic_core.to_json(answer)     # pydantic's own serializer: several times json's speed
    return answer.model_dump_json().encode("utf-8")


async def answer(hub, request: Request, tenant: Tenant, build) -> Response:
    """``build()``'s answer as JSON, through the tenant's cache (``X-Cache`` says how)."""
    key = cache_key(tenant.org, request.scope)
    body, outcome = await hub.cache.get_or_compute(key, lambda: to_json(build()))
    return Response(body, media_type="application/json", headers={"X-Cache": outcome})


def cache_key(org: str, scope) -> str:
    """One tenant's identical GET: its org, the path and the query's sorted pairs."""
    query = sorted(parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                             keep_blank_values=True))
    return f"{org}\x00{scope['path']}\x00{query!r}"

