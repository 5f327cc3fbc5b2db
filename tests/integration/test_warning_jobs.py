"""Warning jobs (low balance, campaign stopping) with an injected clock and the in-memory
backend, on SQLite and PostgreSQL: queueing from the CRM's events, what each key does, top-ups
(before the call, while it rings, after the answer, out of order), retries and the window, the
clients' own zones and holidays, the contact rules against surveys, campaign stops, fair turns
of the kinds, and the CRM's pre-dial check against the lab CRM over real HTTP."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from campaigns.calendar import BusinessCalendar
from campaigns.callback_sources import CallbackSources
from campaigns.calling_window import DEFAULT_CALLING_HOURS, CallingWindow
from campaigns.crm_check import CrmCheck, UnavailablePolicy
from campaigns.deadlines import low_score_deadline
from campaigns.dispatcher import NOT_WANTED, Dispatcher, DispatchLimits
from campaigns.events import parse_event
from campaigns.intake import Intake, IntakeResult, event_handlers
from campaigns.models import (
    CallAttempt,
    CallbackTask,
    DoNotCall,
    DoNotCallClient,
    Job,
    JobKind,
    JobStatus,
    OutboxEvent,
)
from campaigns.purpose import NEXT_WINDOW, CallPurpose
from campaigns.surveys import Surveys
from campaigns.warnings import MANAGER_REQUESTED, TOPPED_UP, WarningPolicy, Warnings
from infra.db import transaction
from ivr.results import FlowResult
from lab.crm_receiver import CheckAnswer, CrmReceiver
from telephony.backend import CallProgress, CallReport, FlowCall
from telephony.memory import MemoryBackend, Scripted
from telephony.outcomes import Outcome
from tests.integration.test_crm_check import SECRET
from tests.integration.test_survey_jobs import (
    Clock,
    make_surveys,
    moscow,
    outbox_types,
    run_due,
)

CALENDAR = BusinessCalendar.from_settings(timezone="Europe/Moscow")  # RU public holidays
PHONE = "+79990000001"
BUSY = Scripted(Outcome.BUSY, 486)
INVOICE = Scripted(result=FlowResult.INVOICE)
MANAGER = Scripted(result=FlowResult.MANAGER)
TRANSFERRED = Scripted(result=FlowResult.TRANSFERRED)
OPT_OUT = Scripted(result=FlowResult.OPT_OUT)


@dataclass
class Lab:
    """ringback's campaign side around one injected clock: the intake as `serve` builds it
    (surveys and warnings), and dispatchers over every kind."""

    sessions: sessionmaker[Session]
    clock: Clock
    surveys: Surveys
    warnings: Warnings
    intake: Intake

    def event(self, type_: str, data: dict[str, Any], occurred_at: datetime | None = None,
              ) -> str:
        """Apply one CRM event through the intake; its id."""
        event_id = f"evt-{uuid.uuid4().hex}"
        body = json.dumps({"id": event_id, "type": type_,
                           "occurred_at": (occurred_at or self.clock.at).isoformat(),
                           "data": data}).encode()
        assert self.intake.handle(parse_event(body, "RU")) == IntakeResult.ACCEPTED
        return event_id

    def balance_low(self, client: str = "c-1", phone: str = PHONE, *,
                    zone: str | None = "Europe/Moscow", occurred_at: datetime | None = None,
                    **extra: Any) -> Job:
        event_id = self.event("balance.low", {
            "client_id": client, "phone": phone, "balance": "120.50", "currency": "RUB",
            "timezone": zone, **extra,
        }, occurred_at)
        return self.job_of(event_id)

    def campaign_stopping(self, stops_at: datetime, client: str = "c-1", phone: str = PHONE,
                          **extra: Any) -> Job:
        event_id = self.event("campaign.stopping", {
            "client_id": client, "phone": phone, "campaign_id": "cmp-1",
            "campaign_name": "Winter sale", "stops_at": stops_at.isoformat(),
            "timezone": "Europe/Moscow", **extra,
        })
        return self.job_of(event_id)

    def topped_up(self, client: str = "c-1", occurred_at: datetime | None = None) -> None:
        self.event("balance.topped_up", {"client_id": client, "amount": "1000"}, occurred_at)

    def survey(self, client: str = "c-1", phone: str = PHONE, due: datetime | None = None,
               ) -> Job:
        """A survey for a support call that ended 30 minutes before `due` (default: now)."""
        ended = (due or self.clock.at) - timedelta(minutes=30)
        event_id = self.event("call.completed", {
            "call_id": f"call-{uuid.uuid4().hex[:6]}", "client_id": client, "phone": phone,
            "ended_at": ended.isoformat(), "duration_s": 120, "timezone": "Europe/Moscow",
        })
        return self.job_of(event_id)

    def job_of(self, event_id: str) -> Job:
        with transaction(self.sessions) as session:
            return session.scalars(select(Job).where(Job.source_event_id == event_id)).one()

    def job(self, job_id: str) -> Job:
        with transaction(self.sessions) as session:
            return session.get_one(Job, job_id)

    def attempts(self, job_id: str) -> list[CallAttempt]:
        with transaction(self.sessions) as session:
            return list(session.scalars(select(CallAttempt).where(CallAttempt.job_id == job_id)
                                        .order_by(CallAttempt.number)))

    def outbox(self, type_: str | None = None) -> list[dict[str, Any]]:
        """The events for the CRM (their data), oldest first."""
        with transaction(self.sessions) as session:
            query = select(OutboxEvent.payload).order_by(OutboxEvent.id)
            if type_ is not None:
                query = query.where(OutboxEvent.type == type_)
            return [payload["data"] for payload in session.scalars(query)]

    def purposes(self) -> dict[str, CallPurpose]:
        warning_kinds: dict[str, CallPurpose] = {
            purpose.kind: purpose for purpose in self.warnings.purposes.values()}
        return {self.surveys.kind: self.surveys, **warning_kinds}

    def dispatcher(self, backend: MemoryBackend, *, channels: int = 5,
                   crm_check: CrmCheck | None = None) -> Dispatcher:
        return Dispatcher(
            self.sessions, self.purposes(), backend, instance="test",
            limits=DispatchLimits(channels=channels, calls_per_second=50,
                                  lease=timedelta(seconds=60)),
            clock=self.clock, crm_check=crm_check,
        )


def make_lab(sessions: sessionmaker[Session], at: datetime,
             hours: str = DEFAULT_CALLING_HOURS, **policy: Any) -> Lab:
    clock = Clock(at)
    surveys = make_surveys(clock)
    window = CallingWindow.from_settings(CALENDAR, hours)
    warnings = Warnings(WarningPolicy(window=window, **policy), CALENDAR, clock)
    callbacks = CallbackSources(surveys.calendar, surveys.clock)
    intake = Intake(sessions, event_handlers(surveys, warnings, callbacks), default_region="RU")
    return Lab(sessions, clock, surveys, warnings, intake)


async def run_all(d: Dispatcher, clock: Clock) -> int:
    """Tick until nothing is claimed, each call run to its end; a second between claims (the
    shared dial budget spaces calls, and the injected clock only moves when told)."""
    placed = 0
    while claimed := await run_due(d):
        placed += claimed
        clock.at += timedelta(seconds=1)
    return placed


async def until(check: Callable[[], bool], what: str) -> None:
    """Wait (10 s at most) for what a running call does in the background."""
    try:
        async with asyncio.timeout(10):
            while True:
                if check():
                    return
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"not within 10 s: {what}") from None


class HoldingBackend(MemoryBackend):
    """Like MemoryBackend, but an answered call stays up (its answer given and stored) until
    `release()`; a withdrawal meanwhile does not cut it, as a real backend does not."""

    def __init__(self, default: Scripted) -> None:
        super().__init__(default)
        self.up: list[FlowCall] = []
        self._released = asyncio.Event()

    def release(self) -> None:
        self._released.set()

    async def run(self, call: FlowCall, progress: CallProgress) -> CallReport:
        report = await super().run(call, progress)
        if report.outcome is Outcome.ANSWERED:
            self.up.append(call)
            await self._released.wait()
            self.up.remove(call)
        return report


def dialing_per_client(sessions: sessionmaker[Session]) -> dict[str, int]:
    with transaction(sessions) as session:
        rows = session.execute(select(Job.client_id, func.count())
                               .where(Job.status == JobStatus.DIALING)
                               .group_by(Job.client_id)).all()
    return {client: count for client, count in rows}


# --- 1. the keys ------------------------------------------------------------------------------


async def test_balance_low_queues_one_call_and_key_1_asks_for_the_invoice(
    sessions: sessionmaker[Session],
) -> None:
    lab = make_lab(sessions, moscow("2026-11-24T12:00"))  # a Tuesday
    job = lab.balance_low()
    assert (job.kind, job.status, job.not_before) == (
        JobKind.BALANCE_WARNING, JobStatus.PENDING, lab.clock.at)
    assert lab.warnings.policy.window.is_allowed(job.not_before, ZoneInfo(job.timezone))
    with transaction(sessions) as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 1

    backend = MemoryBackend(INVOICE)
    assert await run_due(lab.dispatcher(backend)) == 1
    [call] = backend.calls
    assert (call.phone, call.flow, call.values["balance"], call.values["currency"]) == (
        PHONE, "balance_warning", "120.50", "RUB")
    stored = lab.job(job.id)
    assert (stored.status, stored.final_reason, stored.attempts) == (
        JobStatus.COMPLETED, "delivered, key 1", 1)
    assert outbox_types(sessions) == ["invoice.requested", "warning.delivered"]
    [invoice] = lab.outbox("invoice.requested")
    assert (invoice["job_id"], invoice["client_id"], invoice["balance"]) == (
        job.id, "c-1", "120.50")
    [delivered] = lab.outbox("warning.delivered")
    assert (delivered["key"], delivered["result"], delivered["transferred"],
            delivered["warning"], delivered["attempts"]) == ("1", "invoice", False, "balance", 1)
    assert await run_due(lab.dispatcher(backend)) == 0  # never twice


async def test_key_2_without_a_manager_phone_opens_one_callback_task(
    sessions: sessionmaker[Session],
) -> None:
    lab = make_lab(sessions, moscow("2026-11-24T18:20"))  # Tuesday, 40 working minutes left
    job = lab.balance_low(manager_id="mgr-7")
    d = lab.dispatcher(MemoryBackend(MANAGER))
    assert await run_due(d) == 1
    assert lab.job(job.id).status == JobStatus.COMPLETED
    with transaction(sessions) as session:
        task = session.scalars(select(CallbackTask)).one()
        assert (task.reason, task.client_id, task.phone, task.agent_id, task.requests,
                task.source_job_id) == (MANAGER_REQUESTED, "c-1", PHONE, "mgr-7", 1, job.id)
        assert task.deadline == low_score_deadline(lab.clock.at, CALENDAR, 120)
        assert task.deadline == moscow("2026-11-25T11:20")  # 40 min today, 80 tomorrow
        task_id = task.id
    assert outbox_types(sessions) == [
        "callback_task.created", "manager.requested", "warning.delivered"]
    [manager] = lab.outbox("manager.requested")
    assert (manager["task_id"], manager["manager_id"], manager["job_id"]) == (
        task_id, "mgr-7", job.id)
    [delivered] = lab.outbox("warning.delivered")
    assert (delivered["key"], delivered["result"], delivered["transferred"]) == (
        "2", "manager", False)

    # The same client asks again (another warning) while the task is open: that task grows.
    lab.clock.at = moscow("2026-11-24T19:00")
    second = lab.campaign_stopping(moscow("2026-11-27T00:00"))
    assert await run_due(d) == 1
    assert lab.job(second.id).status == JobStatus.COMPLETED
    with transaction(sessions) as session:
        task = session.scalars(select(CallbackTask)).one()
        assert (task.id, task.requests, task.updated_at) == (task_id, 2, lab.clock.at)
    assert outbox_types(sessions)[3:] == [
        "callback_task.updated", "manager.requested", "warning.delivered"]
    [updated] = lab.outbox("callback_task.updated")
    assert (updated["task_id"], updated["requests"]) == (task_id, 2)
    assert [m["task_id"] for m in lab.outbox("manager.requested")] == [task_id, task_id]
    assert lab.outbox("warning.delivered")[1]["key"] == "2"


async def test_key_2_put_through_is_delivered_without_a_task(
    sessions: sessionmaker[Session],
) -> None:
    lab = make_lab(sessions, moscow("2026-11-24T12:00"), manager_phone="+79990000100")
    job = lab.balance_low()
    backend = MemoryBackend(TRANSFERRED)
    assert await run_due(lab.dispatcher(backend)) == 1
    assert backend.calls[0].values["manager_phone"] == "+79990000100"
    assert lab.job(job.id).status == JobStatus.COMPLETED
    assert outbox_types(sessions) == ["warning.delivered"]
    [delivered] = lab.outbox("warning.delivered")
    assert (delivered["key"], delivered["result"], delivered["transferred"]) == (
        "2", "transferred", True)
    with transaction(sessions) as session:
        assert session.scalar(select(func.count()).select_from(CallbackTask)) == 0


async def test_key_9_opts_the_client_out_of_every_kind_of_call(
    sessions: sessionmaker[Session],
) -> None:
    lab = make_lab(sessions, moscow("2026-11-24T12:00"))
    warning = lab.balance_low()
    survey = lab.survey(due=lab.clock.at + timedelta(minutes=30))  # pending, due later
    assert survey.status == JobStatus.PENDING
    backend = MemoryBackend(OPT_OUT)
    d = lab.dispatcher(backend)
    assert await run_due(d) == 1
    assert [call.job_id for call in backend.calls] == [warning.id]

    assert lab.job(warning.id).status == JobStatus.COMPLETED
    assert lab.job(survey.id).status == JobStatus.SKIPPED  # cancelled by the opt-out
    with transaction(sessions) as session:
        assert session.get(DoNotCall, PHONE) is not None
        assert session.get(DoNotCallClient, "c-1") is not None
    assert outbox_types(sessions) == ["client.opted_out", "warning.delivered"]
    [opted] = lab.outbox("client.opted_out")
    assert (opted["client_id"], opted["phones"], opted["cancelled_job_ids"]) == (
        "c-1", [PHONE], [survey.id])
    assert lab.outbox("warning.delivered")[0]["key"] == "9"

    # Whatever comes next for this client, on its number or a new one, is never dialed.
    lab.clock.at = moscow("2026-11-26T12:00")  # past every cap period but the survey's
    later = [
        lab.balance_low(),
        lab.balance_low(phone="+79990000055"),
        lab.campaign_stopping(moscow("2026-11-28T00:00")),
        lab.survey(client="c-1", phone="+79990000056"),
    ]
    assert {job.status for job in later} == {JobStatus.SKIPPED}
    for _ in range(12):
        lab.clock.at += timedelta(hours=2)
        await run_all(d, lab.clock)
    assert [call.job_id for call in backend.calls] == [warning.id]  # no further call at all


# --- 2. top-ups -------------------------------------------------------------------------------


async def test_a_top_up_cancels_the_pending_balance_warning_only(
    sessions: sessionmaker[Session],
) -> None:
    lab = make_lab(sessions, moscow("2026-11-24T12:00"))
    balance = lab.balance_low()
    campaign = lab.campaign_stopping(moscow("2026-11-27T00:00"))
    lab.clock.at += timedelta(minutes=1)
    lab.topped_up()
    stored = lab.job(balance.id)
    assert (stored.status, stored.final_reason) == (JobStatus.CANCELLED, TOPPED_UP)
    assert lab.job(campaign.id).status == JobStatus.PENDING

    backend = MemoryBackend(INVOICE)
    assert await run_all(lab.dispatcher(backend), lab.clock) == 1
    assert [call.job_id for call in backend.calls] == [campaign.id]
    assert lab.attempts(balance.id) == []
    assert lab.job(campaign.id).status == JobStatus.COMPLETED
    assert lab.outbox("warning.failed") == []
    assert [d["warning"] for d in lab.outbox("warning.delivered")] == ["campaign"]


async def test_a_top_up_while_the_call_rings_withdraws_it(
    sessions: sessionmaker[Session],
) -> None:
    lab = make_lab(sessions, moscow("2026-11-24T12:00"))
    job = lab.balance_low()
    backend = MemoryBackend(Scripted(rings=True))
    d = lab.dispatcher(backend)
    assert await d.tick() == 1
    await until(lambda: len(backend.calls) == 1, "the call rings")
    lab.clock.at += timedelta(seconds=20)
    lab.topped_up()
    assert lab.job(job.id).status == JobStatus.DIALING  # still ringing: withdrawn, not ended
    assert await d.tick() == 0  # the next tick tells the call
    await d.drain(10)

    assert [call.job_id for call in backend.withdrawn] == [job.id]
    stored = lab.job(job.id)
    assert (stored.status, stored.final_reason, stored.attempts) == (
        JobStatus.CANCELLED, TOPPED_UP, 1)
    [attempt] = lab.attempts(job.id)
    assert (attempt.outcome, attempt.sip_status) == ("cancelled", 487)
    assert lab.outbox("warning.failed") == [] and lab.outbox("warning.delivered") == []
    lab.clock.at += timedelta(hours=2)
    assert await run_all(d, lab.clock) == 0  # no retry
    assert len(backend.calls) == 1


async def test_a_top_up_after_the_answer_lets_the_call_finish(
    sessions: sessionmaker[Session],
) -> None:
    lab = make_lab(sessions, moscow("2026-11-24T12:00"))
    job = lab.balance_low()
    backend = HoldingBackend(INVOICE)
    d = lab.dispatcher(backend)
    assert await d.tick() == 1
    await until(lambda: len(backend.up) == 1, "the call is answered")
    lab.clock.at += timedelta(seconds=30)
    lab.topped_up()
    assert await d.tick() == 0  # the withdrawal reaches the call, which goes on
    await asyncio.sleep(0.1)
    assert lab.job(job.id).status == JobStatus.DIALING
    backend.release()
    await d.drain(10)

    assert backend.withdrawn == []
    stored = lab.job(job.id)
    assert (stored.status, stored.final_reason) == (JobStatus.COMPLETED, "delivered, key 1")
    assert outbox_types(sessions) == ["invoice.requested", "warning.delivered"]
    [attempt] = lab.attempts(job.id)
    assert (attempt.outcome, attempt.result) == ("answered", "invoice")


async def test_a_top_up_that_arrives_before_an_older_low_balance_cancels_it_before_dialing(
    sessions: sessionmaker[Session],
) -> None:
    lab = make_lab(sessions, moscow("2026-11-24T12:00"))
    lab.topped_up(occurred_at=moscow("2026-11-24T11:58"))  # nothing to cancel yet
    job = lab.balance_low(occurred_at=moscow("2026-11-24T11:55"))  # delivered late
    assert lab.job(job.id).status == JobStatus.PENDING
    backend = MemoryBackend(INVOICE)
    assert await run_due(lab.dispatcher(backend)) == 0
    assert backend.calls == []
    stored = lab.job(job.id)
    assert (stored.status, stored.final_reason) == (JobStatus.CANCELLED, TOPPED_UP)
    assert lab.outbox() == []


async def test_a_top_up_older_than_the_low_balance_does_not_stop_the_call(
    sessions: sessionmaker[Session],
) -> None:
    lab = make_lab(sessions, moscow("2026-11-24T12:00"))
    lab.topped_up(occurred_at=moscow("2026-11-24T09:00"))  # then the balance ran low again
    job = lab.balance_low(occurred_at=moscow("2026-11-24T11:55"))
    backend = MemoryBackend(INVOICE)
    assert await run_due(lab.dispatcher(backend)) == 1
    assert lab.job(job.id).status == JobStatus.COMPLETED


class BusyCrossingTheWithdrawal(MemoryBackend):
    """The far end's busy crosses our CANCEL: the call rings until it is withdrawn, then the
    far end's 486 arrives before the CANCEL takes effect."""

    async def run(self, call: FlowCall, progress: CallProgress) -> CallReport:
        await progress.dial_slot()
        self.calls.append(call)
        await progress.withdrawn.wait()
        return CallReport(Outcome.BUSY, 486, "memory-busy")


async def test_a_withdrawn_call_that_ends_busy_is_not_retried(
    sessions: sessionmaker[Session],
) -> None:
    lab = make_lab(sessions, moscow("2026-11-24T12:00"), max_attempts=1)
    job = lab.balance_low()
    backend = BusyCrossingTheWithdrawal()
    d = lab.dispatcher(backend)
    assert await d.tick() == 1
    await until(lambda: len(backend.calls) == 1, "the call rings")
    lab.topped_up()
    assert await d.tick() == 0
    await d.drain(10)
    stored = lab.job(job.id)
    assert (stored.status, stored.final_reason) == (JobStatus.CANCELLED, TOPPED_UP)
    assert [a.outcome for a in lab.attempts(job.id)] == ["busy"]
    assert lab.outbox("warning.failed") == []  # the client paid: no failure to report


async def test_a_top_up_while_the_crm_is_asked_stops_the_call_before_it_goes_out(
    sessions: sessionmaker[Session], crm: CrmReceiver, crm_check: CrmCheck,
) -> None:
    lab = make_lab(sessions, moscow("2026-11-24T12:00"))
    job = lab.balance_low()
    crm.answer_check("c-1", CheckAnswer.verdict(True, delay_s=0.5))  # the CRM is slow
    backend = MemoryBackend(INVOICE)
    d = lab.dispatcher(backend, crm_check=crm_check)
    assert await d.tick() == 1
    await until(lambda: len(crm.checks) == 1, "the CRM is asked")
    lab.topped_up()  # meanwhile the client pays
    assert await d.tick() == 0
    await d.drain(10)
    assert backend.calls == []  # withdrawn before it went out: never dialed
    assert [call.job_id for call in backend.withdrawn] == [job.id]
    stored = lab.job(job.id)
    assert (stored.status, stored.final_reason) == (JobStatus.CANCELLED, TOPPED_UP)
    assert [a.outcome for a in lab.attempts(job.id)] == ["cancelled"]
    assert lab.outbox() == []


async def test_a_top_up_in_the_same_second_but_before_the_low_balance_does_not_cancel(
    sessions: sessionmaker[Session],
) -> None:
    lab = make_lab(sessions, moscow("2026-11-24T12:00"))
    low_at = moscow("2026-11-24T11:55:00.700")
    lab.topped_up(occurred_at=low_at - timedelta(milliseconds=500))  # paid, then spent it
    job = lab.balance_low(occurred_at=low_at)
    assert await run_due(lab.dispatcher(MemoryBackend(INVOICE))) == 1
    assert lab.job(job.id).status == JobStatus.COMPLETED


async def test_a_stale_top_up_delivered_late_does_not_cancel_a_newer_warning(
    sessions: sessionmaker[Session],
) -> None:
    lab = make_lab(sessions, moscow("2026-11-24T12:00"))
    job = lab.balance_low(occurred_at=moscow("2026-11-24T11:59"))
    lab.clock.at += timedelta(minutes=1)
    lab.topped_up(occurred_at=moscow("2026-11-24T09:00"))  # the CRM's retry, hours late
    assert lab.job(job.id).status == JobStatus.PENDING  # the balance ran low after it
    assert await run_due(lab.dispatcher(MemoryBackend(INVOICE))) == 1
    assert lab.job(job.id).status == JobStatus.COMPLETED


# --- 3. retries -------------------------------------------------------------------------------


async def test_busy_twice_then_answered_follows_the_default_delays(
    sessions: sessionmaker[Session],
) -> None:
    lab = make_lab(sessions, moscow("2026-11-24T12:00"))
    job = lab.balance_low()
    backend = MemoryBackend(scripts={PHONE: [BUSY, BUSY, INVOICE]})
    d = lab.dispatcher(backend)
    assert await run_due(d) == 1
    assert lab.job(job.id).not_before == moscow("2026-11-24T12:15")
    lab.clock.at = moscow("2026-11-24T12:14")
    assert await run_due(d) == 0  # not yet
    lab.clock.at = moscow("2026-11-24T12:15")
    assert await run_due(d) == 1
    assert lab.job(job.id).not_before == moscow("2026-11-24T13:15")
    lab.clock.at = moscow("2026-11-24T13:15")
    assert await run_due(d) == 1

    stored = lab.job(job.id)
    assert (stored.status, stored.attempts) == (JobStatus.COMPLETED, 3)
    assert [(a.number, a.outcome, a.started_at) for a in lab.attempts(job.id)] == [
        (1, "busy", moscow("2026-11-24T12:00")),
        (2, "busy", moscow("2026-11-24T12:15")),
        (3, "answered", moscow("2026-11-24T13:15")),
    ]
    [delivered] = lab.outbox("warning.delivered")
    assert delivered["attempts"] == 3


async def test_a_retry_past_the_window_lands_at_the_next_mornings_start(
    sessions: sessionmaker[Session],
) -> None:
    lab = make_lab(sessions, moscow("2026-11-24T18:55"), hours="mon-sun 09:00-19:00")
    job = lab.balance_low()
    assert await run_due(lab.dispatcher(MemoryBackend(BUSY))) == 1
    stored = lab.job(job.id)
    assert stored.status == JobStatus.PENDING
    assert stored.not_before == moscow("2026-11-25T09:00")  # not 19:10


async def test_attempts_spent_report_warning_failed_and_next_window_is_the_last_delay(
    sessions: sessionmaker[Session],
) -> None:
    lab = make_lab(sessions, moscow("2026-11-24T12:00"))  # 4 attempts: 15m, 1h, next-window
    job = lab.balance_low()
    backend = MemoryBackend(BUSY)
    d = lab.dispatcher(backend)
    expected = [moscow("2026-11-24T12:15"), moscow("2026-11-24T13:15"),
                moscow("2026-11-25T09:00")]  # the third wait: the start of the next window
    for retry in expected:
        assert await run_due(d) == 1
        stored = lab.job(job.id)
        assert (stored.status, stored.not_before) == (JobStatus.PENDING, retry)
        lab.clock.at = retry
    assert await run_due(d) == 1
    stored = lab.job(job.id)
    assert (stored.status, stored.attempts) == (JobStatus.UNANSWERED, 4)
    assert stored.final_reason == "busy after 4 attempt(s)"
    [failed] = lab.outbox("warning.failed")
    assert (failed["job_id"], failed["reason"], failed["attempts"], failed["warning"]) == (
        job.id, "busy after 4 attempt(s)", 4, "balance")
    assert lab.outbox("warning.delivered") == []
    lab.clock.at += timedelta(days=1)
    assert await run_due(d) == 0 and len(backend.calls) == 4


class BusyAfterRinging(MemoryBackend):
    """The phone rings until `hang_up()`, then the far end says busy."""

    def __init__(self) -> None:
        super().__init__(BUSY)
        self._hung_up = asyncio.Event()

    def hang_up(self) -> None:
        self._hung_up.set()

    async def run(self, call: FlowCall, progress: CallProgress) -> CallReport:
        await progress.dial_slot()
        self.calls.append(call)
        await self._hung_up.wait()
        return CallReport(Outcome.BUSY, 486, f"memory-{len(self.calls)}")


async def test_next_window_after_a_call_that_ended_past_closing_is_the_next_morning(
    sessions: sessionmaker[Session],
) -> None:
    lab = make_lab(sessions, moscow("2026-11-24T20:59"),
                   retry_delays=(NEXT_WINDOW,))
    job = lab.balance_low()
    backend = BusyAfterRinging()
    d = lab.dispatcher(backend)
    assert await d.tick() == 1
    await until(lambda: len(backend.calls) == 1, "the call rings")
    lab.clock.at = moscow("2026-11-24T21:01")  # it rang past closing time
    backend.hang_up()
    await d.drain(10)
    stored = lab.job(job.id)
    assert (stored.status, stored.not_before) == (JobStatus.PENDING, moscow("2026-11-25T09:00"))


async def test_max_attempts_from_the_policy_are_kept(sessions: sessionmaker[Session]) -> None:
    lab = make_lab(sessions, moscow("2026-11-24T12:00"), max_attempts=2)
    job = lab.balance_low()
    d = lab.dispatcher(MemoryBackend(Scripted(Outcome.NO_ANSWER, 480)))
    assert await run_due(d) == 1
    lab.clock.at = moscow("2026-11-24T12:15")
    assert await run_due(d) == 1
    stored = lab.job(job.id)
    assert (stored.status, stored.attempts) == (JobStatus.UNANSWERED, 2)
    [failed] = lab.outbox("warning.failed")
    assert (failed["reason"], failed["attempts"]) == ("no_answer after 2 attempt(s)", 2)


# --- 4. the clients' own zones and holidays ---------------------------------------------------

CLIENT_ZONES = {  # client: (phone, zone)
    "c-msk": ("+79990000011", "Europe/Moscow"),
    "c-vvo": ("+79990000012", "Asia/Vladivostok"),
    "c-nyc": ("+12125550123", "America/New_York"),
}
HOLIDAY = date(2026, 11, 4)  # Unity Day, a public holiday in Russia (a Wednesday)


def inside_default_window(at: datetime) -> bool:
    """The default calling hours, spelled out: weekdays 09-21, weekends 10-20, no holiday."""
    if at.date() == HOLIDAY:
        return False
    start, end = (time(9), time(21)) if at.weekday() < 5 else (time(10), time(20))
    return start <= at.time() < end


async def test_each_client_is_called_inside_its_own_window_and_never_on_a_holiday(
    sessions: sessionmaker[Session],
) -> None:
    start = datetime(2026, 11, 3, 0, 0, tzinfo=UTC)  # Moscow 03:00, Vladivostok 10:00, NY 19:00
    lab = make_lab(sessions, start, max_attempts=40, retry_delays=(timedelta(hours=2),))
    jobs = {}
    for client, (phone, zone) in CLIENT_ZONES.items():
        job = lab.balance_low(client, phone, zone=zone)
        assert job.timezone == zone
        local = job.not_before.astimezone(ZoneInfo(zone))
        assert inside_default_window(local), (client, local)
        jobs[client] = job
    assert jobs["c-msk"].not_before == moscow("2026-11-03T09:00")  # waits for the morning
    assert jobs["c-vvo"].not_before == start and jobs["c-nyc"].not_before == start

    d = lab.dispatcher(MemoryBackend(BUSY), channels=1)
    hour = start
    while hour < start + timedelta(hours=66):  # two days, then the day after
        lab.clock.at = hour
        await run_all(d, lab.clock)
        hour += timedelta(hours=1)

    days: dict[str, set[date]] = {}
    for client, job in jobs.items():
        zone = ZoneInfo(CLIENT_ZONES[client][1])
        placed = [a.started_at.astimezone(zone) for a in lab.attempts(job.id)]
        assert len(placed) >= 5, (client, placed)
        for at in placed:
            assert inside_default_window(at), (client, at.isoformat())
            assert lab.warnings.policy.window.is_allowed(at, zone)
        days[client] = {at.date() for at in placed}
        assert HOLIDAY not in days[client]
    assert days["c-msk"] == {date(2026, 11, 3), date(2026, 11, 5)}
    assert days["c-vvo"] == {date(2026, 11, 3), date(2026, 11, 5)}
    assert days["c-nyc"] == {date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 5)}


# --- 5. the contact rules ---------------------------------------------------------------------


async def test_one_balance_warning_per_client_per_24_hours(
    sessions: sessionmaker[Session],
) -> None:
    lab = make_lab(sessions, moscow("2026-11-24T12:00"))
    first = lab.balance_low()
    lab.clock.at = moscow("2026-11-24T15:00")
    second = lab.balance_low()
    assert first.status == JobStatus.PENDING
    assert second.status == JobStatus.SKIPPED
    assert second.final_reason == "client already contacted (balance_warning) within 24h"
    assert await run_due(lab.dispatcher(MemoryBackend(INVOICE))) == 1
    assert lab.job(first.id).status == JobStatus.COMPLETED

    lab.clock.at = moscow("2026-11-25T11:59")  # the next day, but within 24 hours
    assert lab.balance_low().status == JobStatus.SKIPPED
    lab.clock.at = moscow("2026-11-25T12:01")
    third = lab.balance_low()
    assert (third.status, third.not_before) == (JobStatus.PENDING, lab.clock.at)
    assert lab.outbox("warning.failed") == []


async def test_a_survey_and_a_warning_due_together_are_never_placed_at_once(
    sessions: sessionmaker[Session],
) -> None:
    lab = make_lab(sessions, moscow("2026-11-24T12:00"))
    warning = lab.balance_low()
    survey = lab.survey()
    assert warning.not_before == survey.not_before == lab.clock.at
    backend = HoldingBackend(Scripted(result=FlowResult.SCORE, value=5))
    d = lab.dispatcher(backend, channels=5)

    assert await d.tick() == 1  # only one of them, though channels are free
    await until(lambda: len(backend.up) == 1, "the first call is up")
    assert dialing_per_client(sessions) == {"c-1": 1}
    lab.clock.at += timedelta(seconds=30)
    assert await d.tick() == 0  # the second waits while the first is up
    statuses = {lab.job(warning.id).status, lab.job(survey.id).status}
    assert statuses == {JobStatus.DIALING, JobStatus.PENDING}
    backend.release()
    await d.drain(10)

    lab.clock.at += timedelta(seconds=30)
    assert await d.tick() == 1
    await d.drain(10)
    assert sorted(call.job_id for call in backend.calls) == sorted([warning.id, survey.id])
    assert lab.job(warning.id).status == JobStatus.COMPLETED
    assert lab.job(survey.id).status == JobStatus.COMPLETED
    first, second = (lab.attempts(job_id)[0] for job_id in (backend.calls[0].job_id,
                                                             backend.calls[1].job_id))
    assert first.ended_at is not None and second.started_at >= first.ended_at


# --- 6. campaign stops ------------------------------------------------------------------------


async def test_a_campaign_stopping_before_the_window_opens_is_dropped_at_once(
    sessions: sessionmaker[Session],
) -> None:
    lab = make_lab(sessions, moscow("2026-11-24T22:00"))  # closed until 09:00 tomorrow
    job = lab.campaign_stopping(moscow("2026-11-25T00:00"))
    assert job.status == JobStatus.UNANSWERED
    assert "outside calling window" in (job.final_reason or "")
    [failed] = lab.outbox("warning.failed")
    assert (failed["job_id"], failed["warning"], failed["campaign_id"], failed["attempts"]) == (
        job.id, "campaign", "cmp-1", 0)
    assert failed["reason"] == job.final_reason
    backend = MemoryBackend(INVOICE)
    lab.clock.at = moscow("2026-11-25T09:00")
    assert await run_due(lab.dispatcher(backend)) == 0 and backend.calls == []


async def test_a_campaign_warning_is_cancelled_once_its_campaign_stopped(
    sessions: sessionmaker[Session],
) -> None:
    lab = make_lab(sessions, moscow("2026-11-24T12:00"))
    stops_at = moscow("2026-11-24T14:00")
    job = lab.campaign_stopping(stops_at)
    assert job.status == JobStatus.PENDING and job.not_after == stops_at
    lab.clock.at = stops_at  # no dispatcher ran meanwhile (a busy line, a restart ...)
    backend = MemoryBackend(INVOICE)
    assert await run_due(lab.dispatcher(backend)) == 0
    assert backend.calls == []
    stored = lab.job(job.id)
    assert stored.status == JobStatus.CANCELLED
    assert stored.final_reason == "campaign stopped at 2026-11-24T14:00:00+03:00"
    assert lab.attempts(job.id) == []


# --- 7. fair turns ----------------------------------------------------------------------------


async def test_a_flood_of_warnings_does_not_starve_a_survey(
    sessions: sessionmaker[Session],
) -> None:
    lab = make_lab(sessions, moscow("2026-11-24T12:00"))
    for n in range(30):
        lab.balance_low(f"c-{n}", f"+7999100{n:04d}")
    lab.clock.at += timedelta(minutes=1)
    survey = lab.survey(client="c-s", phone="+79992000000")  # due after every warning
    lab.clock.at += timedelta(minutes=1)
    backend = MemoryBackend(INVOICE)
    d = lab.dispatcher(backend, channels=1)
    for _ in range(2):
        assert await run_due(d) == 1
        lab.clock.at += timedelta(seconds=1)
    assert survey.id in [call.job_id for call in backend.calls]
    assert await run_all(d, lab.clock) == 29  # and every warning is placed too
    assert [call.flow for call in backend.calls].count("balance_warning") == 30


# --- 8. the CRM's pre-dial check --------------------------------------------------------------


@pytest.fixture
async def crm_check(crm: CrmReceiver) -> AsyncIterator[CrmCheck]:
    async with httpx.AsyncClient() as http:
        yield CrmCheck(crm.check_url, SECRET, http, timeout_s=2.0,
                       on_unavailable=UnavailablePolicy.POSTPONE, postpone_s=300)


async def test_the_crm_says_no_and_nobody_is_called(
    sessions: sessionmaker[Session], crm: CrmReceiver, crm_check: CrmCheck,
) -> None:
    lab = make_lab(sessions, moscow("2026-11-24T12:00"))
    job = lab.balance_low()
    crm.answer_check("c-1", CheckAnswer.verdict(False, "paid by bank transfer"))
    backend = MemoryBackend(INVOICE)
    assert await run_due(lab.dispatcher(backend, crm_check=crm_check)) == 1
    assert backend.calls == []
    stored = lab.job(job.id)
    assert stored.status == JobStatus.CANCELLED
    assert stored.final_reason == "not wanted by the CRM: paid by bank transfer"
    [attempt] = lab.attempts(job.id)
    assert (attempt.outcome, attempt.detail) == (NOT_WANTED, "paid by bank transfer")
    [check] = crm.checks
    assert check.verified and check.query == {"kind": ["balance_warning"], "job_id": [job.id]}


async def test_the_crm_down_postpones_without_counting_an_attempt(
    sessions: sessionmaker[Session], crm: CrmReceiver, crm_check: CrmCheck,
) -> None:
    lab = make_lab(sessions, moscow("2026-11-24T12:00"))
    job = lab.balance_low()
    crm.stop()
    backend = MemoryBackend(INVOICE)
    d = lab.dispatcher(backend, crm_check=crm_check)
    assert await run_due(d) == 1
    assert backend.calls == []
    stored = lab.job(job.id)
    assert (stored.status, stored.attempts) == (JobStatus.PENDING, 0)
    assert stored.not_before == lab.clock.at + timedelta(seconds=300)
    assert lab.attempts(job.id) == []
    lab.clock.at += timedelta(seconds=299)
    assert await run_due(d) == 0

    crm.start()  # back, on the same port
    crm.answer_check("c-1", CheckAnswer.verdict(True))
    lab.clock.at += timedelta(seconds=1)
    assert await run_due(d) == 1
    stored = lab.job(job.id)
    assert (stored.status, stored.attempts) == (JobStatus.COMPLETED, 1)
    assert [a.number for a in lab.attempts(job.id)] == [1]
    assert [call.job_id for call in backend.calls] == [job.id]


async def test_surveys_never_ask_the_crm(
    sessions: sessionmaker[Session], crm: CrmReceiver, crm_check: CrmCheck,
) -> None:
    lab = make_lab(sessions, moscow("2026-11-24T12:00"))
    job = lab.survey()  # the CRM would answer 404 (unknown client): not wanted
    backend = MemoryBackend(Scripted(result=FlowResult.SCORE, value=5))
    assert await run_due(lab.dispatcher(backend, crm_check=crm_check)) == 1
    assert [call.job_id for call in backend.calls] == [job.id]
    assert lab.job(job.id).status == JobStatus.COMPLETED
    assert crm.checks == []
