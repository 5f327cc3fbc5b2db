"""Callback tasks that the CRM asks for: a missed call (`call.missed`) and a client's request to
be called back (`callback.requested`). Deadlines are in campaigns/deadlines.py.

- The client's key is the event's `client_id`; a `call.missed` without one uses the caller's
  E.164 number as the client id, so that two missed calls from one number make one task.
- A client with an open task for the same reason gets that task updated (asked once more, the
  earlier deadline, the newer context), never a second one (campaigns/callback_tasks.py). The
  note of each `callback.requested` is kept as a task note written by "crm".
- Clients on the do-not-call lists still get tasks: those lists stop robot calls, while here a
  person calls back a client who called us or asked to be called.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from campaigns.calendar import BusinessCalendar
from campaigns.callback_tasks import TaskRequest, open_task
from campaigns.client_zone import FROM_NUMBER, client_zone
from campaigns.contact_rules import lock_client
from campaigns.deadlines import (
    MISSED_CALL_MINUTES,
    missed_call_deadline,
    requested_callback_deadline,
)
from campaigns.events import CallbackRequestedData, CallMissedData
from campaigns.models import CallbackTask, CallbackTaskNote

log = logging.getLogger(__name__)

MISSED_CALL = "missed_call"  # the callback task's reason
CALLBACK_REQUESTED = "callback_requested"
NOTE_AUTHOR = "crm"  # who wrote the notes that come with callback.requested


@dataclass(frozen=True)
class CallbackSourcePolicy:
    """The settings of these tasks (`RINGBACK_MISSED_CALL_CALLBACK_WORKING_MINUTES`)."""

    missed_call_working_minutes: int = MISSED_CALL_MINUTES

    def __post_init__(self) -> None:
        if self.missed_call_working_minutes < 1:
            raise ValueError("missed_call_working_minutes must be at least 1")


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds")


def _client_timezone(event_zone: str | None, phone: str) -> str | None:
    """The client's zone for the agent: the event's, else the number's only zone, else none
    (a guess is worse than nothing on a page an agent reads before calling)."""
    zone = client_zone(event_zone, phone, default="")
    return zone.name if event_zone or zone.source == FROM_NUMBER else None


class CallbackSources:
    """Opens (or updates) the callback tasks of `call.missed` and `callback.requested`."""

    def __init__(self, calendar: BusinessCalendar, clock: Callable[[], datetime],
                 policy: CallbackSourcePolicy | None = None) -> None:
        self.calendar = calendar
        self.clock = clock
        self.policy = policy or CallbackSourcePolicy()

    def on_call_missed(self, session: Session, data: CallMissedData,
                       event_id: str) -> CallbackTask:
        """A missed call: due N working minutes after it was missed (out of hours: by the end
        of the first working hour). A CRM clock ahead of ours counts from now."""
        now = self.clock()
        client_id = data.client_id or data.phone
        context: dict[str, Any] = {
            "event_id": event_id, "missed_at": _iso(data.at), "queue": data.queue,
            "client_key": "client_id" if data.client_id else "phone",
        }
        lock_client(session, client_id, data.phone)  # a concurrent twin waits here
        task = open_task(session, TaskRequest(
            reason=MISSED_CALL, client_id=client_id, phone=data.phone,
            deadline=missed_call_deadline(min(data.at, now), self.calendar,
                                          self.policy.missed_call_working_minutes),
            original_call_id=data.call_id, agent_id=data.agent_id,
            client_timezone=_client_timezone(data.timezone, data.phone),
            context={key: value for key, value in context.items() if value is not None},
        ), now)
        log.info("missed call %s: task %s due %s", data.call_id, task.id, _iso(task.deadline))
        return task

    def on_callback_requested(self, session: Session, data: CallbackRequestedData,
                              event_id: str) -> CallbackTask:
        """A requested callback: due at the requested time if that is working time, else at
        the next opening after it; without a time, the missed-call rule from now."""
        now = self.clock()
        context: dict[str, Any] = {"event_id": event_id}
        if data.at is not None:
            context["requested_at"] = _iso(data.at)
        if data.note is not None:
            context["note"] = data.note  # the latest; every note is kept as a task note
        lock_client(session, data.client_id, data.phone)
        task = open_task(session, TaskRequest(
            reason=CALLBACK_REQUESTED, client_id=data.client_id, phone=data.phone,
            deadline=requested_callback_deadline(data.at, now, self.calendar,
                                                 self.policy.missed_call_working_minutes),
            client_timezone=_client_timezone(data.timezone, data.phone),
            context=context,
        ), now)
        if data.note is not None:
            session.flush()  # the task row first: the note refers to it
            session.add(CallbackTaskNote(task_id=task.id, author=NOTE_AUTHOR, text=data.note,
                                         created_at=now))
        log.info("callback requested by %s: task %s due %s", data.client_id, task.id,
                 _iso(task.deadline))
        return task
