"""The jobs-by-status gauge, on SQLite and PostgreSQL: every status counted, the count read
beside the writer (a write transaction in progress does not hold it up), and no count more often
than its cost budget allows."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from campaigns.job_gauges import JobGauges
from campaigns.models import Job, JobStatus
from infra.db import DatabaseThreads, transaction, utcnow

GUARD_S = 30.0  # a hang guard, not a timing check


def job_row(status: JobStatus) -> dict[str, Any]:
    now = utcnow()
    n = uuid.uuid4().hex
    return {
        "id": str(uuid.uuid4()), "kind": "survey", "status": status,
        "source_event_id": f"evt-{n}", "client_id": f"c-{n}", "phone": f"+7999{n[:7]}",
        "timezone": "Europe/Moscow", "locale": "ru", "context": {}, "due_at": now,
        "not_before": now + timedelta(days=1), "not_after": now + timedelta(days=2),
        "attempts": 0, "max_attempts": 3, "created_at": now, "updated_at": now,
    }


def add_jobs(sessions: sessionmaker[Session], *statuses: JobStatus) -> None:
    with transaction(sessions) as session:
        session.execute(insert(Job), [job_row(status) for status in statuses])


@pytest.fixture
def gauge() -> Gauge:
    return Gauge("jobs", "Jobs, by status", ["status"], registry=CollectorRegistry())


def values(gauge: Gauge) -> dict[str, float]:
    (family,) = gauge.collect()
    return {sample.labels["status"]: sample.value for sample in family.samples}


@pytest.fixture
def database(database_url: str) -> Iterator[DatabaseThreads]:
    threads = DatabaseThreads(database_url)
    try:
        yield threads
    finally:
        threads.close()


def test_every_status_is_counted(
    sessions: sessionmaker[Session], database: DatabaseThreads, gauge: Gauge
) -> None:
    add_jobs(sessions, JobStatus.PENDING, JobStatus.PENDING, JobStatus.PENDING,
             JobStatus.COMPLETED, JobStatus.COMPLETED, JobStatus.SKIPPED, JobStatus.CANCELLED)
    gauges = JobGauges(sessions, gauge, database.read)

    assert asyncio.run(gauges.refresh())

    assert values(gauge) == {"pending": 3, "dialing": 0, "completed": 2, "unanswered": 0,
                             "skipped": 1, "cancelled": 1}


def test_the_count_does_not_wait_for_a_write_in_progress(
    sessions: sessionmaker[Session], database: DatabaseThreads, gauge: Gauge
) -> None:
    """On SQLite the writer thread is busy with an open write transaction; the count still
    answers (it runs beside it) and sees only what was committed."""
    add_jobs(sessions, JobStatus.PENDING)
    gauges = JobGauges(sessions, gauge, database.read)
    writing, release = threading.Event(), threading.Event()

    def hold_a_write() -> None:
        with transaction(sessions) as session:
            session.execute(insert(Job), [job_row(JobStatus.PENDING)])
            writing.set()
            release.wait(GUARD_S)

    async def scenario() -> bool:
        writer = asyncio.ensure_future(database.run(hold_a_write))
        try:
            assert await asyncio.to_thread(writing.wait, GUARD_S)
            return await asyncio.wait_for(gauges.refresh(), GUARD_S)
        finally:
            release.set()
            await writer

    assert asyncio.run(scenario())
    assert values(gauge)["pending"] == 1


class Ticks:
    """A monotonic clock that reads out the given times, one per call."""

    def __init__(self, *times: float) -> None:
        self._times = iter(times)

    def __call__(self) -> float:
        return next(self._times)


def test_counts_no_more_often_than_its_budget(
    sessions: sessionmaker[Session], database: DatabaseThreads, gauge: Gauge
) -> None:
    # Refresh at 0 (the count takes 0.5 s: at 1% the next may run at 50), then at 10 (too
    # soon: the gauge keeps its value), then at 60.
    clock = Ticks(0.0, 0.0, 0.5, 10.0, 60.0, 60.0, 60.1)
    gauges = JobGauges(sessions, gauge, database.read, budget=0.01, monotonic=clock)
    add_jobs(sessions, JobStatus.PENDING)

    async def scenario() -> list[tuple[bool, float]]:
        seen = []
        for _ in range(3):
            counted = await gauges.refresh()
            seen.append((counted, values(gauge)["pending"]))
            add_jobs(sessions, JobStatus.PENDING)
        return seen

    assert asyncio.run(scenario()) == [(True, 1), (False, 1), (True, 3)]


def test_a_budget_outside_one_core_is_refused(gauge: Gauge) -> None:
    for budget in (0.0, 1.5):
        with pytest.raises(ValueError, match="budget"):
            JobGauges(sessionmaker(), gauge, asyncio.to_thread, budget=budget)
