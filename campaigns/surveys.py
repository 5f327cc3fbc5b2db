"""The CSAT survey job: created from `call.completed`, settled from the call's report.

Every change and the CRM event that reports it are written in one transaction.
"""

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, insert, literal, select, union_all
from sqlalchemy.orm import InstrumentedAttribute, Session

from campaigns.calendar import BusinessCalendar, parse_zone
from campaigns.calling_window import CallingWindow, Dropped
from campaigns.client_zone import client_zone
from campaigns.contact_rules import COUNTED, ContactCap, lock_client, opted_out_clause
from campaigns.deadlines import low_score_deadline
from campaigns.events import CallCompletedData
from campaigns.models import (
    CallAttempt,
    CallbackTask,
    Job,
    JobKind,
    JobStatus,
    SurveyResponse,
)
from campaigns.outbox import enqueue
from campaigns.survey_policy import SurveyPolicy
from infra.db import UtcDateTime
from telephony.backend import CallReport
from telephony.outcomes import Outcome

log = logging.getLogger(__name__)

RETRIED_OUTCOMES = frozenset({Outcome.BUSY, Outcome.NO_ANSWER, Outcome.FAILED})


# Built and compiled once; the values come as parameters.
_INSERT_JOB = insert(Job.metadata.tables[Job.__tablename__])


def _insert(session: Session, job: Job) -> None:
    """A Core insert of a fully built job: the ORM's unit of work costs more than the insert
    on the webhook's hot path. The returned object is not attached to the session."""
    session.connection().execute(
        _INSERT_JOB, {column.key: getattr(job, column.key) for column in Job.__table__.columns}
    )


def _recent_survey(column: InstrumentedAttribute[str], parameter: str) -> Select[str]:
    return (
        select(literal("recent"))
        .where(column == bindparam(parameter), Job.kind == JobKind.SURVEY,
               Job.created_at >= bindparam("since", type_=UtcDateTime()),
               Job.status.in_(COUNTED))
        .limit(1)
    )


# Why a survey is skipped, in one round trip built once: the do-not-call lists (by phone, by
# client) and a recent survey by client or by phone (each on its (column, kind, created_at) index).
_SKIP_CHECK = union_all(
    select(literal("opted_out")).where(
        opted_out_clause(bindparam("client_id"), bindparam("phone"))
    ),
    _recent_survey(Job.client_id, "client_id").subquery().select(),
    _recent_survey(Job.phone, "phone").subquery().select(),
)


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds")


class Surveys:
    def __init__(
        self,
        policy: SurveyPolicy,
        window: CallingWindow,
        calendar: BusinessCalendar,
        clock: Callable[[], datetime],
    ) -> None:
        self.policy = policy
        self.window = window
        self.calendar = calendar
        self.clock = clock

    @property
    def cap(self) -> ContactCap:
        """At most one survey per client within the policy's period."""
        return ContactCap(JobKind.SURVEY, self.policy.period)

    # --- creation --------------------------------------------------------------------------

    def on_call_completed(
        self, session: Session, data: CallCompletedData, event_id: str
    ) -> Job:
        """Queue (or skip, or drop) the survey for one finished support call."""
        now = self.clock()
        policy = self.policy
        zone = client_zone(data.timezone, data.phone, policy.default_timezone)
        due = data.ended_at + policy.delay
        job = Job(
            id=str(uuid.uuid4()),
            kind=JobKind.SURVEY,
            source_event_id=event_id,
            client_id=data.client_id,
            phone=data.phone,
            timezone=zone.name,
            locale=data.locale or policy.default_locale,
            context={"call_id": data.call_id, "agent_id": data.agent_id, "queue": data.queue,
                     "ended_at": _iso(data.ended_at), "duration_s": data.duration_s,
                     "timezone_source": zone.source},
            due_at=due,
            not_before=due,
            not_after=due + policy.max_lateness,
            max_attempts=policy.max_attempts,
            status=JobStatus.PENDING,
            attempts=0,
            lease_owner=None,
            lease_expires_at=None,
            final_reason=None,
            created_at=now,
            updated_at=now,
        )
        lock_client(session, data.client_id, data.phone)  # a concurrent twin waits here
        skip = self._skip_reason(session, data, now)
        if skip is not None:
            job.status = JobStatus.SKIPPED
            job.final_reason = skip
            log.info("survey for call %s skipped: %s", data.call_id, skip)
            _insert(session, job)
            return job
        plan = self.window.schedule(due, parse_zone(zone.name), policy.max_lateness)
        if isinstance(plan, Dropped):
            session.add(job)  # the rare path writes more rows: let the ORM order them
            self._unanswered(session, job, plan.reason, now)
        else:
            job.not_before = plan.at
            _insert(session, job)
        return job

    def _skip_reason(
        self, session: Session, data: CallCompletedData, now: datetime
    ) -> str | None:
        if data.duration_s < self.policy.min_call.total_seconds():
            return f"call lasted {data.duration_s:.0f} s, under the {self.policy.min_call} minimum"
        found = set(session.scalars(_SKIP_CHECK, {
            "phone": data.phone, "client_id": data.client_id, "since": now - self.policy.period,
        }))
        if "opted_out" in found:
            return "client opted out"
        if "recent" in found:
            return f"client already surveyed within {self.policy.period.days} days"
        return None

    # --- settling ----------------------------------------------------------------------------

    def settle(self, session: Session, job: Job, attempt: CallAttempt, report: CallReport,
               now: datetime) -> None:
        """Apply one call's report to its job: score, retry, or give up."""
        attempt.ended_at = now
        attempt.outcome = report.outcome.value
        attempt.sip_status = report.sip_status
        attempt.call_id = report.call_id
        attempt.detail = report.detail or report.result
        if report.outcome is Outcome.ANSWERED and report.result == "score" and report.value:
            self._scored(session, job, report.value, now)
        elif report.outcome is Outcome.ANSWERED:
            self._unanswered(session, job, f"answered without a score ({report.result})", now)
        else:
            self.retry_or_give_up(session, job, report.outcome.value, report.outcome, now)

    def retry_or_give_up(
        self, session: Session, job: Job, what: str, outcome: Outcome, now: datetime
    ) -> None:
        """Retry inside the calling window while attempts and lateness allow, else give up."""
        job.lease_owner = None
        job.lease_expires_at = None
        if outcome in RETRIED_OUTCOMES and job.attempts < job.max_attempts:
            retry = self.window.retry_at(now, self.policy.retry_delay, parse_zone(job.timezone),
                                         job.not_after)
            if retry is not None:
                job.status = JobStatus.PENDING
                job.not_before = retry
                log.info("survey job %s: %s, retry %d at %s", job.id, what, job.attempts + 1,
                         _iso(retry))
                return
        self._unanswered(session, job, f"{what} after {job.attempts} attempt(s)", now)

    def _scored(self, session: Session, job: Job, score: int, now: datetime) -> None:
        context = self._finish(session, job, JobStatus.COMPLETED, f"score {score}", score, now)
        enqueue(session, "survey.completed", job.client_id, {
            "job_id": job.id, "call_id": context["call_id"], "client_id": job.client_id,
            "phone": job.phone, "agent_id": context.get("agent_id"), "score": score,
            "answered_at": _iso(now),
        })
        if self.policy.is_low(score):
            self._callback_task(session, job, score, now)

    @staticmethod
    def _finish(
        session: Session, job: Job, status: JobStatus, reason: str, score: int | None,
        now: datetime,
    ) -> dict[str, Any]:
        """Put the job in its final state and record the survey's response; the job's context."""
        job.status = status
        job.final_reason = reason
        job.lease_owner = None
        job.lease_expires_at = None
        context = job.context
        session.add(SurveyResponse(
            job_id=job.id, original_call_id=context["call_id"], client_id=job.client_id,
            phone=job.phone, agent_id=context.get("agent_id"), score=score,
            outcome="scored" if score is not None else "unanswered", answered_at=now,
        ))
        return context

    def _callback_task(self, session: Session, job: Job, score: int, now: datetime) -> None:
        context = job.context
        deadline = low_score_deadline(now, self.calendar, self.policy.callback_working_minutes)
        task = CallbackTask(
            id=str(uuid.uuid4()), reason="low_score", client_id=job.client_id, phone=job.phone,
            original_call_id=context["call_id"], agent_id=context.get("agent_id"), score=score,
            deadline=deadline, source_job_id=job.id, created_at=now,
        )
        session.add(task)
        enqueue(session, "callback_task.created", job.client_id, {
            "task_id": task.id, "reason": "low_score", "client_id": job.client_id,
            "phone": job.phone, "call_id": context["call_id"], "agent_id": context.get("agent_id"),
            "score": score, "deadline": _iso(deadline),
        })
        log.info("callback task %s for score %d, due %s", task.id, score, _iso(deadline))

    def _unanswered(self, session: Session, job: Job, reason: str, now: datetime) -> None:
        context = self._finish(session, job, JobStatus.UNANSWERED, reason, None, now)
        enqueue(session, "survey.unanswered", job.client_id, {
            "job_id": job.id, "call_id": context["call_id"], "client_id": job.client_id,
            "phone": job.phone, "reason": reason, "attempts": job.attempts,
        })
        log.info("survey job %s unanswered: %s", job.id, reason)

