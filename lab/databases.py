"""Throw-away databases for tests: a SQLite file, or a fresh database in a PostgreSQL server.

The PostgreSQL server is the one `scripts/setup.sh` starts (or CI provides):
`RINGBACK_TEST_POSTGRES_URL` names a role allowed to create databases, by default the local
`postgres` user over the unix socket.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

POSTGRES_URL_ENV = "RINGBACK_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@/postgres?host=/var/run/postgresql"
CONNECT_TIMEOUT_S = 5


class PostgresUnavailable(Exception):
    pass


def postgres_admin_url() -> str:
    return os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL


@contextmanager
def temporary_postgres_database(admin_url: str) -> Iterator[str]:
    """Create `rb_test_<random>` through `admin_url`, yield its URL, drop it afterwards
    (closing whatever connections the test left open)."""
    admin = create_engine(
        admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
    )
    name = f"rb_test_{secrets.token_hex(6)}"
    try:
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        except OperationalError as exc:
            shown = make_url(admin_url).render_as_string(hide_password=True)
            raise PostgresUnavailable(
                f"PostgreSQL is not reachable at {shown} ({exc.orig}). Run scripts/setup.sh "
                f"(it installs and starts it) or point {POSTGRES_URL_ENV} at a server where "
                f"this user may create databases."
            ) from exc
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
