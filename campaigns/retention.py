"""Data retention (`RINGBACK_RETENTION_DAYS`): the phone numbers of finished jobs are blanked
once the retention has passed, and what else holds a number about them is cleared.

Purged, for jobs in a final state (completed, unanswered, skipped) last changed before the
cutoff:
- `jobs.phone` and the job's `survey_responses.phone` become "" (the rows stay: scores, outcomes
  and times are statistics, not personal data);
- `call_attempts.dialog` of those jobs becomes NULL (its SIP URIs carry the number; it is only
  needed to hang up a call a crash left up, and a final job has none);
and, by their own times: the `payload` of CRM events received before the cutoff becomes `{}`
(the row stays: its id is the idempotency key), and outbox events delivered before the cutoff
are deleted (pending ones are never touched: they still have to reach the CRM).

Kept: the do-not-call lists (an opt-out is forever), callback tasks (kept whole while open, and
every task is open: nothing resolves them yet), pending and dialing jobs. Recordings: ringback
records no calls, so there are none to remove.

The cutoff is never more recent than the contact rules' period (`survey_period_days`): the
"surveyed recently?" check looks jobs up by phone within it, and a blanked phone would let a
second survey through.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Delete, String, Update, cast, delete, null, select, update
from sqlalchemy.orm import Session

from campaigns.models import (
    CallAttempt,
    Job,
    JobStatus,
    OutboxEvent,
    OutboxStatus,
    SurveyResponse,
    WebhookEvent,
)
from infra.db import DatabaseTick, transaction

log = logging.getLogger(__name__)

BLANK_PHONE = ""
FINAL_STATUSES = (JobStatus.COMPLETED, JobStatus.UNANSWERED, JobStatus.SKIPPED,
                  JobStatus.CANCELLED)


@dataclass(frozen=True)
class RetentionPolicy:
    days: int  # RINGBACK_RETENTION_DAYS
    contact_period: timedelta  # how far back the contact rules look at jobs by phone

    @property
    def kept_for(self) -> timedelta:
        return max(timedelta(days=self.days), self.contact_period)

    def cutoff(self, now: datetime) -> datetime:
        return now - self.kept_for


def purge_statements(cutoff: datetime) -> dict[str, Update | Delete]:
    """What the purge runs, by the name of what it changes. Each statement selects only rows
    that still hold something to purge, so a second run changes nothing."""
    expired_jobs = select(Job.id).where(Job.status.in_(FINAL_STATUSES), Job.updated_at < cutoff)
    return {
        # updated_at kept as it is: it says when the job finished.
        "jobs": update(Job)
        .where(Job.status.in_(FINAL_STATUSES), Job.updated_at < cutoff, Job.phone != BLANK_PHONE)
        .values(phone=BLANK_PHONE, updated_at=Job.updated_at),
        "survey_responses": update(SurveyResponse)
        .where(SurveyResponse.job_id.in_(expired_jobs), SurveyResponse.phone != BLANK_PHONE)
        .values(phone=BLANK_PHONE),
        "call_attempt_dialogs": update(CallAttempt)
        .where(CallAttempt.job_id.in_(expired_jobs), CallAttempt.dialog.is_not(None))
        .values(dialog=null()),
        # JSON has no equality operator on PostgreSQL: compare its text ({} is written "{}").
        "webhook_event_payloads": update(WebhookEvent)
        .where(WebhookEvent.received_at < cutoff, cast(WebhookEvent.payload, String) != "{}")
        .values(payload={}),
        "delivered_outbox_events": delete(OutboxEvent).where(
            OutboxEvent.status == OutboxStatus.DELIVERED, OutboxEvent.delivered_at < cutoff
        ),
    }


def purge(session: Session, cutoff: datetime) -> dict[str, int]:
    """Run the purge in `session`'s transaction; how many rows each statement changed."""
    return {
        name: session.execute(
            statement.execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        for name, statement in purge_statements(cutoff).items()
    }


class RetentionPurge(DatabaseTick[RetentionPolicy]):
    """The daily tick: one purge in one transaction."""

    def run(self) -> dict[str, int]:
        cutoff = self._policy.cutoff(self._clock())
        with transaction(self._sessions) as session:
            counts = purge(session, cutoff)
        log.info("purged what finished before %s: %s", cutoff.isoformat(),
                 ", ".join(f"{name} {count}" for name, count in counts.items()))
        return counts
