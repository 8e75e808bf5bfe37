"""``GET /``: the dashboard page, and ``/static/...``, its stylesheet and script.

The page is plain HTML, CSS and JavaScript shipped in the package
(``wedmetrics/http/static/``): no build step, nothing fetched from elsewhere
(the Content-Security-Policy says so to the browser).  It calls the hub's API
relative to where the hub is mounted, with the bearer token given in the page.
"""
from __future__ import annotations

import html
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from .errors import ApiError

__all__ = ["router", "STATIC_FILES"]

#: the files ``/static/`` serves, and their media types (nothing else is served)
STATIC_FILES = {"dashboard.css": "text/css; charset=utf-8",
                "dashboard.js": "text/javascript; charset=utf-8"}

_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
           "img-src 'self' data:; base-uri 'self'; form-action 'none'; frame-ancestors 'none'")


def _read(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


def router(hub) -> APIRouter:
    api = APIRouter(tags=["page"])
    template = _read("dashboard.html").decode("utf-8")
    files = {name: _read(name) for name in STATIC_FILES}

    @api.get("/", response_class=HTMLResponse, summary="The live dashboard page",
             responses={200: {"content": {"text/html": {}}}})
    async def page(request: Request) -> HTMLResponse:
        # a mounted hub (parent.mount("/monitoring", app)) resolves its links under its prefix
        base = request.scope.get("root_path", "").rstrip("/") + "/"
        body = template.replace("{{BASE}}", html.escape(base, quote=True))
        return HTMLResponse(body, headers={"Content-Security-Policy": _POLICY,
                                           "Cache-Control": "no-cache"})

    @api.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in files:
            raise ApiError(404, "path", f"no static file {name!r}")
        return Response(files[name], media_type=STATIC_FILES[name],
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

    return api
