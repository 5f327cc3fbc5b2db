"""The database plumbing every package shares: the declarative base, engines, sessions.

Each package owns its tables (campaigns/models.py, api/tokens.py); they all hang off `Base`, so
Alembic sees one metadata. Engines are built from settings by the composition root, never at
import time.
"""

import asyncio
import contextvars
import functools
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLITE_BUSY_TIMEOUT_MS = 10_000
POSTGRES_CONNECT_TIMEOUT_S = 5
# SQLite errors after which a connection is thrown away instead of going back to the pool
# (primary result codes; the extended ones, e.g. SQLITE_IOERR_WRITE, carry them in the low byte):
# - READONLY: a connection opened while the file was unwritable is read-only for good;
# - IOERR: the file, its WAL or its shared memory failed under it, its view may be stale;
# - CANTOPEN: the WAL or a journal could not be opened.
# Not SQLITE_BUSY ("database is locked" beyond the busy timeout): that is contention, the
# connection is sound, and a new one would wait for the same lock. Not SQLITE_FULL either.
_SQLITE_SPOILED = frozenset(
    {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN}
)


# ... and those that say the database is busy or full now, not that the request is wrong.
_SQLITE_UNAVAILABLE = _SQLITE_SPOILED | {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED,
                                         sqlite3.SQLITE_FULL}


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached or used right now (retry later), as
    opposed to a fault of the code or the schema: a connection found broken, a PostgreSQL
    connection that could not be made or was lost, an SQLite file busy, unwritable or gone."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    code = getattr(exc.orig, "sqlite_errorcode", None)
    if code is not None:
        return bool(code & 0xFF in _SQLITE_UNAVAILABLE)
    return isinstance(exc, OperationalError)  # psycopg: connection-level failures


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _discard_spoiled_sqlite_connections(context: ExceptionContext) -> None:
    """Treat the errors in `_SQLITE_SPOILED` as disconnects: SQLAlchemy then closes the
    connection and, as for any disconnect, recycles the rest of the pool on next checkout (they
    may have been opened read-only while the file was unwritable)."""
    code = getattr(context.original_exception, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _SQLITE_SPOILED:
        context.is_disconnect = True


def make_engine(url: str) -> Engine:
    """The engine for `url`. A connection that failed in a way it cannot recover from is thrown
    away, not reused: on SQLite see `_SQLITE_SPOILED`; on PostgreSQL the dialect already
    invalidates connections psycopg found broken (server gone, admin shutdown), and
    `pool_pre_ping` tests each pooled connection before use. A new PostgreSQL connection waits
    at most `POSTGRES_CONNECT_TIMEOUT_S` for a hung server (unless the URL sets
    `connect_timeout`)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False},
                               hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "handle_error", _discard_spoiled_sqlite_connections)
        return engine
    connect_args = (
        {} if "connect_timeout" in make_url(url).query
        else {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S}
    )
    return create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=10, connect_args=connect_args,
        hide_parameters=True,
    )


def upsert_insert(session: Session, table: type[Base]) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into `table` for the session's database that can take `ON CONFLICT` clauses
    (PostgreSQL and SQLite both have them, each in its own dialect)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: committed when the block ends, rolled back whole on any error."""
    with sessions() as session, session.begin():
        yield session


P = ParamSpec("P")
T = TypeVar("T")


class BlockingRunner(Protocol):
    """Runs blocking (database) work off the event loop: `asyncio.to_thread` has this shape."""

    def __call__(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Awaitable[T]:
        ...


PolicyT = TypeVar("PolicyT")


class DatabaseTick(Generic[PolicyT]):
    """A periodic job done in one blocking call off the event loop (`tick` runs `run` through
    `run_blocking`), with the sessions, its policy and a clock; a subclass says what `run` does."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        policy: PolicyT,
        *,
        clock: Callable[[], datetime] = utcnow,
        run_blocking: BlockingRunner = asyncio.to_thread,
    ) -> None:
        self._sessions = sessions
        self._policy = policy
        self._clock = clock
        self._run_blocking = run_blocking

    async def tick(self) -> None:
        await self._run_blocking(self.run)

    def run(self) -> object:
        raise NotImplementedError


class DatabaseThreads:
    """Where the service's blocking database work runs. SQLite has one writer at a time, so its
    work queues on one thread instead of in SQLite's busy handler (which sleeps in growing steps);
    other databases use the loop's default pool.

    Long reads that write nothing (counts over a whole table for the gauges) go to `read`: on
    SQLite a second thread, whose connection reads a snapshot beside the writer (WAL: a reader
    neither waits for the writer nor holds it up), so they never queue in front of the writes."""

    def __init__(self, url: str) -> None:
        sqlite = url.startswith("sqlite")
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite") if sqlite else None
        self._reader = (
            ThreadPoolExecutor(1, thread_name_prefix="sqlite-reader") if sqlite else None
        )

    async def run(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await _in(self._pool, func, *args, **kwargs)

    async def read(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`func` must only read: on SQLite it runs beside the writer thread, not on it."""
        return await _in(self._reader, func, *args, **kwargs)

    def close(self) -> None:
        for pool in (self._pool, self._reader):
            if pool is not None:
                pool.shutdown(wait=True)


async def _in(
    pool: ThreadPoolExecutor | None, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    call = functools.partial(func, *args, **kwargs)
    context = contextvars.copy_context()  # the request id reaches the thread's log lines
    return await asyncio.get_running_loop().run_in_executor(pool, context.run, call)
