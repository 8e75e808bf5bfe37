"""Alertmanager's v2 HTTP API, served by wedmetrics (needs the ``[http]`` extra).

:func:`alertmanager_router` gives a FastAPI ``APIRouter`` with the paths and
JSON shapes of Alertmanager's OpenAPI spec (``api/v2/openapi.yaml``) that
tools use, so Prometheus (``alertmanagers:``), ``amtool`` and Grafana's
Alertmanager data source talk to an :class:`~wedmetrics.alerting.AlertEngine`
as to an Alertmanager:

========================================  ==========================================
``POST /api/v2/alerts``                   take alerts (Prometheus sends here)
``GET /api/v2/alerts``                    alerts with their status and receivers
``GET /api/v2/alerts/groups``             the dispatcher's alert groups
``GET /api/v2/silences``                  silences (``filter=`` matchers)
``POST /api/v2/silences``                 create or update a silence
``GET/DELETE /api/v2/silence/{id}``       one silence; DELETE expires it
``GET /api/v2/status``                    cluster, version, config, uptime
``GET /api/v2/receivers``                 receiver names
========================================  ==========================================

>>> from fastapi import FastAPI                                    # doctest: +SKIP
>>> app = FastAPI(); app.include_router(alertmanager_router(alerts))   # doctest: +SKIP
"""
from __future__ import annotations

import datetime as _dt
from typing import Any, Optional

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse

import wedmetrics
from wedmetrics.alerting.matchers import Matcher, compile_re2, matches_all, parse_matcher_list
from wedmetrics.alerting.received import InvalidAlerts, MalformedAlert, format_time, parse_time
from wedmetrics.alerting.routing import alert_labels
from wedmetrics.alerting.silences import Silence

__all__ = ["alertmanager_router", "router", "API_PREFIX"]

API_PREFIX = "/api/v2"


def _error(status: int, message: str) -> JSONResponse:
    # Alertmanager answers errors with a JSON string body.
    return JSONResponse(status_code=status, content=message)


def _receiver(receiver: Optional[str]):
    # Alertmanager compiles it as "^(?:" + receiver + ")$" with Go's (RE2) regexp
    return None if receiver is None else compile_re2(receiver)


def _filter(filter_: Optional[list[str]]) -> list[Matcher]:
    out: list[Matcher] = []
    for text in filter_ or ():
        out.extend(parse_matcher_list(text))
    return out


def router(hub) -> APIRouter:
    """The hub's part (``create_app``): the v2 API over the hub's alert engine.

    Alertmanager's API has no tenants, so with hub tokens it answers
    operators only (403 for an org's token); without tokens, everyone.  Its
    contract is Alertmanager's own ``openapi.yaml`` (error bodies are JSON
    strings, as there), so it stays out of the hub's schema.
    """
    if hub.alerts is None:
        return APIRouter()
    from fastapi import Depends

    from .errors import ApiError

    async def operator(tenant=Depends(hub.limited)):
        if not tenant.operator:
            raise ApiError(403, "authorization", "the Alertmanager API is for operator tokens only")

    return alertmanager_router(hub.alerts, dependencies=[Depends(operator)], include_in_schema=False)


def alertmanager_router(alerts, *, prefix: str = API_PREFIX, dependencies=(),
                        include_in_schema: bool = True) -> APIRouter:
    """Alertmanager's v2 API over ``alerts`` (an :class:`~wedmetrics.alerting.AlertEngine`).

    Uses only the engine's public parts: :meth:`~AlertEngine.receive_alerts`,
    its ``received`` alerts, ``dispatcher`` (silences, groups, routes) and
    :meth:`~AlertEngine.active`.
    """
    api = APIRouter(prefix=prefix, tags=["alertmanager"], dependencies=list(dependencies),
                    include_in_schema=include_in_schema)
    started = _dt.datetime.now(_dt.timezone.utc)
    dispatcher = alerts.dispatcher
    am_mode, wedding_labels = dispatcher.config.alertmanager, dispatcher.config.wedding_labels

    def now() -> float:
        return float(alerts.engine.now())

    def receivers_for(labels: dict) -> list[dict]:
        names = dict.fromkeys(n.receiver for n in dispatcher.routes_for(labels))
        return [{"name": n} for n in names]

    def gettable(fp: str, notification, updated_at: float, t: float) -> dict:
        muted = dispatcher.muted_by(notification, t)
        silenced, inhibited = muted["silenced_by"], muted["inhibited_by"]
        labels = dict(notification.labels)
        return {
            "labels": labels, "annotations": dict(notification.annotations),
            "startsAt": format_time(notification.starts_at),
            "endsAt": format_time(notification.ends_at) or format_time(t + 300.0),
            "updatedAt": format_time(updated_at), "generatorURL": notification.generator_url, "fingerprint": fp,
            "receivers": receivers_for(alert_labels(notification, am_mode, wedding_labels)),
            "status": {"state": "suppressed" if silenced or inhibited else "active",
                       "silencedBy": silenced, "inhibitedBy": inhibited, "mutedBy": []},
        }

    def current_alerts(t: float) -> list[dict]:
        out = []
        for a in alerts.received.all():
            if a["status"] != "firing" or a["ends_at"] <= t:
                continue
            n = alerts.received.notification(a["fingerprint"])
            item = gettable(a["fingerprint"], n, a["updated_at"], t)
            item["endsAt"] = format_time(a["ends_at"])
            out.append(item)
        for view in alerts.active(include_pending=False):
            n = alerts.notification_for(view.id)
            if n is not None:
                out.append(gettable(view.id, n, view.fired_at or t, t))
        return out

    def wanted(item: dict, active: bool, silenced: bool, inhibited: bool, matchers: list[Matcher],
               receiver: Optional[str]) -> bool:
        st = item["status"]
        if st["silencedBy"] and not silenced:
            return False
        if st["inhibitedBy"] and not inhibited:
            return False
        if st["state"] == "active" and not active:
            return False
        if receiver is not None and not any(receiver.match(r["name"]) for r in item["receivers"]):
            return False
        return matches_all(matchers, item["labels"])

    @api.post("/alerts")
    def post_alerts(body: Any = Body(...)):
        # Alertmanager's postAlertsHandler: empty labels removed, the valid
        # alerts stored, then 400 with the invalid ones' errors ("; "-joined).
        # A body without the API's shape is refused whole, as its OpenAPI layer
        # does (400 where it does not decode, 422 for a missing required field).
        if not isinstance(body, list):
            return _error(400, "body must be a JSON list of alerts")
        try:
            alerts.receive_alerts(body, now())
        except MalformedAlert as e:
            return _error(e.status, str(e))
        except InvalidAlerts as e:
            return _error(400, str(e))
        return JSONResponse(status_code=200, content=None)

    @api.get("/alerts")
    def get_alerts(active: bool = True, silenced: bool = True, inhibited: bool = True,
                   unprocessed: bool = True, filter: Optional[list[str]] = Query(None),
                   receiver: Optional[str] = None):
        try:
            matchers, receiver_re = _filter(filter), _receiver(receiver)
        except ValueError as e:
            return _error(400, str(e))
        t = now()
        return [a for a in current_alerts(t) if wanted(a, active, silenced, inhibited, matchers, receiver_re)]

    @api.get("/alerts/groups")
    def get_groups(active: bool = True, silenced: bool = True, inhibited: bool = True,
                   muted: bool = True, filter: Optional[list[str]] = Query(None),
                   receiver: Optional[str] = None):
        try:
            matchers, receiver_re = _filter(filter), _receiver(receiver)
        except ValueError as e:
            return _error(400, str(e))
        t = now()
        by_fp = {a["fingerprint"]: a for a in current_alerts(t)}
        out = []
        for g in dispatcher.groups():
            if receiver_re is not None and not receiver_re.match(g["receiver"]):
                continue
            members = [by_fp[fp] for fp in g["alerts"] if fp in by_fp
                       and wanted(by_fp[fp], active, silenced, inhibited, matchers, None)]
            if members:
                # routeLabels: labels set on routes (newer Alertmanager); routes have none here
                out.append({"labels": g["labels"], "receiver": {"name": g["receiver"]}, "routeLabels": {},
                            "alerts": members})
        return out

    def gettable_silence(s: Silence, t: float) -> dict:
        return {"id": s.id, "status": {"state": s.state(t)}, "updatedAt": format_time(s.updated_at),
                "matchers": [m.to_api() for m in s.matchers], "startsAt": format_time(s.starts_at),
                "endsAt": format_time(s.ends_at), "createdBy": s.created_by, "comment": s.comment,
                "annotations": {}}

    @api.get("/silences")
    def get_silences(filter: Optional[list[str]] = Query(None)):
        try:
            matchers = _filter(filter)
        except ValueError as e:
            return _error(400, str(e))
        t = now()
        out = []
        for s in dispatcher.silences:
            # amtool's filter: every filter matcher equals one of the silence's matchers
            # or matches the silence's equality values, as Alertmanager's API does.
            labels = {m.name: m.value for m in s.matchers}
            if matchers and not all(any(f == m for m in s.matchers) or f.matches(labels) for f in matchers):
                continue
            out.append(gettable_silence(s, t))
        # Alertmanager's SortSilences: active by end, pending by start (ascending),
        # expired by end, latest first
        order = {"active": 0, "pending": 1, "expired": 2}

        def key(x: dict) -> tuple:
            state = x["status"]["state"]
            if state == "pending":
                return (1, parse_time(x["startsAt"], "startsAt"))
            end = parse_time(x["endsAt"], "endsAt")
            return (order[state], -end if state == "expired" else end)
        out.sort(key=key)
        return out

    @api.post("/silences")
    def post_silences(body: Any = Body(...)):
        if not isinstance(body, dict):
            return _error(400, "body must be a silence object")
        t = now()
        try:
            unknown = set(body) - {"id", "matchers", "startsAt", "endsAt", "createdBy", "comment"}
            if unknown:
                raise ValueError(f"unknown silence field(s) {sorted(unknown)}")
            for field in ("matchers", "startsAt", "endsAt", "createdBy", "comment"):
                if field not in body:
                    raise ValueError(f"{field} in body is required")
            starts, ends = parse_time(body["startsAt"], "startsAt"), parse_time(body["endsAt"], "endsAt")
            if starts is None or ends is None:
                raise ValueError("startsAt and endsAt are required")
            if ends < t:
                raise ValueError("Failed to create silence: end time can't be in the past")
            data = {"matchers": tuple(Matcher.from_api(m) for m in body["matchers"]), "starts_at": starts,
                    "ends_at": ends, "created_by": body["createdBy"], "comment": body["comment"] or ""}
            if body.get("id"):
                data["id"] = body["id"]
            stored = dispatcher.silences.set(data, t)
        except KeyError as e:
            return _error(404, str(e).strip("'\""))
        except ValueError as e:
            return _error(400, str(e))
        return {"silenceID": stored.id}

    @api.get("/silence/{silence_id}")
    def get_silence(silence_id: str):
        try:
            return gettable_silence(dispatcher.silences.get(silence_id), now())
        except KeyError:
            return _error(404, f"silence {silence_id} not found")

    @api.delete("/silence/{silence_id}")
    def delete_silence(silence_id: str):
        try:
            dispatcher.silences.expire(silence_id, now())
        except KeyError:
            return _error(404, f"silence {silence_id} not found")
        return JSONResponse(status_code=200, content=None)

    @api.get("/receivers")
    def get_receivers():
        # every configured receiver, used by a route or not, as Alertmanager lists them
        am = alerts.alertmanager_config
        names: dict[str, None] = dict.fromkeys(am.receivers) if am is not None else {}

        def walk(r):
            if r.receiver:
                names.setdefault(r.receiver)
            for c in r.routes:
                walk(c)
        walk(dispatcher.config.route)
        for p in dispatcher.config.escalation_policies:
            for level in p.levels:
                names.update(dict.fromkeys(level.receivers))
        return [{"name": n} for n in names]

    @api.get("/status")
    def get_status(request: Request):
        am = alerts.alertmanager_config
        return {
            "cluster": {"status": "disabled", "peers": []},
            "versionInfo": {"version": wedmetrics.__version__, "revision": "", "branch": "",
                            "buildUser": "wedmetrics", "buildDate": "", "goVersion": "none (wedmetrics)"},
            "config": {"original": am.original if am is not None else ""},
            "uptime": started.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }

    return api
