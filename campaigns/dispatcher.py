"""Claims due jobs under leases and places their calls, within the shared channel and rate limits.

A job is claimed in one transaction that also opens its call attempt, so a crash at any point
leaves a record. While the call is up, what must survive a crash is stored at once: the dialog
(to hang the call up later) when it is answered, the client's answer when it is given. After
the call, the report is stored with retries until the database takes it: a call that ended is
never turned into a redial because the database was away.

A call whose process died is found two ways: on start, the calls of this instance's dead
predecessor (same instance name); at any time, calls whose lease ran out (any instance). Either
way the call is hung up from its stored dialog and the job settled from the stored answer, or
else counted as a crashed attempt that the job's retry policy decides on.

Limits are shared by every instance on the database: the channel limit counts dialing jobs, the
calls-per-second budget is a row of its own (campaigns/dial_budget.py), and one claim
transaction at a time holds that row. The kinds of call share them fairly: each claim deals
the free channels to the kinds in turn, the longest-due job of each kind first, and the turns go
on from one claim to the next (a claim starts after the kind served last), so a flood of one
kind never starves another, even with one free channel; a kind with nothing due leaves its turn
to the others.

The dispatcher never names a kind: each job's call, its last check before dialing and what
its report means come from the kind's `CallPurpose` (campaigns/purpose.py, job_life.py).
A call no longer wanted while it is placed (`Job.withdrawn_at`, set by any instance) is
cancelled if it still rings; an answered one finishes.
"""

import asyncio
import functools
import itertools
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from campaigns.crm_check import CheckVerdict, CrmCheck
from campaigns.dial_budget import lock_budget, reserve_slots
from campaigns.job_life import JobLife
from campaigns.models import CallAttempt, Job, JobStatus
from campaigns.purpose import CallPurpose
from infra.db import BlockingRunner, transaction
from infra.retry import until_stored
from infra.tasks import TaskSupervisor
from ivr.results import FlowResult
from telephony.backend import CallReport, FlowCall, TelephonyBackend
from telephony.outcomes import Outcome

log = logging.getLogger(__name__)

NOT_WANTED = "not_wanted"  # an attempt the CRM called off just before dialing
CRM_DECLINED = "not wanted by the CRM"  # how the reason of a job the CRM called off begins
# A call that wakes later than this after its slot takes a fresh one: half of the budget's
# lateness allowance (campaigns/dial_budget.py), the rest is the way to the far end.
MAX_DIAL_LATENESS_S = 0.05
# How long an answered call waits for its dialog to be stored before the backend confirms the
# answer (SIP: the ACK; telephony.sip.outbound bounds it again): a slow database costs the
# client a moment of silence, never the call.
DIALOG_STORE_WAIT_S = 1.5


@dataclass(frozen=True)
class Claimed:
    """What a running call needs of its job, detached from any session."""

    job_id: str
    attempt_id: int
    call: FlowCall
    slot: datetime  # when to dial: this call's place in the shared rate budget
    client_id: str = ""
    kind: str = ""
    ask_crm: bool = False  # ask the CRM whether the call is still wanted, just before it


@dataclass(frozen=True)
class DispatchLimits:
    channels: int = 10  # calls up at once, over every instance
    calls_per_second: float = 2.0  # over every instance
    lease: timedelta = timedelta(seconds=120)
    horizon: timedelta = timedelta(seconds=1)  # dial slots handed out per tick


@dataclass(frozen=True)
class Orphan:
    job_id: str
    dialog: Mapping[str, Any] | None


@dataclass(frozen=True)
class Recovered:
    settled: int  # jobs whose call was cut, settled
    hung_up: int  # of their calls, hung up at the far end by us


@dataclass
class RunningCall:
    """What a running call reports before it ends, stored in the background (with retries);
    `stored()` waits for all of it, so the final report never overtakes an answer."""

    dispatcher: "Dispatcher"
    claimed: Claimed
    pending: list["asyncio.Task[None]"] = field(default_factory=list)
    withdrawn: asyncio.Event = field(default_factory=asyncio.Event)
    task: "asyncio.Task[None] | None" = None  # the call's own task

    async def dial_slot(self) -> None:
        """Sleep until the call's slot. A call woken too late (a stalled loop, a busy machine)
        does not go out late — it could land next to the following calls and break the rate —
        but takes a fresh slot and waits for that one."""
        dispatcher = self.dispatcher
        slot = self.claimed.slot
        while True:
            ahead = (slot - dispatcher._clock()).total_seconds()
            if ahead > 0:
                await asyncio.sleep(ahead)
                continue
            if -ahead <= MAX_DIAL_LATENESS_S:
                return
            slot = await until_stored(dispatcher._run_blocking, "a fresh dial slot",
                                      dispatcher._fresh_slot)

    async def answered(self, dialog: Mapping[str, Any]) -> None:
        """Store the dialog; return once it is stored, or after DIALOG_STORE_WAIT_S while the
        database fails (storing goes on, with retries)."""
        stored = self._store("dialog", self.dispatcher._store_dialog, dict(dialog))
        await asyncio.wait({stored}, timeout=DIALOG_STORE_WAIT_S)

    def recorded(self, result: FlowResult, value: int | None) -> None:
        self._store("answer", self.dispatcher._store_answer, result, value)

    def _store(self, what: str, func: Callable[..., None], *args: Any) -> "asyncio.Task[None]":
        claimed = self.claimed
        task = self.dispatcher._tasks.spawn(
            until_stored(self.dispatcher._run_blocking, f"{what} of job {claimed.job_id}",
                         func, claimed.attempt_id, *args),
            kind="store-" + what, name=f"store-{what}-{claimed.job_id}",
        )
        self.pending.append(task)
        return task

    async def stored(self) -> None:
        await asyncio.gather(*self.pending, return_exceptions=True)


class Dispatcher:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        purposes: Mapping[str, CallPurpose],
        backend: TelephonyBackend,
        *,
        instance: str,
        limits: DispatchLimits,
        clock: Callable[[], datetime],
        on_report: Callable[[CallReport], None] | None = None,
        run_blocking: BlockingRunner = asyncio.to_thread,
        tasks: TaskSupervisor | None = None,
        ready: Callable[[], bool] | None = None,
        crm_check: CrmCheck | None = None,
    ) -> None:
        """`ready`: whether the backend can place calls now (its line is up; None: always);
        while it says no, `tick` claims nothing and due jobs wait."""
        self._sessions = sessions
        self._life = JobLife(purposes)
        self._backend = backend
        self._instance = instance
        self.owner = f"{instance}/{uuid.uuid4().hex[:8]}"
        self._limits = limits
        self._clock = clock
        self._on_report = on_report
        self._run_blocking = run_blocking
        self._tasks = tasks or TaskSupervisor()
        self._running: dict[str, RunningCall] = {}
        self._ready = ready
        self._crm_check = crm_check
        self._served_last: str | None = None  # the kind of the job claimed last

    @property
    def busy_channels(self) -> int:
        return len(self._running)

    async def tick(self) -> int:
        """Claim and start as many due jobs as free channels and the shared budget allow;
        none while the backend is not ready."""
        if self._running:
            await self._withdraw_unwanted()
        wanted = self._limits.channels - len(self._running)
        if wanted <= 0 or (self._ready is not None and not self._ready()):
            return 0
        claimed = await self._run_blocking(self._claim, wanted)
        for job in claimed:
            progress = RunningCall(self, job)
            self._running[job.job_id] = progress
            progress.task = self._tasks.spawn(self._call(progress), kind="call",
                                              name=f"call-{job.job_id}")
            progress.task.add_done_callback(functools.partial(self._forget, job.job_id))
        return len(claimed)

    def _forget(self, job_id: str, _task: "asyncio.Task[None]") -> None:
        self._running.pop(job_id, None)

    async def _withdraw_unwanted(self) -> None:
        """Tell the calls whose jobs were withdrawn meanwhile (on any instance)."""
        ids = [job_id for job_id, call in self._running.items() if not call.withdrawn.is_set()]
        for job_id in await self._run_blocking(self._withdrawn, ids):
            running = self._running.get(job_id)
            if running is not None:
                log.info("job %s withdrawn while its call is placed", job_id)
                running.withdrawn.set()

    def _withdrawn(self, job_ids: list[str]) -> list[str]:
        if not job_ids:
            return []
        with transaction(self._sessions) as session:
            return list(session.scalars(
                select(Job.id).where(Job.id.in_(job_ids), Job.withdrawn_at.is_not(None))
            ))

    async def recover(self) -> Recovered:
        """On start: end and settle the calls this instance's dead predecessor left up."""
        mine = Job.lease_owner.like(f"{_escape_like(self._instance)}/%", escape="\\")
        return await self._end_orphans(mine & (Job.lease_owner != self.owner))

    async def reap(self) -> Recovered:
        """End and settle calls whose lease ran out (their process died), on any instance."""
        return await self._end_orphans(
            (Job.lease_expires_at < self._clock()) & (Job.lease_owner != self.owner)
        )

    async def drain(self, timeout: float) -> None:
        """Wait for the calls in flight (shutdown); what is left is settled by a successor."""
        tasks = [call.task for call in self._running.values() if call.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    # --- claiming ------------------------------------------------------------------------------

    def _claim(self, limit: int) -> list[Claimed]:
        now = self._clock()
        claimed: list[Claimed] = []
        with transaction(self._sessions) as session:
            lock_budget(session)  # one claim at a time, over every instance
            dialing = session.scalar(
                select(func.count()).select_from(Job).where(Job.status == JobStatus.DIALING)
            ) or 0
            limit = min(limit, self._limits.channels - dialing)
            if limit <= 0:
                return []
            for job in self._due(session, now, limit):
                if not self._life.callable_now(session, job, now):
                    continue
                slots = reserve_slots(session, now=now, rate=self._limits.calls_per_second,
                                      wanted=1, horizon=self._limits.horizon)
                if not slots:
                    break  # the budget for this tick is spent
                claimed.append(self._open_attempt(session, job, now, slots[0]))
                self._served_last = job.kind
        return claimed

    def _due(self, session: Session, now: datetime, limit: int) -> list[Job]:
        """Up to `limit` due jobs, the kinds taking turns from the one after the kind served
        last (longest due first within a kind); none of a client already on a call."""
        busy = aliased(Job)
        on_a_call = exists().where(
            busy.status == JobStatus.DIALING,
            or_(busy.client_id == Job.client_id, busy.phone == Job.phone),
        )
        kinds = sorted(self._life.purposes)
        if self._served_last in kinds:  # the turns go on where the last claim left them
            after = kinds.index(self._served_last) + 1
            kinds = kinds[after:] + kinds[:after]
        per_kind = [
            session.scalars(
                select(Job)
                .where(Job.status == JobStatus.PENDING, Job.not_before <= now, Job.kind == kind,
                       ~on_a_call)
                .order_by(Job.not_before)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            for kind in kinds
        ]
        turns = itertools.chain.from_iterable(itertools.zip_longest(*per_kind))
        return [job for job in turns if job is not None][:limit]

    def _open_attempt(self, session: Session, job: Job, now: datetime, slot: datetime) -> Claimed:
        job.status = JobStatus.DIALING
        job.attempts += 1
        job.lease_owner = self.owner
        job.lease_expires_at = slot + self._limits.lease
        attempt = CallAttempt(job_id=job.id, number=job.attempts, started_at=now)
        session.add(attempt)
        session.flush()
        purpose = self._life.purpose(job)
        return Claimed(job.id, attempt.id, purpose.call_for(job), slot, job.client_id, job.kind,
                       purpose.policy.crm_check and self._crm_check is not None)

    # --- one call ------------------------------------------------------------------------------

    async def _call(self, progress: RunningCall) -> None:
        job = progress.claimed
        renewing = self._tasks.spawn(self._keep_lease(job.job_id), kind="lease",
                                     name=f"lease-{job.job_id}")
        try:
            if job.ask_crm and not await self._crm_still_wants(job):
                return
            try:
                report = await self._backend.run(job.call, progress)
            except Exception as exc:  # a bug in a backend must not lose the job
                log.exception("call for job %s failed", job.job_id)
                report = CallReport(Outcome.FAILED, None, None, detail=f"internal error: {exc}")
            if self._on_report is not None:
                self._on_report(report)
            await progress.stored()
            await until_stored(self._run_blocking, f"report of job {job.job_id}",
                               self._settle, job, report)
        finally:
            renewing.cancel()

    async def _crm_still_wants(self, job: Claimed) -> bool:
        """The CRM's word just before dialing; a call it no longer wants is settled here."""
        assert self._crm_check is not None
        verdict = await self._crm_check.still_wanted(job.client_id, job.kind, job.job_id)
        if verdict.call:
            return True
        await until_stored(self._run_blocking, f"CRM verdict on job {job.job_id}",
                           self._not_wanted, job, verdict)
        return False

    def _not_wanted(self, claimed: Claimed, verdict: CheckVerdict) -> None:
        now = self._clock()
        with transaction(self._sessions) as session:
            job = session.get_one(Job, claimed.job_id)
            if job.status != JobStatus.DIALING or job.lease_owner != self.owner:
                return
            attempt = session.get_one(CallAttempt, claimed.attempt_id)
            if verdict.postpone_s is not None:  # no answer from the CRM: not an attempt
                session.delete(attempt)
                self._life.postpone(job, now + timedelta(seconds=verdict.postpone_s))
                log.info("job %s postponed: %s", job.id, verdict.reason)
            else:
                attempt.ended_at, attempt.outcome, attempt.detail = now, NOT_WANTED, verdict.reason
                self._life.cancel(job, f"{CRM_DECLINED}: {verdict.reason}")

    def _fresh_slot(self) -> datetime:
        now = self._clock()
        with transaction(self._sessions) as session:
            slots = reserve_slots(session, now=now, rate=self._limits.calls_per_second,
                                  wanted=1, horizon=self._limits.lease / 3)
            return slots[0] if slots else now + self._limits.horizon  # ask again then

    async def _keep_lease(self, job_id: str) -> None:
        interval = self._limits.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self._run_blocking(self._renew, job_id)
            except Exception as exc:  # the database may be away: try again next time
                self._tasks.report("lease renewal", exc)

    def _renew(self, job_id: str) -> None:
        with transaction(self._sessions) as session:
            job = session.get(Job, job_id)
            if job is not None and job.lease_owner == self.owner:
                job.lease_expires_at = self._clock() + self._limits.lease

    def _store_dialog(self, attempt_id: int, dialog: dict[str, Any]) -> None:
        with transaction(self._sessions) as session:
            session.get_one(CallAttempt, attempt_id).dialog = dialog

    def _store_answer(self, attempt_id: int, result: str, value: int | None) -> None:
        with transaction(self._sessions) as session:
            attempt = session.get_one(CallAttempt, attempt_id)
            attempt.result, attempt.result_value = result, value
            attempt.result_at = self._clock()

    def _settle(self, claimed: Claimed, report: CallReport) -> None:
        now = self._clock()
        with transaction(self._sessions) as session:
            job = session.get(Job, claimed.job_id)
            attempt = session.get(CallAttempt, claimed.attempt_id)
            if job is None or attempt is None:
                return
            if job.status != JobStatus.DIALING or job.lease_owner != self.owner:
                # Settled elsewhere while the call ran (its lease lost): keep the facts only.
                attempt.ended_at, attempt.outcome = now, report.outcome.value
                log.warning("job %s settled elsewhere; attempt %d recorded only", job.id,
                            attempt.number)
                return
            self._life.settle(session, job, attempt, report, now)

    # --- calls of dead processes ---------------------------------------------------------------

    async def _end_orphans(self, whose: ColumnElement[bool]) -> Recovered:
        orphans = await self._run_blocking(self._orphans, whose)
        ended = await asyncio.gather(*(  # at once: each BYE may wait for its transaction timeout
            self._backend.end_orphan(orphan.dialog) for orphan in orphans
            if orphan.dialog is not None
        ))
        hung_up = sum(ended)
        settled = await self._run_blocking(self._settle_orphans, [o.job_id for o in orphans])
        return Recovered(settled, hung_up)

    def _orphans(self, whose: ColumnElement[bool]) -> list[Orphan]:
        with transaction(self._sessions) as session:
            rows = session.execute(
                select(Job.id, CallAttempt.dialog)
                .join(CallAttempt, (CallAttempt.job_id == Job.id)
                      & (CallAttempt.number == Job.attempts))
                .where(Job.status == JobStatus.DIALING, whose, CallAttempt.ended_at.is_(None))
            ).all()
            return [Orphan(job_id, dialog) for job_id, dialog in rows]

    def _settle_orphans(self, job_ids: list[str]) -> int:
        now = self._clock()
        settled = 0
        with transaction(self._sessions) as session:
            jobs = session.scalars(
                select(Job).where(Job.id.in_(job_ids), Job.status == JobStatus.DIALING)
                .with_for_update(skip_locked=True)
            ).all()
            for job in jobs:
                self._life.settle_orphan(session, job, now)
                settled += 1
        return settled


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
