"""Claims due jobs under leases and places their calls, within the channel and rate limits.

A job is claimed in one transaction that also opens its call attempt, so a crash at any point
leaves a record: the reaper settles attempts whose lease ran out as failed ("crashed") and lets
the job's own retry policy decide, so no job is lost and none is dialed twice.
"""

import asyncio
import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from campaigns.calendar import parse_zone
from campaigns.models import CallAttempt, DoNotCall, DoNotCallClient, Job, JobStatus
from campaigns.surveys import Surveys
from infra.db import BlockingRunner, transaction
from telephony.backend import CallReport, FlowCall, TelephonyBackend
from telephony.outcomes import Outcome

log = logging.getLogger(__name__)

CRASHED = "crashed"


@dataclass(frozen=True)
class Claimed:
    """What a running call needs of its job, detached from any session."""

    job_id: str
    attempt_id: int
    phone: str
    locale: str


@dataclass(frozen=True)
class DispatchLimits:
    channels: int = 10
    calls_per_second: float = 2.0
    lease: timedelta = timedelta(seconds=120)


class Dispatcher:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        surveys: Surveys,
        backend: TelephonyBackend,
        *,
        owner: str,
        limits: DispatchLimits,
        params: dict[str, str],
        clock: Callable[[], datetime],
        on_report: Callable[[CallReport], None] | None = None,
        run_blocking: BlockingRunner = asyncio.to_thread,
    ) -> None:
        self._sessions = sessions
        self._surveys = surveys
        self._backend = backend
        self._owner = owner
        self._limits = limits
        self._params = params
        self._clock = clock
        self._on_report = on_report
        self._run_blocking = run_blocking
        self._running: dict[str, asyncio.Task[None]] = {}
        self._tokens = self._bucket_size
        self._tokens_at: float | None = None

    @property
    def _bucket_size(self) -> float:
        return max(1.0, self._limits.calls_per_second)

    @property
    def busy_channels(self) -> int:
        return len(self._running)

    async def tick(self) -> int:
        """Claim and start as many due jobs as free channels and the rate budget allow."""
        wanted = min(self._limits.channels - len(self._running), self._take_tokens())
        if wanted <= 0:
            return 0
        claimed = await self._run_blocking(self._claim, wanted)
        self._tokens -= len(claimed)
        for job in claimed:
            task = asyncio.create_task(self._call(job), name=f"call-{job.job_id}")
            self._running[job.job_id] = task
            task.add_done_callback(functools.partial(self._forget, job.job_id))
        return len(claimed)

    def _forget(self, job_id: str, _task: "asyncio.Task[None]") -> None:
        self._running.pop(job_id, None)

    async def reap(self) -> int:
        """Settle attempts whose lease expired (their process died) as failed."""
        return await self._run_blocking(self._reap)

    async def drain(self, timeout: float) -> None:
        """Wait for the calls in flight (shutdown); what is left is settled by the reaper."""
        if self._running:
            await asyncio.wait(list(self._running.values()), timeout=timeout)

    def _take_tokens(self) -> int:
        loop_now = asyncio.get_running_loop().time()
        rate = self._limits.calls_per_second
        if self._tokens_at is not None:
            refill = (loop_now - self._tokens_at) * rate
            self._tokens = min(self._bucket_size, self._tokens + refill)
        self._tokens_at = loop_now
        return math.floor(self._tokens)

    def _claim(self, limit: int) -> list[Claimed]:
        now = self._clock()
        claimed: list[Claimed] = []
        with transaction(self._sessions) as session:
            due = session.scalars(
                select(Job)
                .where(Job.status == JobStatus.PENDING, Job.not_before <= now)
                .order_by(Job.not_before)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            for job in due:
                if self._still_callable(session, job, now):
                    claimed.append(self._open_attempt(session, job, now))
        return claimed

    def _still_callable(self, session: Session, job: Job, now: datetime) -> bool:
        """Re-check, just before dialing, what may have changed since the job was queued."""
        if (session.get(DoNotCall, job.phone) is not None
                or session.get(DoNotCallClient, job.client_id) is not None):
            job.status = JobStatus.SKIPPED
            job.final_reason = "client opted out"
            return False
        window = self._surveys.window
        zone = parse_zone(job.timezone)
        if window.is_allowed(now, zone):
            return True
        later = window.next_allowed(now, zone)
        if later <= job.not_after:
            job.not_before = later
        else:
            self._surveys.retry_or_give_up(session, job, "calling window missed",
                                           Outcome.UNREACHABLE, now)
        return False

    def _open_attempt(self, session: Session, job: Job, now: datetime) -> Claimed:
        job.status = JobStatus.DIALING
        job.attempts += 1
        job.lease_owner = self._owner
        job.lease_expires_at = now + self._limits.lease
        attempt = CallAttempt(job_id=job.id, number=job.attempts, started_at=now)
        session.add(attempt)
        session.flush()
        return Claimed(job.id, attempt.id, job.phone, job.locale)

    async def _call(self, job: Claimed) -> None:
        renewing = asyncio.create_task(self._keep_lease(job.job_id))
        try:
            report = await self._backend.run(
                FlowCall(job.job_id, job.phone, "survey", job.locale, self._params)
            )
        except Exception as exc:  # a bug in a backend must not lose the job
            log.exception("call for job %s failed", job.job_id)
            report = CallReport(Outcome.FAILED, None, None, detail=f"internal error: {exc}")
        finally:
            renewing.cancel()
        if self._on_report is not None:
            self._on_report(report)
        await self._run_blocking(self._settle, job, report)

    async def _keep_lease(self, job_id: str) -> None:
        interval = self._limits.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            await self._run_blocking(self._renew, job_id)

    def _renew(self, job_id: str) -> None:
        with transaction(self._sessions) as session:
            job = session.get(Job, job_id)
            if job is not None and job.lease_owner == self._owner:
                job.lease_expires_at = self._clock() + self._limits.lease

    def _settle(self, claimed: Claimed, report: CallReport) -> None:
        now = self._clock()
        with transaction(self._sessions) as session:
            job = session.get(Job, claimed.job_id)
            attempt = session.get(CallAttempt, claimed.attempt_id)
            if job is None or attempt is None:
                return
            if job.status != JobStatus.DIALING or job.lease_owner != self._owner:
                # The lease was lost (reaped) while the call ran: keep the attempt's facts only.
                attempt.ended_at, attempt.outcome = now, report.outcome.value
                log.warning("job %s settled elsewhere; attempt %d recorded only", job.id,
                            attempt.number)
                return
            self._surveys.settle(session, job, attempt, report, now)

    def _reap(self) -> int:
        now = self._clock()
        with transaction(self._sessions) as session:
            expired = session.scalars(
                select(Job)
                .where(Job.status == JobStatus.DIALING, Job.lease_expires_at < now)
                .with_for_update(skip_locked=True)
            ).all()
            for job in expired:
                for attempt in job.call_attempts:
                    if attempt.ended_at is None:
                        attempt.ended_at, attempt.outcome = now, CRASHED
                        attempt.detail = f"lease of {job.lease_owner} expired"
                log.warning("job %s: call cut (lease expired), counting a failed attempt", job.id)
                self._surveys.retry_or_give_up(session, job, "call cut by a crash",
                                               Outcome.FAILED, now)
            return len(expired)
