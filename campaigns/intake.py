"""Applying verified, validated CRM events: each one once, whole, in one transaction.

Each event type we act on has its handler in a table (`event_handlers`); other types are
recorded as seen and ignored.
"""

import logging
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from campaigns.do_not_call import opt_out
from campaigns.events import (
    BalanceLow,
    BalanceToppedUp,
    CallbackRequested,
    CallbackRequestedData,
    CallCompleted,
    CallCompletedData,
    CallMissed,
    CallMissedData,
    CampaignStopping,
    ClientOptedOut,
    Envelope,
)
from campaigns.models import WebhookEvent
from campaigns.warnings import Warnings
from infra.db import transaction, utcnow

log = logging.getLogger(__name__)

# A handler applies one kind of event inside the intake's transaction.
Handler = Callable[[Session, Any], object]


class CallCompletedRules(Protocol):
    def on_call_completed(
        self, session: Session, data: CallCompletedData, event_id: str
    ) -> object: ...


class CallbackRules(Protocol):
    def on_call_missed(self, session: Session, data: CallMissedData, event_id: str) -> object: ...

    def on_callback_requested(
        self, session: Session, data: CallbackRequestedData, event_id: str
    ) -> object: ...


def event_handlers(
    surveys: CallCompletedRules, warnings: Warnings, callbacks: CallbackRules
) -> dict[str, Handler]:
    """What each event type we act on does."""

    def call_completed(session: Session, event: CallCompleted) -> object:
        return surveys.on_call_completed(session, event.data, event.id)

    def balance_low(session: Session, event: BalanceLow) -> object:
        return warnings.on_balance_low(session, event.data, event.id, event.occurred_at)

    def campaign_stopping(session: Session, event: CampaignStopping) -> object:
        return warnings.on_campaign_stopping(session, event.data, event.id, event.occurred_at)

    def topped_up(session: Session, event: BalanceToppedUp) -> object:
        return warnings.on_topped_up(session, event.data, event.id, event.occurred_at)

    def opted_out(session: Session, event: ClientOptedOut) -> object:
        return opt_out(session, client_id=event.data.client_id, phone=event.data.phone,
                       source=event.id)

    def call_missed(session: Session, event: CallMissed) -> object:
        return callbacks.on_call_missed(session, event.data, event.id)

    def callback_requested(session: Session, event: CallbackRequested) -> object:
        return callbacks.on_callback_requested(session, event.data, event.id)

    return {
        "call.completed": call_completed,
        "balance.low": balance_low,
        "campaign.stopping": campaign_stopping,
        "balance.topped_up": topped_up,
        "client.opted_out": opted_out,
        "call.missed": call_missed,
        "callback.requested": callback_requested,
    }


class IntakeResult(StrEnum):
    ACCEPTED = "accepted"  # applied now
    DUPLICATE = "duplicate"  # this event id was applied before: nothing done
    IGNORED = "ignored"  # a type we do not act on: recorded as seen, nothing else


class _AlreadySeen(Exception):
    pass


class Intake:
    def __init__(
        self, sessions: sessionmaker[Session], handlers: Mapping[str, Handler], *,
        default_region: str,
    ) -> None:
        self._sessions = sessions
        self._handlers = dict(handlers)
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
        handler = self._handlers.get(event.type)
        if handler is None:
            log.info("CRM event %s of type %s ignored: not a type we act on", event.id, event.type)
            return IntakeResult.IGNORED
        handler(session, event)
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
