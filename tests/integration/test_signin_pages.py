"""The sign-in pages through FastAPI's TestClient: the cookie's flags, wrong passwords, the
throttle, redirects when signed out, CSRF on every form, disabled users, roles, Russian."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api.errors import install_error_handlers
from api.pages import install_pages
from api.passwords import Passwords
from api.people import CLI_ACTOR, People
from api.throttle import ThrottlePolicy
from api.tokens import Role

PASSWORD = "correct horse battery"


@pytest.fixture
def people(sessions: sessionmaker[Session]) -> People:
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    people = People(sessions, Passwords(cheap), throttle=ThrottlePolicy(user_failures=3))
    people.create(CLI_ACTOR, "anna", Role.SUPPORT, PASSWORD, display_name="Anna K.")
    people.create(CLI_ACTOR, "mark", Role.MARKETING, PASSWORD, display_name="Марк", locale="ru")
    return people


def make_app(people: People, sessions: sessionmaker[Session],
             public_url: str | None = None) -> FastAPI:
    """The pages over `people` and the database (the support queue reads the tasks)."""
    app = FastAPI()
    app.state.people = people
    app.state.sessions = sessions
    app.state.settings = SimpleNamespace(public_url=public_url,
                                         calendar_timezone="Europe/Moscow",
                                         calling_window_hours="mon-sun 09:00-21:00")
    install_error_handlers(app)
    install_pages(app)
    return app


@pytest.fixture
def client(people: People, sessions: sessionmaker[Session]) -> TestClient:
    return TestClient(make_app(people, sessions), follow_redirects=False)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, html
    return found.group(1)


def sign_in(client: TestClient, username: str, password: str = PASSWORD,
            next_path: str = "/") -> object:
    page = client.get("/signin")
    assert page.status_code == 200
    return client.post("/signin", data={"csrf": csrf_of(page.text), "username": username,
                                        "password": password, "next": next_path})


def test_signed_out_pages_redirect_to_sign_in_with_the_way_back(client: TestClient) -> None:
    answer = client.get("/support?status=open")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/signin?next=%2Fsupport%3Fstatus%3Dopen"
    assert client.get("/").headers["location"] == "/signin"


def test_sign_in_sets_a_strict_cookie_and_goes_back(client: TestClient) -> None:
    answer = sign_in(client, "anna", next_path="/support")
    assert answer.status_code == 303 and answer.headers["location"] == "/support"
    cookie = next(value for value in answer.headers.get_list("set-cookie")
                  if value.startswith("rb_session="))
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=lax", "path=/"} <= flags
    assert "secure" not in flags  # plain http in this test
    home = client.get("/")
    assert home.status_code == 200
    assert "Signed in as Anna K. (support)" in home.text
    assert 'href="/support"' in home.text
    assert home.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in home.headers["content-security-policy"]
    assert client.get("/support").status_code == 200


def test_the_cookie_is_secure_over_https(
    people: People, sessions: sessionmaker[Session],
) -> None:
    client = TestClient(make_app(people, sessions), base_url="https://testserver",
                        follow_redirects=False)
    answer = sign_in(client, "anna")
    cookie = next(value for value in answer.headers.get_list("set-cookie")
                  if value.startswith("rb_session="))
    assert "secure" in cookie.lower()


def test_cookies_are_secure_when_the_public_url_is_https(
    people: People, sessions: sessionmaker[Session],
) -> None:
    """Behind a proxy that ends TLS, the request reaches ringback over http."""
    client = TestClient(make_app(people, sessions, "https://ringback.example"),
                        follow_redirects=False)
    cookie = client.get("/signin").headers["set-cookie"]
    assert cookie.startswith("rb_csrf=") and "secure" in cookie.lower()


def test_an_offsite_next_is_ignored(client: TestClient) -> None:
    answer = sign_in(client, "anna", next_path="https://evil.example/")
    assert answer.headers["location"] == "/"


def test_a_wrong_password_shows_the_error(client: TestClient) -> None:
    answer = sign_in(client, "anna", "wrong password!")
    assert answer.status_code == 401
    assert "Wrong username or password." in answer.text
    assert "rb_session" not in client.cookies
    assert "wrong password!" not in answer.text
    assert 'value="anna"' in answer.text


def test_the_throttle_stops_guessing(client: TestClient) -> None:
    for _ in range(2):
        assert sign_in(client, "anna", "wrong password!").status_code == 401
    locked = sign_in(client, "anna", "wrong password!")
    assert locked.status_code == 429 and "Too many failed attempts" in locked.text
    right = sign_in(client, "anna")  # the right password, while locked
    assert right.status_code == 429 and "rb_session" not in client.cookies


def test_forms_without_the_csrf_token_are_refused(client: TestClient) -> None:
    page = client.get("/signin")
    bare = client.post("/signin", data={"username": "anna", "password": PASSWORD})
    assert bare.status_code == 403 and "Form expired" in bare.text
    forged = client.post("/signin", data={"csrf": "forged", "username": "anna",
                                          "password": PASSWORD})
    assert forged.status_code == 403
    assert "rb_session" not in client.cookies
    assert sign_in(client, "anna").status_code == 303
    home = client.get("/")
    refused = client.post("/signout", data={"csrf": csrf_of(page.text)})  # the pre-session one
    assert refused.status_code == 403
    assert client.post("/signout", data={}).status_code == 403
    assert client.get("/").status_code == 200  # still signed in
    out = client.post("/signout", data={"csrf": csrf_of(home.text)})
    assert out.status_code == 303 and out.headers["location"] == "/signin"
    assert client.get("/").status_code == 303


def test_a_disabled_users_cookie_signs_out(client: TestClient, people: People) -> None:
    assert sign_in(client, "anna").status_code == 303
    assert client.get("/").status_code == 200
    people.disable(CLI_ACTOR, "anna")
    answer = client.get("/")
    assert answer.status_code == 303 and answer.headers["location"] == "/signin"
    assert 'rb_session=""' in answer.headers["set-cookie"]  # the stale cookie is dropped


def test_a_marketing_user_cannot_read_tasks(client: TestClient) -> None:
    assert sign_in(client, "mark").status_code == 303
    answer = client.get("/support")
    assert answer.status_code == 403
    assert "Нет доступа" in answer.text


def test_a_russian_user_sees_russian_pages(client: TestClient) -> None:
    sign_in(client, "mark")
    home = client.get("/")
    assert '<html lang="ru">' in home.text
    assert "Вы вошли как Марк (маркетинг)." in home.text and "Выйти" in home.text


def test_the_sign_in_page_speaks_the_visitors_language(client: TestClient) -> None:
    assert "Войти" in client.get("/signin", headers={"Accept-Language": "ru-RU,ru;q=0.9"}).text
    assert "Войти" in client.get("/signin?lang=ru").text
    english = client.get("/signin?lang=en", headers={"Accept-Language": "ru"})
    assert "Sign in" in english.text and 'href="/signin?lang=ru&amp;next=%2F"' in english.text


def test_the_stylesheet_is_served_by_ringback(client: TestClient) -> None:
    answer = client.get("/static/ringback.css")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/css")
    assert "//" not in client.get("/signin").text.split("<body>")[0].replace("http://", "")


def test_a_person_chooses_the_language_of_their_pages(client: TestClient, people: People) -> None:
    sign_in(client, "anna")
    home = client.get("/?tab=1")
    assert 'name="locale" value="ru"' in home.text
    assert client.post("/locale", data={"locale": "ru", "next": "/?tab=1"}).status_code == 403
    chosen = client.post("/locale", data={"csrf": csrf_of(home.text), "locale": "ru",
                                          "next": "/?tab=1"})
    assert chosen.status_code == 303 and chosen.headers["location"] == "/?tab=1"
    assert "Вы вошли как Anna K. (поддержка)." in client.get("/").text
    person = people.get("anna")
    assert person is not None and person.locale == "ru"
