"""Security headers on every HTML page ringback serves (the API docs, the people's pages).

The Content-Security-Policy lets a page load nothing but the service itself: no CDN, no font or
image from elsewhere (ReDoc's bundle, for one, asks a CDN for a logo; the browser never does).
Inline scripts and styles stay allowed for the docs pages' own bootstrap code; workers may come
from blobs (ReDoc's search). Pages cannot be framed by another site.
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


def _is_html(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(name.lower() == b"content-type" and value.startswith(b"text/html")
               for name, value in headers)


class PageHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if _is_html(headers):
                    message["headers"] = headers + _HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)
