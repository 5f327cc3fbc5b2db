"""An engine from `make_engine` recovers by itself once its database takes writes again.

SQLite: the database file and its WAL are made immutable (`chattr +i`) for a while. The shared
memory file (`-shm`) is left alone: SQLite maps it, and the kernel answers a write to a mapping
of an immutable file with SIGBUS, which kills the process; nothing in the process can survive
that, so it is not a fault to recover from.

PostgreSQL: a private server is stopped and started again, its backend is terminated under an
open transaction, and its postmaster is frozen (SIGSTOP) like a hung server.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from infra.db import POSTGRES_CONNECT_TIMEOUT_S, make_engine
from lab.postgres import PrivatePostgres
from tests.conftest_postgres import ImmutableFiles

UNWRITABLE = "disk I/O error|readonly database"
ROUNDS = 3
RETRIES = 3
READERS = 3  # connections in use at once during the outage, as concurrent requests would
WRITES_AFTER = 10  # more than the connections in the pool: each one is used again


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'ringback.db'}")
    _create_table(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def postgres_engine(private_postgres: PrivatePostgres) -> Iterator[Engine]:
    engine = make_engine(private_postgres.url)
    _create_table(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def _create_table(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE writes (n INTEGER NOT NULL)"))


def _write(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO writes (n) VALUES (1)"))


def _count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM writes")).scalar_one())


def _write_within_retries(engine: Engine) -> None:
    """One write, retried: the first attempts may meet a connection left from the outage."""
    errors: list[OperationalError] = []
    for _ in range(RETRIES):
        try:
            _write(engine)
            return
        except OperationalError as exc:
            errors.append(exc)
    pytest.fail(f"no write succeeded in {RETRIES} attempts: {[str(e.orig) for e in errors]}")


def _read_on_several_connections(engine: Engine) -> None:
    with ExitStack() as stack:
        connections = [stack.enter_context(engine.connect()) for _ in range(READERS)]
        for connection in connections:
            assert connection.execute(text("SELECT count(*) FROM writes")).scalar_one() > 0


def _connect(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _database_files(engine: Engine) -> list[Path]:
    database = Path(str(engine.url.database))
    files = [database, database.with_name(database.name + "-wal")]
    assert all(path.exists() for path in files), files
    return files


def _writes_keep_succeeding(engine: Engine) -> None:
    before = _count(engine)
    for _ in range(WRITES_AFTER):
        _write(engine)
    assert _count(engine) == before + WRITES_AFTER


def test_sqlite_engine_writes_again_once_the_file_is_writable(
    sqlite_engine: Engine, immutable_files: ImmutableFiles
) -> None:
    for _ in range(ROUNDS):
        _write(sqlite_engine)
        with immutable_files.held(_database_files(sqlite_engine)):
            with pytest.raises(OperationalError, match=UNWRITABLE):
                _write(sqlite_engine)
            # Reads still work, on connections opened now: SQLite opens them read-only.
            _read_on_several_connections(sqlite_engine)
            with pytest.raises(OperationalError, match=UNWRITABLE):
                _write(sqlite_engine)
        _write_within_retries(sqlite_engine)
        _writes_keep_succeeding(sqlite_engine)


def test_postgres_engine_writes_again_after_a_restart(
    postgres_engine: Engine, private_postgres: PrivatePostgres
) -> None:
    for _ in range(ROUNDS):
        _write(postgres_engine)
        private_postgres.stop()
        with pytest.raises(OperationalError, match="Connection refused"):
            _write(postgres_engine)
        private_postgres.start()
        _write_within_retries(postgres_engine)
        _writes_keep_succeeding(postgres_engine)


def test_postgres_connection_ended_by_the_server_is_thrown_away(postgres_engine: Engine) -> None:
    with postgres_engine.connect() as connection, pytest.raises(OperationalError) as raised:
        connection.execute(text("INSERT INTO writes (n) VALUES (1)"))
        with postgres_engine.begin() as other:  # a second connection of the same pool
            other.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ))
        connection.execute(text("INSERT INTO writes (n) VALUES (1)"))
    assert "administrator command" in str(raised.value.orig)
    assert raised.value.connection_invalidated
    _write(postgres_engine)  # at once: no retry needed
    _writes_keep_succeeding(postgres_engine)


def test_postgres_hung_server_fails_the_connect_instead_of_blocking(
    private_postgres: PrivatePostgres,
) -> None:
    engine = make_engine(private_postgres.url)  # no pooled connection: the next one is new
    try:
        with ThreadPoolExecutor(1) as pool, private_postgres.frozen():
            attempt = pool.submit(_connect, engine)
            with pytest.raises(OperationalError, match="timeout"):
                attempt.result(timeout=POSTGRES_CONNECT_TIMEOUT_S + 10)
    finally:
        engine.dispose()
