"""`GET /api/v1/reports/callbacks` (campaigns/callback_report.py): the numbers of two seeded
weeks, worked out by hand, on SQLite and PostgreSQL; its parameters, its roles.

The calendar is Moscow's, mon-fri 10:00-19:00 (540 working minutes a day); the period is the
ISO weeks 2025-W10 and W11, [Mon 3 March 00:00, Mon 17 March 00:00) Moscow time; the report
time is 20 March."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api import callback_report
from api.errors import install_error_handlers
from api.tokens import Role
from campaigns.calendar import BusinessCalendar
from campaigns.models import CallbackTask, CallbackTaskStatus, JobKind, JobStatus, SurveyResponse
from tests.integration.test_jobs_calls_api import make_job, token_for

REPORT = "/api/v1/reports/callbacks"
MSK = ZoneInfo("Europe/Moscow")
CALENDAR = BusinessCalendar(zone=MSK)
NOW = datetime(2025, 3, 20, 15, 0, tzinfo=MSK)
WEEKS = {"from": "2025-03-03T00:00:00+03:00", "to": "2025-03-17T00:00:00+03:00"}
S = CallbackTaskStatus


def msk(day: int, hour: int = 0, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=MSK)


@pytest.fixture
def app(sessions: sessionmaker[Session]) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(callback_report.router)
    app.state.sessions = sessions
    app.dependency_overrides[callback_report.report_calendar] = lambda: CALENDAR
    app.dependency_overrides[callback_report.report_time] = lambda: NOW
    return app


@pytest.fixture
def client(app: FastAPI, sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    with TestClient(app, headers=token_for(sessions, Role.SUPPORT)) as test_client:
        yield test_client


def task(task_id: str, reason: str, assignee: str | None, created: datetime,
         deadline: datetime, status: CallbackTaskStatus = S.RESOLVED,
         resolved: datetime | None = None, overdue: datetime | None = None) -> CallbackTask:
    return CallbackTask(id=task_id, reason=reason, status=status, client_id=f"c-{task_id}",
                        phone="+79123456789", deadline=deadline, created_at=created,
                        assignee=assignee, resolved_at=resolved, overdue_at=overdue)


def answer(job_id: str, agent: str | None, score: int | None, at: datetime) -> SurveyResponse:
    return SurveyResponse(job_id=job_id, original_call_id=f"call-{job_id}",
                          client_id=f"c-{job_id}", phone="+79123456789", agent_id=agent,
                          score=score, outcome="scored" if score else "no_answer",
                          answered_at=at)


@pytest.fixture
def seeded(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.add_all([
            # W10. Working minutes to resolve in the comments.
            task("t1", "low_score", "anna", msk(3, 10), msk(3, 19), resolved=msk(3, 11)),  # 60
            task("t2", "low_score", "anna", msk(4, 18), msk(5, 12),
                 resolved=msk(5, 11)),  # 60 + 60 across the night
            task("t3", "missed_call", "anna", msk(7, 18), msk(10, 12),
                 resolved=msk(10, 14), overdue=msk(10, 12)),  # 60 + 240 over the weekend; late
            # Left open past its deadline, never marked: overdue at the report time.
            task("t4", "manager_requested", "boris", msk(5, 10), msk(6, 10), S.OPEN),
            # W11: Monday 00:30 in Moscow is still Sunday in UTC.
            task("t5", "callback_requested", "boris", msk(10, 0, 30), msk(10, 19),
                 resolved=msk(10, 10, 30)),  # 30
            task("t6", "low_score", None, msk(13, 12), msk(25), S.OPEN),  # not yet due
            task("t7", "low_score", "boris", msk(14, 10), msk(14, 19), S.CANCELLED,
                 resolved=msk(14, 11)),  # neither resolved nor due
            task("t8", "missed_call", "anna", msk(11, 10), msk(11, 19),
                 resolved=msk(11, 19)),  # 540; right at the deadline: on time
            task("t9", "manager_requested", "anna", msk(12, 10), msk(12, 12), S.CLAIMED,
                 overdue=msk(12, 12)),  # overdue once, though marked and past the deadline
            # Outside the period (half-open); carol has no task in it.
            task("x1", "low_score", "carol", msk(2, 23, 59), msk(3, 19), S.OPEN),
            task("x2", "low_score", "carol", msk(17), msk(17, 19), S.OPEN),
        ])
        session.add_all(make_job(f"j{n}", JobKind.SURVEY, JobStatus.COMPLETED, f"c{n}", n)
                        for n in range(1, 8))
        session.flush()
        session.add_all([
            answer("j1", "a-7", 5, msk(4, 12)),
            answer("j2", "a-7", 4, msk(11, 12)),
            answer("j3", "a-9", 1, msk(5, 12)),
            answer("j4", None, 3, msk(10, 0, 30)),  # W11, unknown agent
            answer("j5", "a-9", None, msk(6, 12)),  # no score: not counted
            answer("j6", "a-7", 2, msk(17)),  # the period's end: outside
            answer("j7", "a-5", 5, msk(2, 23)),  # before: a-5 is not listed
        ])


def sources(low: int = 0, manager: int = 0, missed: int = 0, callback: int = 0
            ) -> dict[str, int]:
    return {"low_score": low, "manager_requested": manager, "missed_call": missed,
            "callback_requested": callback}


def stats(tasks: int, by_source: dict[str, int], resolved: int, on_time: int, due: int,
          overdue: int, median: int | None, p90: int | None) -> dict[str, Any]:
    return {"tasks": tasks, "by_source": by_source, "resolved": resolved, "on_time": on_time,
            "due": due, "on_time_share": pytest.approx(on_time / due) if due else None,
            "overdue": overdue, "median_minutes_to_resolve": median,
            "p90_minutes_to_resolve": p90}


def csat(scores: dict[int, int]) -> dict[str, Any]:
    count = sum(scores.values())
    return {"responses": count,
            "average": pytest.approx(sum(s * n for s, n in scores.items()) / count)
            if count else None,
            "distribution": {str(s): scores.get(s, 0) for s in range(1, 6)}}


@pytest.mark.usefixtures("seeded")
def test_the_report_counts_sources_deadlines_times_and_overdue_tasks(
    client: TestClient,
) -> None:
    response = client.get(REPORT, params=WEEKS)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "from": "2025-03-02T21:00:00Z", "to": "2025-03-16T21:00:00Z",
        "generated_at": "2025-03-20T12:00:00Z",
        # Minutes of t5, t1, t2, t3, t8: 30 60 120 300 540; median rank 3, p90 rank 5.
        "total": stats(9, sources(low=4, manager=2, missed=2, callback=1), resolved=5,
                       on_time=4, due=7, overdue=3, median=120, p90=540),
        "by_agent": [
            # 60 120 300 540: median rank 2, p90 rank 4.
            {"agent": "anna", **stats(5, sources(low=2, manager=1, missed=2), 4, 3, 5, 2,
                                      120, 540)},
            {"agent": "boris", **stats(3, sources(low=1, manager=1, callback=1), 1, 1, 2, 1,
                                       30, 30)},
            {"agent": "unassigned", **stats(1, sources(low=1), 0, 0, 0, 0, None, None)},
        ],
        "by_week": [
            # 60 120 300: median rank 2, p90 rank 3.
            {"week": "2025-W10", "week_start": "2025-03-03",
             **stats(4, sources(low=2, manager=1, missed=1), 3, 2, 4, 2, 120, 300)},
            {"week": "2025-W11", "week_start": "2025-03-10",
             **stats(5, sources(low=2, manager=1, missed=1, callback=1), 2, 2, 3, 1, 30, 540)},
        ],
        "csat": {
            "total": csat({1: 1, 3: 1, 4: 1, 5: 1}),
            "by_week": [
                {"week": "2025-W10", "week_start": "2025-03-03", **csat({1: 1, 5: 1})},
                {"week": "2025-W11", "week_start": "2025-03-10", **csat({3: 1, 4: 1})},
            ],
            "by_agent": [
                {"agent": "a-7", **csat({4: 1, 5: 1})},
                {"agent": "a-9", **csat({1: 1})},
                {"agent": "unknown", **csat({3: 1})},
            ],
        },
    }


@pytest.mark.usefixtures("seeded")
def test_a_task_left_open_past_its_deadline_counts_once_it_is_late(
    app: FastAPI, client: TestClient,
) -> None:
    one_week = {"from": "2025-03-03T00:00:00+03:00", "to": "2025-03-10T00:00:00+03:00"}
    # Before t4's deadline (6 March 10:00) it is neither due nor overdue.
    app.dependency_overrides[callback_report.report_time] = lambda: msk(6, 9)
    early = client.get(REPORT, params=one_week).json()
    assert (early["total"]["due"], early["total"]["overdue"]) == (3, 1)
    app.dependency_overrides[callback_report.report_time] = lambda: msk(6, 11)
    late = client.get(REPORT, params=one_week).json()
    assert (late["total"]["due"], late["total"]["overdue"]) == (4, 2)
    assert late["total"]["on_time_share"] == pytest.approx(2 / 4)
    assert [week["week"] for week in late["by_week"]] == ["2025-W10"]


def test_an_empty_period_has_null_shares_and_every_week(client: TestClient) -> None:
    report = client.get(REPORT, params={"from": "2025-12-29T12:00:00+03:00",
                                        "to": "2026-01-05T00:00:01+03:00"}).json()
    assert report["total"] == stats(0, sources(), 0, 0, 0, 0, None, None)
    assert report["by_agent"] == []
    assert [(w["week"], w["week_start"]) for w in report["by_week"]] == [
        ("2026-W01", "2025-12-29"), ("2026-W02", "2026-01-05")]
    assert report["csat"]["total"] == csat({})
    assert report["csat"]["by_agent"] == []


@pytest.mark.parametrize(("params", "where"), [
    pytest.param({"from": WEEKS["to"], "to": WEEKS["from"]}, "query.to", id="reversed"),
    pytest.param(WEEKS | {"to": WEEKS["from"]}, "query.to", id="empty"),
    pytest.param({"from": "2025-01-01T00:00:00Z", "to": "2026-01-02T00:00:01Z"}, "query.to",
                 id="too-long"),
    pytest.param({"from": WEEKS["from"]}, "query.to", id="no-to"),
    pytest.param(WEEKS | {"from": "2025-03-03"}, "query.from", id="a-date"),
    pytest.param(WEEKS | {"agent": "anna"}, "query.agent", id="unknown-parameter"),
])
def test_bad_periods_are_422_in_the_error_model(
    client: TestClient, params: dict[str, str], where: str,
) -> None:
    response = client.get(REPORT, params=params)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid-request" and error["message"].startswith(where), error


def test_366_days_are_allowed(client: TestClient) -> None:
    response = client.get(REPORT, params={"from": "2024-01-01T00:00:00Z",
                                          "to": "2025-01-01T00:00:00Z"})
    assert response.status_code == 200, response.text
    assert len(response.json()["by_week"]) == 53


def test_support_and_admin_may_read_it_marketing_may_not(
    app: FastAPI, sessions: sessionmaker[Session],
) -> None:
    with TestClient(app) as anonymous:
        response = anonymous.get(REPORT, params=WEEKS)
        assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthorized")
        response = anonymous.get(REPORT, params=WEEKS,
                                 headers=token_for(sessions, Role.MARKETING))
        assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden")
        for role in (Role.SUPPORT, Role.ADMIN):
            response = anonymous.get(REPORT, params=WEEKS, headers=token_for(sessions, role))
            assert response.status_code == 200, role
