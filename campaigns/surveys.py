"""The CSAT survey, a kind of call (campaigns/purpose.py): created from `call.completed`,
settled from the call's report; a low score becomes a callback task.

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
from campaigns.callback_tasks import TaskRequest, open_task
from campaigns.calling_window import CallingWindow, Dropped
from campaigns.client_zone import client_zone
from campaigns.contact_rules import COUNTED, ContactCap, lock_client
from campaigns.deadlines import low_score_deadline
from campaigns.do_not_call import opted_out_clause
from campaigns.events import CallCompletedData
from campaigns.models import CallAttempt, Job, JobKind, JobStatus, SurveyResponse
from campaigns.outbox import enqueue
from campaigns.purpose import KindPolicy
from campaigns.survey_policy import SurveyPolicy
from infra.db import UtcDateTime
from ivr.results import FlowResult
from telephony.backend import CallReport, FlowCall

log = logging.getLogger(__name__)

SURVEY_FLOW = "survey"  # in the ivr catalog
LOW_SCORE = "low_score"  # the callback task's reason


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
        self.rules = policy
        self.window = window
        self.calendar = calendar
        self.clock = clock
        self.kind = JobKind.SURVEY
        self.policy = KindPolicy(
            window=window,
            cap=ContactCap(JobKind.SURVEY, policy.period),  # one survey per client per period
            max_attempts=policy.max_attempts,
            retry_delays=(policy.retry_delay,),
        )

    # --- creation --------------------------------------------------------------------------

    def on_call_completed(
        self, session: Session, data: CallCompletedData, event_id: str
    ) -> Job:
        """Queue (or skip, or drop) the survey for one finished support call."""
        now = self.clock()
        policy = self.rules
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
            job.status, job.final_reason = JobStatus.UNANSWERED, plan.reason
            self.give_up(session, job, plan.reason, now)
        else:
            job.not_before = plan.at
            _insert(session, job)
        return job

    def _skip_reason(
        self, session: Session, data: CallCompletedData, now: datetime
    ) -> str | None:
        if data.duration_s < self.rules.min_call.total_seconds():
            return f"call lasted {data.duration_s:.0f} s, under the {self.rules.min_call} minimum"
        found = set(session.scalars(_SKIP_CHECK, {
            "phone": data.phone, "client_id": data.client_id, "since": now - self.rules.period,
        }))
        if "opted_out" in found:
            return "client opted out"
        if "recent" in found:
            return f"client already surveyed within {self.rules.period.days} days"
        return None

    # --- the kind's part of the job life (campaigns/purpose.py) ------------------------------

    def call_for(self, job: Job) -> FlowCall:
        return FlowCall(job.id, job.phone, SURVEY_FLOW, job.locale)

    def unwanted(self, session: Session, job: Job, now: datetime) -> str | None:
        return None  # a survey stays wanted while its window lasts

    def settle_answered(self, session: Session, job: Job, attempt: CallAttempt,
                        report: CallReport, now: datetime) -> None:
        """A score is reported (and a low one becomes a callback task); anything else ends the
        survey unanswered."""
        if report.result == FlowResult.SCORE and report.value:
            self._scored(session, job, report.value, now)
        else:
            reason = f"answered without a score ({report.result})"
            job.status, job.final_reason = JobStatus.UNANSWERED, reason
            self.give_up(session, job, reason, now)

    def give_up(self, session: Session, job: Job, reason: str, now: datetime) -> None:
        context = self._response(session, job, None, now)
        enqueue(session, "survey.unanswered", job.client_id, {
            "job_id": job.id, "call_id": context["call_id"], "client_id": job.client_id,
            "phone": job.phone, "reason": reason, "attempts": job.attempts,
        })
        log.info("survey job %s unanswered: %s", job.id, reason)

    def _scored(self, session: Session, job: Job, score: int, now: datetime) -> None:
        job.status, job.final_reason = JobStatus.COMPLETED, f"score {score}"
        context = self._response(session, job, score, now)
        enqueue(session, "survey.completed", job.client_id, {
            "job_id": job.id, "call_id": context["call_id"], "client_id": job.client_id,
            "phone": job.phone, "agent_id": context.get("agent_id"), "score": score,
            "answered_at": _iso(now),
        })
        if self.rules.is_low(score):
            open_task(session, TaskRequest(
                reason=LOW_SCORE, client_id=job.client_id, phone=job.phone,
                deadline=low_score_deadline(now, self.calendar,
                                            self.rules.callback_working_minutes),
                source_job_id=job.id, original_call_id=context["call_id"],
                agent_id=context.get("agent_id"), score=score,
            ), now)

    @staticmethod
    def _response(session: Session, job: Job, score: int | None, now: datetime
                  ) -> dict[str, Any]:
        """Record the survey's response (or the lack of one); the job's context."""
        context = job.context
        session.add(SurveyResponse(
            job_id=job.id, original_call_id=context["call_id"], client_id=job.client_id,
            phone=job.phone, agent_id=context.get("agent_id"), score=score,
            outcome="scored" if score is not None else "unanswered", answered_at=now,
        ))
        return context
