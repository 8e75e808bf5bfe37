"""``/api/metrics/alerts`` (active, history), ack, feedback, and ``/silences``.

A tenant sees the alerts labelled with its org or tied to its weddings.  Its
silences must be scoped to itself: one of their matchers must be
``org_id="<its org>"`` or ``wedding_id="<one of its weddings>"``, so that no
tenant can mute another's alerts.
"""
from __future__ import annotations

from typing import Optional, Union

from fastapi import APIRouter, Body, Depends, Path, Query, Request

from . import params
from .errors import ERROR_RESPONSES, ApiError
from .models import (AckRequest, AlertEventModel, AlertHistory, AlertList, AlertModel,
                     FeedbackRequest, FeedbackResult, SilenceList, SilenceModel, SilenceRequest,
                     finite)
from .tenancy import ORG_LABEL, WEDDING_LABEL, Tenant
from .views import alert_model, alert_visible, answer, visible_alerts

__all__ = ["router", "EVENT_STATUSES"]

EVENT_STATUSES = ("firing", "resolved", "notified", "escalated", "acknowledged", "silenced",
                  "feedback")


def router(hub) -> APIRouter:
    api = APIRouter(prefix="/api/metrics", tags=["alerts"], responses=ERROR_RESPONSES)

    @api.get("/alerts", response_model=Union[AlertList, AlertHistory],
             summary="Active alerts, or with history=1 the alert events")
    async def alerts(request: Request, tenant: Tenant = Depends(hub.limited),
                     history: bool = Query(False, description="Alert events instead of active alerts"),
                     since: Optional[str] = Query(None, max_length=40,
                                                  description="History from (epoch s or ISO 8601; "
                                                              "default 24 h ago)"),
                     until: Optional[str] = Query(None, max_length=40,
                                                  description="History until (default now)"),
                     rule: Optional[str] = Query(None, min_length=1, max_length=200),
                     status: Optional[str] = Query(None, max_length=40,
                                                   description=", ".join(EVENT_STATUSES)),
                     limit: int = Query(1000, ge=1, le=10_000)):
        if not history:
            return await answer(hub, request, tenant,
                                lambda: AlertList(alerts=_filter(visible_alerts(hub, tenant),
                                                                 rule)))
        if status is not None and status not in EVENT_STATUSES:
            raise ApiError(400, "status", f"status must be one of {', '.join(EVENT_STATUSES)}")
        now = hub.now()
        t1 = params.instant(until, "until", now + 1.0)
        t0 = params.instant(since, "since", now - 86400.0)
        if t0 > t1:
            raise ApiError(400, "since", f"since ({t0:g}) is after until ({t1:g})")
        return await answer(hub, request, tenant,
                            lambda: AlertHistory(events=_events(hub, tenant, t0, t1, rule,
                                                                status, limit)))

    @api.post("/alerts/{alert_id}/ack", response_model=AlertModel,
              responses={409: {"description": "The alert is not firing"}},
              summary="Acknowledge a firing alert (its escalation stops)")
    async def ack(alert_id: str = Path(..., min_length=1, max_length=200), body: AckRequest = Body(...),
                  tenant: Tenant = Depends(hub.limited)) -> AlertModel:
        view = _visible_active(hub, tenant, alert_id)
        if view.state != "firing":
            raise ApiError(409, "alert_id", f"alert {alert_id!r} is {view.state}, not firing")
        try:
            return alert_model(hub.alerts.ack(alert_id, by=body.by))
        except KeyError as exc:       # resolved between the two looks
            raise ApiError(409, "alert_id", str(exc).strip("'\"")) from None

    @api.post("/alerts/{alert_id}/feedback", response_model=FeedbackResult,
              summary="Whether the alert was right; a false positive moves an adaptive threshold")
    async def feedback(alert_id: str = Path(..., min_length=1, max_length=200), body: FeedbackRequest = Body(...),
                       tenant: Tenant = Depends(hub.limited)) -> FeedbackResult:
        rule = _visible_rule(hub, tenant, alert_id)
        try:
            state = hub.alerts.feedback(alert_id, false_positive=body.false_positive,
                                        by=body.by or f"api:{tenant.org}", note=body.note)
        except KeyError:
            raise ApiError(404, "alert_id", f"no alert with id {alert_id!r}") from None
        return FeedbackResult(alert_id=alert_id, rule=rule, threshold=finite(state.get("threshold")),
                              false_positives=int(state.get("false_positives", 0)),
                              confirmed=int(state.get("confirmed", 0)))

    @api.post("/silences", response_model=SilenceModel, status_code=201,
              summary="Mute alerts matching every matcher until ends_at (or for a duration)")
    async def add_silence(body: SilenceRequest = Body(...),
                          tenant: Tenant = Depends(hub.limited)) -> SilenceModel:
        engine = _alert_engine(hub)
        matchers = params.matchers(body.matchers, "matchers")
        if not _scoped_to(hub, tenant, matchers):
            raise ApiError(403, "matchers", f'a tenant\'s silence needs {ORG_LABEL}="{tenant.org}" '
                                            f'or {WEDDING_LABEL}="<one of its weddings>" among '
                                            f'its matchers')
        if (body.duration is None) == (body.ends_at is None):
            raise ApiError(400, "duration", "give exactly one of duration and ends_at")
        if body.duration is not None:
            until = hub.now() + params.duration(body.duration, "duration", least=1.0,
                                                most=86400.0 * 365)
        else:
            until = body.ends_at
            if until <= hub.now():
                raise ApiError(400, "ends_at", "ends_at must be in the future")
        try:
            s = engine.silence([str(m) for m in matchers], float(until), by=body.created_by,
                               comment=body.comment)
        except ValueError as exc:
            raise ApiError(400, "matchers", str(exc)[:300]) from None
        return _silence_model(s)

    @api.get("/silences", response_model=SilenceList, summary="Silences in force")
    async def silences(tenant: Tenant = Depends(hub.limited)) -> SilenceList:
        if hub.alerts is None:
            return SilenceList(silences=[])
        active = hub.alerts.dispatcher.silences.active(hub.now())
        return SilenceList(silences=[_silence_model(s) for s in active
                                     if _scoped_to(hub, tenant, s.matchers)])

    @api.delete("/silences/{silence_id}", response_model=SilenceModel,
                summary="End a silence now")
    async def delete_silence(silence_id: str = Path(..., min_length=1, max_length=200),
                             tenant: Tenant = Depends(hub.limited)) -> SilenceModel:
        store = _alert_engine(hub).dispatcher.silences
        missing = ApiError(404, "silence_id", f"no silence with id {silence_id!r}")
        try:
            s = store.get(silence_id)
        except KeyError:
            raise missing from None
        if not _scoped_to(hub, tenant, s.matchers):
            raise missing
        return _silence_model(store.expire(silence_id, hub.now()))

    return api


def _alert_engine(hub):
    if hub.alerts is None:
        raise ApiError(404, None, "this hub has no alert engine")
    return hub.alerts


def _filter(alerts: list[AlertModel], rule: str | None) -> list[AlertModel]:
    return alerts if rule is None else [a for a in alerts if a.rule == rule]


def _visible_active(hub, tenant: Tenant, alert_id: str):
    engine = _alert_engine(hub)
    for view in engine.active():
        if view.id == alert_id and alert_visible(hub, tenant, view.labels, view.wedding_id):
            return view
    raise ApiError(404, "alert_id", f"no active alert with id {alert_id!r}")


def _visible_rule(hub, tenant: Tenant, alert_id: str) -> str:
    """The rule of an alert the tenant sees, active or in the history."""
    engine = _alert_engine(hub)
    for view in engine.active():
        if view.id == alert_id:
            if alert_visible(hub, tenant, view.labels, view.wedding_id):
                return view.rule
            break
    else:
        for event in engine.history(alert_id=alert_id, limit=1):
            if event.rule and alert_visible(hub, tenant, event.labels, event.wedding_id):
                return event.rule
    raise ApiError(404, "alert_id", f"no alert with id {alert_id!r}")


def _events(hub, tenant: Tenant, t0: float, t1: float, rule, status, limit: int):
    if hub.alerts is not None:
        events = hub.alerts.history(rule=rule, status=status, since=t0, until=t1)
    else:
        # a store-only hub: the events the fleet's alert engines stored
        events = []
        for store in hub.stores.values():
            events.extend(e for e in store.read_alert_events(t0, t1, rule)
                          if status is None or e.status == status)
        events.sort(key=lambda e: e.ts)
    out = [e for e in events if e.labels or e.wedding_id or tenant.operator]
    out = [e for e in out if alert_visible(hub, tenant, e.labels, e.wedding_id)]
    return [AlertEventModel(alert_id=e.alert_id, rule=e.rule, status=e.status,
                            severity=e.severity, ts=e.ts, labels=dict(e.labels),
                            annotations={k: str(v) for k, v in e.annotations.items()},
                            value=finite(e.value), wedding_id=e.wedding_id)
            for e in out[-limit:]]


def _scoped_to(hub, tenant: Tenant, matchers) -> bool:
    """Whether a silence with these matchers mutes only this tenant's alerts."""
    if tenant.operator:
        return True
    for m in matchers:
        if m.op != "=":
            continue
        if m.name == ORG_LABEL and m.value == tenant.org:
            return True
        if m.name == WEDDING_LABEL and hub.catalog.wedding_org({WEDDING_LABEL: m.value}) == tenant.org:
            return True
    return False


def _silence_model(s) -> SilenceModel:
    return SilenceModel(id=s.id, matchers=[str(m) for m in s.matchers], starts_at=s.starts_at,
                        ends_at=s.ends_at, created_by=s.created_by, comment=s.comment)
