"""A stand-in CRM: a real HTTP server on 127.0.0.1 that checks Standard Webhooks signatures
with `standardwebhooks` itself (not our code) and records what it receives, in order.

It can be told to fail (503) for all or some events, and stopped and restarted on its port.

It also answers the pre-dial check (`GET /crm/clients/<client id>/call-check?...`,
campaigns/crm_check.py) with what `answer_check` set for that client id (404 for others), after
that answer's delay, and records each check with whether its signature (over the request target
as received) verified.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from standardwebhooks import Webhook

FAILURE_TEXT = {401: "signature not valid", 503: "CRM under maintenance, try later"}
CHECK_PATH = re.compile(r"/crm/clients/([^/]*)/call-check")
UNKNOWN_CLIENT_REPLY = b'{"error": "unknown client"}'


@dataclass(frozen=True)
class CheckAnswer:
    """What the stand-in answers one client's pre-dial check: any status and raw body, sent
    after `delay_s` (cut short when the receiver stops)."""

    status: int = 200
    body: bytes = b'{"call": true}'
    delay_s: float = 0.0

    @classmethod
    def verdict(cls, call: bool, reason: str | None = None, delay_s: float = 0.0) -> CheckAnswer:
        answer: dict[str, Any] = {"call": call} if reason is None else {"call": call,
                                                                         "reason": reason}
        return cls(200, json.dumps(answer).encode(), delay_s)


@dataclass(frozen=True)
class CheckRequest:
    target: str  # path and query, as on the request line
    client_id: str  # decoded from the path
    query: dict[str, list[str]]  # decoded
    headers: dict[str, str]  # names in lower case
    verified: bool
    status: int  # what we answered (or were about to, for a slow answer cut short)


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
        self._checks: list[CheckRequest] = []
        self._check_answers: dict[str, CheckAnswer] = {}
        self._stopping = threading.Event()
        self.fail_when: Callable[[dict[str, Any]], bool] | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/crm/events"

    @property
    def check_url(self) -> str:
        """The pre-dial check's URL template (RINGBACK_CRM_CHECK_URL)."""
        return f"http://127.0.0.1:{self.port}/crm/clients/{{client_id}}/call-check"

    @property
    def checks(self) -> list[CheckRequest]:
        """Every pre-dial check that arrived, in order."""
        with self._lock:
            return list(self._checks)

    def answer_check(self, client_id: str, answer: CheckAnswer | None) -> None:
        """Answer `client_id`'s checks with `answer` from now on (None: 404, unknown client)."""
        with self._lock:
            if answer is None:
                self._check_answers.pop(client_id, None)
            else:
                self._check_answers[client_id] = answer

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
        self._stopping.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="crm-receiver",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # slow check answers stop waiting
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

    def _check(self, target: str, headers: dict[str, str]) -> CheckAnswer | None:
        """The answer to one GET (None: not a check path); the request recorded."""
        parts = urlsplit(target)
        match = CHECK_PATH.fullmatch(parts.path)
        if match is None:
            return None
        try:
            self._webhook.verify(target, headers, json_parse=False)
            verified = True
        except Exception:
            verified = False
        client_id = unquote(match.group(1))
        with self._lock:
            answer = self._check_answers.get(client_id, CheckAnswer(404, UNKNOWN_CLIENT_REPLY))
            if not verified:
                answer = CheckAnswer(401, FAILURE_TEXT[401].encode())
            self._checks.append(CheckRequest(target, client_id, parse_qs(parts.query), headers,
                                             verified, answer.status))
            self._lock.notify_all()
        return answer

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

            def do_GET(self) -> None:
                answer = receiver._check(self.path, {k.lower(): v for k, v in self.headers.items()})
                if answer is None:
                    answer = CheckAnswer(404, b"no such path")
                if answer.delay_s and receiver._stopping.wait(answer.delay_s):
                    return  # stopped while slow: the connection just closes
                with contextlib.suppress(OSError):  # the caller may have given up waiting
                    self.send_response(answer.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
