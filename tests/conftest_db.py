"""Database fixtures, on SQLite and on PostgreSQL alike.

`database_url` runs a test twice: on a SQLite file and on a fresh PostgreSQL database. An
unreachable PostgreSQL fails the test with instructions, never skips it: CI must provide it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from infra.db import make_engine, make_sessions
from infra.migrate import upgrade
from lab.databases import PostgresUnavailable, postgres_admin_url, temporary_postgres_database


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of a new, empty database on the shared PostgreSQL server, dropped afterwards."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(temporary_postgres_database(postgres_admin_url()))
        except PostgresUnavailable as exc:
            # pytest.fail, without the chained traceback of the connection error.
            raise pytest.fail.Exception(str(exc), pytrace=False) from None
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database that exists for this test only."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'ringback.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on a database migrated to the newest revision."""
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        yield make_sessions(engine)
    finally:
        engine.dispose()
