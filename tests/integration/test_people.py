"""The people service on SQLite and PostgreSQL: accounts, the sign-in throttle, browser
sessions, and the audit log every change writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.passwords import Passwords, WeakPassword
from api.people import CLI_ACTOR, InvalidUser, People, UnknownUser, UsernameTaken
from api.throttle import ThrottlePolicy
from api.tokens import Role, hash_token
from api.users import SignInFailure, User, WebSession
from campaigns.models import AuditEntry

PASSWORD = "correct horse battery"
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def people(sessions: sessionmaker[Session], clock: Clock) -> People:
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    return People(sessions, Passwords(cheap), clock=clock,
                  throttle=ThrottlePolicy(user_failures=3, ip_failures=5))


def audit(sessions: sessionmaker[Session]) -> list[tuple[str, str, str]]:
    with sessions() as session:
        return [(entry.actor, entry.action, entry.target) for entry in
                session.scalars(select(AuditEntry).order_by(AuditEntry.id))]


def test_create_stores_a_hash_and_audits(people: People, sessions: sessionmaker[Session]) -> None:
    person = people.create(CLI_ACTOR, " Anna ", Role.SUPPORT, PASSWORD, display_name="Анна",
                           locale="ru")
    assert (person.username, person.display_name, person.role, person.locale) == (
        "anna", "Анна", Role.SUPPORT, "ru")
    with sessions() as session:
        stored = session.scalar(select(User.password_hash))
        assert stored is not None and stored.startswith("$argon2id$") and PASSWORD not in stored
        details = session.scalar(select(AuditEntry.details))
    assert audit(sessions) == [("cli", "user.create", "user:anna")]
    assert details is not None and PASSWORD not in str(details)
    assert [p.username for p in people.list()] == ["anna"]


def test_create_refuses_bad_input(people: People) -> None:
    people.create(CLI_ACTOR, "anna", Role.SUPPORT, PASSWORD)
    with pytest.raises(UsernameTaken):
        people.create(CLI_ACTOR, "ANNA", Role.MARKETING, PASSWORD)
    with pytest.raises(InvalidUser, match="username"):
        people.create(CLI_ACTOR, "a b", Role.SUPPORT, PASSWORD)
    with pytest.raises(InvalidUser, match="role"):
        people.create(CLI_ACTOR, "bob", "boss", PASSWORD)
    with pytest.raises(InvalidUser, match="locale"):
        people.create(CLI_ACTOR, "bob", Role.SUPPORT, PASSWORD, locale="de")
    with pytest.raises(WeakPassword):
        people.create(CLI_ACTOR, "bob", Role.SUPPORT, "short")
    with pytest.raises(UnknownUser):
        people.disable(CLI_ACTOR, "nobody")


def test_sign_in_makes_a_session_stored_by_hash(
    people: People, sessions: sessionmaker[Session]
) -> None:
    people.create(CLI_ACTOR, "anna", Role.SUPPORT, PASSWORD)
    result = people.sign_in("Anna", PASSWORD, "192.0.2.1")
    assert result.signed_in is not None and result.session_token is not None
    token = result.session_token
    with sessions() as session:
        stored = session.scalars(select(WebSession.token_hash)).all()
    assert stored == [hash_token(token)]
    resolved = people.resolve(token)
    assert resolved is not None and resolved.person.username == "anna"
    assert resolved.csrf_token == result.signed_in.csrf_token
    assert people.resolve(token + "x") is None and people.resolve(None) is None
    people.sign_out(token)
    assert people.resolve(token) is None
    assert audit(sessions)[1:] == [("user:anna", "user.sign_in", "user:anna"),
                                   ("user:anna", "user.sign_out", "user:anna")]


def test_wrong_password_unknown_user_and_disabled_user_look_alike(people: People) -> None:
    people.create(CLI_ACTOR, "anna", Role.SUPPORT, PASSWORD)
    people.create(CLI_ACTOR, "bob", Role.SUPPORT, PASSWORD)
    people.disable(CLI_ACTOR, "bob")
    for name, password in (("anna", "wrong password!"), ("nobody", PASSWORD), ("bob", PASSWORD)):
        result = people.sign_in(name, password, "192.0.2.1")
        assert (result.signed_in, result.session_token, result.locked_until) == (None, None, None)


def test_the_throttle_locks_a_username_and_unlocks_later(
    people: People, clock: Clock, sessions: sessionmaker[Session]
) -> None:
    people.create(CLI_ACTOR, "anna", Role.SUPPORT, PASSWORD)
    assert people.sign_in("anna", "wrong 1 password", "192.0.2.1").locked_until is None
    assert people.sign_in("anna", "wrong 2 password", "192.0.2.2").locked_until is None
    locked = people.sign_in("anna", "wrong 3 password", "192.0.2.3")
    assert locked.locked_until == T0 + timedelta(minutes=15)
    # Locked: even the right password is not checked.
    assert people.sign_in("anna", PASSWORD, "192.0.2.4").session_token is None
    assert ("ringback", "user.sign_in_locked", "user:anna") in audit(sessions)
    clock.advance(minutes=15)
    assert people.sign_in("anna", PASSWORD, "192.0.2.4").session_token is not None
    with sessions() as session:  # success forgets the username's failures; stale ones go too
        assert set(session.scalars(select(SignInFailure.key))) == set()


def test_a_failure_keeps_the_counts_of_the_current_window(
    people: People, clock: Clock, sessions: sessionmaker[Session]
) -> None:
    people.sign_in("anna", "wrong 1 password", "192.0.2.1")
    clock.advance(minutes=16)
    people.sign_in("bob", "wrong 1 password", "192.0.2.2")
    with sessions() as session:
        keys = set(session.scalars(select(SignInFailure.key)))
    assert keys == {"user:bob", "ip:192.0.2.2"}


def test_the_throttle_locks_an_address_across_usernames(people: People) -> None:
    people.create(CLI_ACTOR, "anna", Role.SUPPORT, PASSWORD)
    for n in range(5):
        people.sign_in(f"guess{n}", PASSWORD, "198.51.100.7")
    assert people.sign_in("anna", PASSWORD, "198.51.100.7").locked_until is not None
    assert people.sign_in("anna", PASSWORD, "198.51.100.8").session_token is not None


def test_sessions_slide_and_expire(people: People, clock: Clock) -> None:
    people.create(CLI_ACTOR, "anna", Role.SUPPORT, PASSWORD)
    token = people.sign_in("anna", PASSWORD, "192.0.2.1").session_token
    clock.advance(hours=11)
    assert people.resolve(token) is not None  # used: the 12 hours start again
    clock.advance(hours=11)
    assert people.resolve(token) is not None
    clock.advance(hours=12)
    assert people.resolve(token) is None  # idle too long: gone
    assert people.session_count("anna") == 0


def test_disable_and_reset_end_sessions_at_once(
    people: People, sessions: sessionmaker[Session]
) -> None:
    people.create(CLI_ACTOR, "anna", Role.SUPPORT, PASSWORD)
    token = people.sign_in("anna", PASSWORD, "192.0.2.1").session_token
    assert people.disable(CLI_ACTOR, "anna").disabled
    assert people.resolve(token) is None
    assert people.enable(CLI_ACTOR, "anna").disabled is False
    token = people.sign_in("anna", PASSWORD, "192.0.2.1").session_token
    _person, new = people.reset_password(CLI_ACTOR, "anna")
    assert people.resolve(token) is None
    assert people.sign_in("anna", PASSWORD, "192.0.2.1").session_token is None
    assert people.sign_in("anna", new, "192.0.2.1").session_token is not None
    actions = [action for _actor, action, _target in audit(sessions)]
    assert actions == ["user.create", "user.sign_in", "user.disable", "user.enable",
                       "user.sign_in", "user.reset_password", "user.sign_in"]
    with pytest.raises(WeakPassword):
        people.reset_password(CLI_ACTOR, "anna", "short")


def test_a_session_of_a_user_disabled_behind_its_back_is_deleted(
    people: People, sessions: sessionmaker[Session]
) -> None:
    people.create(CLI_ACTOR, "anna", Role.SUPPORT, PASSWORD)
    token = people.sign_in("anna", PASSWORD, "192.0.2.1").session_token
    with sessions() as session, session.begin():  # e.g. straight in the database
        user = session.scalar(select(User))
        assert user is not None
        user.disabled_at = T0
    assert people.resolve(token) is None
    assert people.session_count("anna") == 0


def test_set_locale_is_audited_once(people: People, sessions: sessionmaker[Session]) -> None:
    people.create(CLI_ACTOR, "anna", Role.SUPPORT, PASSWORD)
    assert people.set_locale("user:anna", "anna", "ru").locale == "ru"
    people.set_locale("user:anna", "anna", "ru")
    assert audit(sessions)[1:] == [("user:anna", "user.set_locale", "user:anna")]
    with pytest.raises(InvalidUser):
        people.set_locale("user:anna", "anna", "de")
