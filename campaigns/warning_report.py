"""What the warning calls achieved, over the warnings queued in a period: how many were queued,
reached, failed and cancelled (and why), which key the clients pressed, and whether the clients
warned of a low balance topped up soon after, reached or not.

Counted by the database (GROUP BY), whatever the number of jobs.

- A warning is *queued* when its job was created in `[start, end)`, whatever became of it.
- *Reached*: the job is completed (the call was answered and the flow ran); *failed*: it is
  unanswered (attempts or the window ran out); *cancelled* / *skipped*: it ended without a call
  through, the reasons grouped in `cancel_reasons` (both statuses together); *in progress*:
  pending or dialing.
- *Keys*: of each reached job, the result of its final attempt: invoice = 1, manager or
  transferred = 2, opt-out = 9, anything else (no key, an invalid key) = none.
- *Conversion*, of the balance warnings only. The clients counted are those with a balance
  warning queued in the period that ended completed, unanswered or cancelled: warnings skipped
  (opted out, warned recently) or still in progress are left out. A client is *reached* when
  one of those warnings was completed; it *topped up* when a `balance.topped_up` occurred
  within `[t, t + days)`, `t` being the creation of its first reached warning (or, not
  reached, of its first warning). A warning cancelled because the client paid first counts as
  not reached and topped up: those clients paid without the call.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from campaigns.contact_rules import ALREADY_CONTACTED
from campaigns.dispatcher import CRM_DECLINED
from campaigns.do_not_call import OPTED_OUT_REASON, SKIP_REASON
from campaigns.models import CallAttempt, Job, JobKind, JobStatus, TopUp
from campaigns.warnings import CAMPAIGN_STOPPED, KEYS, TOPPED_UP

WARNING_KINDS = (JobKind.BALANCE_WARNING, JobKind.CAMPAIGN_WARNING)
NO_KEY = "none"
KEY_NAMES = ("1", "2", "9", NO_KEY)
_KEY_OF = {result.value: key for result, key in KEYS.items()}  # stored result -> key

# Why a warning ended without a call through, grouped by its final reason: the texts campaigns
# write, or how they begin.
REASON_GROUPS = ("topped_up", "opted_out", "crm_declined", "campaign_stopped",
                 "already_contacted", "other")

_IN_PROGRESS = (JobStatus.PENDING, JobStatus.DIALING)
_CONVERSION_COHORT = (JobStatus.COMPLETED, JobStatus.UNANSWERED, JobStatus.CANCELLED)


class InvalidPeriod(ValueError):
    """The period is empty or reversed (start >= end)."""


@dataclass(frozen=True)
class KindCounts:
    balance_warning: int = 0
    campaign_warning: int = 0

    @property
    def total(self) -> int:
        return self.balance_warning + self.campaign_warning


@dataclass(frozen=True)
class Conversion:
    clients: int  # warned clients in this group
    topped_up: int  # of them, those who topped up within the days

    @property
    def share(self) -> float | None:
        """topped_up / clients; None when there are no clients."""
        return self.topped_up / self.clients if self.clients else None


@dataclass(frozen=True)
class WarningReport:
    start: datetime
    end: datetime
    topped_up_within_days: int
    queued: KindCounts
    reached: KindCounts
    failed: KindCounts
    cancelled: KindCounts
    skipped: KindCounts
    in_progress: KindCounts
    cancel_reasons: dict[str, int]  # REASON_GROUPS -> jobs cancelled or skipped
    keys: dict[str, int]  # KEY_NAMES -> reached jobs
    reached_conversion: Conversion
    not_reached_conversion: Conversion


class _PlusDays(FunctionElement[Any]):
    """`at + days`, exactly (days of 24 hours, whatever the session's time zone)."""

    name = "plus_days"
    inherit_cache = True


@compiles(_PlusDays)
def _plus_days(element: _PlusDays, compiler: SQLCompiler, **kw: Any) -> str:
    at, days = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"({at} + CAST({days} AS INTEGER) * INTERVAL '24 hours')"


@compiles(_PlusDays, "sqlite")
def _plus_days_sqlite(element: _PlusDays, compiler: SQLCompiler, **kw: Any) -> str:
    # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC): datetime() drops the fraction, put back.
    at, days = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"(datetime({at}, '+' || {days} || ' days') || substr({at}, 20))"


def warning_report(session: Session, start: datetime, end: datetime,
                   topped_up_within_days: int) -> WarningReport:
    """The report over the warnings queued in `[start, end)`."""
    if start >= end:
        raise InvalidPeriod("the period's start must be before its end")
    queued = and_(Job.kind.in_(WARNING_KINDS), Job.created_at >= start, Job.created_at < end)
    by_status, reasons = _statuses(session, queued)

    def counts(*statuses: JobStatus) -> KindCounts:
        return KindCounts(**{kind.value: sum(by_status.get((kind, status), 0)
                                             for status in statuses) for kind in WARNING_KINDS})

    reached, not_reached = _conversion(session, queued, topped_up_within_days)
    return WarningReport(
        start=start, end=end, topped_up_within_days=topped_up_within_days,
        queued=counts(*JobStatus), reached=counts(JobStatus.COMPLETED),
        failed=counts(JobStatus.UNANSWERED), cancelled=counts(JobStatus.CANCELLED),
        skipped=counts(JobStatus.SKIPPED), in_progress=counts(*_IN_PROGRESS),
        cancel_reasons=reasons, keys=_keys(session, queued),
        reached_conversion=reached, not_reached_conversion=not_reached,
    )


def _reason_group() -> ColumnElement[str]:
    reason = Job.final_reason
    return case(
        (reason == TOPPED_UP, "topped_up"),
        (reason.in_([OPTED_OUT_REASON, SKIP_REASON]), "opted_out"),
        (reason.startswith(CRM_DECLINED), "crm_declined"),
        (reason.startswith(CAMPAIGN_STOPPED), "campaign_stopped"),
        (reason.startswith(ALREADY_CONTACTED), "already_contacted"),
        else_="other",
    )


def _statuses(
    session: Session, queued: ColumnElement[bool]
) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    """Jobs per (kind, status), and the cancelled and skipped ones per reason group."""
    jobs = select(Job.kind, Job.status, _reason_group().label("reason")).where(queued).subquery()
    rows = session.execute(
        select(jobs.c.kind, jobs.c.status, jobs.c.reason, func.count())
        .group_by(jobs.c.kind, jobs.c.status, jobs.c.reason)
    ).all()
    by_status: dict[tuple[str, str], int] = {}
    reasons = dict.fromkeys(REASON_GROUPS, 0)
    for kind, status, reason, count in rows:
        by_status[kind, status] = by_status.get((kind, status), 0) + count
        if status in (JobStatus.CANCELLED, JobStatus.SKIPPED):
            reasons[reason] += count
    return by_status, reasons


def _keys(session: Session, queued: ColumnElement[bool]) -> dict[str, int]:
    """Reached jobs per key pressed on their final attempt."""
    reached = and_(queued, Job.status == JobStatus.COMPLETED)
    final = (select(CallAttempt.job_id, func.max(CallAttempt.number).label("number"))
             .where(CallAttempt.job_id.in_(select(Job.id).where(reached)))
             .group_by(CallAttempt.job_id).subquery())
    rows = session.execute(
        select(CallAttempt.result, func.count())
        .select_from(Job)
        .outerjoin(final, final.c.job_id == Job.id)
        .outerjoin(CallAttempt, and_(CallAttempt.job_id == Job.id,
                                     CallAttempt.number == final.c.number))
        .where(reached)
        .group_by(CallAttempt.result)
    ).all()
    keys = dict.fromkeys(KEY_NAMES, 0)
    for result, count in rows:
        keys[_KEY_OF.get(result or "", NO_KEY)] += count
    return keys


def _conversion(session: Session, queued: ColumnElement[bool],
                days: int) -> tuple[Conversion, Conversion]:
    """(reached, not reached) balance-warned clients, and of them those who topped up."""
    completed = Job.status == JobStatus.COMPLETED
    clients = (
        select(
            Job.client_id,
            func.max(case((completed, 1), else_=0)).label("reached"),
            func.min(case((completed, Job.created_at))).label("reached_at"),
            func.min(Job.created_at).label("first_at"),
        )
        .where(queued, Job.kind == JobKind.BALANCE_WARNING, Job.status.in_(_CONVERSION_COHORT))
        .group_by(Job.client_id)
        .subquery()
    )
    since = case((clients.c.reached == 1, clients.c.reached_at), else_=clients.c.first_at)
    topped_up = exists().where(TopUp.client_id == clients.c.client_id,
                               TopUp.occurred_at >= since,
                               TopUp.occurred_at < _PlusDays(since, days))
    rows = session.execute(
        select(clients.c.reached, func.count(), func.sum(case((topped_up, 1), else_=0)))
        .group_by(clients.c.reached)
    ).all()
    found = {reached: Conversion(count, int(paid or 0)) for reached, count, paid in rows}
    return found.get(1, Conversion(0, 0)), found.get(0, Conversion(0, 0))
