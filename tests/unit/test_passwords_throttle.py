"""Passwords (argon2id, the strength rule, rehash) and the sign-in throttle's rule."""

from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher

from api.pages.security import local_path, signin_url
from api.pages.texts import TEXTS
from api.passwords import Passwords, WeakPassword, check_strength
from api.throttle import Count, ThrottlePolicy, after_failure, locked_until

CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_a_hash_is_argon2id_and_verifies_only_its_password() -> None:
    passwords = Passwords(CHEAP)
    encoded = passwords.hash("correct horse battery")
    assert encoded.startswith("$argon2id$")
    assert "correct horse battery" not in encoded
    assert passwords.verify(encoded, "correct horse battery")
    assert not passwords.verify(encoded, "correct horse batterY")
    assert not passwords.verify("not a hash", "correct horse battery")
    assert not passwords.verify(encoded, "x" * 10_000)
    passwords.verify_dummy("anything")  # costs a verification, raises nothing


def test_a_hash_made_with_weaker_parameters_needs_a_rehash() -> None:
    old = Passwords(CHEAP).hash("correct horse battery")
    stronger = Passwords(PasswordHasher(time_cost=2, memory_cost=16, parallelism=1))
    assert stronger.needs_rehash(old)
    assert not stronger.needs_rehash(stronger.hash("correct horse battery"))
    assert stronger.needs_rehash("garbage")


@pytest.mark.parametrize(("password", "problem"), [
    ("short", "at least 10 characters"),
    ("aaaaabbbbbb", "at least 5 different characters"),
    ("x" * 300, "at most 256 characters"),
    ("my-anna-password", "must not contain the username"),
])
def test_weak_passwords_are_refused_with_the_reason(password: str, problem: str) -> None:
    with pytest.raises(WeakPassword, match=problem):
        check_strength(password, "anna")


def test_a_good_password_passes() -> None:
    check_strength("correct horse battery", "anna")


POLICY = ThrottlePolicy(user_failures=3, ip_failures=10, window=timedelta(minutes=15),
                        lockout=timedelta(minutes=15))


def test_the_failure_that_reaches_the_limit_locks_the_key() -> None:
    count = None
    for minute in range(2):
        count = after_failure(count, T0 + timedelta(minutes=minute), 3, POLICY)
        assert count.locked_until is None and locked_until(count, T0 + timedelta(minutes=2)) is None
    count = after_failure(count, T0 + timedelta(minutes=2), 3, POLICY)
    assert count.failures == 3
    assert count.locked_until == T0 + timedelta(minutes=17)
    assert locked_until(count, T0 + timedelta(minutes=16)) == T0 + timedelta(minutes=17)
    assert locked_until(count, T0 + timedelta(minutes=17)) is None  # the lock has run out


def test_a_window_that_ran_out_starts_afresh() -> None:
    count = Count(2, T0)
    fresh = after_failure(count, T0 + timedelta(minutes=15), 3, POLICY)
    assert fresh == Count(1, T0 + timedelta(minutes=15))


def test_a_failure_after_a_lock_ran_out_starts_afresh() -> None:
    count = Count(3, T0, T0 + timedelta(minutes=15))
    assert after_failure(count, T0 + timedelta(minutes=16), 3, POLICY) == Count(
        1, T0 + timedelta(minutes=16))


def test_addresses_have_a_higher_limit_than_usernames() -> None:
    assert POLICY.limit("user:anna") == 3
    assert POLICY.limit("ip:192.0.2.1") == 10


@pytest.mark.parametrize(("candidate", "expected"), [
    ("/support?status=open", "/support?status=open"),
    (None, "/"),
    ("", "/"),
    ("https://evil.example/", "/"),
    ("//evil.example/", "/"),
    ("/\\evil.example", "/"),
    ("support", "/"),
    ("/a\r\nSet-Cookie: x=1", "/"),
])
def test_only_local_paths_are_followed_after_sign_in(candidate: str | None, expected: str) -> None:
    assert local_path(candidate) == expected


def test_the_sign_in_url_carries_the_page_to_return_to() -> None:
    assert signin_url("/") == "/signin"
    assert signin_url("/support?x=1") == "/signin?next=%2Fsupport%3Fx%3D1"
    assert signin_url("//evil") == "/signin"


def test_every_locale_has_every_text() -> None:
    keys = set(TEXTS["en"])
    for locale, texts in TEXTS.items():
        assert set(texts) == keys, locale
