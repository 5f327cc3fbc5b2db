"""`GET /api/v1/callback-tasks` and `GET /api/v1/outbox`: filters, totals and cursor pages, on
SQLite and PostgreSQL (the routers with the error handlers, on a migrated database)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api import callback_tasks, outbox_status
from api.errors import install_error_handlers
from api.tokens import Role, create_token
from campaigns.models import CallbackTask, OutboxStatus
from campaigns.outbox import enqueue
from campaigns.queries import MAX_LIMIT

T0 = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
TASKS = "/api/v1/callback-tasks"
OUTBOX = "/api/v1/outbox"


@pytest.fixture
def client(sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(callback_tasks.router)
    app.include_router(outbox_status.router)
    app.state.sessions = sessions
    with sessions.begin() as session:
        token = create_token(session, Role.ADMIN, "lists")
    with TestClient(app, headers={"authorization": f"Bearer {token}"}) as test_client:
        yield test_client


def add_tasks(sessions: sessionmaker[Session], *specs: tuple[str, str, str, int]) -> None:
    """(id, reason, client_id, minutes after T0 of the deadline) for each task."""
    with sessions.begin() as session:
        for task_id, reason, client_id, minutes in specs:
            session.add(CallbackTask(
                id=task_id, reason=reason, client_id=client_id, phone="+79123456789",
                deadline=T0 + timedelta(minutes=minutes), created_at=T0,
            ))


def ids(body: dict[str, Any]) -> list[str]:
    return [item["id"] for item in body["items"]]


def walk(client: TestClient, path: str, **params: Any) -> tuple[list[dict[str, Any]], set[int]]:
    """Every page of a list, following next_cursor; the items and the totals seen."""
    items: list[dict[str, Any]] = []
    totals: set[int] = set()
    cursor: str | None = None
    while True:
        response = client.get(path, params=params | ({"cursor": cursor} if cursor else {}))
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        totals.add(body["total"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items, totals


def test_tasks_come_once_each_soonest_deadline_first_across_pages(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    # Three tasks share a deadline: the page boundary falls among them.
    add_tasks(sessions, ("t-c", "low_score", "k1", 30), ("t-a", "low_score", "k1", 30),
              ("t-e", "missed_call", "k2", 5), ("t-b", "low_score", "k2", 30),
              ("t-d", "low_score", "k3", 90))
    items, totals = walk(client, TASKS, limit=2)
    assert [item["id"] for item in items] == ["t-e", "t-a", "t-b", "t-c", "t-d"]
    assert totals == {5}
    single = client.get(TASKS, params={"limit": 5}).json()
    assert (ids(single), single["next_cursor"]) == ([i["id"] for i in items], None)


def test_a_task_added_behind_the_cursor_neither_repeats_nor_pushes_one_off(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    add_tasks(sessions, ("t-1", "low_score", "k1", 10), ("t-2", "low_score", "k1", 20),
              ("t-3", "low_score", "k1", 30))
    first = client.get(TASKS, params={"limit": 2}).json()
    add_tasks(sessions, ("t-0", "low_score", "k1", 0))  # sorts before the first page
    second = client.get(TASKS, params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert (ids(first), ids(second)) == (["t-1", "t-2"], ["t-3"])
    assert (first["total"], second["total"]) == (3, 4)


@pytest.mark.parametrize(("params", "expected"), [
    pytest.param({"reason": "missed_call"}, ["t-e"], id="reason"),
    pytest.param({"client_id": "k2"}, ["t-e", "t-b"], id="client"),
    pytest.param({"deadline_before": "2025-03-03T10:30:00Z"}, ["t-e"], id="before-is-strict"),
    pytest.param({"deadline_after": "2025-03-03T13:30:00+03:00"}, ["t-a", "t-b", "t-d"],
                 id="after-includes-and-takes-an-offset"),
    pytest.param({"deadline_after": "2025-03-03T10:05:00Z",
                  "deadline_before": "2025-03-03T11:30:00Z"}, ["t-e", "t-a", "t-b"],
                 id="window"),
    pytest.param({"client_id": "k1", "reason": "missed_call"}, [], id="nothing"),
    pytest.param({"status": "open"}, ["t-e", "t-a", "t-b", "t-d"], id="status"),
])
def test_task_filters_and_their_total(
    client: TestClient, sessions: sessionmaker[Session], params: dict[str, str],
    expected: list[str],
) -> None:
    add_tasks(sessions, ("t-a", "low_score", "k1", 30), ("t-e", "missed_call", "k2", 5),
              ("t-b", "low_score", "k2", 30), ("t-d", "low_score", "k3", 90))
    items, totals = walk(client, TASKS, limit=1, **params)
    assert [item["id"] for item in items] == expected
    assert totals == {len(expected)}


def cursor_of(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


BAD_LIST_PARAMS = [
    pytest.param(TASKS, {"limit": 0}, "query.limit", id="limit-0"),
    pytest.param(TASKS, {"limit": MAX_LIMIT + 1}, "query.limit", id="limit-over-max"),
    pytest.param(OUTBOX, {"limit": "ten"}, "query.limit", id="limit-not-a-number"),
    pytest.param(TASKS, {"cursor": "!!!"}, "query.cursor", id="cursor-not-base64"),
    pytest.param(TASKS, {"cursor": cursor_of(b"[1]")}, "query.cursor", id="cursor-of-outbox"),
    pytest.param(OUTBOX, {"cursor": cursor_of(b'["2025-03-03T10:00:00Z","t-a"]')},
                 "query.cursor", id="cursor-of-tasks"),
    pytest.param(OUTBOX, {"cursor": cursor_of(b"[99999999999999999999999]")}, "query.cursor",
                 id="cursor-past-64-bits"),
    pytest.param(TASKS, {"cursor": cursor_of(b'["0001-01-01T00:00:00+05:00","t"]')},
                 "query.cursor", id="cursor-year-1"),
    pytest.param(TASKS, {"cursor": cursor_of(b'["2025-03-03T10:00:00Z","t\\u0000"]')},
                 "query.cursor", id="cursor-nul"),
    pytest.param(TASKS, {"cursor": "é"}, "query.cursor", id="cursor-not-ascii"),
    pytest.param(TASKS, {"cursor": "x" * 600}, "query.cursor", id="cursor-too-long"),
    pytest.param(TASKS, {"deadline_before": "2025-03-03T10:00:00"}, "query.deadline_before",
                 id="naive-time"),
    pytest.param(TASKS, {"deadline_after": "0001-01-01T00:00:00+05:00"},
                 "query.deadline_after", id="year-1"),
    pytest.param(TASKS, {"deadline_after": "1741000000"}, "query.deadline_after",
                 id="epoch-time"),
    pytest.param(TASKS, {"client_id": "k\x00"}, "query.client_id", id="nul-in-client"),
    pytest.param(TASKS, {"status": "done"}, "query.status", id="unknown-status"),
    pytest.param(TASKS, {"reason": "Low Score"}, "query.reason", id="bad-reason"),
    pytest.param(TASKS, {"stauts": "open"}, "query.stauts", id="misspelt-filter"),
    pytest.param(OUTBOX, {"status": "failed"}, "query.status", id="unknown-outbox-status"),
    pytest.param(OUTBOX, {"type": "Survey Completed"}, "query.type", id="bad-type"),
]


@pytest.mark.parametrize(("path", "params", "where"), BAD_LIST_PARAMS)
def test_bad_list_parameters_are_422_in_the_error_model(
    client: TestClient, sessions: sessionmaker[Session], path: str, params: dict[str, Any],
    where: str,
) -> None:
    add_tasks(sessions, ("t-a", "low_score", "k1", 30))
    response = client.get(path, params=params)
    assert response.status_code == 422, response.text
    assert set(response.json()) == {"error"}
    error = response.json()["error"]
    assert error["code"] == "invalid-request" and error["message"].startswith(where), error


def test_outbox_lists_events_in_delivery_order_with_filters_and_the_summary(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        made = [enqueue(session, kind, f"client-{n}", {"n": n}, occurred_at=T0)
                for n, kind in enumerate(["survey.completed", "callback_task.created",
                                          "survey.completed", "survey.unanswered"])]
        session.flush()
        made[0].status = OutboxStatus.DELIVERED
        made[0].delivered_at = T0
        made[2].attempts, made[2].last_error = 2, "HTTP 503 from the CRM"
    event_ids = [event.event_id for event in made]
    items, totals = walk(client, OUTBOX, limit=3)
    assert [item["event_id"] for item in items] == event_ids
    assert totals == {4}
    assert set(items[2]) == {"event_id", "type", "ordering_key", "status", "attempts",
                             "next_attempt_at", "last_error", "created_at", "delivered_at"}
    assert (items[2]["attempts"], items[2]["last_error"]) == (2, "HTTP 503 from the CRM")

    body = client.get(OUTBOX, params={"status": "pending", "type": "survey.completed"}).json()
    assert [item["event_id"] for item in body["items"]] == [event_ids[2]]
    assert (body["total"], body["next_cursor"]) == (1, None)
    assert (body["pending"], body["failing"], body["last_error"]) == (
        3, 1, "HTTP 503 from the CRM")  # the summary is of every pending event
    delivered = client.get(OUTBOX, params={"status": "delivered"}).json()
    assert [item["event_id"] for item in delivered["items"]] == [event_ids[0]]


def test_lists_keep_their_roles(client: TestClient, sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        support = create_token(session, Role.SUPPORT, "support")
    as_support = {"authorization": f"Bearer {support}"}
    assert client.get(TASKS, headers=as_support).status_code == 200
    response = client.get(OUTBOX, headers=as_support)
    assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden")
    response = client.get(TASKS, headers={"authorization": "Bearer rb_unknown"})
    assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthorized")
