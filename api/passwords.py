"""Passwords of the people who sign in: argon2id (argon2-cffi's `PasswordHasher`, its RFC 9106
low-memory defaults), a strength rule, and a dummy hash to verify against when the username is
unknown, so that an unknown name costs the same time as a wrong password.

A password is never logged, stored or shown: only its encoded argon2id hash is kept.
"""

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 10
MAX_LENGTH = 256  # hashing a megabyte of "password" on every attempt is a denial of service
MIN_DISTINCT = 5


class WeakPassword(ValueError):
    """The password breaks the strength rule; the message says how, for a person."""


def check_strength(password: str, username: str = "") -> None:
    """Raise `WeakPassword` unless `password` is 10 to 256 characters, has at least 5 different
    characters and is not the username."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"a password has at most {MAX_LENGTH} characters")
    if len(set(password)) < MIN_DISTINCT:
        raise WeakPassword(f"a password needs at least {MIN_DISTINCT} different characters")
    if username and username.casefold() in password.casefold():
        raise WeakPassword("a password must not contain the username")


class Passwords:
    """Hash and verify. `hasher` is argon2id with the library's defaults unless a test passes
    a cheaper one."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, encoded: str, password: str) -> bool:
        """Whether `password` matches `encoded`; a malformed hash matches nothing."""
        if len(password) > MAX_LENGTH:
            return False
        try:
            return self._hasher.verify(encoded, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, encoded: str) -> bool:
        """Whether `encoded` was made with older parameters than the hasher's: rehash it at the
        next successful sign-in."""
        try:
            return self._hasher.check_needs_rehash(encoded)
        except InvalidHashError:
            return True

    def verify_dummy(self, password: str) -> None:
        """Spend the time of one verification, for a username that does not exist."""
        if self._dummy is None:
            self._dummy = self._hasher.hash("dummy password for unknown names")
        self.verify(self._dummy, password)

