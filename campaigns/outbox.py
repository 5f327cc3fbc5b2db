"""The outbox to the CRM: events written in the same transaction as the change they report,
then POSTed (signed with Standard Webhooks) until the CRM acknowledges them.

Order holds per `ordering_key` (a client): an event goes out only after every earlier event
with the same key was delivered, so one client's failing event holds back that client's later
events and nobody else's. Delivery is at least once; the CRM deduplicates by `webhook-id`.

An acknowledgement that cannot be stored (the database is away) is kept in memory and stored
before anything else is claimed, so a delivered event is not POSTed again for that. The one
window left: the process dies between the CRM's 2xx and storing it; the event is then POSTed
once more when its claim runs out (CLAIM_S).

Events for the supervisor (overdue callback tasks, campaigns/escalation.py) ride the same
outbox to another URL: their ordering key starts with `SUPERVISOR_PREFIX`. The CRM's delivery
never claims them, and a delivery built with `supervisor=True` claims nothing else.
"""

import asyncio
import json
import logging
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from pydantic_core import to_jsonable_python
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks import Webhook

from campaigns.models import OutboxEvent, OutboxStatus
from campaigns.signing import signature_headers
from infra.db import BlockingRunner, transaction, utcnow
from infra.logs import mask_phone_numbers
from infra.retry import TRANSIENT

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 10.0
# Long enough for one POST (timeout included): no other instance picks the event meanwhile.
CLAIM_S = 60.0
ERROR_DETAIL_CHARS = 200
SUPERVISOR_PREFIX = "supervisor:"


def enqueue(
    session: Session,
    type: str,
    ordering_key: str,
    payload: Mapping[str, Any],
    *,
    occurred_at: datetime | None = None,
) -> OutboxEvent:
    """Add one event for the CRM to `session`; `payload` is the event's `data` (datetimes and
    enums are turned into JSON), wrapped in the envelope `{"id", "type", "occurred_at", "data"}`.
    """
    event_id = "evt_" + uuid.uuid4().hex
    at = occurred_at or utcnow()
    event = OutboxEvent(
        event_id=event_id,
        type=type,
        ordering_key=ordering_key,
        payload={
            "id": event_id,
            "type": type,
            "occurred_at": at.isoformat(),
            "data": to_jsonable_python(dict(payload)),
        },
        status=OutboxStatus.PENDING,
        attempts=0,
        next_attempt_at=at,
    )
    session.add(event)
    return event


@dataclass(frozen=True)
class OutboxSummary:
    pending: int
    failing: int  # pending events that failed at least once
    oldest_pending_at: datetime | None
    last_error: str | None  # of the oldest failing event: the one holding its client back


def pending_summary(session: Session) -> OutboxSummary:
    pending = OutboxEvent.status == OutboxStatus.PENDING
    count, oldest = session.execute(
        select(func.count(), func.min(OutboxEvent.created_at)).where(pending)
    ).one()
    failing = session.scalar(select(func.count()).where(pending, OutboxEvent.attempts > 0))
    last_error = session.scalar(
        select(OutboxEvent.last_error)
        .where(pending, OutboxEvent.last_error.is_not(None))
        .order_by(OutboxEvent.id)
        .limit(1)
    )
    return OutboxSummary(count, failing or 0, oldest, last_error)


@dataclass(frozen=True)
class _Claimed:
    id: int
    event_id: str
    attempts: int
    payload: dict[str, Any]


class OutboxDelivery:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        url: str | None,
        secret: str,
        http: httpx.AsyncClient,
        *,
        max_backoff_s: float,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
        run_blocking: BlockingRunner = asyncio.to_thread,
        supervisor: bool = False,
    ) -> None:
        """`supervisor`: deliver the supervisor's events (to `url`) instead of the CRM's."""
        self._sessions = sessions
        self._url = url
        self._webhook = Webhook(secret)
        self._http = http
        self._max_backoff_s = max_backoff_s
        self._clock = clock
        self._rng = rng or random.Random()
        self._run_blocking = run_blocking
        self._warned_no_url = False
        self._unstored_acks: dict[int, datetime] = {}  # row id -> when the CRM acknowledged
        for_supervisor = OutboxEvent.ordering_key.startswith(SUPERVISOR_PREFIX)
        self._mine = for_supervisor if supervisor else ~for_supervisor
        self._name = "supervisor" if supervisor else "CRM"

    async def deliver_due(self, limit: int = 50) -> int:
        """Send due events (at most `limit` attempts); return how many the CRM acknowledged."""
        if self._url is None:
            if not self._warned_no_url:
                log.warning("no %s URL configured: its events stay in the outbox", self._name)
                self._warned_no_url = True
            return 0
        if self._unstored_acks:
            await self._run_blocking(self._store_acks)
        delivered = attempted = 0
        while attempted < limit:
            batch = await self._run_blocking(self._claim, limit - attempted)
            if not batch:
                break
            attempted += len(batch)
            results = await asyncio.gather(*(self._send(self._url, event) for event in batch))
            delivered += sum(results)
        return delivered

    def _claim(self, limit: int) -> list[_Claimed]:
        """The due head (oldest pending event) of each ordering key, pushed out of everyone
        else's reach for CLAIM_S; a compare-and-set on next_attempt_at keeps two instances
        from claiming the same event."""
        now = self._clock()
        heads = (
            select(func.min(OutboxEvent.id))
            .where(OutboxEvent.status == OutboxStatus.PENDING, self._mine)
            .group_by(OutboxEvent.ordering_key)
        )
        claimed = []
        with transaction(self._sessions) as session:
            due = session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.id.in_(heads), OutboxEvent.next_attempt_at <= now)
                .order_by(OutboxEvent.id)
                .limit(limit)
            ).all()
            for event in due:
                won = session.execute(
                    update(OutboxEvent)
                    .where(
                        OutboxEvent.id == event.id,
                        OutboxEvent.status == OutboxStatus.PENDING,
                        OutboxEvent.next_attempt_at == event.next_attempt_at,
                    )
                    .values(next_attempt_at=now + timedelta(seconds=CLAIM_S))
                    .execution_options(synchronize_session=False)
                )
                if won.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(_Claimed(event.id, event.event_id, event.attempts,
                                            event.payload))
        return claimed

    async def _send(self, url: str, event: _Claimed) -> bool:
        body = json.dumps(event.payload, ensure_ascii=False, separators=(",", ":"))
        headers = {
            "content-type": "application/json",
            **signature_headers(self._webhook, event.event_id, self._clock(), body),
        }
        error: str | None
        try:
            response = await self._http.post(
                url, content=body.encode(), headers=headers, timeout=REQUEST_TIMEOUT_S
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            error = f"{type(exc).__name__}: {exc}"
        else:
            error = None if response.is_success else f"HTTP {response.status_code}: {response.text}"
        try:
            await self._run_blocking(self._settle, event, error)
        except TRANSIENT as exc:
            if error is None:  # delivered: remember it, never POST it again for this
                self._unstored_acks[event.id] = self._clock()
            log.warning("%s event %s: its delivery could not be stored yet (%s)",
                        self._name, event.event_id, type(exc.orig).__name__)
        return error is None

    def _store_acks(self) -> None:
        with transaction(self._sessions) as session:
            for row_id, at in self._unstored_acks.items():
                row = session.get_one(OutboxEvent, row_id)
                row.attempts += 1
                self._delivered(row, at)
        self._unstored_acks.clear()

    @staticmethod
    def _delivered(row: OutboxEvent, at: datetime) -> None:
        row.status = OutboxStatus.DELIVERED
        row.delivered_at = at
        row.last_error = None
        log.info("CRM event %s (%s) delivered", row.event_id, row.type)

    def _settle(self, event: _Claimed, error: str | None) -> None:
        now = self._clock()
        with transaction(self._sessions) as session:
            row = session.get_one(OutboxEvent, event.id)
            row.attempts = event.attempts + 1
            if error is None:
                self._delivered(row, now)
                return
            row.last_error = self._scrub(error)
            delay = self._backoff(row.attempts)
            row.next_attempt_at = now + timedelta(seconds=delay)
            log.warning("%s event %s (%s) not delivered (attempt %d, next in %.1f s): %s",
                        self._name, event.event_id, row.type, row.attempts, delay, row.last_error)

    def _backoff(self, attempts: int) -> float:
        """1 s, 2 s, 4 s, ... capped, with "equal jitter": between half and all of it."""
        ceiling = min(self._max_backoff_s, 2.0 ** min(attempts - 1, 32))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def _scrub(self, error: str) -> str:
        if self._url:  # the URL may carry credentials or a token
            error = error.replace(self._url, f"<{self._name.lower()}-url>")
        return mask_phone_numbers(" ".join(error.split())[:ERROR_DETAIL_CHARS])
