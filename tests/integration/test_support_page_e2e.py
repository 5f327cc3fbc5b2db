"""The support page end to end, in a real browser: a low score from a real survey call
(`ringback serve` + Kamailio + sipp) becomes a task on the page; an agent signs in, claims it,
adds a note and resolves it; the database and the CRM receiver see `callback_task.resolved`.
Two agents claiming one task at once: one wins, the other is told who has it."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page

from lab.crm_events import call_completed, envelope
from lab.crm_receiver import CrmReceiver
from lab.kamailio import Kamailio
from lab.process import wait_until
from lab.ringback import RingbackService
from tests.conftest import ServiceFactory, SippFactory
from tests.integration.test_csat_e2e import rows, scoring_phone
from tests.integration.test_pages_in_browser import create_users, sign_in

pytestmark = pytest.mark.peers

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def agents(browser: Browser) -> Iterator[tuple[BrowserContext, BrowserContext]]:
    first = browser.new_context(viewport={"width": 1280, "height": 900})
    second = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def low_score_task(service: ServiceFactory, kamailio: Kamailio, sipp: SippFactory,
                   crm: CrmReceiver) -> RingbackService:
    svc = service()
    create_users(svc, ("anna", "support", "en"), ("boris", "support", "ru"))
    phone = scoring_phone(svc, sipp, kamailio, "2")
    assert svc.post_event(call_completed())[0] == 202
    crm.wait_for("callback_task.created", timeout=60)
    assert phone.wait(20) == 0, phone.describe()
    return svc


def add_overdue_task(svc: RingbackService) -> None:
    """A task whose deadline passed an hour ago (as a missed call's would)."""
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    with sqlite3.connect(svc.database) as db:
        db.execute(
            "insert into callback_tasks (id, reason, status, client_id, phone, deadline, "
            "created_at, requests, escalations, client_timezone) values "
            "('late-1', 'missed_call', 'open', 'c-9', '+79990000009', ?, ?, 1, 0, "
            "'Asia/Vladivostok')", (past, past))


def task_card(page: Page, reason_text: str) -> str:
    return page.locator("article.task", has_text=reason_text).first.inner_text()


def test_an_agent_claims_notes_and_resolves_a_low_score_task(
    service: ServiceFactory, kamailio: Kamailio, sipp: SippFactory, crm: CrmReceiver,
    agents: tuple[BrowserContext, BrowserContext],
) -> None:
    svc = low_score_task(service, kamailio, sipp, crm)
    add_overdue_task(svc)
    page = agents[0].new_page()
    sign_in(page, svc, "anna", "/support")

    card = page.locator("article.task", has_text="Low survey score")
    assert card.locator(".score").inner_text() == "2"
    wait_until(lambda: re.fullmatch(r"due in (\d+h )?\d+m",
                                    card.locator(".countdown").inner_text()) is not None,
               timeout=10, what="the countdown")  # the page's script counts down
    late = page.locator("article.task", has_text="Missed call")
    assert "overdue" in (late.get_attribute("class") or "")
    assert late.locator(".overdue-mark").inner_text() == "Overdue"
    assert late.locator(".countdown").inner_text().startswith("overdue by")
    assert "(Asia/Vladivostok)" in late.inner_text()  # the client's own time
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "support.png"), full_page=True)

    card.locator("button.claim").click()
    page.wait_for_load_state()
    mine = page.locator("article.task", has_text="Low survey score")
    assert "anna" in mine.locator(".status").inner_text()
    mine.locator("input[name=text]").fill("Called, the client wants a discount")
    mine.locator("button.note-button").click()
    page.wait_for_load_state()
    mine = page.locator("article.task", has_text="Low survey score")
    assert "Called, the client wants a discount" in mine.inner_text()
    mine.locator("select[name=outcome]").select_option("solved")
    mine.locator("button.resolve-button").click()
    page.wait_for_load_state()
    assert page.locator("article.task", has_text="Low survey score").count() == 0

    resolved = crm.wait_for("callback_task.resolved", timeout=30)
    assert resolved.verified and resolved.payload["data"]["outcome"] == "solved"
    assert rows(svc, "select status, outcome, assignee from callback_tasks "
                     "where reason = 'low_score'") == [("resolved", "solved", "user:anna")]
    assert rows(svc, "select author, text from callback_task_notes") == [
        ("user:anna", "Called, the client wants a discount")]

    russian = agents[1].new_page()
    sign_in(russian, svc, "boris", "/support")
    assert russian.locator("h1").inner_text() == "Задачи на обратный звонок"
    assert "Просрочена" in russian.locator("article.task").first.inner_text()


def test_two_agents_claim_one_task_at_once_and_one_is_told_who_won(
    service: ServiceFactory, kamailio: Kamailio, sipp: SippFactory, crm: CrmReceiver,
    agents: tuple[BrowserContext, BrowserContext],
) -> None:
    svc = low_score_task(service, kamailio, sipp, crm)
    pages = [agents[0].new_page(), agents[1].new_page()]
    for page, name in zip(pages, ("anna", "boris"), strict=True):
        sign_in(page, svc, name, "/support")
    for page in pages:  # both forms go out before either answer is in
        page.locator("button.claim").first.evaluate("button => button.form.submit()")
    for page in pages:
        page.wait_for_url(re.compile(r".*/support(\?view=open|/tasks/.*/claim)$"))
        page.wait_for_load_state()
    [holder] = rows(svc, "select assignee from callback_tasks")[0]
    winner = holder.removeprefix("user:")
    loser = pages[1] if winner == "anna" else pages[0]
    assert loser.locator(".notice").inner_text() in (f"Already claimed by {winner}.",
                                                     f"Задачу уже взял {winner}.")
    won = pages[0] if winner == "anna" else pages[1]
    assert winner in won.locator("article.task .status").first.inner_text()


def test_the_page_shows_a_new_task_without_a_reload(
    service: ServiceFactory, agents: tuple[BrowserContext, BrowserContext],
) -> None:
    svc = service()
    create_users(svc, ("anna", "support", "en"))
    page = agents[0].new_page()
    sign_in(page, svc, "anna", "/support")
    assert page.locator("article.task").count() == 0
    event = envelope("callback.requested", {
        "client_id": "c-5", "phone": "+79990000005", "note": "Please call after lunch",
        "timezone": "Europe/Moscow",
    })
    assert svc.post_event(event)[0] == 202
    # No click, no reload by the test: the page polls and shows the task by itself.
    page.locator("article.task", has_text="Callback requested").wait_for(timeout=20_000)
    assert "Please call after lunch" in page.locator("article.task").inner_text()


def requested_task(svc: RingbackService, client: str, phone: str) -> None:
    event = envelope("callback.requested", {"client_id": client, "phone": phone,
                                            "timezone": "Europe/Moscow"})
    assert svc.post_event(event)[0] == 202


def test_agents_log_calls_and_cancel_and_an_admin_reassigns(
    service: ServiceFactory, crm: CrmReceiver, agents: tuple[BrowserContext, BrowserContext],
    browser: Browser,
) -> None:
    svc = service()
    create_users(svc, ("anna", "support", "en"), ("boris", "support", "ru"),
                 ("olga", "admin", "en"), ("mila", "marketing", "en"))
    requested_task(svc, "c-5", "+79990000005")
    requested_task(svc, "c-6", "+79990000006")
    wait_until(lambda: rows(svc, "select count(*) from callback_tasks") == [(2,)], 20.0)
    ids = dict(rows(svc, "select client_id, id from callback_tasks"))
    page = agents[0].new_page()
    sign_in(page, svc, "anna", "/support")
    assert page.locator("form.reassign").count() == 0  # only an admin gives tasks away

    def card(client: str) -> Locator:
        return page.locator(f"article.task[data-task='{ids[client]}']")

    # A call that did not reach the client is logged, with how it went; the task stays open.
    card("c-5").locator("select[name=result]").select_option("no_answer")
    card("c-5").locator("form.attempt input[name=note]").fill("Rang 10 times")
    with page.expect_navigation():
        card("c-5").locator("button.attempt-button").click()
    assert "No answer · Rang 10 times" in card("c-5").locator(".attempts").inner_text()
    assert rows(svc, f"select agent, result, note from callback_task_attempts "
                     f"where task_id = '{ids['c-5']}'") == [("user:anna", "no_answer",
                                                             "Rang 10 times")]
    assert "open" in card("c-5").locator(".status").inner_text()

    # Cancelling asks first; saying no changes nothing, saying yes cancels with the reason.
    card("c-6").locator("input[name=reason]").fill("Solved by e-mail")
    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    card("c-6").locator("button.cancel-button").click()
    assert asked == ["Cancel this task? It leaves the queue and the CRM is told."]
    assert rows(svc, f"select status from callback_tasks where id = '{ids['c-6']}'") == [
        ("open",)]
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        card("c-6").locator("button.cancel-button").click()
    assert page.locator(".notice").count() == 0  # not refused: the "no" above sent nothing
    assert card("c-6").count() == 0
    assert rows(svc, f"select status, cancel_reason from callback_tasks "
                     f"where id = '{ids['c-6']}'") == [("cancelled", "Solved by e-mail")]
    cancelled = crm.wait_for("callback_task.resolved", timeout=30)
    assert cancelled.verified and cancelled.payload["data"]["task_id"] == ids["c-6"]

    # A form sent without a reason or a result (no browser checks) is refused; nothing changes.
    before = rows(svc, "select id, status from callback_tasks order by id"), \
        rows(svc, "select count(*) from callback_task_attempts")
    with page.expect_navigation():
        card("c-5").locator("form.cancel").evaluate("form => form.submit()")
    assert "Say why the task is cancelled." in page.locator(".notice").inner_text()
    with page.expect_navigation():
        card("c-5").locator("select[name=result]").evaluate(
            "select => { select.innerHTML = '<option value=\"shrug\">?</option>'; "
            "select.form.submit(); }")
    assert "Choose how the call went" in page.locator(".notice").inner_text()
    assert (rows(svc, "select id, status from callback_tasks order by id"),
            rows(svc, "select count(*) from callback_task_attempts")) == before

    # An admin gives the open task to boris, who finds it under "Mine", in Russian.
    admin = agents[1].new_page()
    sign_in(admin, svc, "olga", "/support")
    form = admin.locator(f"article.task[data-task='{ids['c-5']}'] form.reassign")
    assert form.locator("option").all_inner_texts() == ["anna (anna)", "boris (boris)",
                                                        "olga (olga)"]  # not marketing
    form.locator("select[name=to]").select_option("boris")
    with admin.expect_navigation():
        form.locator("button.reassign-button").click()
    assert rows(svc, f"select status, assignee from callback_tasks "
                     f"where id = '{ids['c-5']}'") == [("claimed", "user:boris")]
    borises = browser.new_context()
    try:
        boris = borises.new_page()
        sign_in(boris, svc, "boris", "/support?view=mine")
        mine = boris.locator(f"article.task[data-task='{ids['c-5']}']")
        assert "взята · boris" in mine.locator(".status").inner_text()
        attempts = mine.locator(".attempts").inner_text()
        assert "Не ответил · Rang 10 times" in attempts  # noqa: RUF001 (Russian text)
    finally:
        borises.close()
