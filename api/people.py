"""The people who sign in to ringback's pages: accounts, sign-in with a throttle, browser
sessions, and an audit entry for every change.

A session cookie holds 32 random bytes; `web_sessions` holds only their SHA-256, like API tokens
(api/tokens.py), so the database never holds a usable cookie. A session lasts `idle` since it was
last used (sliding) and never more than `absolute` since the sign-in. A disabled user's sessions
are deleted, and a session found for a disabled user is deleted and worth nothing.

Passwords are never logged, stored or put in an audit entry.
"""

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from api.passwords import Passwords, check_strength
from api.throttle import Count, ThrottlePolicy, after_failure, locked_until
from api.tokens import Role, hash_token
from api.users import SignInFailure, User, WebSession
from campaigns.models import AuditEntry
from infra.db import transaction, utcnow

CLI_ACTOR = "cli"
LOCALES = ("en", "ru")
SESSION_BYTES = 32
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
SLIDE_AFTER = timedelta(minutes=1)  # last_seen_at is written at most this often


class PeopleError(Exception):
    """A refused change to people; `code` is a stable id, the message is for a person."""

    code = "invalid-user"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidUser(PeopleError):
    code = "invalid-user"


class UsernameTaken(PeopleError):
    code = "username-taken"


class UnknownUser(PeopleError):
    code = "unknown-user"


@dataclass(frozen=True)
class Person:
    """What may be shown of a user: never the password hash."""

    id: int
    username: str
    display_name: str
    role: Role
    locale: str
    created_at: datetime
    disabled_at: datetime | None

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None

    def as_json(self) -> dict[str, object]:
        return {
            "username": self.username, "display_name": self.display_name, "role": str(self.role),
            "locale": self.locale, "created_at": self.created_at.isoformat(),
            "disabled_at": self.disabled_at.isoformat() if self.disabled_at else None,
        }


@dataclass(frozen=True)
class SignedIn:
    """A live browser session: who, and the CSRF token its forms must send back."""

    person: Person
    csrf_token: str


@dataclass(frozen=True)
class SignInResult:
    """`session_token` (for the cookie) and `signed_in` on success; otherwise `locked_until`
    says whether the throttle refused (or has just locked), None for a plain wrong password."""

    signed_in: SignedIn | None = None
    session_token: str | None = None
    locked_until: datetime | None = None


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta = timedelta(hours=12)
    absolute: timedelta = timedelta(days=7)


def _person(user: User) -> Person:
    return Person(user.id, user.username, user.display_name, Role(user.role), user.locale,
                  user.created_at, user.disabled_at)


def normalize_username(username: str) -> str:
    return username.strip().lower()


def user_actor(username: str) -> str:
    return f"user:{username}"


class People:
    """Every operation is one transaction on `sessions`; `actor` ("cli", "user:<name>") is
    who the audit log names."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        passwords: Passwords,
        *,
        clock: Callable[[], datetime] = utcnow,
        throttle: ThrottlePolicy | None = None,
        session_policy: SessionPolicy | None = None,
    ) -> None:
        self._sessions = sessions
        self._passwords = passwords
        self._clock = clock
        self._throttle = throttle or ThrottlePolicy()
        self._session_policy = session_policy or SessionPolicy()

    # Accounts.

    def create(self, actor: str, username: str, role: Role | str, password: str, *,
               display_name: str | None = None, locale: str = "en") -> Person:
        name = normalize_username(username)
        if not USERNAME.match(name):
            raise InvalidUser("a username is 2 to 64 characters: lowercase letters, digits, "
                              "'.', '_' or '-', starting with a letter or digit")
        try:
            role = Role(role)
        except ValueError:
            raise InvalidUser(f"unknown role {role!r}: admin, marketing or support") from None
        if locale not in LOCALES:
            raise InvalidUser(f"unknown locale {locale!r}: {' or '.join(LOCALES)}")
        shown = (display_name or name).strip()
        if not shown or len(shown) > 200 or not shown.isprintable():
            raise InvalidUser("a display name is 1 to 200 printable characters")
        check_strength(password, name)
        encoded = self._passwords.hash(password)
        now = self._clock()
        with transaction(self._sessions) as session:
            if session.scalar(select(User.id).where(User.username == name)) is not None:
                raise UsernameTaken(f"the username {name!r} is taken")
            user = User(username=name, display_name=shown, role=role, locale=locale,
                        password_hash=encoded, created_at=now, password_changed_at=now)
            session.add(user)
            session.flush()
            self._audit(session, actor, "user.create", name,
                        {"role": str(role), "locale": locale, "display_name": shown})
            return _person(user)

    def list(self) -> list[Person]:
        with self._sessions() as session:
            return [_person(user) for user in session.scalars(select(User).order_by(User.id))]

    def get(self, username: str) -> Person | None:
        with self._sessions() as session:
            user = self._find(session, username)
            return None if user is None else _person(user)

    def disable(self, actor: str, username: str) -> Person:
        """Disable, effective at once: the user's sessions are deleted. Idempotent."""
        with transaction(self._sessions) as session:
            user = self._existing(session, username)
            if user.disabled_at is None:
                user.disabled_at = self._clock()
                self._end_sessions(session, user)
                self._audit(session, actor, "user.disable", user.username)
            return _person(user)

    def enable(self, actor: str, username: str) -> Person:
        with transaction(self._sessions) as session:
            user = self._existing(session, username)
            if user.disabled_at is not None:
                user.disabled_at = None
                self._audit(session, actor, "user.enable", user.username)
            return _person(user)

    def set_locale(self, actor: str, username: str, locale: str) -> Person:
        """The language of the user's pages: their own choice, or an admin's."""
        if locale not in LOCALES:
            raise InvalidUser(f"unknown locale {locale!r}: {' or '.join(LOCALES)}")
        with transaction(self._sessions) as session:
            user = self._existing(session, username)
            if user.locale != locale:
                self._audit(session, actor, "user.set_locale", user.username,
                            {"from": user.locale, "to": locale})
                user.locale = locale
            return _person(user)

    def reset_password(self, actor: str, username: str, password: str | None = None
                       ) -> tuple[Person, str]:
        """Set a new password (a random one when `password` is None) and end the user's
        sessions; returns it, to hand to the person once."""
        new = password if password is not None else secrets.token_urlsafe(15)
        with transaction(self._sessions) as session:
            user = self._existing(session, username)
            check_strength(new, user.username)
            user.password_hash = self._passwords.hash(new)
            user.password_changed_at = self._clock()
            self._end_sessions(session, user)
            session.execute(delete(SignInFailure).where(
                SignInFailure.key == f"user:{user.username}"))
            self._audit(session, actor, "user.reset_password", user.username)
            return _person(user), new

    # Signing in and out.

    def sign_in(self, username: str, password: str, address: str) -> SignInResult:
        """Check a password under the throttle; on success a new session. The answer for an
        unknown user, a disabled one and a wrong password is the same, and so is its cost."""
        name = normalize_username(username)[:100]
        keys = (f"user:{name}", f"ip:{address}"[:240])
        now = self._clock()
        with transaction(self._sessions) as session:
            locks = [locked_until(self._count(session, key), now) for key in keys]
            if any(locks):
                return SignInResult(locked_until=max(lock for lock in locks if lock))
            user = self._find(session, name)
            encoded = None if user is None else user.password_hash
        if encoded is None:
            self._passwords.verify_dummy(password)
            ok = False
        else:
            ok = self._passwords.verify(encoded, password)
        with transaction(self._sessions) as session:
            user = self._find(session, name) if ok else None
            if user is None or user.disabled_at is not None or user.password_hash != encoded:
                return self._failed(session, keys, name)
            if self._passwords.needs_rehash(user.password_hash):
                user.password_hash = self._passwords.hash(password)
            session.execute(delete(SignInFailure).where(SignInFailure.key == keys[0]))
            self._forget_stale(session, now)
            token = secrets.token_urlsafe(SESSION_BYTES)
            csrf = secrets.token_urlsafe(SESSION_BYTES)
            session.add(WebSession(token_hash=hash_token(token), user_id=user.id,
                                   csrf_token=csrf, created_at=now, last_seen_at=now,
                                   expires_at=now + self._session_policy.idle))
            self._audit(session, user_actor(user.username), "user.sign_in", user.username)
            return SignInResult(SignedIn(_person(user), csrf), token)

    def resolve(self, token: str | None) -> SignedIn | None:
        """The live session a cookie stands for, or None. An expired session, or one of a
        disabled user, is deleted. A session in use slides its expiry."""
        if not token:
            return None
        now = self._clock()
        with transaction(self._sessions) as session:
            found = session.get(WebSession, hash_token(token))
            if found is None:
                return None
            user = session.get(User, found.user_id)
            limit = found.created_at + self._session_policy.absolute
            if (user is None or user.disabled_at is not None or found.expires_at <= now
                    or limit <= now or found.created_at < user.password_changed_at):
                session.delete(found)
                return None
            if now - found.last_seen_at >= SLIDE_AFTER:
                found.last_seen_at = now
                found.expires_at = min(now + self._session_policy.idle, limit)
            return SignedIn(_person(user), found.csrf_token)

    def sign_out(self, token: str | None) -> None:
        if not token:
            return
        with transaction(self._sessions) as session:
            found = session.get(WebSession, hash_token(token))
            if found is None:
                return
            user = session.get(User, found.user_id)
            session.delete(found)
            if user is not None:
                self._audit(session, user_actor(user.username), "user.sign_out", user.username)

    # Helpers.

    def _failed(self, session: Session, keys: tuple[str, str], name: str) -> SignInResult:
        now = self._clock()
        self._forget_stale(session, now)
        locks = []
        for key in keys:
            count = self._count_failure(session, key, now)
            locks.append(count.locked_until)
            if count.locked_until is not None and key == keys[0]:
                self._audit(session, "ringback", "user.sign_in_locked", name,
                            {"failures": count.failures})
        lock = max((lock for lock in locks if lock), default=None)
        return SignInResult(locked_until=lock)

    def _forget_stale(self, session: Session, now: datetime) -> None:
        """Sign-in failures whose window and lock have run out, and ended sessions: the tables
        stay small without a periodic job."""
        session.execute(delete(SignInFailure).where(
            SignInFailure.first_at <= now - self._throttle.window,
            (SignInFailure.locked_until.is_(None)) | (SignInFailure.locked_until <= now)))
        session.execute(delete(WebSession).where(WebSession.expires_at <= now))

    def _count(self, session: Session, key: str) -> Count | None:
        row = session.get(SignInFailure, key)
        return None if row is None else Count(row.failures, row.first_at, row.locked_until)

    def _count_failure(self, session: Session, key: str, now: datetime) -> Count:
        """One more failure for `key`, counted under a row lock (PostgreSQL) so that parallel
        attempts all count."""
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        session.execute(insert(SignInFailure).values(key=key, failures=0, first_at=now)
                        .on_conflict_do_nothing(index_elements=["key"]))
        row = session.get(SignInFailure, key, with_for_update=True, populate_existing=True)
        assert row is not None
        before = Count(row.failures, row.first_at, row.locked_until) if row.failures else None
        count = after_failure(before, now, self._throttle.limit(key), self._throttle)
        row.failures, row.first_at, row.locked_until = (count.failures, count.first_at,
                                                        count.locked_until)
        return count

    def _find(self, session: Session, username: str) -> User | None:
        return session.scalar(select(User).where(User.username == normalize_username(username)))

    def _existing(self, session: Session, username: str) -> User:
        user = self._find(session, username)
        if user is None:
            raise UnknownUser(f"no user is named {normalize_username(username)!r}: see "
                              "`ringback user list`")
        return user

    def _end_sessions(self, session: Session, user: User) -> None:
        session.execute(delete(WebSession).where(WebSession.user_id == user.id))

    def _audit(self, session: Session, actor: str, action: str, username: str,
               details: dict[str, Any] | None = None) -> None:
        session.add(AuditEntry(at=self._clock(), actor=actor, action=action,
                               target=f"user:{username}", details=details))

    def session_count(self, username: str) -> int:
        """How many live-or-stale sessions the user has (for tests and the CLI)."""
        with self._sessions() as session:
            user = self._existing(session, username)
            return session.scalar(select(func.count()).select_from(WebSession)
                                  .where(WebSession.user_id == user.id)) or 0
