"""Callback tasks from the CRM's `call.missed` and `callback.requested`: the service on both
databases with an injected clock, then the signed webhook route end to end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api import webhooks
from api.errors import install_error_handlers
from campaigns.calendar import BusinessCalendar
from campaigns.callback_sources import (
    CALLBACK_REQUESTED,
    MISSED_CALL,
    CallbackSourcePolicy,
    CallbackSources,
)
from campaigns.calling_window import CallingWindow
from campaigns.do_not_call import opt_out
from campaigns.events import CallbackRequestedData, CallMissedData
from campaigns.intake import Intake, event_handlers
from campaigns.models import CallbackTask, CallbackTaskNote, OutboxEvent, WebhookEvent
from campaigns.warnings import WarningPolicy, Warnings
from infra.db import DatabaseThreads, transaction
from infra.settings import Settings
from tests.integration.test_webhook_intake import SECRET, FakeRules, count, post

MSK = ZoneInfo("Europe/Moscow")
CALENDAR = BusinessCalendar(zone=MSK)
# Friday 2026-11-27 18:50 in Moscow: the clock of every test here
NOW = datetime(2026, 11, 27, 18, 50, tzinfo=MSK)
CONTEXT = {"default_region": "RU"}


def sources(minutes: int = 30) -> CallbackSources:
    return CallbackSources(CALENDAR, lambda: NOW, CallbackSourcePolicy(minutes))


def missed(**data: Any) -> CallMissedData:
    return CallMissedData.model_validate(
        {"call_id": "call-1", "phone": "+79123456789", "at": "2026-11-27T18:45:00+03:00"} | data,
        context=CONTEXT, strict=False)


def requested(**data: Any) -> CallbackRequestedData:
    return CallbackRequestedData.model_validate(
        {"client_id": "client-1", "phone": "+79123456789"} | data, context=CONTEXT, strict=False)


def tasks(sessions: sessionmaker[Session]) -> list[CallbackTask]:
    with sessions() as session:
        return list(session.scalars(select(CallbackTask).order_by(CallbackTask.created_at,
                                                                  CallbackTask.reason)))


def outbox_types(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return list(session.scalars(select(OutboxEvent.type).order_by(OutboxEvent.id)))


def notes(sessions: sessionmaker[Session]) -> list[tuple[str, str]]:
    with sessions() as session:
        rows = session.execute(select(CallbackTaskNote.author, CallbackTaskNote.text)
                               .order_by(CallbackTaskNote.id))
        return [(author, text) for author, text in rows]


def test_a_missed_call_opens_a_task_due_in_30_working_minutes(
    sessions: sessionmaker[Session],
) -> None:
    with transaction(sessions) as session:
        sources().on_call_missed(session, missed(
            client_id="client-1", timezone="Asia/Vladivostok", agent_id="agent-7",
            queue="billing"), "evt-1")
    [task] = tasks(sessions)
    assert task.reason == MISSED_CALL
    assert (task.client_id, task.phone, task.original_call_id, task.agent_id) == (
        "client-1", "+79123456789", "call-1", "agent-7")
    # 18:45 Friday: 15 working minutes left, 15 more on Monday; business time, not Vladivostok
    assert task.deadline == datetime(2026, 11, 30, 10, 15, tzinfo=MSK)
    assert task.client_timezone == "Asia/Vladivostok"
    assert task.context == {"event_id": "evt-1", "missed_at": "2026-11-27T18:45:00+03:00",
                            "queue": "billing", "client_key": "client_id"}
    assert outbox_types(sessions) == ["callback_task.created"]


def test_the_missed_call_sla_is_configurable(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        sources(minutes=5).on_call_missed(session, missed(client_id="client-1"), "evt-1")
    [task] = tasks(sessions)
    assert task.deadline == datetime(2026, 11, 27, 18, 50, tzinfo=MSK)


def test_a_missed_call_reported_from_a_clock_ahead_counts_from_now(
    sessions: sessionmaker[Session],
) -> None:
    with transaction(sessions) as session:
        sources().on_call_missed(session, missed(at="2026-11-30T12:00:00+03:00"), "evt-1")
    [task] = tasks(sessions)
    assert task.deadline == datetime(2026, 11, 30, 10, 20, tzinfo=MSK)


def test_missed_calls_without_a_client_id_are_one_task_per_phone(
    sessions: sessionmaker[Session],
) -> None:
    with transaction(sessions) as session:
        sources().on_call_missed(session, missed(), "evt-1")
    with transaction(sessions) as session:
        sources().on_call_missed(session, missed(call_id="call-2", phone="8 912 345-67-89",
                                                 at="2026-11-27T18:48:00+03:00"), "evt-2")
    [task] = tasks(sessions)
    assert task.client_id == "+79123456789"
    assert task.requests == 2
    assert task.context is not None
    assert task.context["client_key"] == "phone"
    assert task.context["event_id"] == "evt-2"
    assert task.client_timezone is None  # +7 912 spans several zones: no guess
    assert task.deadline == datetime(2026, 11, 30, 10, 15, tzinfo=MSK)  # the earlier one kept
    assert outbox_types(sessions) == ["callback_task.created", "callback_task.updated"]


def test_a_requested_callback_is_due_at_the_requested_working_time(
    sessions: sessionmaker[Session],
) -> None:
    with transaction(sessions) as session:
        sources().on_callback_requested(session, requested(
            at="2026-11-30T20:00:00+10:00", note="after the meeting, please",
            timezone="Asia/Vladivostok"), "evt-1")
    [task] = tasks(sessions)
    assert task.reason == CALLBACK_REQUESTED
    assert task.deadline == datetime(2026, 11, 30, 13, 0, tzinfo=MSK)  # 20:00 in Vladivostok
    assert task.client_timezone == "Asia/Vladivostok"
    assert task.context == {"event_id": "evt-1", "requested_at": "2026-11-30T20:00:00+10:00",
                            "note": "after the meeting, please"}
    assert notes(sessions) == [("crm", "after the meeting, please")]
    assert outbox_types(sessions) == ["callback_task.created"]


@pytest.mark.parametrize(("at", "expected"), [
    pytest.param("2026-11-28T12:00:00+03:00", datetime(2026, 11, 30, 10, 0, tzinfo=MSK),
                 id="saturday-next-opening"),
    pytest.param("2026-11-26T12:00:00+03:00", datetime(2026, 11, 27, 18, 50, tzinfo=MSK),
                 id="past-is-now"),
    pytest.param(None, datetime(2026, 11, 30, 10, 20, tzinfo=MSK), id="no-time-missed-rule"),
])
def test_requested_callback_deadlines(
    sessions: sessionmaker[Session], at: str | None, expected: datetime
) -> None:
    with transaction(sessions) as session:
        sources().on_callback_requested(session, requested(at=at), "evt-1")
    [task] = tasks(sessions)
    assert task.deadline == expected


def test_a_second_request_updates_the_task_and_keeps_both_notes(
    sessions: sessionmaker[Session],
) -> None:
    with transaction(sessions) as session:
        sources().on_callback_requested(session, requested(
            at="2026-12-01T15:00:00+03:00", note="about the invoice"), "evt-1")
    with transaction(sessions) as session:
        sources().on_callback_requested(session, requested(
            at="2026-11-30T11:00:00+03:00", note="sooner, if you can"), "evt-2")
    with transaction(sessions) as session:
        sources().on_callback_requested(session, requested(), "evt-3")  # no note, no time
    [task] = tasks(sessions)
    assert task.requests == 3
    assert task.deadline == datetime(2026, 11, 30, 10, 20, tzinfo=MSK)
    assert notes(sessions) == [("crm", "about the invoice"), ("crm", "sooner, if you can")]
    assert outbox_types(sessions) == ["callback_task.created"] + ["callback_task.updated"] * 2


def test_a_missed_call_and_a_request_are_two_tasks(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        sources().on_call_missed(session, missed(client_id="client-1"), "evt-1")
        sources().on_callback_requested(session, requested(), "evt-2")
    assert sorted(task.reason for task in tasks(sessions)) == [CALLBACK_REQUESTED, MISSED_CALL]


def test_a_client_on_the_do_not_call_list_still_gets_a_person_calling_back(
    sessions: sessionmaker[Session],
) -> None:
    with transaction(sessions) as session:
        opt_out(session, client_id="client-1", phone="+79123456789", source="evt-0")
    with transaction(sessions) as session:
        sources().on_callback_requested(session, requested(), "evt-1")
    assert [task.reason for task in tasks(sessions)] == [CALLBACK_REQUESTED]


# --- through the signed webhook ---------------------------------------------------------------


@pytest.fixture
def client(
    sessions: sessionmaker[Session], tmp_path: Path, database_url: str
) -> Iterator[TestClient]:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(webhooks.router)
    app.state.settings = Settings(_env_file=None, data_dir=tmp_path,
                                  crm_webhook_secret=SECRET, crm_webhook_tolerance_s=120)
    warnings = Warnings(WarningPolicy(window=CallingWindow.from_settings(CALENDAR)), CALENDAR,
                        lambda: NOW)
    app.state.intake = Intake(sessions, event_handlers(FakeRules(), warnings, sources()),
                              default_region="RU")
    app.state.database = DatabaseThreads(database_url)
    yield TestClient(app, raise_server_exceptions=False)
    app.state.database.close()


def event(event_type: str, event_id: str = "evt-1", **data: Any) -> dict[str, Any]:
    base = {
        "call.missed": {"call_id": "call-1", "client_id": "client-1", "phone": "8 912 345-67-89",
                        "at": "2026-11-27T18:45:00+03:00", "queue": "billing"},
        "callback.requested": {"client_id": "client-1", "phone": "+7 912 345 67 89",
                               "at": "2026-11-30T12:30:00+03:00", "note": "call me"},
    }[event_type]
    return {"id": event_id, "type": event_type, "occurred_at": "2026-11-27T18:50:00+03:00",
            "data": base | data}


@pytest.mark.parametrize(("event_type", "reason", "deadline"), [
    ("call.missed", MISSED_CALL, datetime(2026, 11, 30, 10, 15, tzinfo=MSK)),
    ("callback.requested", CALLBACK_REQUESTED, datetime(2026, 11, 30, 12, 30, tzinfo=MSK)),
])
def test_a_signed_event_opens_one_task_once(
    client: TestClient, sessions: sessionmaker[Session], event_type: str, reason: str,
    deadline: datetime,
) -> None:
    response = post(client, event(event_type))
    assert response.status_code == 202, response.text
    assert response.json() == {"status": "accepted", "id": "evt-1"}
    again = post(client, event(event_type), msg_id="msg-2")
    assert again.status_code == 200  # acknowledged, not applied again
    assert again.json() == {"status": "duplicate", "id": "evt-1"}
    [task] = tasks(sessions)
    assert (task.reason, task.client_id, task.phone) == (reason, "client-1", "+79123456789")
    assert task.deadline == deadline
    assert task.requests == 1
    assert outbox_types(sessions) == ["callback_task.created"]


@pytest.mark.parametrize("event_type", ["call.missed", "callback.requested"])
def test_a_bad_phone_is_422_invalid_phone_and_nothing_is_stored(
    client: TestClient, sessions: sessionmaker[Session], event_type: str
) -> None:
    response = post(client, event(event_type, phone="+7 (999) abc-de-fg"))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid-phone"
    assert count(sessions, WebhookEvent) == 0
    assert count(sessions, CallbackTask) == 0


@pytest.mark.parametrize(("event_type", "data"), [
    pytest.param("callback.requested", {"note": "x" * 1001}, id="note-too-long"),
    pytest.param("callback.requested", {"at": "2026-11-30T12:30:00"}, id="at-without-offset"),
    pytest.param("callback.requested", {"timezone": "Mars/Olympus"}, id="bad-zone"),
    pytest.param("call.missed", {"at": None}, id="missed-without-at"),
    pytest.param("call.missed", {"call_id": 42}, id="call-id-a-number"),
])
def test_a_bad_event_is_422_and_nothing_is_stored(
    client: TestClient, sessions: sessionmaker[Session], event_type: str, data: dict[str, Any]
) -> None:
    response = post(client, event(event_type, **data))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid-event"
    assert count(sessions, WebhookEvent) == 0
    assert count(sessions, CallbackTask) == 0


def test_an_unsigned_event_is_401_and_nothing_is_stored(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    body = json.dumps(event("callback.requested")).encode()
    response = client.post("/webhooks/crm", content=body,
                           headers={"content-type": "application/json"})
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid-signature"
    assert count(sessions, WebhookEvent) == 0
    assert count(sessions, CallbackTask) == 0

