"""The warning calls, two kinds of call (campaigns/purpose.py): a low balance
(`balance.low`) and an ad campaign about to stop (`campaign.stopping`).

A warning is queued inside the client's calling window, at most one per client per reason per
period (a day by default); `balance.topped_up` cancels the client's pending balance warnings and
withdraws one being placed (a ringing call is cancelled, an answered one finishes). A campaign
warning is wanted until the campaign stops: after that it is dropped with the reason. The
client's key: 1 sends the invoice again (`invoice.requested`), 2 reaches the account manager
(put through, else a callback task and `manager.requested`), 9 opts out of every kind of call.
The CRM hears `warning.delivered` (with the key) or `warning.failed` (reason, attempts).
"""

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from campaigns.calendar import BusinessCalendar, format_duration, parse_zone
from campaigns.callback_tasks import TaskRequest, open_task
from campaigns.calling_window import CallingWindow, Dropped
from campaigns.client_zone import client_zone
from campaigns.contact_rules import (
    ALREADY_CONTACTED,
    COUNTED,
    ContactCap,
    contacted_recently,
    lock_client,
)
from campaigns.deadlines import low_score_deadline
from campaigns.do_not_call import SKIP_REASON, opt_out, opted_out
from campaigns.events import BalanceLowData, BalanceToppedUpData, CampaignStoppingData
from campaigns.models import CallAttempt, Job, JobKind, JobStatus, TopUp
from campaigns.outbox import enqueue
from campaigns.purpose import NEXT_WINDOW, KindPolicy
from ivr.results import FlowResult
from ivr.warning import WarningReason
from telephony.backend import CallReport, FlowCall

log = logging.getLogger(__name__)

MANAGER_REQUESTED = "manager_requested"  # the callback task's reason
TOPPED_UP = "balance topped up"
CAMPAIGN_STOPPED = "campaign stopped"  # how the reason of a warning too late begins
KEYS = {FlowResult.INVOICE: "1", FlowResult.MANAGER: "2", FlowResult.TRANSFERRED: "2",
        FlowResult.OPT_OUT: "9"}
KIND_OF = {WarningReason.BALANCE: JobKind.BALANCE_WARNING,
           WarningReason.CAMPAIGN: JobKind.CAMPAIGN_WARNING}


@dataclass(frozen=True)
class WarningPolicy:
    window: CallingWindow  # in the client's zone
    max_attempts: int = 4
    retry_delays: tuple[timedelta | None, ...] = (timedelta(minutes=15), timedelta(hours=1),
                                                  NEXT_WINDOW)
    period: timedelta = timedelta(days=1)  # one warning per client per reason within this
    max_lateness: timedelta = timedelta(days=3)  # after the event, give up
    manager_phone: str | None = None  # key 2 puts the client through here by default
    manager_callback_working_minutes: int = 120
    default_timezone: str = "Europe/Moscow"
    default_locale: str = "ru"


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds")


def _low_since(context: dict[str, Any]) -> datetime:
    """When the balance ran low (the event's time, from a balance warning's context): a top-up
    then or later makes the call unwanted, an earlier one does not."""
    return datetime.fromisoformat(context["occurred_at"])


class WarningPurpose:
    """One reason's kind of call; both share the policy and the clock."""

    def __init__(self, reason: WarningReason, policy: WarningPolicy,
                 calendar: BusinessCalendar) -> None:
        self.reason = reason
        self.kind = KIND_OF[reason]
        self.rules = policy
        self.calendar = calendar
        self.policy = KindPolicy(
            window=policy.window,
            cap=ContactCap(self.kind, policy.period),
            max_attempts=policy.max_attempts,
            retry_delays=policy.retry_delays,
            crm_check=True,  # when one is configured: the client may have paid a minute ago
        )

    def call_for(self, job: Job) -> FlowCall:
        """The job's own values, as the warning flow speaks them."""
        context = job.context
        values = {name: str(context[name]) for name in (
            "balance", "currency", "days_left", "campaign", "stop_date", "name")
            if context.get(name) is not None}
        manager = context.get("manager_phone") or self.rules.manager_phone
        if manager:
            values["manager_phone"] = manager
        return FlowCall(job.id, job.phone, self.reason.flow_name, job.locale, values)

    def unwanted(self, session: Session, job: Job, now: datetime) -> str | None:
        if self.reason is WarningReason.CAMPAIGN:
            stops_at = datetime.fromisoformat(job.context["stops_at"])
            return f"{CAMPAIGN_STOPPED} at {_iso(stops_at)}" if now >= stops_at else None
        paid = session.scalar(select(exists().where(TopUp.client_id == job.client_id,
                                                    TopUp.occurred_at >= _low_since(job.context))))
        return TOPPED_UP if paid else None

    def settle_answered(self, session: Session, job: Job, attempt: CallAttempt,
                        report: CallReport, now: datetime) -> None:
        result = FlowResult(report.result) if report.result is not None else None
        key = KEYS.get(result) if result is not None else None
        job.status = JobStatus.COMPLETED
        job.final_reason = f"delivered, key {key}" if key else f"delivered ({result})"
        base = self._about(job)
        if result is FlowResult.INVOICE:
            enqueue(session, "invoice.requested", job.client_id, base)
        elif result is FlowResult.MANAGER:
            self._manager_requested(session, job, base, now)
        elif result is FlowResult.OPT_OUT:
            opt_out(session, client_id=job.client_id, phone=job.phone, source=f"job:{job.id}",
                    besides=job.id)
        enqueue(session, "warning.delivered", job.client_id, {
            **base, "key": key, "result": result.value if result else None,
            "transferred": result is FlowResult.TRANSFERRED, "attempts": job.attempts,
            "delivered_at": _iso(now),
        })
        log.info("warning job %s delivered: %s", job.id, job.final_reason)

    def give_up(self, session: Session, job: Job, reason: str, now: datetime) -> None:
        enqueue(session, "warning.failed", job.client_id, {
            **self._about(job), "reason": reason, "attempts": job.attempts,
        })
        log.info("warning job %s failed: %s", job.id, reason)

    def _about(self, job: Job) -> dict[str, Any]:
        """What every event about this warning says."""
        context = job.context
        about: dict[str, Any] = {"job_id": job.id, "warning": self.reason.value,
                                 "client_id": job.client_id, "phone": job.phone}
        for name in ("balance", "currency", "campaign_id", "campaign", "stops_at"):
            if context.get(name) is not None:
                about[name] = context[name]
        return about

    def _manager_requested(self, session: Session, job: Job, base: dict[str, Any],
                           now: datetime) -> None:
        manager_id = job.context.get("manager_id")
        task = open_task(session, TaskRequest(
            reason=MANAGER_REQUESTED, client_id=job.client_id, phone=job.phone,
            deadline=low_score_deadline(now, self.calendar,
                                        self.rules.manager_callback_working_minutes),
            source_job_id=job.id, agent_id=manager_id,
            context={key: value for key, value in base.items() if key != "job_id"},
        ), now)
        enqueue(session, "manager.requested", job.client_id, {
            **base, "manager_id": manager_id, "task_id": task.id,
        })


class Warnings:
    """Queues, and cancels, warning calls from the CRM's events."""

    def __init__(self, policy: WarningPolicy, calendar: BusinessCalendar,
                 clock: Callable[[], datetime]) -> None:
        self.policy = policy
        self.clock = clock
        self.purposes = {reason: WarningPurpose(reason, policy, calendar)
                         for reason in WarningReason}

    def on_balance_low(self, session: Session, data: BalanceLowData, event_id: str,
                       occurred_at: datetime) -> Job:
        return self._queue(session, WarningReason.BALANCE, data, event_id, {
            "balance": str(data.balance), "currency": data.currency,
            # Whole: compared with the top-ups' times, to the microsecond (`unwanted`).
            "days_left": data.days_left, "occurred_at": occurred_at.isoformat(),
        }, not_after=self.clock() + self.policy.max_lateness)

    def on_campaign_stopping(self, session: Session, data: CampaignStoppingData,
                             event_id: str, occurred_at: datetime) -> Job:
        zone = client_zone(data.timezone, data.phone, self.policy.default_timezone)
        stop_date = data.stops_at.astimezone(parse_zone(zone.name)).date()
        return self._queue(session, WarningReason.CAMPAIGN, data, event_id, {
            "campaign_id": data.campaign_id, "campaign": data.campaign_name,
            "stops_at": _iso(data.stops_at), "stop_date": stop_date.isoformat(),
            "stop_reason": data.reason, "occurred_at": _iso(occurred_at),
        }, not_after=min(data.stops_at, self.clock() + self.policy.max_lateness))

    def on_topped_up(self, session: Session, data: BalanceToppedUpData, event_id: str,
                     occurred_at: datetime) -> list[str]:
        """Record the top-up; cancel the client's pending balance warnings, and withdraw the
        one being placed, but those whose balance ran low after it (a top-up delivered late).
        Returns the ids of the jobs cancelled or withdrawn."""
        now = self.clock()
        session.add(TopUp(source_event_id=event_id, client_id=data.client_id,
                          amount=None if data.amount is None else str(data.amount),
                          occurred_at=occurred_at))
        live = session.execute(select(Job.id, Job.context).where(
            Job.client_id == data.client_id, Job.kind == JobKind.BALANCE_WARNING,
            Job.status.in_((JobStatus.PENDING, JobStatus.DIALING))))
        mine = Job.id.in_([job_id for job_id, context in live
                           if _low_since(context) <= occurred_at])
        cancelled = list(session.scalars(
            update(Job).where(mine, Job.status == JobStatus.PENDING)
            .values(status=JobStatus.CANCELLED, final_reason=TOPPED_UP, updated_at=now)
            .returning(Job.id).execution_options(synchronize_session=False)
        ))
        withdrawn = list(session.scalars(
            update(Job).where(mine, Job.status == JobStatus.DIALING, Job.withdrawn_at.is_(None))
            .values(withdrawn_at=now, final_reason=TOPPED_UP)
            .returning(Job.id).execution_options(synchronize_session=False)
        ))
        log.info("client %s topped up: %d pending warning(s) cancelled, %d call(s) withdrawn",
                 data.client_id, len(cancelled), len(withdrawn))
        return sorted(cancelled + withdrawn)

    def _queue(self, session: Session, reason: WarningReason,
               data: BalanceLowData | CampaignStoppingData, event_id: str,
               context: dict[str, Any], *, not_after: datetime) -> Job:
        now = self.clock()
        purpose = self.purposes[reason]
        zone = client_zone(data.timezone, data.phone, self.policy.default_timezone)
        job = Job(
            id=str(uuid.uuid4()), kind=purpose.kind, source_event_id=event_id,
            client_id=data.client_id, phone=data.phone, timezone=zone.name,
            locale=data.locale or self.policy.default_locale,
            context={**context, "name": data.name, "manager_id": data.manager_id,
                     "manager_phone": data.manager_phone, "timezone_source": zone.source},
            due_at=now, not_before=now, not_after=not_after,
            max_attempts=self.policy.max_attempts, status=JobStatus.PENDING, attempts=0,
            created_at=now, updated_at=now,
        )
        lock_client(session, data.client_id, data.phone)  # a concurrent twin waits here
        skip = self._skip_reason(session, purpose, data, now)
        session.add(job)
        if skip is not None:
            job.status, job.final_reason = JobStatus.SKIPPED, skip
            log.info("%s warning for client %s skipped: %s", reason, data.client_id, skip)
            return job
        plan = purpose.policy.window.schedule(now, parse_zone(zone.name),
                                              max(not_after - now, timedelta(0)))
        if isinstance(plan, Dropped):
            job.status, job.final_reason = JobStatus.UNANSWERED, plan.reason
            purpose.give_up(session, job, plan.reason, now)
        else:
            job.not_before = plan.at
        return job

    @staticmethod
    def _skip_reason(session: Session, purpose: WarningPurpose,
                     data: BalanceLowData | CampaignStoppingData, now: datetime) -> str | None:
        if opted_out(session, data.client_id, data.phone):
            return SKIP_REASON
        cap = purpose.policy.cap
        if contacted_recently(session, cap, data.client_id, data.phone, now, counting=COUNTED):
            return f"{ALREADY_CONTACTED} ({cap.kind}) within {format_duration(cap.period)}"
        return None
