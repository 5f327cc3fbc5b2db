"""The CRM webhook edge: signature first, strict events, each event applied once and whole.

The app here is the router, the error handlers and a real `Intake` on a SQLite file; the survey
rules are a fake that records its calls.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks import Webhook

from api import webhooks
from api.errors import install_error_handlers
from campaigns.calendar import BusinessCalendar
from campaigns.callback_sources import CallbackSources
from campaigns.calling_window import CallingWindow
from campaigns.events import CallCompletedData, parse_event
from campaigns.intake import Intake, IntakeResult, event_handlers
from campaigns.models import (
    DoNotCall,
    DoNotCallClient,
    Job,
    JobKind,
    JobStatus,
    OutboxEvent,
    WebhookEvent,
)
from campaigns.warnings import WarningPolicy, Warnings
from infra.db import Base, DatabaseThreads, utcnow
from infra.settings import Settings

SECRET = "whsec_" + "dGVzdC1pbmJvdW5kLXNlY3JldC0zMi1ieXRlcy1sb25nIQ=="
OTHER_SECRET = "whsec_" + "c29tZWJvZHktZWxzZXMtc2VjcmV0LTMyLWJ5dGVzLWxvbmc="


class FakeRules:
    def __init__(self) -> None:
        self.calls: list[tuple[CallCompletedData, str]] = []
        self.fail = False

    def on_call_completed(self, session: Session, data: CallCompletedData, event_id: str) -> None:
        self.calls.append((data, event_id))
        session.add(_job(event_id, data.client_id, data.phone))
        if self.fail:
            raise RuntimeError("a bug in the rules")


def _job(event_id: str, client_id: str, phone: str) -> Job:
    now = datetime.now(UTC)
    return Job(id=f"job-{event_id}", kind=JobKind.SURVEY, source_event_id=event_id,
               client_id=client_id, phone=phone, timezone="Europe/Moscow", locale="ru",
               due_at=now, not_before=now, not_after=now + timedelta(hours=1), max_attempts=3)


def intake_around(sessions: sessionmaker[Session], rules: FakeRules) -> Intake:
    """The intake with these survey rules and real warnings."""
    calendar = BusinessCalendar.from_settings(timezone="Europe/Moscow")
    warnings = Warnings(WarningPolicy(window=CallingWindow.from_settings(calendar)), calendar,
                        utcnow)
    callbacks = CallbackSources(calendar, utcnow)
    return Intake(sessions, event_handlers(rules, warnings, callbacks), default_region="RU")


@pytest.fixture
def rules() -> FakeRules:
    return FakeRules()


@pytest.fixture
def client(
    sessions: sessionmaker[Session], rules: FakeRules, tmp_path: Path, database_url: str
) -> Iterator[TestClient]:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(webhooks.router)
    app.state.settings = Settings(_env_file=None, data_dir=tmp_path,
                                  crm_webhook_secret=SECRET, crm_webhook_tolerance_s=120)
    app.state.intake = intake_around(sessions, rules)
    app.state.database = DatabaseThreads(database_url)
    yield TestClient(app, raise_server_exceptions=False)
    app.state.database.close()


def call_completed(event_id: str = "evt-1", **data: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "call.completed",
        "occurred_at": "2025-03-03T12:05:00+03:00",
        "data": {
            "call_id": "call-1", "client_id": "client-1", "phone": "8 912 345-67-89",
            "ended_at": "2025-03-03T12:04:30+03:00", "duration_s": 95,
            "agent_id": "agent-7", "timezone": "Asia/Yekaterinburg", "locale": "ru",
        } | data,
    }


def signed(body: bytes, *, secret: str = SECRET, msg_id: str = "msg-1",
           at: datetime | None = None) -> dict[str, str]:
    at = at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, at, body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signature, "content-type": "application/json"}


def post(client: TestClient, event: dict[str, Any] | bytes, **sign: Any) -> Any:
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    return client.post("/webhooks/crm", content=body, headers=signed(body, **sign))


def count(sessions: sessionmaker[Session], model: type[Base]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_signed_call_completed_is_applied_once(
    client: TestClient, rules: FakeRules, sessions: sessionmaker[Session]
) -> None:
    response = post(client, call_completed())
    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "id": "evt-1"}
    [(data, event_id)] = rules.calls
    assert event_id == "evt-1"
    assert data.phone == "+79123456789"
    assert data.ended_at == datetime(2025, 3, 3, 9, 4, 30, tzinfo=UTC)
    with sessions() as session:
        stored = session.get_one(WebhookEvent, "evt-1")
        assert stored.type == "call.completed"
        assert stored.payload["data"]["phone"] == "+79123456789"


def test_the_same_event_twice_is_applied_once(
    client: TestClient, rules: FakeRules, sessions: sessionmaker[Session]
) -> None:
    assert post(client, call_completed()).status_code == 202
    again = post(client, call_completed(), msg_id="msg-2")  # a retry, signed anew
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "id": "evt-1"}
    assert len(rules.calls) == 1
    assert count(sessions, WebhookEvent) == 1
    assert count(sessions, Job) == 1


def test_a_failure_while_applying_leaves_nothing_behind(
    client: TestClient, rules: FakeRules, sessions: sessionmaker[Session]
) -> None:
    rules.fail = True
    response = post(client, call_completed())
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal-error"
    assert count(sessions, WebhookEvent) == 0
    assert count(sessions, Job) == 0
    rules.fail = False  # the CRM's retry is applied
    assert post(client, call_completed()).status_code == 202
    assert count(sessions, Job) == 1


BODY = json.dumps(call_completed()).encode()


def _good() -> dict[str, str]:
    return signed(BODY)


def _without(name: str) -> dict[str, str]:
    return {k: v for k, v in _good().items() if k != name}


def _with(name: str, value: str) -> dict[str, str]:
    return _good() | {name: value}


def _signed_at(delta_s: float) -> dict[str, str]:
    return signed(BODY, at=datetime.now(UTC) + timedelta(seconds=delta_s))


# (body, headers()): the headers are made when the test runs, so "now" is fresh.
BAD_SIGNATURES = [
    pytest.param(BODY, lambda: {"content-type": "application/json"}, id="unsigned"),
    pytest.param(BODY, lambda: _without("webhook-id"), id="no-id"),
    pytest.param(BODY, lambda: _without("webhook-timestamp"), id="no-timestamp"),
    pytest.param(BODY.replace(b"agent-7", b"agent-8"), _good, id="tampered-body"),
    pytest.param(BODY, lambda: signed(BODY, secret=OTHER_SECRET), id="wrong-secret"),
    # The tolerance is 120 s here: both are inside the package's own (fixed) 5 minutes.
    pytest.param(BODY, lambda: _signed_at(-150), id="expired"),
    pytest.param(BODY, lambda: _signed_at(150), id="from-the-future"),
    pytest.param(BODY, lambda: _with("webhook-id", "msg-other"), id="other-message-id"),
    pytest.param(BODY, lambda: _with("webhook-signature", "v1,!!!"), id="not-base64"),
    pytest.param(BODY, lambda: _with("webhook-signature", "v1"), id="no-comma"),
    pytest.param(BODY, lambda: _with("webhook-signature", "v1,"), id="empty-signature"),
    pytest.param(BODY, lambda: _with("webhook-signature", ""), id="empty-header"),
    pytest.param(BODY, lambda: _with("webhook-signature", "v1,abc"), id="bad-padding"),
    pytest.param(BODY, lambda: _with("webhook-signature", "v1,YWJj"), id="short-signature"),
    pytest.param(BODY, lambda: _with("webhook-signature", "v2," + _good()["webhook-signature"][3:]),
                 id="unknown-version-only"),
    pytest.param(BODY, lambda: _with("webhook-signature",
                                     "garbage " + _good()["webhook-signature"]),
                 id="malformed-item-beside-a-good-one"),
    pytest.param(BODY, lambda: _with("webhook-timestamp", "soon"), id="timestamp-not-a-number"),
    pytest.param(BODY, lambda: _with("webhook-timestamp", "1e9"), id="timestamp-exponent"),
    pytest.param(BODY, lambda: _with("webhook-timestamp", "nan"), id="timestamp-nan"),
    pytest.param(BODY, lambda: _with("webhook-timestamp", "9" * 30), id="timestamp-huge"),
    pytest.param(b"\xff\xfe" + BODY, _good, id="not-utf8"),
]


@pytest.mark.parametrize(("body", "headers"), BAD_SIGNATURES)
def test_unverified_requests_are_refused_and_nothing_is_stored(
    client: TestClient, rules: FakeRules, sessions: sessionmaker[Session],
    body: bytes, headers: Callable[[], dict[str, str]],
) -> None:
    response = client.post("/webhooks/crm", content=body, headers=headers())
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid-signature"
    assert error["message"]
    assert rules.calls == []
    assert count(sessions, WebhookEvent) == 0


def test_a_signature_list_with_a_matching_v1_is_accepted(client: TestClient) -> None:
    body = json.dumps(call_completed()).encode()
    headers = signed(body)
    rotated = signed(body, secret=OTHER_SECRET)["webhook-signature"]
    headers["webhook-signature"] = f"v1a,c2lnbmVk {rotated} {headers['webhook-signature']}"
    assert client.post("/webhooks/crm", content=body, headers=headers).status_code == 202


def test_a_signature_checked_here_is_one_the_package_accepts() -> None:
    """Our header checks sit in front of the package's HMAC: both agree on a good message."""
    body = json.dumps(call_completed()).encode()
    headers = signed(body)
    webhooks.verify_signature(SECRET, body, headers, tolerance=timedelta(seconds=60),
                              now=datetime.now(UTC))
    Webhook(SECRET).verify(body, headers, json_parse=False)


def test_bad_json_is_422_malformed_json(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    response = post(client, b'{"id": "evt-1", "type": ')
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "malformed-json"
    assert count(sessions, WebhookEvent) == 0


@pytest.mark.parametrize(("event", "where"), [
    pytest.param(call_completed(ended_at="2025-03-03T12:04:30"), "data.ended_at", id="naive-time"),
    pytest.param(call_completed(ended_at="1741000000"), "data.ended_at", id="epoch-time"),
    pytest.param(call_completed(timezone="Mars/Olympus"), "data.timezone", id="bad-timezone"),
    pytest.param(call_completed(locale="Russian"), "data.locale", id="bad-locale"),
    pytest.param(call_completed(duration_s=-1), "data.duration_s", id="negative-duration"),
    pytest.param(call_completed(duration_s="95"), "data.duration_s", id="duration-as-string"),
    pytest.param(call_completed(client_id=""), "data.client_id", id="empty-id"),
    pytest.param(call_completed(client_id="x" * 201), "data.client_id", id="long-id"),
    pytest.param({k: v for k, v in call_completed().items() if k != "occurred_at"},
                 "occurred_at", id="missing-envelope-field"),
    pytest.param(call_completed() | {"data": {"call_id": "call-1"}}, "data.client_id",
                 id="missing-data-field"),
    pytest.param({"id": "evt-9", "type": "client.opted_out",
                  "occurred_at": "2025-03-03T12:05:00Z", "data": {}}, "data", id="opt-out-empty"),
    pytest.param([call_completed()], "body", id="not-an-object"),
])
def test_invalid_events_are_422_and_nothing_is_stored(
    client: TestClient, rules: FakeRules, sessions: sessionmaker[Session],
    event: Any, where: str,
) -> None:
    response = post(client, json.dumps(event).encode())
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid-event"
    assert where in error["message"] or where == "body"
    assert rules.calls == []
    assert count(sessions, WebhookEvent) == 0


@pytest.mark.parametrize("event", [
    pytest.param(call_completed(phone="12345"), id="too-short"),
    pytest.param(call_completed(phone="+7 (999) CALL-NOW"), id="vanity"),
    pytest.param(call_completed(phone="+7 809 123 45 67"), id="premium-rate"),
    pytest.param({"id": "evt-9", "type": "client.opted_out", "occurred_at": "2025-03-03T12:05:00Z",
                  "data": {"phone": "+7 (999) abc-de-fg"}}, id="opt-out-letters"),
])
def test_a_bad_phone_is_422_invalid_phone_and_nothing_is_stored(
    client: TestClient, rules: FakeRules, sessions: sessionmaker[Session], event: Any
) -> None:
    response = post(client, event)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid-phone"
    assert error["message"].startswith("data.phone: ")
    assert rules.calls == []
    assert count(sessions, WebhookEvent) == 0
    assert count(sessions, Job) == 0


def test_an_unknown_type_is_acknowledged_recorded_and_ignored(
    client: TestClient, rules: FakeRules, sessions: sessionmaker[Session]
) -> None:
    event = {"id": "evt-5", "type": "deal.won", "occurred_at": "2025-03-03T12:05:00Z",
             "data": {"deal_id": 1}}
    response = post(client, event)
    assert response.status_code == 202
    assert response.json() == {"status": "ignored", "id": "evt-5"}
    assert rules.calls == []
    with sessions() as session:
        assert session.get_one(WebhookEvent, "evt-5").type == "deal.won"
    assert post(client, event).json() == {"status": "duplicate", "id": "evt-5"}


def test_opted_out_by_phone_is_do_not_call_cancelled_jobs_and_an_outbox_event(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        session.add(_job("old-1", "client-1", "+79123456789"))
        session.add(_job("other", "client-2", "+79990000000"))
    event = {"id": "evt-6", "type": "client.opted_out", "occurred_at": "2025-03-03T12:05:00Z",
             "data": {"phone": "+7 (912) 345 67 89", "client_id": "client-1"}}
    assert post(client, event).status_code == 202
    with sessions() as session:
        entry = session.get_one(DoNotCall, "+79123456789")
        assert (entry.client_id, entry.source_event_id) == ("client-1", "evt-6")
        cancelled = session.get_one(Job, "job-old-1")
        assert (cancelled.status, cancelled.final_reason) == (JobStatus.SKIPPED, "opted out")
        assert session.get_one(Job, "job-other").status == JobStatus.PENDING
        [outbox] = session.scalars(select(OutboxEvent)).all()
        assert (outbox.type, outbox.ordering_key) == ("client.opted_out", "client-1")
        assert outbox.payload["type"] == "client.opted_out"
        assert outbox.payload["id"] == outbox.event_id
        assert outbox.payload["data"] == {
            "client_id": "client-1", "phones": ["+79123456789"],
            "cancelled_job_ids": ["job-old-1"], "source_event_id": "evt-6",
        }


def test_opted_out_by_client_covers_every_phone_known_for_it(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        session.add(_job("a", "client-1", "+79123456789"))
        session.add(_job("b", "client-1", "+79123450000"))
    event = {"id": "evt-7", "type": "client.opted_out", "occurred_at": "2025-03-03T12:05:00Z",
             "data": {"client_id": "client-1"}}
    assert post(client, event).status_code == 202
    with sessions() as session:
        phones = session.scalars(select(DoNotCall.phone).order_by(DoNotCall.phone)).all()
        assert phones == ["+79123450000", "+79123456789"]
        assert session.get(DoNotCallClient, "client-1") is not None  # new numbers too
        statuses = session.scalars(select(Job.status)).all()
        assert set(statuses) == {JobStatus.SKIPPED}


def test_a_body_over_256_kib_is_413(client: TestClient, sessions: sessionmaker[Session]) -> None:
    event = call_completed()
    event["data"]["padding"] = "x" * (300 * 1024)
    response = post(client, event)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload-too-large"
    assert count(sessions, WebhookEvent) == 0


def test_a_chunked_body_over_256_kib_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(300):
            yield b"x" * 1024

    response = client.post("/webhooks/crm", content=chunks(), headers=signed(b""))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload-too-large"


def test_twins_racing_are_applied_once(sessions: sessionmaker[Session]) -> None:
    """Two deliveries of one event at once: the second waits on the first's event-id row,
    then finds it and reports a duplicate."""

    class SlowRules(FakeRules):
        def on_call_completed(
            self, session: Session, data: CallCompletedData, event_id: str
        ) -> None:
            super().on_call_completed(session, data, event_id)
            time.sleep(0.3)

    rules = SlowRules()
    intake = intake_around(sessions, rules)
    event = parse_event(json.dumps(call_completed()).encode(), "RU")
    with ThreadPoolExecutor(2) as pool:
        results = sorted(pool.map(lambda _: intake.handle(event), range(2)))
    assert results == [IntakeResult.ACCEPTED, IntakeResult.DUPLICATE]
    assert len(rules.calls) == 1
    assert count(sessions, Job) == 1
