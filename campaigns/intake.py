"""Applying verified, validated CRM events: each one once, whole, in one transaction."""

import logging
from enum import StrEnum
from typing import Protocol

from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from campaigns.events import CallCompleted, CallCompletedData, ClientOptedOut, Envelope
from campaigns.models import DoNotCall, DoNotCallClient, Job, JobStatus, WebhookEvent
from campaigns.outbox import enqueue
from infra.db import transaction, utcnow

log = logging.getLogger(__name__)

OPTED_OUT_REASON = "opted out"


class CallCompletedRules(Protocol):
    def on_call_completed(
        self, session: Session, data: CallCompletedData, event_id: str
    ) -> object: ...


class IntakeResult(StrEnum):
    ACCEPTED = "accepted"  # applied now
    DUPLICATE = "duplicate"  # this event id was applied before: nothing done
    IGNORED = "ignored"  # a type we do not act on: recorded as seen, nothing else


class _AlreadySeen(Exception):
    pass


class Intake:
    def __init__(
        self, sessions: sessionmaker[Session], rules: CallCompletedRules, *, default_region: str
    ) -> None:
        self._sessions = sessions
        self._rules = rules
        self.default_region = default_region  # for parsing the phone numbers of the events

    def handle(self, event: Envelope) -> IntakeResult:
        """Record the event id and apply the event in one transaction; any error rolls both
        back, so the CRM's retry finds nothing half-done."""
        try:
            with transaction(self._sessions) as session:
                _record(session, event)
                return self._apply(session, event)
        except _AlreadySeen:
            log.info("CRM event %s (%s) seen before: not applied again", event.id, event.type)
            return IntakeResult.DUPLICATE

    def _apply(self, session: Session, event: Envelope) -> IntakeResult:
        if isinstance(event, CallCompleted):
            self._rules.on_call_completed(session, event.data, event.id)
        elif isinstance(event, ClientOptedOut):
            _opt_out(session, event)
        else:
            log.info("CRM event %s of type %s ignored: not a type we act on", event.id, event.type)
            return IntakeResult.IGNORED
        log.info("CRM event %s (%s) applied", event.id, event.type)
        return IntakeResult.ACCEPTED


# Built and compiled once; the values come as parameters.
_INSERT_EVENT = insert(WebhookEvent.metadata.tables[WebhookEvent.__tablename__])


def _record(session: Session, event: Envelope) -> None:
    """Insert the event id first: a concurrent twin blocks on it, then fails as a duplicate.
    (A Core insert: the ORM's unit of work costs more than the insert on this hot path.)"""
    try:
        session.connection().execute(_INSERT_EVENT, {
            "id": event.id,
            "type": event.type,
            "occurred_at": event.occurred_at,
            "received_at": utcnow(),
            "payload": event.model_dump(mode="json"),
        })
    except IntegrityError:
        raise _AlreadySeen from None


def _opt_out(session: Session, event: ClientOptedOut) -> None:
    """Do-not-call for the phone (or, given only the client, every phone we know it by) and,
    given the client, for the client as a whole (numbers we learn later too); the client's
    pending calls cancelled, and the CRM told."""
    data = event.data
    phones = {data.phone} if data.phone else set()
    if data.client_id is not None and not phones:
        phones.update(session.scalars(select(Job.phone).where(Job.client_id == data.client_id)))
    for phone in sorted(phones):
        entry = session.get(DoNotCall, phone)
        if entry is None:
            session.add(DoNotCall(phone=phone, client_id=data.client_id, source_event_id=event.id))
        elif entry.client_id is None:
            entry.client_id = data.client_id
    if data.client_id is not None and session.get(DoNotCallClient, data.client_id) is None:
        session.add(DoNotCallClient(client_id=data.client_id, source_event_id=event.id))
    whose = []
    if data.client_id is not None:
        whose.append(Job.client_id == data.client_id)
    if phones:
        whose.append(Job.phone.in_(phones))
    cancelled = session.scalars(
        update(Job)
        .where(Job.status == JobStatus.PENDING, or_(*whose))
        .values(status=JobStatus.SKIPPED, final_reason=OPTED_OUT_REASON)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    ).all()
    enqueue(session, "client.opted_out", data.client_id or sorted(phones)[0], {
        "client_id": data.client_id,
        "phones": sorted(phones),
        "cancelled_job_ids": sorted(cancelled),
        "source_event_id": event.id,
    })
    log.info("CRM event %s: %d phone(s) on the do-not-call list, %d pending job(s) cancelled",
             event.id, len(phones), len(cancelled))
