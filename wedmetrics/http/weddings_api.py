"""``/api/metrics/wedding/{wedding_id}``: one wedding, its priority now, its series and alerts."""
from __future__ import annotations

import datetime as _dt

from fastapi import APIRouter, Depends, Path, Query, Request

from . import params
from .errors import ERROR_RESPONSES, ApiError
from .models import Priority, WeddingList, WeddingModel, WeddingPriority, WeddingView
from .tenancy import WEDDING_LABEL, Tenant
from .views import answer, series_stats, visible_alerts

__all__ = ["router"]


def router(hub) -> APIRouter:
    api = APIRouter(prefix="/api/metrics", tags=["weddings"], responses=ERROR_RESPONSES)

    @api.get("/wedding/{wedding_id}", response_model=WeddingView,
             summary="A wedding, its priority now, every series labelled with it, its alerts")
    async def wedding(request: Request, tenant: Tenant = Depends(hub.limited),
                      wedding_id: str = Path(..., min_length=1, max_length=200),
                      window: str = Query("5m", max_length=40,
                                          description="Window of the series statistics")):
        seconds = params.duration(window, "window", least=1.0, most=86400.0)

        def build() -> WeddingView:
            w = _visible_wedding(hub, tenant, wedding_id)
            now = hub.now()
            refs, _ = hub.catalog.select(tenant, None)
            mine = [r for r in refs if r.labels.get(WEDDING_LABEL) == w.id]
            return WeddingView(wedding=_wedding_model(w), priority=_priority(hub, w, now),
                               window=seconds,
                               series=series_stats(hub, mine, seconds, now),
                               alerts=visible_alerts(hub, tenant, wedding_id=w.id))

        return await answer(hub, request, tenant, build)

    @api.get("/weddings", response_model=WeddingList,
             summary="The tenant's weddings of one day (default today), with their priority now")
    async def weddings(request: Request, tenant: Tenant = Depends(hub.limited),
                       day: str = Query("today", max_length=10, pattern=r"^(today|\d{4}-\d{2}-\d{2})$",
                                        description='"today" (in each wedding\'s timezone) '
                                                    'or YYYY-MM-DD')):
        wanted = None
        if day != "today":
            try:
                wanted = _dt.date.fromisoformat(day)
            except ValueError:
                raise ApiError(400, "day", f"not a date: {day!r}") from None

        def build() -> WeddingList:
            now = hub.now()
            found = []
            for w in hub.calendar or ():
                if not tenant.sees_org(w.org_id):
                    continue
                if w.date == (wanted or w.local(now).date()):
                    found.append(w)
            found.sort(key=lambda w: (w.event_start, w.id))
            return WeddingList(now=now, weddings=[
                WeddingPriority(wedding=_wedding_model(w), priority=_priority(hub, w, now))
                for w in found])

        return await answer(hub, request, tenant, build)

    return api


def _visible_wedding(hub, tenant: Tenant, wedding_id: str):
    calendar = hub.calendar
    # another tenant's wedding answers exactly like one that does not exist
    missing = ApiError(404, "wedding_id", f"no wedding with id {wedding_id!r}")
    if calendar is None or wedding_id not in calendar:
        raise missing
    try:
        w = calendar.get(wedding_id)
    except KeyError:
        raise missing from None
    if not tenant.sees_org(w.org_id):
        raise missing
    return w


def _wedding_model(w) -> WeddingModel:
    return WeddingModel(id=w.id, org_id=w.org_id, date=w.date.isoformat(), timezone=w.timezone,
                        guest_count=w.guest_count, venue=w.venue,
                        start_time=w.start_time.isoformat() if w.start_time else None,
                        end_time=w.end_time.isoformat() if w.end_time else None,
                        event_start=w.event_start, event_end=w.event_end)


def _priority(hub, w, now: float) -> Priority:
    policy = getattr(hub.alerts, "policy", None) if hub.alerts is not None else None
    if policy is None:
        from ..weddings import PriorityPolicy

        policy = PriorityPolicy(hub.calendar)
    labels = {WEDDING_LABEL: w.id}
    wedding_day = bool(policy.is_wedding_day(labels, now))
    saturday = bool(policy.is_saturday(labels, now))
    return Priority(wedding_day=wedding_day, saturday=saturday,
                    level="wedding_day" if wedding_day else "saturday" if saturday else "normal")
