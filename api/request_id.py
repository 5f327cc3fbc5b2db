"""Each HTTP request's id and its measure.

The id is the request's `X-Request-ID` when it is sane (1 to `MAX_LENGTH` characters of
letters, digits and `._:+=/-`: a proxy's or a client's id is kept for correlation), else a new
one. It is in `infra.logs.request_id` while the request is served, so every log line written
for it carries it, and it goes back in the response's `X-Request-ID`.

Every response is counted (method, route template, status class) and timed (route template) in
the app's `Metrics` (`app.state.metrics`, once the service has started): errors included, as
long as this middleware is added after the app's error handlers (outside them).
"""

import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infra.logs import request_id
from infra.metrics import Metrics

HEADER = "x-request-id"
MAX_LENGTH = 128
_SANE = re.compile(rf"[A-Za-z0-9._:+=/-]{{1,{MAX_LENGTH}}}")


def request_id_of(headers: list[tuple[bytes, bytes]]) -> str:
    """The request's own id if it is sane, else a new one."""
    for name, value in headers:
        if name.lower() == HEADER.encode():
            given = value.decode("latin-1")
            if _SANE.fullmatch(given):
                return given
            break
    return uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id_of(scope["headers"])
        status = 500  # unless a response starts
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []),
                                      (HEADER.encode(), rid.encode())]
            await send(message)

        token = request_id.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
            metrics: Metrics | None = getattr(scope["app"].state, "metrics", None)
            if metrics is not None:
                route = scope.get("route")
                metrics.observe_request(scope["method"], getattr(route, "path", None), status,
                                        time.perf_counter() - started)
