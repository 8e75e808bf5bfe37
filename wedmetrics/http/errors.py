"""Every error leaves the hub as JSON naming what was wrong, never as a traceback."""
from __future__ import annotations

import logging

import pydantic
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = ["ApiError", "ErrorBody", "ErrorDetail", "install_error_handlers", "error_response",
           "ERROR_RESPONSES"]

log = logging.getLogger("wedmetrics.http")


class ErrorDetail(pydantic.BaseModel):
    status: int
    parameter: str | None = pydantic.Field(
        None, description="The query parameter, path part, header or body field at fault")
    message: str


class ErrorBody(pydantic.BaseModel):
    error: ErrorDetail


#: what every API route may answer besides its 200, for the OpenAPI schema
ERROR_RESPONSES = {code: {"model": ErrorBody, "description": text} for code, text in (
    (400, "Bad input, naming the parameter"), (401, "Missing or unknown bearer token"),
    (403, "Not allowed for this tenant"), (404, "Unknown (or another tenant's) resource"),
    (422, "A parameter or body field failed validation"), (429, "Rate limited; see Retry-After"),
)}


class ApiError(Exception):
    """An answer other than 200, with the parameter it is about."""

    def __init__(self, status: int, parameter: str | None, message: str,
                 headers: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.parameter = parameter
        self.message = message
        self.headers = headers


def error_response(status: int, parameter: str | None, message: str,
                   headers: dict | None = None) -> JSONResponse:
    body = {"error": {"status": status, "parameter": parameter, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def _location(loc) -> str | None:
    # ("query", "window") -> "window"; ("body", "matchers", 0) -> "matchers.0"
    parts = [str(p) for p in loc if p not in ("query", "path", "header", "body", "cookie")]
    return ".".join(parts) or (str(loc[0]) if loc else None)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return error_response(exc.status, exc.parameter, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        where = _location(first.get("loc", ()))
        kind = first.get("type", "")
        if kind == "json_invalid":
            where, message = "body", f"malformed JSON: {first.get('ctx', {}).get('error', first['msg'])}"
        else:
            message = f"{where}: {first['msg']}" if where else first["msg"]
        return error_response(422, where, message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        where = "path" if exc.status_code in (404, 405) else None
        return error_response(exc.status_code, where, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        # the traceback goes to the log, never to the client
        log.exception("unexpected error answering %s %s", request.method, request.url.path)
        return error_response(500, None, "internal error (logged by the hub)")
