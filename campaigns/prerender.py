"""Rendering ahead: the prompts of jobs due soon are synthesised (into the content-addressed
prompt cache) before the call is due, so no client waits for speech when it answers.

A job whose values cannot be spoken (its flow refuses them) gives up here, with the reason,
instead of failing at every attempt.
"""

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from campaigns.job_life import JobLife
from campaigns.models import Job, JobStatus
from campaigns.purpose import CallPurpose
from infra.db import BlockingRunner, transaction
from ivr.errors import FlowError
from telephony.backend import FlowCall, TelephonyBackend

log = logging.getLogger(__name__)

HORIZON = timedelta(minutes=15)  # jobs due within this are rendered
BATCH = 20  # per tick


class Prerender:
    def __init__(self, sessions: sessionmaker[Session], purposes: Mapping[str, CallPurpose],
                 backend: TelephonyBackend, *, clock: Callable[[], datetime],
                 run_blocking: BlockingRunner, horizon: timedelta = HORIZON,
                 batch: int = BATCH) -> None:
        self._sessions = sessions
        self._life = JobLife(purposes)
        self._backend = backend
        self._clock = clock
        self._run_blocking = run_blocking
        self._horizon = horizon
        self._batch = batch

    async def tick(self) -> int:
        """Render the next batch of jobs due soon; how many were rendered."""
        rendered: list[str] = []
        refused: dict[str, str] = {}
        for job_id, call in await self._run_blocking(self._unprepared):
            try:
                await self._backend.prepare(call)
            except FlowError as exc:
                refused[job_id] = str(exc)
                continue
            rendered.append(job_id)
        if rendered or refused:
            await self._run_blocking(self._mark, rendered, refused)
        return len(rendered)

    def _unprepared(self) -> list[tuple[str, FlowCall]]:
        now = self._clock()
        with transaction(self._sessions) as session:
            jobs = session.scalars(
                select(Job)
                .where(Job.status == JobStatus.PENDING, Job.not_before <= now + self._horizon,
                       Job.prepared_at.is_(None), Job.kind.in_(list(self._life.purposes)))
                .order_by(Job.not_before)
                .limit(self._batch)
            ).all()
            return [(job.id, self._life.purpose(job).call_for(job)) for job in jobs]

    def _mark(self, rendered: list[str], refused: dict[str, str]) -> None:
        now = self._clock()
        with transaction(self._sessions) as session:
            if rendered:
                session.execute(update(Job).where(Job.id.in_(rendered)).values(prepared_at=now))
            for job in session.scalars(select(Job).where(Job.id.in_(list(refused)),
                                                         Job.status == JobStatus.PENDING)):
                reason = f"cannot be spoken: {refused[job.id]}"
                log.error("job %s (%s) %s", job.id, job.kind, reason)
                self._life.give_up(session, job, reason, now)
