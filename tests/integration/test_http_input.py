"""HTTP input on a real `ringback serve` (SQLite, no registrar) over a socket, through one
persistent connection as a CRM's HTTP client keeps it: hostile and sloppy webhooks are refused
with a 4xx and a stable code, nothing of them is stored, an unexpected fault is a JSON 500, and
after each of these the next request on the same connection is answered.
"""

from __future__ import annotations

import gzip
import http.client
import json
import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from campaigns.events import MAX_NESTING
from infra.settings import DEV_WEBHOOK_SECRET
from lab.ringback import RingbackService, sign

JSON = "application/json"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RingbackService]:
    svc = RingbackService(tmp_path_factory.mktemp("http-input"), {})
    try:
        yield svc.start()
    finally:
        svc.close()


class Connection:
    """One HTTP/1.1 connection, kept alive between requests. It never reconnects: a request
    after the server dropped it fails."""

    def __init__(self, service: RingbackService) -> None:
        self.http = http.client.HTTPConnection("127.0.0.1", service.http_port, timeout=10)
        self.http.connect()
        self.local = self.http.sock.getsockname()

    def request(
        self, method: str, path: str, body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        assert self.http.sock is not None, "the server closed the connection"
        self.http.request(method, path, body=body, headers=headers or {})
        response = self.http.getresponse()
        content = response.read()
        assert self.http.sock is not None and self.http.sock.getsockname() == self.local
        return response.status, json.loads(content) if content else {}

    def post_event(self, body: bytes, content_type: str = JSON) -> tuple[int, dict[str, Any]]:
        signed = sign(body, f"msg-{uuid.uuid4()}", DEV_WEBHOOK_SECRET)
        return self.request("POST", "/webhooks/crm", body, {"content-type": content_type, **signed})

    def still_answers(self) -> None:
        status, body = self.request("GET", "/healthz")
        assert (status, body["status"]) == (200, "ok"), body


@pytest.fixture
def connection(service: RingbackService) -> Iterator[Connection]:
    opened = Connection(service)
    try:
        yield opened
    finally:
        opened.http.close()


def call_completed(**data: Any) -> dict[str, Any]:
    return {
        "id": f"evt-{uuid.uuid4()}",
        "type": "call.completed",
        "occurred_at": "2025-03-03T12:05:00+03:00",
        "data": {
            "call_id": "call-1", "client_id": "client-1", "phone": "+7 912 345-67-89",
            "ended_at": "2025-03-03T12:04:30+03:00", "duration_s": 95,
        } | data,
    }


def nested(depth: int) -> bytes:
    """An event of a type ringback ignores whose data holds arrays `depth` levels deep in all
    (the envelope and `data` are two of them)."""
    envelope = {"id": f"evt-{uuid.uuid4()}", "type": "crm.noise",
                "occurred_at": "2025-03-03T12:05:00Z", "data": {"deep": "INNER"}}
    inner = "[" * (depth - 2) + "]" * (depth - 2)
    return json.dumps(envelope).replace('"INNER"', inner).encode()


def stored(service: RingbackService, event_id: str) -> bool:
    with sqlite3.connect(service.database) as db:
        found = db.execute("select 1 from webhook_events where id = ?", (event_id,)).fetchall()
    return bool(found)


def test_an_unexpected_fault_is_a_json_500_and_the_connection_stays_open(
    service: RingbackService, connection: Connection
) -> None:
    with sqlite3.connect(service.database) as db:  # a fault ringback does not expect
        db.execute("alter table webhook_events rename to webhook_events_away")
    try:
        status, body = connection.post_event(json.dumps(call_completed()).encode())
    finally:
        with sqlite3.connect(service.database) as db:
            db.execute("alter table webhook_events_away rename to webhook_events")
    assert (status, body["error"]["code"]) == (500, "internal-error"), body
    assert "webhook_events" not in body["error"]["message"]  # no internals to the client
    connection.still_answers()
    event = call_completed()
    assert connection.post_event(json.dumps(event).encode())[0] == 202  # the CRM's retry
    assert stored(service, event["id"])


def test_json_nested_too_deep_is_422_and_the_connection_stays_open(
    service: RingbackService, connection: Connection
) -> None:
    for depth in (MAX_NESTING + 1, 1000, 100_000):
        status, body = connection.post_event(nested(depth))
        assert (status, body["error"]["code"]) == (422, "invalid-event"), (depth, body)
        assert f"deeper than {MAX_NESTING}" in body["error"]["message"]
        connection.still_answers()
    status, body = connection.post_event(nested(MAX_NESTING))
    assert (status, body["status"]) == (202, "ignored"), body


@pytest.mark.parametrize(("event", "where"), [
    pytest.param(call_completed(ended_at="9999-12-31T23:59:59Z"), "data.ended_at", id="year-9999"),
    pytest.param(call_completed(ended_at="0001-01-01T00:00:00+05:00"), "data.ended_at",
                 id="year-1"),
    pytest.param(call_completed(ended_at="2100-01-01T00:00:00Z"), "data.ended_at",
                 id="next-century"),
    pytest.param(call_completed() | {"occurred_at": "1999-12-31T23:59:59Z"}, "occurred_at",
                 id="last-century"),
    pytest.param(call_completed(timezone="localtime"), "data.timezone", id="zone-localtime"),
    pytest.param(call_completed(timezone="Factory"), "data.timezone", id="zone-factory"),
    pytest.param(call_completed(timezone="posixrules"), "data.timezone", id="zone-posixrules"),
    pytest.param(call_completed(timezone="EST5EDT"), "data.timezone", id="zone-legacy-alias"),
])
def test_times_and_zones_out_of_bounds_are_422_and_nothing_is_stored(
    service: RingbackService, connection: Connection, event: dict[str, Any], where: str
) -> None:
    status, body = connection.post_event(json.dumps(event).encode())
    assert (status, body["error"]["code"]) == (422, "invalid-event"), body
    assert body["error"]["message"].startswith(f"{where}: "), body
    assert not stored(service, event["id"])
    connection.still_answers()


@pytest.mark.parametrize("value", ["\x00", "k\x00", "\x1fk", "k "])
def test_a_control_character_or_space_at_the_edge_of_an_id_is_422(
    service: RingbackService, connection: Connection, value: str
) -> None:
    event = call_completed(client_id=value)
    status, body = connection.post_event(json.dumps(event).encode())
    assert (status, body["error"]["code"]) == (422, "invalid-event"), body
    assert body["error"]["message"].startswith("data.client_id: "), body
    assert not stored(service, event["id"])


def test_times_and_zones_within_bounds_are_accepted(connection: Connection) -> None:
    for data in ({"ended_at": "2000-01-01T00:00:00+05:00", "timezone": "UTC"},
                 {"ended_at": "2099-12-31T23:59:59-05:00", "timezone": "America/New_York"},
                 {"timezone": "US/Eastern"}):
        status, body = connection.post_event(json.dumps(call_completed(**data)).encode())
        assert (status, body["status"]) == (202, "accepted"), (data, body)


EVENT = json.dumps(call_completed()).encode()


@pytest.mark.parametrize(("body", "content_type"), [
    pytest.param(EVENT, "text/plain", id="text"),
    pytest.param(EVENT, "text/json", id="text-json"),
    pytest.param(b"<event><id>evt-1</id></event>", "application/xml", id="xml"),
    pytest.param(b"id=evt-1&type=call.completed", "application/x-www-form-urlencoded",
                 id="form"),
    pytest.param(EVENT, "multipart/form-data; boundary=x", id="multipart"),
    pytest.param(EVENT, "", id="none"),
    pytest.param(EVENT, "application/json; charset=latin-1", id="other-charset"),
    pytest.param(EVENT, "application/json-seq", id="other-json"),
    pytest.param(EVENT, "application/json; charset=utf-8; boundary=x", id="other-parameter"),
])
def test_bodies_that_are_not_plain_json_are_415_and_nothing_is_stored(
    service: RingbackService, connection: Connection, body: bytes, content_type: str
) -> None:
    status, answer = connection.post_event(body, content_type)
    assert (status, answer["error"]["code"]) == (415, "unsupported-media-type"), answer
    assert not stored(service, "evt-1")
    connection.still_answers()


def test_a_gzip_body_is_415_not_an_invalid_signature(connection: Connection) -> None:
    """Signed as JSON, sent compressed: a CRM's HTTP client that compresses on its own."""
    headers = {"content-type": JSON, "content-encoding": "gzip",
               **sign(EVENT, "msg-gzip", DEV_WEBHOOK_SECRET)}
    status, answer = connection.request("POST", "/webhooks/crm", gzip.compress(EVENT), headers)
    assert (status, answer["error"]["code"]) == (415, "unsupported-media-type"), answer
    connection.still_answers()


@pytest.mark.parametrize("content_type", [
    "application/json", "application/json; charset=utf-8", "Application/JSON; Charset=\"UTF-8\"",
])
def test_json_with_or_without_the_utf8_charset_is_taken(
    connection: Connection, content_type: str
) -> None:
    status, body = connection.post_event(json.dumps(call_completed()).encode(), content_type)
    assert (status, body["status"]) == (202, "accepted"), body


def test_the_media_type_is_checked_before_the_signature_and_the_signature_before_parsing(
    connection: Connection,
) -> None:
    unsigned = {"content-type": "text/plain"}
    status, body = connection.request("POST", "/webhooks/crm", b"[" * 100_000, unsigned)
    assert (status, body["error"]["code"]) == (415, "unsupported-media-type")
    unsigned["content-type"] = JSON
    status, body = connection.request("POST", "/webhooks/crm", b"[" * 100_000, unsigned)
    assert (status, body["error"]["code"]) == (401, "invalid-signature")

