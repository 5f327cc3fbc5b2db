"""The callback compliance page in a real browser: Debian's chromium driven by Playwright
against a real `ringback serve` (SQLite), people made with the real `ringback user` CLI and
tasks and survey answers written into its database with the ORM."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import BrowserContext

from campaigns.models import CallbackTask, CallbackTaskStatus, JobKind, JobStatus, SurveyResponse
from infra.db import make_engine, make_sessions, utcnow
from lab.ringback import RingbackService
from tests.integration.test_jobs_calls_api import make_job
from tests.integration.test_pages_in_browser import create_users, sign_in

AGENTS = ("sasha", "vera")
WEEKS = 4  # the page's default period: this ISO week and the three before
SCORE_BARS = 5
MSK = ZoneInfo("Europe/Moscow")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RingbackService]:
    svc = RingbackService(tmp_path_factory.mktemp("report"), {"RINGBACK_DEFAULT_LOCALE": "en"})
    svc.start()
    create_users(svc, ("sasha", "support", "en"), ("vera", "support", "ru"),
                 ("mila", "marketing", "en"))
    seed(svc)
    try:
        yield svc
    finally:
        svc.close()


def seed(svc: RingbackService) -> None:
    """A few tasks of each agent and some scores, all inside the last few days, created at
    10:00 Moscow time (the service's calendar)."""
    now = utcnow()
    morning = (now.astimezone(MSK).replace(hour=10, minute=0, second=0, microsecond=0)
               - timedelta(days=1))
    engine = make_engine(f"sqlite:///{svc.database}")
    try:
        with make_sessions(engine).begin() as session:
            for n in range(6):
                created = morning - timedelta(days=n)
                open_ = n == 5  # left open past its deadline: overdue
                session.add(CallbackTask(
                    id=f"t{n}", reason=("low_score", "missed_call")[n % 2],
                    status=CallbackTaskStatus.OPEN if open_ else CallbackTaskStatus.RESOLVED,
                    client_id=f"c{n}", phone="+79123456789", created_at=created,
                    deadline=created + timedelta(hours=2), assignee=AGENTS[n % 2],
                    resolved_at=None if open_ else created + timedelta(hours=n + 1,
                                                                       minutes=17)))
                session.add(make_job(f"j{n}", JobKind.SURVEY, JobStatus.COMPLETED, f"c{n}", n))
            session.flush()
            session.add_all(SurveyResponse(
                job_id=f"j{n}", original_call_id=f"call-{n}", client_id=f"c{n}",
                phone="+79123456789", agent_id="a-1", score=n % 5 + 1, outcome="scored",
                answered_at=now - timedelta(days=n + 1)) for n in range(6))
    finally:
        engine.dispose()


def test_support_sees_the_report_with_its_charts(
    service: RingbackService, context: BrowserContext,
) -> None:
    page = context.new_page()
    sign_in(page, service, "sasha", "/reports/callbacks")
    assert page.url == f"{service.url}/reports/callbacks"
    assert "Callback compliance" in page.inner_text("h1")
    assert page.locator("svg.chart").count() == 6
    # Tasks, on time and overdue per week, CSAT per week: a bar per week; a bar per agent;
    # a bar per score.
    assert page.locator("svg rect").count() == 4 * WEEKS + len(AGENTS) + SCORE_BARS
    first_row = page.locator("table.report").first.locator("tbody tr td")
    assert first_row.nth(0).inner_text() == "6"  # tasks
    assert first_row.nth(5).inner_text() == "1"  # overdue: the one left open
    shots = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    shots.mkdir(exist_ok=True)
    page.screenshot(path=str(shots / "report.png"), full_page=True)
    assert (shots / "report.png").stat().st_size > 1000


def test_a_russian_agent_gets_the_russian_report(
    service: RingbackService, context: BrowserContext,
) -> None:
    page = context.new_page()
    sign_in(page, service, "vera", "/reports/callbacks")
    assert page.locator("html").get_attribute("lang") == "ru"
    assert "Соблюдение сроков обратных звонков" in page.inner_text("h1")
    assert page.locator("svg.chart text.title").first.text_content() == "Задачи по неделям"
    assert page.locator("svg rect").count() == 4 * WEEKS + len(AGENTS) + SCORE_BARS


def test_a_bad_period_is_a_422_page(
    service: RingbackService, context: BrowserContext,
) -> None:
    page = context.new_page()
    sign_in(page, service, "sasha")
    response = page.goto(f"{service.url}/reports/callbacks?from=2025-03-10&to=2025-03-01")
    assert response is not None and response.status == 422
    assert "Bad period" in page.content()


def test_marketing_may_not_open_the_report(
    service: RingbackService, context: BrowserContext,
) -> None:
    page = context.new_page()
    sign_in(page, service, "mila")
    response = page.goto(f"{service.url}/reports/callbacks")
    assert response is not None and response.status == 403
    assert "Your role may not open this page." in page.content()
