"""GET /api/metrics/weddings: one day's weddings of the tenant, with their priority now."""
from __future__ import annotations

import datetime as dt

import httpx

import wedmetrics as wm
from wedmetrics.http import create_app

from hubserver import live_server

SATURDAY_NOON = dt.datetime(2026, 6, 13, 12, tzinfo=dt.timezone.utc).timestamp()


def test_todays_weddings_per_tenant_in_their_own_timezone():
    clock = wm.ManualClock(SATURDAY_NOON)
    engine = wm.MetricsEngine(clock=clock)
    calendar = wm.WeddingCalendar([
        wm.Wedding(id="w-today", org_id="bliss-events", date="2026-06-13", timezone="UTC",
                   guest_count=120, start_time="11:00", end_time="23:00", venue="Rose Hall"),
        # at 12:00 UTC it is already 14 June in Auckland (00:00 NZST)
        wm.Wedding(id="w-nz", org_id="bliss-events", date="2026-06-14",
                   timezone="Pacific/Auckland", guest_count=80),
        wm.Wedding(id="w-other", org_id="other-co", date="2026-06-13", timezone="UTC",
                   guest_count=50),
        wm.Wedding(id="w-later", org_id="bliss-events", date="2026-06-20", timezone="UTC",
                   guest_count=60),
    ])
    app = create_app(engine, calendar=calendar, cache_ttl=0,
                     tokens={"tok-bliss-0001": "bliss-events", "tok-ops-00001": "*"})
    bliss = {"Authorization": "Bearer tok-bliss-0001"}
    ops = {"Authorization": "Bearer tok-ops-00001"}
    with live_server(app) as base:
        r = httpx.get(base + "/api/metrics/weddings", headers=bliss)
        assert r.status_code == 200
        body = r.json()
        assert body["now"] == SATURDAY_NOON
        assert [w["wedding"]["id"] for w in body["weddings"]] == ["w-today", "w-nz"]
        today = body["weddings"][0]
        assert today["wedding"]["venue"] == "Rose Hall"
        assert today["priority"] == {"wedding_day": True, "saturday": True,
                                     "level": "wedding_day"}
        everyone = httpx.get(base + "/api/metrics/weddings", headers=ops).json()
        assert {w["wedding"]["id"] for w in everyone["weddings"]} == {"w-today", "w-nz",
                                                                       "w-other"}
        later = httpx.get(base + "/api/metrics/weddings", params={"day": "2026-06-20"},
                          headers=bliss).json()
        assert [w["wedding"]["id"] for w in later["weddings"]] == ["w-later"]
        for bad in ("yesterday", "2026-02-30", "x" * 30):
            r = httpx.get(base + "/api/metrics/weddings", params={"day": bad}, headers=bliss)
            assert r.status_code in (400, 422)
            assert r.json()["error"]["parameter"] == "day"
        assert httpx.get(base + "/api/metrics/weddings").status_code == 401
    engine.close()
