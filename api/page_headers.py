"""Security headers on every HTML page ringback serves that does not set its own (the API docs;
the people's pages set a stricter policy themselves, api/pages/render.py).

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


def _needs_headers(headers: list[tuple[bytes, bytes]]) -> bool:
    """An HTML page that does not set its own policy (the people's pages do: api/pages)."""
    names = {name.lower(): value for name, value in headers}
    return (names.get(b"content-type", b"").startswith(b"text/html")
            and b"content-security-policy" not in names)


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
                if _needs_headers(headers):
                    message["headers"] = headers + _HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)
