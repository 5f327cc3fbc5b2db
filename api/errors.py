"""Errors as the API shows them: `{"error": {"code": "stable-id", "message": "..."}}`, and as
OpenAPI documents them (`ErrorBody`, `error_responses`).

An exception no handler expects is a JSON 500 `internal-error` — or, when it is the database
that cannot be reached or used right now, a 503 `database-unavailable` with `Retry-After`, so a
client (the CRM) knows to retry — and the connection stays open for the client's next request:
`CatchAll` answers it. (Starlette's last-resort handler sends its
500 and then re-raises, and uvicorn closes a connection whose application raised.)
"""

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infra.db import database_unavailable

log = logging.getLogger(__name__)

INTERNAL_ERROR = "internal-error"
DATABASE_UNAVAILABLE = "database-unavailable"
DATABASE_RETRY_AFTER_S = 5
# What a route that takes an API token answers without a usable one (see api.auth).
TOKEN_ERRORS = {
    401: "`unauthorized`: no API token (`Authorization: Bearer <token>`), or an unknown or "
         "revoked one",
    403: "`forbidden`: the token's role may not do this",
}


class ApiError(Exception):
    """Raised by routes and dependencies; rendered with its status, code and message."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


class ErrorDetail(BaseModel):
    code: str = Field(description="a stable id to act on, e.g. `invalid-event`")
    message: str = Field(description="what is wrong, for a person")


class ErrorBody(BaseModel):
    """Every error the API answers with (any 4xx or 5xx status)."""

    error: ErrorDetail


def error_responses(described: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` of a route: each status with `ErrorBody` and the codes it means."""
    return {status: {"model": ErrorBody, "description": text}
            for status, text in described.items()}


# Every operation may fail unexpectedly (FastAPI's `responses`, app-wide).
SERVER_ERRORS = error_responses({
    500: f"`{INTERNAL_ERROR}`: a bug or a fault; see the logs",
    503: f"`{DATABASE_UNAVAILABLE}`: the database cannot be reached now; retry after "
         "`Retry-After` seconds (nothing was applied)",
})


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def _describe_validation(exc: RequestValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()))
        problems.append(f"{where}: {error.get('msg', 'invalid')}" if where else error["msg"])
    return "; ".join(problems) or "the request is not valid"


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "invalid-request", _describe_validation(exc))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (no route, wrong method, ...) in our shape; the code is the
    status phrase, e.g. "not-found", "method-not-allowed"."""
    assert isinstance(exc, HTTPException)
    phrase = HTTPStatus(exc.status_code).phrase
    code = phrase.lower().replace(" ", "-")
    headers = dict(exc.headers or {})
    if exc.detail != phrase:
        message = exc.detail
    elif exc.status_code == 404:
        message = f"nothing at {request.url.path}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
        headers["Allow"] = _allowed_methods(request)
    else:
        message = phrase
    return error_response(exc.status_code, code, message, headers)


def _allowed_methods(request: Request) -> str:
    """The methods of every route at the request's path: Starlette names only those of the
    first route it found there (`GET /healthz` and `HEAD /healthz` are two routes)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if route.matches(request.scope)[0] is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    if database_unavailable(exc):  # the database, not the request
        log.warning("%s %s: the database is unavailable (%s)", request.method,
                    request.url.path, type(exc).__name__)
        return error_response(503, DATABASE_UNAVAILABLE,
                              "the database cannot be reached now; nothing was applied, retry "
                              "later", headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)})
    log.error("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, INTERNAL_ERROR, "an unexpected error happened; see the logs")


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's last resort, for a fault outside `CatchAll` (in a middleware around it)."""
    return _internal_error(request, exc)


class CatchAll:
    """Answers an unexpected exception with the JSON 500 and returns normally, so the server
    keeps the connection. A response already started cannot be replaced: that exception goes
    on, and the server ends the connection (the client sees a cut response, not a false one)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            if started:
                raise
            await _internal_error(Request(scope), exc)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_middleware(CatchAll)
