"""People's pages in a real browser: Debian's chromium driven by Playwright against a real
`ringback serve` (SQLite, no registrar), users made with the real `ringback user` CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page

from lab.ringback import RingbackService

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RingbackService]:
    svc = RingbackService(tmp_path_factory.mktemp("pages"), {"RINGBACK_DEFAULT_LOCALE": "en"})
    svc.start()
    create_users(svc, ("anna", "support", "en"), ("boris", "support", "ru"),
                 ("mila", "marketing", "en"), ("gone", "support", "en"))
    try:
        yield svc
    finally:
        svc.close()


def user(svc: RingbackService, *args: str, stdin: str = "") -> None:
    done = svc.cli("user", *args, stdin=stdin)
    assert done.returncode == 0, done.stderr


def create_users(svc: RingbackService, *people: tuple[str, str, str]) -> None:
    """Each (username, role, locale), with PASSWORD, made by the real CLI."""
    for username, role, locale in people:
        user(svc, "create", "--role", role, "--username", username, "--locale", locale,
             "--password-stdin", stdin=PASSWORD + "\n")


def sign_in(page: Page, svc: RingbackService, username: str, path: str = "/") -> None:
    page.goto(f"{svc.url}{path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def test_signed_out_people_land_on_the_sign_in_page_and_come_back(
    service: RingbackService, context: BrowserContext,
) -> None:
    page = context.new_page()
    sign_in(page, service, "anna", "/support")
    assert page.url == f"{service.url}/support"
    assert "Callback tasks" in page.inner_text("h1")
    cookie = next(c for c in context.cookies() if c["httpOnly"])
    assert cookie["sameSite"] == "Lax"
    page.click("text=Sign out")
    page.wait_for_load_state()
    page.goto(f"{service.url}/support")
    assert "/signin" in page.url


def test_a_wrong_password_says_so_and_signs_nobody_in(
    service: RingbackService, context: BrowserContext,
) -> None:
    page = context.new_page()
    page.goto(f"{service.url}/signin")
    page.fill("input[name=username]", "anna")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    assert "Wrong username or password." in page.content()
    assert not [c for c in context.cookies() if c["httpOnly"] and "session" in c["name"]]


def test_a_russian_agent_gets_russian_pages(
    service: RingbackService, context: BrowserContext,
) -> None:
    page = context.new_page()
    sign_in(page, service, "boris", "/support")
    assert page.locator("html").get_attribute("lang") == "ru"
    assert "Задачи на обратный звонок" in page.inner_text("h1")


def test_marketing_may_not_open_the_support_queue(
    service: RingbackService, context: BrowserContext,
) -> None:
    page = context.new_page()
    sign_in(page, service, "mila")
    response = page.goto(f"{service.url}/support")
    assert response is not None and response.status == 403
    assert "Your role may not open this page." in page.content()


def test_a_form_posted_without_its_csrf_token_is_refused(
    service: RingbackService, context: BrowserContext,
) -> None:
    page = context.new_page()
    sign_in(page, service, "anna")
    page.evaluate("document.querySelector('form[action=\"/signout\"] input[name=csrf]').value"
                  " = 'forged'")
    with page.expect_response(f"{service.url}/signout") as posted:
        page.click("text=Sign out")
    assert posted.value.status == 403
    assert "Form expired" in page.content()
    page.goto(f"{service.url}/support")  # still signed in: the forged sign-out did nothing
    assert page.url == f"{service.url}/support"


def test_a_disabled_persons_cookie_no_longer_signs_in(
    service: RingbackService, context: BrowserContext,
) -> None:
    page = context.new_page()
    sign_in(page, service, "gone", "/support")
    assert page.url == f"{service.url}/support"
    user(service, "disable", "gone")
    page.goto(f"{service.url}/support")
    assert "/signin" in page.url


def test_the_pages_screenshot_for_the_docs(
    service: RingbackService, context: BrowserContext,
) -> None:
    page = context.new_page()
    page.goto(f"{service.url}/signin")
    shots = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    shots.mkdir(exist_ok=True)
    page.screenshot(path=str(shots / "signin.png"))
    assert (shots / "signin.png").stat().st_size > 1000
