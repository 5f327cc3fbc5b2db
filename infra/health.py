"""Health checks that prove the work can be done, and a log that does not repeat itself.

`DatabaseProbe` writes: it upserts this instance's row in `health_probes` and commits, so a
database that answers reads but refuses writes (a read-only file, a full disk, a standby)
fails the check. `HealthLog` logs a check once when it starts failing and once when it
recovers, not on every probe of a load balancer.
"""

import asyncio
import logging

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.orm import Session, sessionmaker

from infra.db import BlockingRunner, transaction, utcnow
from infra.health_table import HealthProbe

log = logging.getLogger(__name__)

DEFAULT_INSTANCE = "ringback"
PROBE_TIMEOUT_S = 3.0


def touch_probe_row(sessions: sessionmaker[Session], instance: str) -> None:
    """Insert or update `instance`'s row with the current time, and commit (blocking)."""
    with transaction(sessions) as session:
        session.execute(_upsert(session, instance))


def _upsert(session: Session, instance: str) -> PostgresInsert | SqliteInsert:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    insert = dialect.insert(HealthProbe).values(instance=instance, checked_at=utcnow())
    upsert: PostgresInsert | SqliteInsert = insert.on_conflict_do_update(
        index_elements=[HealthProbe.instance], set_={"checked_at": insert.excluded.checked_at}
    )
    return upsert


class DatabaseProbe:
    """Whether the database takes a write within `timeout_s`.

    The write runs through `run` (off the event loop; on SQLite, queued on its one thread).
    One write at a time: while one is still under way (a hung server, a long write ahead of
    it on the SQLite thread), later checks wait for that same write, up to their own timeout,
    instead of queueing more work behind it.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        instance: str,
        run: BlockingRunner,
        *,
        timeout_s: float = PROBE_TIMEOUT_S,
    ) -> None:
        self._sessions = sessions
        self._instance = instance
        self._run = run
        self._timeout_s = timeout_s
        self._write: asyncio.Future[str | None] | None = None

    async def failure(self) -> str | None:
        """None when the write was committed in time; otherwise why not, in one line."""
        if self._write is None or self._write.done():
            self._write = asyncio.ensure_future(self._attempt())
        try:
            return await asyncio.wait_for(asyncio.shield(self._write), self._timeout_s)
        except TimeoutError:
            return f"no write committed within {self._timeout_s:g} s"

    async def _attempt(self) -> str | None:
        try:
            await self._run(touch_probe_row, self._sessions, self._instance)
        except Exception as exc:
            return describe(exc)
        return None


def describe(exc: BaseException) -> str:
    """The first line of the driver's message (SQLAlchemy's own adds the SQL and a link)."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines() or [""]
    return f"{type(cause).__name__}: {lines[0]}"


class HealthLog:
    """Logs each check's changes of state: a warning when it starts failing (with the
    reason), an info line when it is ok again. Checks start out counted as ok."""

    def __init__(self) -> None:
        self._failing: set[str] = set()

    def record(self, name: str, failure: str | None) -> None:
        if failure is None:
            if name in self._failing:
                self._failing.discard(name)
                log.info("health check %s: ok again", name)
        elif name not in self._failing:
            self._failing.add(name)
            log.warning("health check %s failing: %s", name, failure)
