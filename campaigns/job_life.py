"""The life of a job, whatever its kind: the checks just before dialing, settling a call's
report, retries inside the calling window with the kind's growing delays, giving up, and
settling the call of a process that died. Each kind's own part comes through its
`CallPurpose` (campaigns/purpose.py); nothing here names a kind.
"""

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.calendar import parse_zone
from campaigns.contact_rules import (
    ALREADY_CONTACTED,
    CONTACTED,
    contacted_recently,
    lock_client,
    on_call_elsewhere,
)
from campaigns.do_not_call import SKIP_REASON, opted_out
from campaigns.models import CallAttempt, Job, JobStatus
from campaigns.purpose import NEXT_WINDOW, CallPurpose
from ivr.results import FlowResult
from telephony.backend import CallReport
from telephony.outcomes import Outcome

log = logging.getLogger(__name__)

RETRIED_OUTCOMES = frozenset({Outcome.BUSY, Outcome.NO_ANSWER, Outcome.FAILED})
CRASHED = "crashed"  # the attempt's outcome when its process died mid-call


class UnknownKind(Exception):
    """A job of a kind this process has no purpose for (a newer version queued it)."""


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds")


def release(job: Job) -> None:
    job.lease_owner = None
    job.lease_expires_at = None


class JobLife:
    def __init__(self, purposes: Mapping[str, CallPurpose]) -> None:
        self.purposes = dict(purposes)

    def purpose(self, job: Job) -> CallPurpose:
        try:
            return self.purposes[job.kind]
        except KeyError:
            raise UnknownKind(f"job {job.id} is of kind {job.kind!r}, unknown here") from None

    # --- just before dialing -------------------------------------------------------------------

    def callable_now(self, session: Session, job: Job, now: datetime) -> bool:
        """The contact rules and the kind's own check again, under the client's lock, just
        before dialing. A job that must not be called is settled here; one that may be called
        later (the client is on another call, the window is closed) is left pending."""
        lock_client(session, job.client_id, job.phone)
        if on_call_elsewhere(session, job.client_id, job.phone, besides=job.id):
            return False  # stays due: called once the other call is over
        if opted_out(session, job.client_id, job.phone):
            self._end(job, JobStatus.SKIPPED, SKIP_REASON)
            return False
        purpose = self.purpose(job)
        cap = purpose.policy.cap
        if contacted_recently(session, cap, job.client_id, job.phone, job.created_at,
                              counting=CONTACTED, besides=[job.id]):
            self._end(job, JobStatus.SKIPPED, f"{ALREADY_CONTACTED} ({cap.kind}) within the period")
            return False
        unwanted = purpose.unwanted(session, job, now)
        if unwanted is not None:
            self.cancel(job, unwanted)
            return False
        window = purpose.policy.window
        zone = parse_zone(job.timezone)
        if window.is_allowed(now, zone):
            return True
        later = window.next_allowed(now, zone)
        if later <= job.not_after:
            job.not_before = later
        else:
            self.retry_or_give_up(session, job, "calling window missed", Outcome.UNREACHABLE,
                                  now)
        return False

    # --- after the call ------------------------------------------------------------------------

    def settle(self, session: Session, job: Job, attempt: CallAttempt, report: CallReport,
               now: datetime) -> None:
        """Apply one call's report to its job: the kind's answer, a retry, or giving up."""
        attempt.ended_at = now
        attempt.outcome = report.outcome.value
        attempt.sip_status = report.sip_status
        attempt.call_id = report.call_id
        attempt.detail = report.detail or report.result
        if report.outcome is Outcome.ANSWERED:
            release(job)
            self.purpose(job).settle_answered(session, job, attempt, report, now)
        elif job.withdrawn_at is not None:  # cancelled, or a busy that crossed our CANCEL
            self.cancel(job, job.final_reason or "withdrawn while ringing")
        else:
            self.retry_or_give_up(session, job, report.outcome.value, report.outcome, now)

    def retry_or_give_up(
        self, session: Session, job: Job, what: str, outcome: Outcome, now: datetime
    ) -> None:
        """Retry inside the calling window, after the kind's delay for this attempt, while
        attempts and lateness allow; else give up."""
        release(job)
        policy = self.purpose(job).policy
        if outcome in RETRIED_OUTCOMES and job.attempts < job.max_attempts:
            zone = parse_zone(job.timezone)
            delay = policy.retry_delay(job.attempts)
            if delay is NEXT_WINDOW:  # after the window open now (a call may end past closing)
                window = policy.window
                after = window.window_end(now, zone) if window.is_allowed(now, zone) else now
                retry = window.retry_at(after, timedelta(0), zone, job.not_after)
            else:
                retry = policy.window.retry_at(now, delay, zone, job.not_after)
            if retry is not None:
                job.status = JobStatus.PENDING
                job.not_before = retry
                log.info("job %s (%s): %s, retry %d at %s", job.id, job.kind, what,
                         job.attempts + 1, _iso(retry))
                return
        self.give_up(session, job, f"{what} after {job.attempts} attempt(s)", now)

    def give_up(self, session: Session, job: Job, reason: str, now: datetime) -> None:
        self._end(job, JobStatus.UNANSWERED, reason)
        self.purpose(job).give_up(session, job, reason, now)

    def cancel(self, job: Job, reason: str) -> None:
        """The call is no longer wanted: the job ends without a call and without a report."""
        self._end(job, JobStatus.CANCELLED, reason)
        log.info("job %s (%s) cancelled: %s", job.id, job.kind, reason)

    @staticmethod
    def postpone(job: Job, until: datetime) -> None:
        """Not now: the attempt did not happen; pending again from `until`."""
        job.attempts -= 1
        job.status = JobStatus.PENDING
        job.not_before = until
        release(job)

    @staticmethod
    def _end(job: Job, status: JobStatus, reason: str) -> None:
        job.status = status
        job.final_reason = reason
        release(job)

    # --- calls of dead processes ---------------------------------------------------------------

    def settle_orphan(self, session: Session, job: Job, now: datetime) -> None:
        """The call of `job` was cut by its process dying: settle from the answer stored on
        its attempt (never ask again what was answered), else count a failed attempt."""
        attempt = session.scalars(
            select(CallAttempt).where(CallAttempt.job_id == job.id)
            .order_by(CallAttempt.number.desc()).limit(1)
        ).one()
        cut = f"call cut: {job.lease_owner} died"
        if attempt.result is not None:
            log.warning("job %s: call cut after the answer %r: settling from it", job.id,
                        attempt.result)
            report = CallReport(Outcome.ANSWERED, None, attempt.call_id,
                                result=FlowResult(attempt.result), value=attempt.result_value,
                                detail=cut)
            self.settle(session, job, attempt, report, now)
        else:
            log.warning("job %s: %s mid-call, counting a failed attempt", job.id,
                        job.lease_owner)
            attempt.ended_at, attempt.detail = now, cut
            self.retry_or_give_up(session, job, "call cut by a crash", Outcome.FAILED, now)
        attempt.outcome = CRASHED
