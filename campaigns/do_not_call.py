"""The do-not-call rule, in one place: who must never be called, and putting a client there.

Intake checks it when a job is created, the dispatcher again just before dialing (under the
client's lock, campaigns/contact_rules.py), and an opt-out - from the CRM or from a key the
client pressed - lands here and cancels the client's pending calls of every kind at once.
"""

import logging

from sqlalchemy import ColumnElement, exists, or_, select, update
from sqlalchemy.orm import Session

from campaigns.models import DoNotCall, DoNotCallClient, Job, JobStatus
from campaigns.outbox import enqueue

log = logging.getLogger(__name__)

SKIP_REASON = "client opted out"  # a job found on the list before it was dialed
OPTED_OUT_REASON = "opted out"  # a pending job cancelled by the opt-out


def opted_out_clause(
    client_id: str | ColumnElement[str], phone: str | ColumnElement[str]
) -> ColumnElement[bool]:
    """The rule: the phone or the client is on a list (values or bound parameters)."""
    return (exists().where(or_(DoNotCall.phone == phone, DoNotCall.client_id == client_id))
            | exists().where(DoNotCallClient.client_id == client_id))


def opted_out(session: Session, client_id: str, phone: str) -> bool:
    return bool(session.scalar(select(opted_out_clause(client_id, phone))))


def opt_out(session: Session, *, client_id: str | None, phone: str | None, source: str,
            besides: str | None = None) -> list[str]:
    """Do-not-call for the phone (or, given only the client, every phone we know it by) and,
    given the client, for the client as a whole (numbers we learn later too); the client's
    pending calls of every kind cancelled (but `besides`, the job of a call now asking), and
    the CRM told with `client.opted_out`. `source`: the CRM event or the job it came from.
    Returns the cancelled jobs' ids."""
    phones = {phone} if phone else set()
    if client_id is not None and not phones:
        phones.update(session.scalars(select(Job.phone).where(Job.client_id == client_id)))
    for number in sorted(phones):
        entry = session.get(DoNotCall, number)
        if entry is None:
            session.add(DoNotCall(phone=number, client_id=client_id, source_event_id=source))
        elif entry.client_id is None:
            entry.client_id = client_id
    if client_id is not None and session.get(DoNotCallClient, client_id) is None:
        session.add(DoNotCallClient(client_id=client_id, source_event_id=source))
    whose = []
    if client_id is not None:
        whose.append(Job.client_id == client_id)
    if phones:
        whose.append(Job.phone.in_(phones))
    cancelled = sorted(session.scalars(
        update(Job)
        .where(Job.status == JobStatus.PENDING, or_(*whose), Job.id != (besides or ""))
        .values(status=JobStatus.SKIPPED, final_reason=OPTED_OUT_REASON)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    ).all())
    enqueue(session, "client.opted_out", client_id or sorted(phones)[0], {
        "client_id": client_id,
        "phones": sorted(phones),
        "cancelled_job_ids": cancelled,
        "source_event_id": source,
    })
    log.info("opt-out from %s: %d phone(s) on the do-not-call list, %d pending job(s) "
             "cancelled", source, len(phones), len(cancelled))
    return cancelled
