"""A stand-in CRM: a real HTTP server on 127.0.0.1 that checks Standard Webhooks signatures
with `standardwebhooks` itself (not our code) and records what it receives, in order.

It can be told to fail (503) for all or some events, and stopped and restarted on its port.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook

FAILURE_TEXT = {401: "signature not valid", 503: "CRM under maintenance, try later"}


@dataclass(frozen=True)
class Received:
    id: str  # the webhook-id header
    type: str
    payload: dict[str, Any]
    verified: bool
    status: int  # what we answered


class CrmReceiver:
    def __init__(self, secret: str, port: int = 0) -> None:
        self._webhook = Webhook(secret)
        self._lock = threading.Condition()
        self._received: list[Received] = []
        self.fail_when: Callable[[dict[str, Any]], bool] | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/crm/events"

    @property
    def events(self) -> list[Received]:
        """The events acknowledged (2xx), in the order they arrived."""
        with self._lock:
            return [item for item in self._received if item.status < 300]

    @property
    def requests(self) -> list[Received]:
        """Everything that arrived, refused or not."""
        with self._lock:
            return list(self._received)

    def fail(self, when: Callable[[dict[str, Any]], bool] | None = lambda _payload: True) -> None:
        """Answer 503 to the events `when` selects (all by default; None: fail nothing)."""
        self.fail_when = when

    def start(self) -> CrmReceiver:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="crm-receiver",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def wait_for(self, type: str, timeout: float = 5.0) -> Received:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for item in self._received:
                    if item.type == type and item.status < 300:
                        return item
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {type} event within {timeout} s")
                self._lock.wait(left)

    def _record(self, headers: dict[str, str], body: bytes) -> int:
        try:
            self._webhook.verify(body, headers, json_parse=False)
            verified = True
        except Exception:
            verified = False
        payload = json.loads(body)
        failing = self.fail_when is not None and self.fail_when(payload)
        status = 401 if not verified else 503 if failing else 204
        item = Received(headers.get("webhook-id", ""), payload.get("type", ""), payload,
                        verified, status)
        with self._lock:
            self._received.append(item)
            self._lock.notify_all()
        return status

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                status = receiver._record({k.lower(): v for k, v in self.headers.items()}, body)
                reply = b"" if status < 300 else FAILURE_TEXT[status].encode()
                self.send_response(status)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
