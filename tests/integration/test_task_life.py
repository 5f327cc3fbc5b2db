"""A callback task's life (campaigns/task_life.py), its overdue escalation
(campaigns/escalation.py) and its REST routes, on SQLite and PostgreSQL: every change with its
audit entry and CRM event, refused changes, concurrent claims, and the supervisor receiving
signed escalations (a real HTTP server)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api import callback_tasks
from api.errors import install_error_handlers
from api.tokens import Role, create_token
from campaigns import task_life
from campaigns.escalation import EscalationPolicy, OverdueTick, mark_overdue
from campaigns.models import AuditEntry, CallbackTask, OutboxEvent, TaskOutcome
from campaigns.outbox import SUPERVISOR_PREFIX, OutboxDelivery
from campaigns.task_errors import (
    TaskClosed,
    TaskConflict,
    TaskError,
    TaskNotAllowed,
    TaskNotClaimed,
    TaskNotFound,
)
from campaigns.task_life import Actor, AttemptResult
from infra.db import transaction
from infra.settings import DEV_OUTBOUND_SECRET
from lab.crm_receiver import CrmReceiver

T0 = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
ANNA = Actor("token:anna")
BORIS = Actor("token:boris")
ADMIN = Actor("token:root", admin=True)
TASKS = "/api/v1/callback-tasks"


def add_task(sessions: sessionmaker[Session], task_id: str = "t-1",
             deadline: datetime = T0 + timedelta(hours=1), client_id: str = "k1") -> None:
    with sessions.begin() as session:
        session.add(CallbackTask(id=task_id, reason="low_score", client_id=client_id,
                                 phone="+79123456789", deadline=deadline, created_at=T0))


def events(sessions: sessionmaker[Session]) -> list[tuple[str, dict[str, Any]]]:
    """(type, data) of every outbox event, oldest first."""
    with sessions() as session:
        rows = session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
        return [(row.type, row.payload["data"]) for row in rows]


def audit(sessions: sessionmaker[Session]) -> list[tuple[str, str]]:
    with sessions() as session:
        rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        return [(row.actor, row.action) for row in rows]


def act(sessions: sessionmaker[Session], change: Callable[[Session], Any]) -> Any:
    with transaction(sessions) as session:
        return change(session)


def task(sessions: sessionmaker[Session], task_id: str = "t-1") -> CallbackTask:
    with sessions() as session:
        return session.get_one(CallbackTask, task_id)


def test_claim_note_attempt_resolve_each_with_its_event_and_audit_entry(
    sessions: sessionmaker[Session],
) -> None:
    add_task(sessions)
    at = T0 + timedelta(minutes=5)
    act(sessions, lambda s: task_life.claim(s, "t-1", ANNA, at))
    act(sessions, lambda s: task_life.add_note(s, "t-1", "asks about the invoice", BORIS, at))
    act(sessions, lambda s: task_life.record_attempt(s, "t-1", AttemptResult.NO_ANSWER, None,
                                                     ANNA, at))
    act(sessions, lambda s: task_life.resolve(s, "t-1", TaskOutcome.SOLVED, "refunded", ANNA,
                                              at + timedelta(minutes=1)))
    done = task(sessions)
    assert (done.status, done.assignee, done.outcome, done.resolution_note) == (
        "resolved", "token:anna", "solved", "refunded")
    assert (done.claimed_at, done.resolved_at) == (at, at + timedelta(minutes=1))
    sent = events(sessions)
    assert [(kind, data["change"], data["status"]) for kind, data in sent] == [
        ("callback_task.updated", "claim", "claimed"),
        ("callback_task.updated", "note", "claimed"),
        ("callback_task.updated", "attempt", "claimed"),
        ("callback_task.resolved", "resolve", "resolved"),
    ]
    assert sent[1][1]["note"] == "asks about the invoice"
    assert sent[2][1]["attempt"]["result"] == "no_answer"
    assert {key: sent[3][1][key] for key in ("task_id", "assignee", "outcome", "by")} == {
        "task_id": "t-1", "assignee": "token:anna", "outcome": "solved", "by": "token:anna"}
    assert audit(sessions) == [
        ("token:anna", "callback_task.claim"), ("token:boris", "callback_task.note"),
        ("token:anna", "callback_task.attempt"), ("token:anna", "callback_task.resolve"),
    ]
    with sessions() as session:
        found = task_life.detail(session, "t-1")
    assert [(n.author, n.text) for n in found.notes] == [("token:boris",
                                                          "asks about the invoice")]
    assert [(a.agent, a.result) for a in found.attempts] == [("token:anna", "no_answer")]
    assert len(found.audit) == 4


def test_release_reassign_and_cancel(sessions: sessionmaker[Session]) -> None:
    add_task(sessions)
    act(sessions, lambda s: task_life.claim(s, "t-1", ANNA, T0))
    act(sessions, lambda s: task_life.release(s, "t-1", ANNA, T0))
    assert (task(sessions).status, task(sessions).assignee) == ("open", None)
    act(sessions, lambda s: task_life.reassign(s, "t-1", "token:boris", ADMIN, T0))
    assert (task(sessions).status, task(sessions).assignee) == ("claimed", "token:boris")
    act(sessions, lambda s: task_life.cancel(s, "t-1", "client closed the account", BORIS, T0))
    done = task(sessions)
    assert (done.status, done.cancel_reason, done.resolved_at) == (
        "cancelled", "client closed the account", T0)
    assert [(kind, data["change"], data["status"]) for kind, data in events(sessions)] == [
        ("callback_task.updated", "claim", "claimed"),
        ("callback_task.updated", "release", "open"),
        ("callback_task.updated", "reassign", "claimed"),
        ("callback_task.resolved", "cancel", "cancelled"),
    ]
    assert [action for _, action in audit(sessions)] == [
        "callback_task.claim", "callback_task.release", "callback_task.reassign",
        "callback_task.cancel"]
    with sessions() as session:
        trail = task_life.detail(session, "t-1").audit
    assert trail[2].details == {"from": None, "to": "token:boris"}


Refusal = tuple[Callable[[Session], Any], type[TaskError]]


@pytest.mark.parametrize("case", [
    "claimed-by-another", "release-open", "resolve-open", "release-others", "resolve-others",
    "cancel-others", "attempt-others", "reassign-by-agent", "resolve-closed", "note-closed",
    "claim-closed", "missing",
])
def test_refused_changes_write_nothing(sessions: sessionmaker[Session], case: str) -> None:
    add_task(sessions, "open")
    add_task(sessions, "held")
    add_task(sessions, "done")
    act(sessions, lambda s: task_life.claim(s, "held", ANNA, T0))
    act(sessions, lambda s: task_life.cancel(s, "done", "duplicate", ADMIN, T0))
    before = (events(sessions), audit(sessions))
    cases: dict[str, Refusal] = {
        "claimed-by-another": (lambda s: task_life.claim(s, "held", BORIS, T0), TaskConflict),
        "release-open": (lambda s: task_life.release(s, "open", ANNA, T0), TaskNotClaimed),
        "resolve-open": (lambda s: task_life.resolve(s, "open", TaskOutcome.SOLVED, None, ANNA,
                                                     T0), TaskNotClaimed),
        "release-others": (lambda s: task_life.release(s, "held", BORIS, T0), TaskNotAllowed),
        "resolve-others": (lambda s: task_life.resolve(s, "held", TaskOutcome.SOLVED, None,
                                                       BORIS, T0), TaskNotAllowed),
        "cancel-others": (lambda s: task_life.cancel(s, "held", "x", BORIS, T0), TaskNotAllowed),
        "attempt-others": (lambda s: task_life.record_attempt(s, "held", AttemptResult.BUSY,
                                                              None, BORIS, T0), TaskNotAllowed),
        "reassign-by-agent": (lambda s: task_life.reassign(s, "open", "token:boris", ANNA, T0),
                              TaskNotAllowed),
        "resolve-closed": (lambda s: task_life.resolve(s, "done", TaskOutcome.SOLVED, None,
                                                       ADMIN, T0), TaskClosed),
        "note-closed": (lambda s: task_life.add_note(s, "done", "late", ANNA, T0), TaskClosed),
        "claim-closed": (lambda s: task_life.claim(s, "done", ANNA, T0), TaskClosed),
        "missing": (lambda s: task_life.claim(s, "nope", ANNA, T0), TaskNotFound),
    }
    change, error = cases[case]
    with pytest.raises(error):
        act(sessions, change)
    assert (events(sessions), audit(sessions)) == before


def test_the_conflict_names_the_holder(sessions: sessionmaker[Session]) -> None:
    add_task(sessions)
    act(sessions, lambda s: task_life.claim(s, "t-1", ANNA, T0))
    with pytest.raises(TaskConflict) as raised:
        act(sessions, lambda s: task_life.claim(s, "t-1", BORIS, T0))
    assert (raised.value.code, raised.value.holder) == ("task-already-claimed", "token:anna")
    assert "token:anna" in raised.value.message


def test_an_admin_acts_on_a_task_another_agent_holds(sessions: sessionmaker[Session]) -> None:
    add_task(sessions)
    act(sessions, lambda s: task_life.claim(s, "t-1", ANNA, T0))
    act(sessions, lambda s: task_life.resolve(s, "t-1", TaskOutcome.WRONG_NUMBER, None, ADMIN,
                                              T0))
    assert (task(sessions).status, task(sessions).outcome) == ("resolved", "wrong_number")


def test_of_eight_concurrent_claims_exactly_one_wins(sessions: sessionmaker[Session]) -> None:
    add_task(sessions)
    agents = [Actor(f"token:agent{n}") for n in range(8)]
    start = threading.Barrier(len(agents))
    won: list[str] = []
    lost: list[str | None] = []
    other: list[BaseException] = []
    lock = threading.Lock()

    def claim(agent: Actor) -> None:
        start.wait()
        try:
            act(sessions, lambda s: task_life.claim(s, "t-1", agent, T0))
        except TaskConflict as exc:
            with lock:
                lost.append(exc.holder)
        except BaseException as exc:  # reported by the assertion below
            with lock:
                other.append(exc)
        else:
            with lock:
                won.append(agent.name)

    threads = [threading.Thread(target=claim, args=(agent,)) for agent in agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert other == []
    assert len(won) == 1
    assert lost == [won[0]] * 7  # every loser is told who holds it
    assert task(sessions).assignee == won[0]
    assert [data["assignee"] for _, data in events(sessions)] == won
    assert audit(sessions) == [(won[0], "callback_task.claim")]


# Overdue and escalation.

POLICY = EscalationPolicy(second_after=timedelta(hours=1), supervisor=True)


def test_a_task_past_its_deadline_is_marked_overdue_once_then_escalated_again(
    sessions: sessionmaker[Session],
) -> None:
    deadline = T0 + timedelta(hours=1)
    add_task(sessions, deadline=deadline)
    add_task(sessions, "later", deadline=deadline + timedelta(days=1))
    add_task(sessions, "closed", deadline=T0)
    act(sessions, lambda s: task_life.cancel(s, "closed", "duplicate", ADMIN, T0))

    def tick(at: datetime) -> int:
        return int(act(sessions, lambda s: mark_overdue(s, POLICY, at)))

    assert tick(deadline) == 0  # at the deadline: not yet past it
    assert tick(deadline + timedelta(seconds=1)) == 1
    assert tick(deadline + timedelta(minutes=30)) == 0
    marked = task(sessions)
    assert (marked.overdue_at, marked.escalations) == (deadline + timedelta(seconds=1), 1)
    assert tick(deadline + timedelta(hours=1, seconds=1)) == 1
    assert tick(deadline + timedelta(hours=5)) == 0
    again = task(sessions)
    assert (again.overdue_at, again.escalations) == (deadline + timedelta(seconds=1), 2)
    sent = [(kind, data.get("level"), data["escalations"])
            for kind, data in events(sessions)[1:]]  # after the cancel
    assert sent == [
        ("callback_task.overdue", None, 1), ("callback_task.escalated", 1, 1),
        ("callback_task.updated", None, 2), ("callback_task.escalated", 2, 2),
    ]
    with sessions() as session:
        keys = session.scalars(select(OutboxEvent.ordering_key).order_by(OutboxEvent.id)).all()
    assert keys[1:] == ["k1", SUPERVISOR_PREFIX + "k1", "k1", SUPERVISOR_PREFIX + "k1"]
    assert audit(sessions)[1:] == [("ringback", "callback_task.overdue"),
                                   ("ringback", "callback_task.escalated")]


def test_a_task_found_past_both_thresholds_gets_both_levels_in_one_tick(
    sessions: sessionmaker[Session],
) -> None:
    add_task(sessions, deadline=T0)
    act(sessions, lambda s: task_life.claim(s, "t-1", ANNA, T0))
    act(sessions, lambda s: mark_overdue(s, POLICY, T0 + timedelta(hours=3)))
    assert [(kind, data.get("level")) for kind, data in events(sessions)[1:]] == [
        ("callback_task.overdue", None), ("callback_task.escalated", 1),
        ("callback_task.escalated", 2)]
    assert task(sessions).status == "claimed"  # still Anna's


def test_without_a_supervisor_only_the_crm_hears_of_it(sessions: sessionmaker[Session]) -> None:
    add_task(sessions, deadline=T0)
    act(sessions, lambda s: mark_overdue(s, EscalationPolicy(timedelta(hours=1)),
                                         T0 + timedelta(minutes=1)))
    assert [kind for kind, _ in events(sessions)] == ["callback_task.overdue"]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def test_the_supervisor_receives_signed_escalations_and_the_crm_its_events(
    sessions: sessionmaker[Session], crm: CrmReceiver, http: httpx.AsyncClient,
) -> None:
    supervisor = CrmReceiver(DEV_OUTBOUND_SECRET).start()
    try:
        now = datetime.now(UTC)  # the receivers check signature times against the real clock
        add_task(sessions, deadline=now - timedelta(minutes=5))
        tick = OverdueTick(sessions, POLICY, clock=lambda: now)
        await tick.tick()
        to_crm = OutboxDelivery(sessions, crm.url, DEV_OUTBOUND_SECRET, http, max_backoff_s=8)
        to_supervisor = OutboxDelivery(sessions, supervisor.url, DEV_OUTBOUND_SECRET, http,
                                       max_backoff_s=8, supervisor=True)
        assert await to_supervisor.deliver_due() == 1
        assert await to_crm.deliver_due() == 1
        escalation, = supervisor.events
        assert escalation.verified and escalation.type == "callback_task.escalated"
        assert {key: escalation.payload["data"][key] for key in ("task_id", "level", "phone")} \
            == {"task_id": "t-1", "level": 1, "phone": "+79123456789"}
        assert [(event.type, event.verified) for event in crm.events] == [
            ("callback_task.overdue", True)]
    finally:
        supervisor.stop()


# The REST routes.

@pytest.fixture
def app(sessions: sessionmaker[Session]) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(callback_tasks.router)
    app.state.sessions = sessions
    app.state.clock = lambda: T0
    return app


@pytest.fixture
def client_for(
    app: FastAPI, sessions: sessionmaker[Session]
) -> Iterator[Callable[[Role, str], TestClient]]:
    clients: list[TestClient] = []

    def make(role: Role, name: str) -> TestClient:
        with sessions.begin() as session:
            token = create_token(session, role, name)
        client = TestClient(app, headers={"authorization": f"Bearer {token}"})
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_api_claim_conflict_is_409_naming_the_holder(
    sessions: sessionmaker[Session], client_for: Callable[[Role, str], TestClient],
) -> None:
    add_task(sessions)
    anna, boris = client_for(Role.SUPPORT, "anna"), client_for(Role.SUPPORT, "boris")
    first = anna.post(f"{TASKS}/t-1/claim")
    assert first.status_code == 200, first.text
    assert (first.json()["status"], first.json()["assignee"]) == ("claimed", "token:anna")
    second = boris.post(f"{TASKS}/t-1/claim")
    assert second.status_code == 409
    assert second.json() == {"error": {
        "code": "task-already-claimed",
        "message": "task t-1 was already claimed by token:anna"}}


def test_api_a_task_from_claim_to_resolution_with_its_detail(
    sessions: sessionmaker[Session], client_for: Callable[[Role, str], TestClient],
) -> None:
    add_task(sessions)
    anna = client_for(Role.SUPPORT, "anna")
    assert anna.post(f"{TASKS}/t-1/claim").status_code == 200
    assert anna.post(f"{TASKS}/t-1/notes", json={"text": "calls after 5\nplease"}).status_code \
        == 200
    attempt = anna.post(f"{TASKS}/t-1/attempts", json={"result": "busy"})
    assert attempt.status_code == 200, attempt.text
    resolved = anna.post(f"{TASKS}/t-1/resolve", json={"outcome": "solved", "note": "ok"})
    assert resolved.status_code == 200, resolved.text
    body = anna.get(f"{TASKS}/t-1").json()
    assert (body["status"], body["outcome"], body["resolution_note"]) == (
        "resolved", "solved", "ok")
    assert [note["text"] for note in body["notes"]] == ["calls after 5\nplease"]
    assert [(a["agent"], a["result"]) for a in body["attempts"]] == [("token:anna", "busy")]
    assert [entry["action"] for entry in body["audit"]] == [
        "callback_task.claim", "callback_task.note", "callback_task.attempt",
        "callback_task.resolve"]
    closed = anna.post(f"{TASKS}/t-1/cancel", json={"reason": "too late"})
    assert (closed.status_code, closed.json()["error"]["code"]) == (409, "task-closed")


def test_api_roles_and_errors(
    sessions: sessionmaker[Session], client_for: Callable[[Role, str], TestClient],
) -> None:
    add_task(sessions)
    marketing = client_for(Role.MARKETING, "mia")
    anna, admin = client_for(Role.SUPPORT, "anna"), client_for(Role.ADMIN, "root")
    refused = marketing.post(f"{TASKS}/t-1/claim")
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")
    assert marketing.get(f"{TASKS}/t-1").status_code == 403
    agent_reassign = anna.post(f"{TASKS}/t-1/reassign", json={"to": "token:boris"})
    assert (agent_reassign.status_code, agent_reassign.json()["error"]["code"]) == (
        403, "task-not-allowed")
    missing = anna.post(f"{TASKS}/nope/claim")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "task-not-found")
    assert anna.get(f"{TASKS}/nope").status_code == 404
    blank = anna.post(f"{TASKS}/t-1/notes", json={"text": "  "})
    assert (blank.status_code, blank.json()["error"]["code"]) == (422, "invalid-request")
    assert anna.post(f"{TASKS}/t-1/resolve", json={"outcome": "maybe"}).status_code == 422
    given = admin.post(f"{TASKS}/t-1/reassign", json={"to": "token:boris"})
    assert (given.status_code, given.json()["assignee"]) == (200, "token:boris")
    not_hers = anna.post(f"{TASKS}/t-1/release")
    assert (not_hers.status_code, not_hers.json()["error"]["code"]) == (403, "task-not-allowed")
    assert "token:boris" in not_hers.json()["error"]["message"]


def test_api_list_filters_by_assignee_and_overdue(
    sessions: sessionmaker[Session], client_for: Callable[[Role, str], TestClient],
) -> None:
    add_task(sessions, "t-1", deadline=T0 - timedelta(hours=1))
    add_task(sessions, "t-2", deadline=T0 + timedelta(hours=1))
    add_task(sessions, "t-3", deadline=T0 + timedelta(hours=2))
    act(sessions, lambda s: mark_overdue(s, POLICY, T0))
    anna = client_for(Role.SUPPORT, "anna")
    assert anna.post(f"{TASKS}/t-3/claim").status_code == 200

    def listed(**params: str) -> list[str]:
        response = anna.get(TASKS, params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert listed(overdue="true") == ["t-1"]
    assert listed(overdue="false") == ["t-2"]
    assert listed(status="claimed", assignee="token:anna") == ["t-3"]
    assert listed(status="claimed", assignee="token:boris") == []
