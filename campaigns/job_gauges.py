"""The jobs-by-status gauge (`ringback_jobs{status}`), at a cost the backlog cannot push onto
the webhook or the dispatcher.

Counting jobs by status reads the whole `(status, not_before)` index: about 43 ms for a million
pending jobs on SQLite, and it grows with the backlog (counting only the live statuses would not
help: the backlog *is* the pending jobs). On SQLite it used to run on the one writer thread
every 5 s, and every webhook queued behind it. Now:

- it runs through a reader (`DatabaseThreads.read`): on SQLite a thread of its own beside the
  writer (WAL: neither waits for the other), on PostgreSQL the loop's pool as before;
- it runs at most as often as keeps its cost within `budget` of one core: a count that took
  0.5 s waits 50 s at 1% before the next one, whatever the scheduler's interval (until then the
  gauge keeps its last value).
"""

import time
from collections.abc import Callable

from prometheus_client import Gauge
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from campaigns.models import Job, JobStatus
from infra.db import BlockingRunner, transaction

DEFAULT_BUDGET = 0.01  # of one core

_BY_STATUS = select(Job.status, func.count()).group_by(Job.status)


class JobGauges:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        gauge: Gauge,
        read: BlockingRunner,
        *,
        budget: float = DEFAULT_BUDGET,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`gauge`: labelled by status; `read`: where the count runs (off the writer)."""
        if not 0 < budget <= 1:
            raise ValueError(f"budget must be in (0, 1], not {budget}")
        self._sessions = sessions
        self._gauge = gauge
        self._read = read
        self._budget = budget
        self._monotonic = monotonic
        self._next_at: float | None = None

    async def refresh(self) -> bool:
        """Count the jobs by status and set the gauge, unless the last count's cost says to wait;
        whether it counted."""
        started = self._monotonic()
        if self._next_at is not None and started < self._next_at:
            return False
        counts, cost = await self._read(self._count)
        for status in JobStatus:
            self._gauge.labels(status.value).set(counts.get(status.value, 0))
        self._next_at = started + cost / self._budget
        return True

    def _count(self) -> tuple[dict[str, int], float]:
        """The counts by status, and the seconds the count took."""
        started = self._monotonic()
        with transaction(self._sessions) as session:
            rows = session.execute(_BY_STATUS).all()
        return {str(status): count for status, count in rows}, self._monotonic() - started
