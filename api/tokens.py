"""API tokens: who may call the REST API, and in which role.

A token is `rb_` + 32 random bytes (URL-safe base64), shown once when created. Only its SHA-256
is stored, so the database never holds a usable secret. A token is found by the hash of what the
client sent: an attacker controls the input, not the hash, so the lookup leaks nothing useful by
its timing, and no secret is ever compared byte by byte.
"""

import hashlib
import secrets
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from infra.db import Base, UtcDateTime, utcnow

TOKEN_PREFIX = "rb_"
TOKEN_BYTES = 32


class Role(StrEnum):
    ADMIN = "admin"
    MARKETING = "marketing"
    SUPPORT = "support"


class ApiToken(Base):
    __tablename__ = "api_tokens"
    __table_args__ = (
        CheckConstraint("role IN ('admin', 'marketing', 'support')", name="role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the token
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, role: Role, name: str) -> str:
    """Store a new token for `role` and return it in plain text: the only time it is seen."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    session.add(ApiToken(name=name, role=Role(role), token_hash=hash_token(token)))
    session.flush()
    return token


def authenticate(session: Session, token: str) -> ApiToken | None:
    """The live token `token` stands for, or None (unknown, malformed or revoked)."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    found = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if found is None or found.revoked_at is not None:
        return None
    return found


def list_tokens(session: Session) -> list[ApiToken]:
    """Every token, live and revoked, oldest first."""
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))


def revoke_token(session: Session, token_id: int) -> ApiToken | None:
    """Revoke a token by id, effective at once; revoking it again changes nothing. None if
    there is no such token."""
    found = session.get(ApiToken, token_id)
    if found is not None and found.revoked_at is None:
        found.revoked_at = utcnow()
        session.flush()
    return found
