"""`GET /api/v1/reports/warnings` (campaigns/warning_report.py): the numbers of a seeded period,
worked out by hand, on SQLite and PostgreSQL; its parameters, its roles."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api import warning_report
from api.errors import install_error_handlers
from api.tokens import Role
from campaigns.models import JobKind, JobStatus, TopUp
from tests.integration.test_jobs_calls_api import T0, make_attempt, make_job, token_for

REPORT = "/api/v1/reports/warnings"
DAY = {"from": "2025-03-03T10:00:00Z", "to": "2025-03-04T10:00:00Z"}
BALANCE, CAMPAIGN = JobKind.BALANCE_WARNING, JobKind.CAMPAIGN_WARNING
S = JobStatus
MINUTES_PER_DAY = 24 * 60


@pytest.fixture
def app(sessions: sessionmaker[Session]) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(warning_report.router)
    app.state.sessions = sessions
    return app


@pytest.fixture
def client(app: FastAPI, sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    with TestClient(app, headers=token_for(sessions, Role.MARKETING)) as test_client:
        yield test_client


def top_up(client_id: str, minutes: int) -> TopUp:
    return TopUp(source_event_id=f"top-{client_id}-{minutes}", client_id=client_id,
                 occurred_at=T0 + timedelta(minutes=minutes))


@pytest.fixture
def seeded(sessions: sessionmaker[Session]) -> None:
    """The period is the day from T0. Minutes are after T0."""
    week = 7 * MINUTES_PER_DAY
    with sessions.begin() as session:
        session.add_all([
            # Balance warnings.
            make_job("b1", BALANCE, S.COMPLETED, "c1", 60),  # key 1; topped up 2 days after
            make_job("b2", BALANCE, S.COMPLETED, "c2", 70),  # no key; never topped up
            make_job("b3", BALANCE, S.UNANSWERED, "c3", 180),  # topped up 8 days after
            make_job("b4", BALANCE, S.CANCELLED, "c4", 200, final_reason="balance topped up"),
            make_job("b5", BALANCE, S.SKIPPED, "c5", 210, final_reason="client opted out"),
            make_job("b6", BALANCE, S.PENDING, "c6", 220),
            make_job("b7", BALANCE, S.UNANSWERED, "c1", 300),  # c1 again: reached by b1
            make_job("b8", BALANCE, S.CANCELLED, "c7", 310,  # topped up before the warning
                     final_reason="not wanted by the CRM: the CRM said not to call"),
            make_job("b9", BALANCE, S.COMPLETED, "c8", 120),  # key 2; topped up 7 days after
            # Campaign warnings.
            make_job("w1", CAMPAIGN, S.COMPLETED, "c9", 10),  # key 9
            make_job("w2", CAMPAIGN, S.COMPLETED, "c10", 20),  # transferred: key 2
            make_job("w3", CAMPAIGN, S.CANCELLED, "c11", 30,
                     final_reason="campaign stopped at 2025-03-03T12:00:00+00:00"),
            make_job("w4", CAMPAIGN, S.SKIPPED, "c12", 40,
                     final_reason="client already contacted (campaign_warning) within 24h"),
            make_job("w5", CAMPAIGN, S.DIALING, "c13", 50),
            make_job("w6", CAMPAIGN, S.CANCELLED, "c14", 55,
                     final_reason="withdrawn while ringing"),
            # Not counted: outside the period (it is half-open), or not a warning.
            make_job("x1", BALANCE, S.COMPLETED, "c2", -1),
            make_job("x2", BALANCE, S.COMPLETED, "c3", MINUTES_PER_DAY),
            make_job("x3", JobKind.SURVEY, S.COMPLETED, "c1", 60),
        ])
        session.flush()
        session.add_all([
            make_attempt("b1", 1, 61, "no_answer"),
            make_attempt("b1", 2, 80, "answered", "invoice"),
            make_attempt("b2", 1, 71, "answered", "no_input"),
            make_attempt("b3", 1, 181, "busy"),
            make_attempt("b3", 2, 200, "busy"),
            make_attempt("b9", 1, 121, "answered", "manager"),
            make_attempt("w1", 1, 11, "answered", "opt_out"),
            make_attempt("w2", 1, 21, "answered", "transferred"),
            make_attempt("w6", 1, 56, "cancelled"),
            make_attempt("x1", 1, 0, "answered", "invoice"),
            make_attempt("x2", 1, MINUTES_PER_DAY, "answered", "invoice"),
            make_attempt("x3", 1, 61, "answered", "score", 5),
            top_up("c1", 60 + 2 * MINUTES_PER_DAY),
            top_up("c3", 180 + 8 * MINUTES_PER_DAY),
            top_up("c4", 230),
            top_up("c7", 300),
            top_up("c8", 120 + week),  # exactly 7 days: outside [t, t + 7 days)
            top_up("c6", 230),  # in progress: not counted
            top_up("c5", 230),  # skipped: not counted
        ])


def kinds(balance: int, campaign: int) -> dict[str, int]:
    return {"balance_warning": balance, "campaign_warning": campaign, "total": balance + campaign}


@pytest.mark.usefixtures("seeded")
def test_the_report_counts_what_became_of_the_warnings(client: TestClient) -> None:
    response = client.get(REPORT, params=DAY)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report == {
        "from": "2025-03-03T10:00:00Z", "to": "2025-03-04T10:00:00Z",
        "topped_up_within_days": 7,
        "queued": kinds(9, 6),
        "reached": kinds(3, 2),
        "failed": kinds(2, 0),
        "cancelled": kinds(2, 2),
        "skipped": kinds(1, 1),
        "in_progress": kinds(1, 1),
        "cancel_reasons": {"topped_up": 1, "opted_out": 1, "crm_declined": 1,
                           "campaign_stopped": 1, "already_contacted": 1, "other": 1},
        "keys": {"1": 1, "2": 2, "9": 1, "none": 1},
        "conversion": {
            # c1 (2 days), c2 (never), c8 (7 days: too late)
            "reached": {"clients": 3, "topped_up": 1, "share": pytest.approx(1 / 3)},
            # c3 (8 days), c4 (paid first: cancelled), c7 (paid before the warning)
            "not_reached": {"clients": 3, "topped_up": 1, "share": pytest.approx(1 / 3)},
        },
    }


@pytest.mark.usefixtures("seeded")
def test_more_days_convert_more_clients(client: TestClient) -> None:
    report = client.get(REPORT, params=DAY | {"topped_up_within_days": 10}).json()
    assert report["topped_up_within_days"] == 10
    assert report["conversion"] == {
        "reached": {"clients": 3, "topped_up": 2, "share": pytest.approx(2 / 3)},
        "not_reached": {"clients": 3, "topped_up": 2, "share": pytest.approx(2 / 3)},
    }
    short = client.get(REPORT, params=DAY | {"topped_up_within_days": 1}).json()
    assert short["conversion"] == {  # only c4 paid within a day
        "reached": {"clients": 3, "topped_up": 0, "share": 0.0},
        "not_reached": {"clients": 3, "topped_up": 1, "share": pytest.approx(1 / 3)},
    }


@pytest.mark.usefixtures("seeded")
def test_the_period_is_half_open_and_may_be_written_with_an_offset(client: TestClient) -> None:
    # [10:00+03:00 on the 4th, +1 minute): x2 only, created at exactly the end of DAY.
    report = client.get(REPORT, params={"from": "2025-03-04T13:00:00+03:00",
                                        "to": "2025-03-04T13:01:00+03:00"}).json()
    assert (report["queued"], report["reached"]) == (kinds(1, 0), kinds(1, 0))
    assert report["keys"] == {"1": 1, "2": 0, "9": 0, "none": 0}
    assert report["conversion"]["reached"] == {"clients": 1, "topped_up": 0, "share": 0.0}


def test_an_empty_period_has_zeros_and_no_shares(client: TestClient) -> None:
    report = client.get(REPORT, params=DAY).json()
    assert report["queued"] == kinds(0, 0)
    assert report["keys"] == {"1": 0, "2": 0, "9": 0, "none": 0}
    assert report["conversion"] == {
        "reached": {"clients": 0, "topped_up": 0, "share": None},
        "not_reached": {"clients": 0, "topped_up": 0, "share": None},
    }


@pytest.mark.parametrize(("params", "where"), [
    pytest.param({"to": DAY["to"]}, "query.from", id="no-from"),
    pytest.param({"from": DAY["from"]}, "query.to", id="no-to"),
    pytest.param({"from": DAY["to"], "to": DAY["from"]}, "query.to", id="reversed"),
    pytest.param({"from": DAY["from"], "to": "2025-03-03T13:00:00+03:00"}, "query.to",
                 id="empty"),
    pytest.param(DAY | {"from": "2025-03-03T10:00:00"}, "query.from", id="naive-time"),
    pytest.param(DAY | {"to": "1741000000"}, "query.to", id="epoch-time"),
    pytest.param(DAY | {"topped_up_within_days": 0}, "query.topped_up_within_days",
                 id="no-days"),
    pytest.param(DAY | {"topped_up_within_days": 367}, "query.topped_up_within_days",
                 id="too-many-days"),
    pytest.param(DAY | {"topped_up_within_days": "week"}, "query.topped_up_within_days",
                 id="days-not-a-number"),
    pytest.param(DAY | {"kind": "balance_warning"}, "query.kind", id="unknown-parameter"),
])
def test_bad_parameters_are_422_in_the_error_model(
    client: TestClient, params: dict[str, Any], where: str
) -> None:
    response = client.get(REPORT, params=params)
    assert response.status_code == 422, response.text
    assert set(response.json()) == {"error"}
    error = response.json()["error"]
    assert error["code"] == "invalid-request" and error["message"].startswith(where), error


def test_marketing_and_admin_may_read_it_support_may_not(
    app: FastAPI, sessions: sessionmaker[Session]
) -> None:
    with TestClient(app) as anonymous:
        for role in (Role.MARKETING, Role.ADMIN):
            response = anonymous.get(REPORT, params=DAY, headers=token_for(sessions, role))
            assert response.status_code == 200, role
        response = anonymous.get(REPORT, params=DAY, headers=token_for(sessions, Role.SUPPORT))
        assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden")
        response = anonymous.get(REPORT, params=DAY)
        assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthorized")
