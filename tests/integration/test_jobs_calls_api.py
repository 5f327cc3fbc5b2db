"""`GET /api/v1/jobs` and `GET /api/v1/calls`: filters, totals, newest-first cursor pages,
masked phone numbers and a scrubbed context, roles; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api import jobs
from api.errors import install_error_handlers
from api.tokens import Role, create_token
from campaigns.dispatcher import NOT_WANTED
from campaigns.job_life import CRASHED
from campaigns.models import CallAttempt, Job, JobKind, JobStatus
from telephony.outcomes import Outcome
from tests.integration.test_list_endpoints import cursor_of, walk

T0 = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
JOBS = "/api/v1/jobs"
CALLS = "/api/v1/calls"
PHONE = "+79123456789"
MASKED = "+*********89"


def make_job(job_id: str, kind: JobKind, status: JobStatus, client_id: str, minutes: int,
             **fields: Any) -> Job:
    """A job created `minutes` after T0."""
    created = T0 + timedelta(minutes=minutes)
    values: dict[str, Any] = {
        "id": job_id, "kind": kind, "status": status, "source_event_id": f"evt-{job_id}",
        "client_id": client_id, "phone": PHONE, "timezone": "Europe/Moscow", "locale": "ru",
        "context": {}, "due_at": created, "not_before": created,
        "not_after": created + timedelta(days=3), "attempts": 0, "max_attempts": 4,
        "created_at": created, "updated_at": created,
    }
    return Job(**(values | fields))


def make_attempt(job_id: str, number: int, minutes: int, outcome: str | None,
                 result: str | None = None, value: int | None = None) -> CallAttempt:
    """An attempt started `minutes` after T0, a minute long (open when outcome is None)."""
    started = T0 + timedelta(minutes=minutes)
    return CallAttempt(
        job_id=job_id, number=number, started_at=started, outcome=outcome,
        ended_at=None if outcome is None else started + timedelta(minutes=1),
        sip_status=200 if outcome == "answered" else None, result=result, result_value=value,
    )


@pytest.fixture
def app(sessions: sessionmaker[Session]) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(jobs.router)
    app.state.sessions = sessions
    return app


def token_for(sessions: sessionmaker[Session], role: Role) -> dict[str, str]:
    with sessions.begin() as session:
        return {"authorization": f"Bearer {create_token(session, role, role.value)}"}


@pytest.fixture
def client(app: FastAPI, sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    with TestClient(app, headers=token_for(sessions, Role.SUPPORT)) as test_client:
        yield test_client


@pytest.fixture
def seeded(sessions: sessionmaker[Session]) -> None:
    """Six jobs (three created at one time, so a page boundary falls among them) and their
    attempts."""
    with sessions.begin() as session:
        session.add_all([
            make_job("j-a", JobKind.SURVEY, JobStatus.COMPLETED, "k1", 0,
                     context={"call_id": "call-1", "agent_id": "ag-7", "duration_s": 95.0},
                     attempts=1, final_reason="score 5"),
            make_job("j-b", JobKind.BALANCE_WARNING, JobStatus.UNANSWERED, "k2", 30,
                     context={"balance": "12.50", "currency": "RUB", "name": "Ivan Petrov",
                              "manager_phone": "+79161234567", "manager_id": "m-1"},
                     attempts=2, final_reason="busy after 2 attempt(s)"),
            make_job("j-c", JobKind.CAMPAIGN_WARNING, JobStatus.PENDING, "k1", 30),
            make_job("j-d", JobKind.BALANCE_WARNING, JobStatus.CANCELLED, "k3", 30,
                     final_reason="balance topped up"),
            make_job("j-e", JobKind.SURVEY, JobStatus.DIALING, "k2", 90, attempts=1),
            make_job("j-f", JobKind.BALANCE_WARNING, JobStatus.COMPLETED, "k1", 120,
                     attempts=1, final_reason="delivered, key 1"),
        ])
        session.flush()
        session.add_all([
            make_attempt("j-a", 1, 35, "answered", "score", 5),
            make_attempt("j-b", 1, 40, "busy"),
            make_attempt("j-b", 2, 40, "busy"),  # same start: a page boundary among them
            make_attempt("j-e", 1, 95, None),
            make_attempt("j-f", 1, 125, "answered", "invoice"),
            make_attempt("j-d", 1, 40, NOT_WANTED),
        ])


NEWEST_FIRST = ["j-f", "j-e", "j-d", "j-c", "j-b", "j-a"]


@pytest.mark.usefixtures("seeded")
def test_jobs_come_once_each_newest_first_across_pages(client: TestClient) -> None:
    items, totals = walk(client, JOBS, limit=2)
    assert [item["id"] for item in items] == NEWEST_FIRST
    assert totals == {6}
    for limit in (1, 4, 6):
        paged, _ = walk(client, JOBS, limit=limit)
        assert [item["id"] for item in paged] == NEWEST_FIRST


@pytest.mark.usefixtures("seeded")
def test_a_job_shows_its_fields_a_masked_phone_and_no_personal_context(
    client: TestClient,
) -> None:
    body = client.get(JOBS, params={"client_id": "k2", "kind": "balance_warning"}).json()
    assert (body["total"], body["next_cursor"]) == (1, None)
    (job,) = body["items"]
    assert job == {
        "id": "j-b", "kind": "balance_warning", "status": "unanswered", "client_id": "k2",
        "phone": MASKED, "timezone": "Europe/Moscow", "locale": "ru",
        "due_at": "2025-03-03T10:30:00Z", "not_before": "2025-03-03T10:30:00Z",
        "attempts": 2, "max_attempts": 4, "final_reason": "busy after 2 attempt(s)",
        "created_at": "2025-03-03T10:30:00Z",
        "context": {"balance": "12.50", "currency": "RUB", "manager_id": "m-1"},
    }
    every = client.get(JOBS).text
    assert PHONE not in every and "+79161234567" not in every and "Ivan" not in every


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(("params", "expected"), [
    pytest.param({"kind": "survey"}, ["j-e", "j-a"], id="kind"),
    pytest.param({"client_id": "k1"}, ["j-f", "j-c", "j-a"], id="client"),
    pytest.param({"status": "completed"}, ["j-f", "j-a"], id="status"),
    pytest.param({"created_from": "2025-03-03T10:30:00Z"}, ["j-f", "j-e", "j-d", "j-c", "j-b"],
                 id="from-includes"),
    pytest.param({"created_to": "2025-03-03T13:30:00+03:00"}, ["j-a"], id="to-excludes"),
    pytest.param({"created_from": "2025-03-03T10:30:00Z", "created_to": "2025-03-03T12:00:00Z"},
                 ["j-e", "j-d", "j-c", "j-b"], id="window"),
    pytest.param({"kind": "balance_warning", "client_id": "k1", "status": "completed"},
                 ["j-f"], id="together"),
    pytest.param({"kind": "campaign_warning", "status": "completed"}, [], id="nothing"),
])
def test_job_filters_and_their_total(
    client: TestClient, params: dict[str, str], expected: list[str]
) -> None:
    items, totals = walk(client, JOBS, limit=2, **params)
    assert [item["id"] for item in items] == expected
    assert totals == {len(expected)}


def attempt_keys(items: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(item["job_id"], item["number"]) for item in items]


@pytest.mark.usefixtures("seeded")
def test_calls_come_once_each_latest_first_across_pages(client: TestClient) -> None:
    expected = [("j-f", 1), ("j-e", 1), ("j-d", 1), ("j-b", 2), ("j-b", 1), ("j-a", 1)]
    for limit in (1, 2, 4, 6):
        items, totals = walk(client, CALLS, limit=limit)
        assert attempt_keys(items) == expected, limit
        assert totals == {6}
    first = items[0]
    assert first == {
        "id": first["id"], "job_id": "j-f", "kind": "balance_warning", "client_id": "k1",
        "number": 1, "started_at": "2025-03-03T12:05:00Z", "ended_at": "2025-03-03T12:06:00Z",
        "outcome": "answered", "sip_status": 200, "result": "invoice", "result_value": None,
    }
    up = items[1]
    assert (up["outcome"], up["ended_at"]) == (None, None)


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(("params", "expected"), [
    pytest.param({"kind": "survey"}, [("j-e", 1), ("j-a", 1)], id="kind"),
    pytest.param({"client_id": "k2"}, [("j-e", 1), ("j-b", 2), ("j-b", 1)], id="client"),
    pytest.param({"outcome": "busy"}, [("j-b", 2), ("j-b", 1)], id="outcome"),
    pytest.param({"outcome": "not_wanted"}, [("j-d", 1)], id="outcome-of-campaigns"),
    pytest.param({"started_from": "2025-03-03T10:40:00Z", "started_to": "2025-03-03T12:05:00Z"},
                 [("j-e", 1), ("j-d", 1), ("j-b", 2), ("j-b", 1)], id="window-half-open"),
    pytest.param({"kind": "balance_warning", "client_id": "k2", "outcome": "busy",
                  "started_to": "2025-03-03T13:40:00+03:00"}, [], id="to-excludes"),
])
def test_call_filters_and_their_total(
    client: TestClient, params: dict[str, str], expected: list[tuple[str, int]]
) -> None:
    items, totals = walk(client, CALLS, limit=1, **params)
    assert attempt_keys(items) == expected
    assert totals == {len(expected)}


def test_the_outcome_filter_knows_every_outcome_written() -> None:
    written = {outcome.value for outcome in Outcome} | {CRASHED, NOT_WANTED}
    assert set(get_args(jobs.CallOutcome)) == written


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(("path", "params", "where"), [
    pytest.param(JOBS, {"kind": "callback"}, "query.kind", id="unknown-kind"),
    pytest.param(JOBS, {"status": "done"}, "query.status", id="unknown-status"),
    pytest.param(CALLS, {"outcome": "hung_up"}, "query.outcome", id="unknown-outcome"),
    pytest.param(JOBS, {"created_from": "2025-03-03T10:00:00"}, "query.created_from",
                 id="naive-time"),
    pytest.param(CALLS, {"started_to": "yesterday"}, "query.started_to", id="not-a-time"),
    pytest.param(JOBS, {"client_id": "k\x00"}, "query.client_id", id="nul-in-client"),
    pytest.param(JOBS, {"limit": 0}, "query.limit", id="limit-0"),
    pytest.param(CALLS, {"outcome_": "busy"}, "query.outcome_", id="misspelt-filter"),
    pytest.param(CALLS, {"cursor": cursor_of(b'["2025-03-03T10:00:00Z","j-a"]')},
                 "query.cursor", id="cursor-of-jobs"),
    pytest.param(JOBS, {"cursor": cursor_of(b"[1]")}, "query.cursor", id="cursor-of-outbox"),
    pytest.param(JOBS, {"cursor": "!!!"}, "query.cursor", id="cursor-not-base64"),
])
def test_bad_parameters_are_422_in_the_error_model(
    client: TestClient, path: str, params: dict[str, Any], where: str
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 422, response.text
    assert set(response.json()) == {"error"}
    error = response.json()["error"]
    assert error["code"] == "invalid-request" and error["message"].startswith(where), error


@pytest.mark.parametrize("path", [JOBS, CALLS])
def test_support_and_admin_may_list_others_may_not(
    app: FastAPI, sessions: sessionmaker[Session], path: str
) -> None:
    with TestClient(app) as anonymous:
        for role in (Role.SUPPORT, Role.ADMIN):
            assert anonymous.get(path, headers=token_for(sessions, role)).status_code == 200
        response = anonymous.get(path, headers=token_for(sessions, Role.MARKETING))
        assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden")
        response = anonymous.get(path)
        assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthorized")
        response = anonymous.get(path, headers={"authorization": "Bearer rb_unknown"})
        assert response.status_code == 401
