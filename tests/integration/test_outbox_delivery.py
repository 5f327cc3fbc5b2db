"""The outbox against a real HTTP CRM stand-in that checks signatures with `standardwebhooks`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from campaigns.models import OutboxEvent, OutboxStatus
from campaigns.outbox import OutboxDelivery, OutboxSummary, enqueue, pending_summary
from infra.settings import DEV_OUTBOUND_SECRET
from lab.crm_receiver import CrmReceiver

SECRET = DEV_OUTBOUND_SECRET  # what the shared `crm` fixture (tests/conftest.py) verifies
MAX_BACKOFF_S = 8.0


class Clock:
    """Wall-clock time plus an offset we move: the CRM checks timestamps against real time."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def delivery(
    sessions: sessionmaker[Session], crm: CrmReceiver, http: httpx.AsyncClient, clock: Clock
) -> OutboxDelivery:
    return OutboxDelivery(sessions, crm.url, SECRET, http, max_backoff_s=MAX_BACKOFF_S,
                          clock=clock)


def add(sessions: sessionmaker[Session], client_id: str, n: int, clock: Clock) -> str:
    with sessions.begin() as session:
        event = enqueue(session, "survey.completed", client_id,
                        {"client_id": client_id, "n": n, "answered_at": clock()},
                        occurred_at=clock())
        return event.event_id


def rows(sessions: sessionmaker[Session]) -> dict[str, OutboxEvent]:
    with sessions() as session:
        return {row.event_id: row for row in session.scalars(select(OutboxEvent))}


def sent(crm: CrmReceiver) -> list[tuple[str, int]]:
    return [(e.payload["data"]["client_id"], e.payload["data"]["n"]) for e in crm.events]


async def test_events_are_delivered_signed_in_order(
    sessions: sessionmaker[Session], crm: CrmReceiver, delivery: OutboxDelivery, clock: Clock
) -> None:
    ids = [add(sessions, "c1", n, clock) for n in range(3)]
    assert await delivery.deliver_due(10) == 3
    assert [event.id for event in crm.events] == ids
    assert all(event.verified for event in crm.events)
    first = crm.wait_for("survey.completed")
    assert first.payload["id"] == ids[0]
    assert set(first.payload) == {"id", "type", "occurred_at", "data"}
    assert datetime.fromisoformat(first.payload["data"]["answered_at"]).tzinfo is not None
    for row in rows(sessions).values():
        assert (row.status, row.attempts, row.last_error) == (OutboxStatus.DELIVERED, 1, None)
        assert row.delivered_at is not None
    assert await delivery.deliver_due(10) == 0  # nothing twice
    assert len(crm.requests) == 3


async def test_a_crm_that_is_down_keeps_events_pending_until_it_is_back(
    sessions: sessionmaker[Session], crm: CrmReceiver, delivery: OutboxDelivery, clock: Clock
) -> None:
    crm.stop()
    for n in range(3):
        add(sessions, "c1", n, clock)
    add(sessions, "c2", 0, clock)
    assert await delivery.deliver_due(10) == 0
    after_failure = rows(sessions)
    heads = [row for row in after_failure.values() if row.attempts == 1]
    assert {(row.ordering_key, row.payload["data"]["n"]) for row in heads} == {("c1", 0), ("c2", 0)}
    for row in heads:
        assert row.status == OutboxStatus.PENDING
        assert row.last_error is not None and row.last_error.startswith("ConnectError")
        assert "127.0.0.1" not in row.last_error
        assert row.next_attempt_at > clock()
    summary = _summary(sessions)
    assert (summary.pending, summary.failing) == (4, 2)
    assert summary.last_error is not None

    assert await delivery.deliver_due(10) == 0  # not due yet: nothing tried
    assert {row.attempts for row in rows(sessions).values()} == {0, 1}

    crm.start()  # the same port
    clock.advance(MAX_BACKOFF_S)
    assert await delivery.deliver_due(10) == 4
    by_client = {key: [n for c, n in sent(crm) if c == key] for key in ("c1", "c2")}
    assert by_client == {"c1": [0, 1, 2], "c2": [0]}
    assert _summary(sessions).pending == 0


async def test_a_failing_client_holds_back_only_its_own_events(
    sessions: sessionmaker[Session], crm: CrmReceiver, delivery: OutboxDelivery, clock: Clock
) -> None:
    crm.fail(lambda payload: payload["data"]["client_id"] == "c1")
    for n in range(2):
        add(sessions, "c1", n, clock)
        add(sessions, "c2", n, clock)
    assert await delivery.deliver_due(10) == 2
    assert sent(crm) == [("c2", 0), ("c2", 1)]
    tried = [(r.payload["data"]["client_id"], r.payload["data"]["n"]) for r in crm.requests
             if r.status == 503]
    assert tried == [("c1", 0)]  # c1's second event waits behind its first
    [failing] = [row for row in rows(sessions).values() if row.attempts == 1
                 and row.ordering_key == "c1"]
    assert failing.last_error == "HTTP 503: CRM under maintenance, try later"

    crm.fail(None)
    clock.advance(MAX_BACKOFF_S)
    assert await delivery.deliver_due(10) == 2
    assert sent(crm)[2:] == [("c1", 0), ("c1", 1)]


async def test_backoff_grows_from_one_second_and_is_capped(
    sessions: sessionmaker[Session], crm: CrmReceiver, delivery: OutboxDelivery, clock: Clock
) -> None:
    crm.fail()
    event_id = add(sessions, "c1", 0, clock)
    delays = []
    for _ in range(6):
        assert await delivery.deliver_due(1) == 0
        row = rows(sessions)[event_id]
        delays.append((row.next_attempt_at - clock()).total_seconds())
        clock.advance(MAX_BACKOFF_S + 1)
    ceilings = [1, 2, 4, 8, 8, 8]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 - 0.5 <= delay <= ceiling
    assert rows(sessions)[event_id].attempts == 6


async def test_without_a_crm_url_events_stay_pending(
    sessions: sessionmaker[Session], http: httpx.AsyncClient, clock: Clock
) -> None:
    add(sessions, "c1", 0, clock)
    delivery = OutboxDelivery(sessions, None, SECRET, http, max_backoff_s=MAX_BACKOFF_S,
                              clock=clock)
    assert await delivery.deliver_due(10) == 0
    [row] = rows(sessions).values()
    assert (row.status, row.attempts) == (OutboxStatus.PENDING, 0)


def _summary(sessions: sessionmaker[Session]) -> OutboxSummary:
    with sessions() as session:
        return pending_summary(session)
