"""``/healthz`` (the process answers) and ``/readyz`` (the engine and every store answer)."""
from __future__ import annotations

import pydantic
from fastapi import APIRouter
from fastapi.responses import JSONResponse

__all__ = ["router", "Health", "Readiness"]


class Health(pydantic.BaseModel):
    status: str = pydantic.Field(description='"ok" while the process serves')


class Readiness(pydantic.BaseModel):
    status: str = pydantic.Field(description='"ok", or "unavailable" (answered with 503)')
    checks: dict[str, str] = pydantic.Field(
        description='"engine", "store:<org>": "ok" or what went wrong')


def router(hub) -> APIRouter:
    api = APIRouter(tags=["health"])

    @api.get("/healthz", response_model=Health, summary="The hub process answers")
    async def healthz() -> Health:
        return Health(status="ok")

    @api.get("/readyz", response_model=Readiness, summary="Engine and stores reachable",
             responses={503: {"model": Readiness, "description": "A store does not answer"}})
    async def readyz():
        checks = hub.readiness()
        ok = all(v == "ok" for v in checks.values())
        body = Readiness(status="ok" if ok else "unavailable", checks=checks)
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

    return api
