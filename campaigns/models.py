"""The domain's tables: inbound events, jobs and their attempts, survey answers, callback
tasks, the do-not-call list, top-ups and the outbox to the CRM."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from infra.db import Base, UtcDateTime, utcnow


class JobKind(StrEnum):
    SURVEY = "survey"
    BALANCE_WARNING = "balance_warning"
    CAMPAIGN_WARNING = "campaign_warning"


class JobStatus(StrEnum):
    PENDING = "pending"  # waiting for not_before (and a free channel)
    DIALING = "dialing"  # claimed under a lease; a call is being placed or is up
    COMPLETED = "completed"  # final: the job did what it was for
    UNANSWERED = "unanswered"  # final: no result (retries exhausted, window missed, ...)
    SKIPPED = "skipped"  # final: never dialed (do-not-call, too short, surveyed recently)
    CANCELLED = "cancelled"  # final: no longer wanted (the client paid, the campaign stopped)


# Never two calls to one client at once: at most one dialing job per client and per phone,
# held by partial unique indexes (PostgreSQL and SQLite both have them).
_DIALING = text("status = 'dialing'")


class WebhookEvent(Base):
    """Every CRM event applied once: its id is the idempotency key."""

    __tablename__ = "webhook_events"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)


class DoNotCall(Base):
    __tablename__ = "do_not_call"

    phone: Mapped[str] = mapped_column(String(32), primary_key=True)
    client_id: Mapped[str | None] = mapped_column(String(200), index=True)
    source_event_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class DoNotCallClient(Base):
    """A client who opted out as a whole: none of its numbers is called, known ones or new."""

    __tablename__ = "do_not_call_clients"

    client_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    source_event_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Job(Base):
    """Someone to call, why, and not before / not after when; claimed by leases."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("kind", "source_event_id"),  # one job per event: never dialed twice
        Index("ix_jobs_due", "status", "not_before"),
        # "Surveyed recently?" looks a client up by id and by phone, newest first.
        Index("ix_jobs_client_recent", "client_id", "kind", "created_at"),
        Index("ix_jobs_phone_recent", "phone", "kind", "created_at"),
        Index("uq_jobs_dialing_client_id", "client_id", unique=True,
              postgresql_where=_DIALING, sqlite_where=_DIALING),
        Index("uq_jobs_dialing_phone", "phone", unique=True,
              postgresql_where=_DIALING, sqlite_where=_DIALING),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[JobKind] = mapped_column(String(32))
    status: Mapped[JobStatus] = mapped_column(String(32), default=JobStatus.PENDING)
    source_event_id: Mapped[str] = mapped_column(String(200))
    client_id: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(32))
    timezone: Mapped[str] = mapped_column(String(64))
    locale: Mapped[str] = mapped_column(String(16))
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())  # when the job wanted to run
    not_before: Mapped[datetime] = mapped_column(UtcDateTime())
    not_after: Mapped[datetime] = mapped_column(UtcDateTime())  # the lateness limit
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    final_reason: Mapped[str | None] = mapped_column(Text)
    # Set when the call is no longer wanted while it is being placed: a ringing call is
    # cancelled by the instance placing it, an answered one finishes.
    withdrawn_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # When its prompts were rendered ahead (None: not yet), so no client waits for speech.
    prepared_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)

    call_attempts: Mapped[list["CallAttempt"]] = relationship(
        back_populates="job", order_by="CallAttempt.number"
    )


class CallAttempt(Base):
    """One dial of a job. Written open before dialing, so a crash leaves a trace to settle."""

    __tablename__ = "call_attempts"
    __table_args__ = (UniqueConstraint("job_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    outcome: Mapped[str | None] = mapped_column(String(32))  # telephony Outcome, or "crashed"
    sip_status: Mapped[int | None] = mapped_column(Integer)
    call_id: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[str | None] = mapped_column(Text)
    # What the client answered, committed the moment the key was pressed (not at the end of
    # the call): a crash after it settles the job from here instead of asking again.
    result: Mapped[str | None] = mapped_column(String(32))
    result_value: Mapped[int | None] = mapped_column(Integer)
    result_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # What it takes to send BYE (Call-ID, tags, route set, remote target, CSeq), stored when
    # the call is answered, so a successor can end a call its dead predecessor left up.
    dialog: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    job: Mapped[Job] = relationship(back_populates="call_attempts")


class SurveyResponse(Base):
    """The answer (or the lack of one) to a survey job."""

    __tablename__ = "survey_responses"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    original_call_id: Mapped[str] = mapped_column(String(200), index=True)
    client_id: Mapped[str] = mapped_column(String(200), index=True)
    phone: Mapped[str] = mapped_column(String(32))
    agent_id: Mapped[str | None] = mapped_column(String(200))
    score: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(32))  # "scored", or why there is no score
    answered_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class CallbackTaskStatus(StrEnum):
    OPEN = "open"  # waiting for an agent
    CLAIMED = "claimed"  # an agent owns it
    RESOLVED = "resolved"  # final, with an outcome
    CANCELLED = "cancelled"  # final, with a reason


class TaskOutcome(StrEnum):
    SOLVED = "solved"
    NOT_SOLVED = "not_solved"
    NOT_REACHED = "not_reached"
    WRONG_NUMBER = "wrong_number"


class CallbackTask(Base):
    __tablename__ = "callback_tasks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))  # "low_score", "manager_requested"
    status: Mapped[CallbackTaskStatus] = mapped_column(String(32), default=CallbackTaskStatus.OPEN)
    client_id: Mapped[str] = mapped_column(String(200), index=True)
    phone: Mapped[str] = mapped_column(String(32))
    original_call_id: Mapped[str | None] = mapped_column(String(200))
    agent_id: Mapped[str | None] = mapped_column(String(200))
    score: Mapped[int | None] = mapped_column(Integer)
    deadline: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    source_job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"), unique=True)
    # What the agent needs to know (a warning's amount, campaign, manager ...).
    context: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    requests: Mapped[int] = mapped_column(Integer, default=1)  # asked for this many times
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    client_timezone: Mapped[str | None] = mapped_column(String(64))  # IANA, for the page
    assignee: Mapped[str | None] = mapped_column(String(100), index=True)  # a user's name
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # resolved or cancelled
    outcome: Mapped[TaskOutcome | None] = mapped_column(String(32))
    resolution_note: Mapped[str | None] = mapped_column(Text)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    overdue_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # when marked overdue
    escalations: Mapped[int] = mapped_column(Integer, default=0)  # thresholds escalated so far


class CallbackTaskNote(Base):
    """A note an agent (or ringback) added to a task."""

    __tablename__ = "callback_task_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("callback_tasks.id"), index=True)
    author: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class CallbackTaskAttempt(Base):
    """An agent's call back to the client: who, when, and how it went."""

    __tablename__ = "callback_task_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("callback_tasks.id"), index=True)
    agent: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    result: Mapped[str] = mapped_column(String(32))  # a TaskOutcome, or "no_answer", "busy" ...
    note: Mapped[str | None] = mapped_column(Text)


class AuditEntry(Base):
    """Who changed what: every change a person (or a token) made, kept with the change."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_target", "target", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))  # "user:<name>", "token:<name>", "ringback"
    action: Mapped[str] = mapped_column(String(64))  # "callback_task.claim", "user.disable" ...
    target: Mapped[str] = mapped_column(String(200))  # "callback_task:<id>", "user:<name>"
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class TopUp(Base):
    """A client's top-up the CRM reported (`balance.topped_up`): for the warnings report."""

    __tablename__ = "top_ups"
    __table_args__ = (Index("ix_top_ups_client_at", "client_id", "occurred_at"),)

    source_event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(200))
    amount: Mapped[str | None] = mapped_column(String(40))  # a decimal, as sent
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"


class OutboxEvent(Base):
    """An event for the CRM, written in the same transaction as the change it reports."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)  # the order
    event_id: Mapped[str] = mapped_column(String(64), unique=True)  # webhook-id for the CRM
    type: Mapped[str] = mapped_column(String(100))
    ordering_key: Mapped[str] = mapped_column(String(200), index=True)  # per client, in order
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[OutboxStatus] = mapped_column(String(32), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class ContactLock(Base):
    """One row per client key ("client:<id>", "phone:<e164>"): locked (FOR UPDATE) by every
    transaction that decides whether to contact that client, so the contact rules are checked
    and applied by one transaction at a time per client, on every instance."""

    __tablename__ = "contact_locks"

    key: Mapped[str] = mapped_column(String(240), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class DialBudget(Base):
    """The calls-per-second budget every instance shares: the next free dialing slot (GCRA)."""

    __tablename__ = "dial_budget"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_slot_at: Mapped[datetime] = mapped_column(UtcDateTime())
