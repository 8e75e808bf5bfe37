"""The answers the routers share: real-time statistics, alert views, cached JSON.

Plain functions of the hub and the tenant, so the stream and the wedding page
answer with exactly what ``/real-time`` and ``/alerts`` would.
"""
from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from .errors import ApiError
from .models import AlertModel, EngineStats, RealTime, SeriesStats, finite
from .tenancy import ORG_LABEL, Tenant

__all__ = ["realtime", "series_stats", "visible_alerts", "alert_model", "alert_visible",
           "answer", "MAX_SERIES"]

MAX_SERIES = 10_000


def series_stats(hub, ref, seconds: float, now: float) -> SeriesStats:
    w = hub.catalog.window(ref, seconds, now)
    per = w.sum if ref.kind == "counter" else w.count
    empty = not w.count
    return SeriesStats(
        name=ref.name, labels=ref.labels, kind=ref.kind, count=w.count,
        rate=per / seconds if seconds > 0 else 0.0,
        mean=None if empty else finite(w.mean), min=None if empty else finite(w.min),
        max=None if empty else finite(w.max), p50=None if empty else finite(w.p50),
        p95=None if empty else finite(w.p95), p99=None if empty else finite(w.p99),
        alpha=None if empty else finite(w.alpha))


def realtime(hub, tenant: Tenant, name: str | None, matchers, seconds: float,
             limit: int) -> RealTime:
    refs, truncated = hub.catalog.select(tenant, name, matchers, limit=limit)
    # a name nobody (visible) records is unknown; a known name the matchers
    # exclude is an empty answer
    if not refs and name is not None and (not matchers or not hub.catalog.select(tenant, name)[0]):
        raise ApiError(404, "name", f"no series named {name!r}")
    now = hub.now()
    engine = None
    if tenant.operator and hub.engine is not None:
        st = hub.engine.stats()
        engine = EngineStats(accepted=st["accepted"], dropped=st["dropped"],
                             series=st["series"], memory_bytes=st["memory_bytes"])
    return RealTime(now=now, window=seconds, truncated=truncated, engine=engine,
                    series=[series_stats(hub, r, seconds, now) for r in refs])


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


async def answer(hub, request: Request, tenant: Tenant, build) -> Response:
    """``build()``'s model as JSON, through the tenant's cache (``X-Cache`` says how)."""
    query = sorted(request.query_params.multi_items())
    key = f"{tenant.org}\x00{request.url.path}\x00{query!r}"
    body, outcome = await hub.cache.get_or_compute(
        key, lambda: build().model_dump_json().encode("utf-8"))
    return Response(body, media_type="application/json", headers={"X-Cache": outcome})

