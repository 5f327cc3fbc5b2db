"""A callback task's life after it is opened (campaigns/callback_tasks.py):

    open ──claim──▶ claimed ──resolve──▶ resolved (an outcome, a note)
     ▲  ◀─release──    │
     │                 └──cancel──▶ cancelled (a reason)      open ──cancel──▶ cancelled
     └── reassign (admin): open or claimed ──▶ claimed by whoever the admin names

Notes and an agent's call attempts are added to open and claimed tasks. Every change is one
transaction with its audit entry (who changed what) and its event for the CRM
(`callback_task.updated`; `callback_task.resolved` for resolve and cancel alike, with the
status).

Each change is a conditional UPDATE (`... WHERE id = :id AND status IN (...)` and, for a
task someone holds, `AND assignee = :actor` unless an admin acts), so the database decides
races: of concurrent claims exactly one updates the row, on SQLite (one writer at a time) and
on PostgreSQL (the second UPDATE waits for the first and re-checks its WHERE) alike. A change
the UPDATE refused is explained by reading the task afterwards (task_errors.py).
"""

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from campaigns.models import (
    AuditEntry,
    CallbackTask,
    CallbackTaskAttempt,
    CallbackTaskNote,
    CallbackTaskStatus,
    TaskOutcome,
)
from campaigns.outbox import enqueue
from campaigns.task_errors import (
    TaskClosed,
    TaskConflict,
    TaskError,
    TaskNotAllowed,
    TaskNotClaimed,
    TaskNotFound,
)

log = logging.getLogger(__name__)

OPEN, CLAIMED = CallbackTaskStatus.OPEN, CallbackTaskStatus.CLAIMED
ACTIVE = (OPEN, CLAIMED)
CLOSED = (CallbackTaskStatus.RESOLVED, CallbackTaskStatus.CANCELLED)
UPDATED = "callback_task.updated"
RESOLVED = "callback_task.resolved"


class AttemptResult(StrEnum):
    """How an agent's call back went: a task outcome, or why nobody was talked to."""

    SOLVED = TaskOutcome.SOLVED.value
    NOT_SOLVED = TaskOutcome.NOT_SOLVED.value
    NOT_REACHED = TaskOutcome.NOT_REACHED.value
    WRONG_NUMBER = TaskOutcome.WRONG_NUMBER.value
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    VOICEMAIL = "voicemail"


@dataclass(frozen=True)
class Actor:
    """Who makes a change: `name` as the audit log and `assignee` keep it ("token:<name>",
    later "user:<name>"); an admin may act on a task someone else holds, and reassign."""

    name: str
    admin: bool = False


def task_target(task_id: str) -> str:
    return f"callback_task:{task_id}"


def task_payload(task: CallbackTask, change: str, by: str, **extra: Any) -> dict[str, Any]:
    """The `data` of every task event after its creation (docs/crm-contract.md)."""
    return {
        "task_id": task.id, "change": change, "by": by, "status": task.status,
        "reason": task.reason, "client_id": task.client_id, "deadline": task.deadline,
        "assignee": task.assignee, "claimed_at": task.claimed_at, "outcome": task.outcome,
        "resolution_note": task.resolution_note, "cancel_reason": task.cancel_reason,
        "resolved_at": task.resolved_at, "overdue_at": task.overdue_at,
        "escalations": task.escalations, **extra,
    }


def record_change(
    session: Session, task: CallbackTask, actor: str, action: str, event: str, now: datetime,
    details: Mapping[str, Any] | None = None, **extra: Any,
) -> None:
    """The audit entry and the CRM event of one change to `task` (already applied)."""
    session.add(AuditEntry(at=now, actor=actor, action=f"callback_task.{action}",
                           target=task_target(task.id), details=dict(details or {}) or None))
    enqueue(session, event, task.client_id, task_payload(task, action, actor, **extra),
            occurred_at=now)
    log.info("callback task %s: %s by %s (%s)", task.id, action, actor, task.status)


def claim(session: Session, task_id: str, actor: Actor, now: datetime) -> CallbackTask:
    """`actor` holds the open task; TaskConflict (naming the holder) if someone was first."""
    task = _change(session, task_id, actor, "claim", (OPEN,), own=False,
                   values={"status": CLAIMED, "assignee": actor.name, "claimed_at": now},
                   now=now)
    record_change(session, task, actor.name, "claim", UPDATED, now)
    return task


def release(session: Session, task_id: str, actor: Actor, now: datetime) -> CallbackTask:
    """Back to open, for anyone to claim: by its holder or an admin."""
    held_by = _holder(session, task_id)
    task = _change(session, task_id, actor, "release", (CLAIMED,), own=True,
                   values={"status": OPEN, "assignee": None, "claimed_at": None}, now=now)
    record_change(session, task, actor.name, "release", UPDATED, now, {"from": held_by})
    return task


def reassign(
    session: Session, task_id: str, to: str, actor: Actor, now: datetime
) -> CallbackTask:
    """An admin gives an open or claimed task to `to` (claimed by them from now)."""
    if not actor.admin:
        raise TaskNotAllowed(task_id, f"only an admin may reassign task {task_id}")
    held_by = _holder(session, task_id)
    task = _change(session, task_id, actor, "reassign", ACTIVE, own=False,
                   values={"status": CLAIMED, "assignee": to, "claimed_at": now}, now=now)
    record_change(session, task, actor.name, "reassign", UPDATED, now,
                  {"from": held_by, "to": to})
    return task


def add_note(
    session: Session, task_id: str, text: str, actor: Actor, now: datetime
) -> CallbackTask:
    """A note on an open or claimed task, by anyone who may act on tasks."""
    task = _change(session, task_id, actor, "note", ACTIVE, own=False, values={}, now=now)
    session.add(CallbackTaskNote(task_id=task.id, author=actor.name, text=text, created_at=now))
    record_change(session, task, actor.name, "note", UPDATED, now, {"text": text}, note=text)
    return task


def record_attempt(
    session: Session, task_id: str, result: AttemptResult, note: str | None, actor: Actor,
    now: datetime,
) -> CallbackTask:
    """`actor` called the client back (`result`): on an open task, or one they hold."""
    task = _change(session, task_id, actor, "record an attempt on", ACTIVE, own=True, values={},
                   now=now)
    session.add(CallbackTaskAttempt(task_id=task.id, agent=actor.name, at=now,
                                    result=AttemptResult(result).value, note=note))
    attempt = {"agent": actor.name, "at": now, "result": AttemptResult(result), "note": note}
    record_change(session, task, actor.name, "attempt", UPDATED, now,
                  {"result": attempt["result"], "note": note}, attempt=attempt)
    return task


def resolve(
    session: Session, task_id: str, outcome: TaskOutcome, note: str | None, actor: Actor,
    now: datetime,
) -> CallbackTask:
    """Done, with an outcome: by its holder, or by an admin (an open task too)."""
    task = _change(session, task_id, actor, "resolve", ACTIVE if actor.admin else (CLAIMED,),
                   own=True, values={"status": CallbackTaskStatus.RESOLVED,
                                     "outcome": TaskOutcome(outcome), "resolution_note": note,
                                     "resolved_at": now}, now=now)
    record_change(session, task, actor.name, "resolve", RESOLVED, now,
                  {"outcome": TaskOutcome(outcome), "note": note})
    return task


def cancel(
    session: Session, task_id: str, reason: str, actor: Actor, now: datetime
) -> CallbackTask:
    """No longer wanted: an open task by anyone who may act on tasks, a claimed one by its
    holder or an admin."""
    task = _change(session, task_id, actor, "cancel", ACTIVE, own=True,
                   values={"status": CallbackTaskStatus.CANCELLED, "cancel_reason": reason,
                           "resolved_at": now}, now=now)
    record_change(session, task, actor.name, "cancel", RESOLVED, now, {"reason": reason})
    return task


@dataclass(frozen=True)
class TaskDetail:
    task: CallbackTask
    notes: list[CallbackTaskNote]
    attempts: list[CallbackTaskAttempt]
    audit: list[AuditEntry]


def detail(session: Session, task_id: str) -> TaskDetail:
    """The task with its notes, attempts and audit trail, each oldest first."""
    task = session.get(CallbackTask, task_id)
    if task is None:
        raise TaskNotFound(task_id)
    notes = session.scalars(select(CallbackTaskNote).where(CallbackTaskNote.task_id == task_id)
                            .order_by(CallbackTaskNote.id)).all()
    attempts = session.scalars(
        select(CallbackTaskAttempt).where(CallbackTaskAttempt.task_id == task_id)
        .order_by(CallbackTaskAttempt.id)).all()
    audit = session.scalars(select(AuditEntry).where(AuditEntry.target == task_target(task_id))
                            .order_by(AuditEntry.id)).all()
    return TaskDetail(task, list(notes), list(attempts), list(audit))


def _holder(session: Session, task_id: str) -> str | None:
    return session.scalar(select(CallbackTask.assignee).where(CallbackTask.id == task_id))


def _change(
    session: Session, task_id: str, actor: Actor, action: str,
    allowed: Sequence[CallbackTaskStatus], *, own: bool, values: Mapping[str, Any],
    now: datetime,
) -> CallbackTask:
    """Apply `values` if the task is in an `allowed` status (and, with `own`, open or held by
    `actor`, unless an admin acts); the task as it is now, or the TaskError that explains
    why not."""
    where: list[ColumnElement[bool]] = [CallbackTask.id == task_id,
                                        CallbackTask.status.in_(allowed)]
    if own and not actor.admin:
        where.append(or_(CallbackTask.status == OPEN, CallbackTask.assignee == actor.name))
    changed = session.execute(
        update(CallbackTask).where(*where).values(**values, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        raise _refusal(session, task_id, action, allowed)
    task = session.get(CallbackTask, task_id, populate_existing=True)
    assert task is not None
    return task


def _refusal(
    session: Session, task_id: str, action: str, allowed: Sequence[CallbackTaskStatus]
) -> TaskError:
    task = session.get(CallbackTask, task_id, populate_existing=True)
    if task is None:
        return TaskNotFound(task_id)
    status = CallbackTaskStatus(task.status)
    if status in CLOSED:
        return TaskClosed(task_id, status)
    if status == OPEN and OPEN not in allowed:
        return TaskNotClaimed(task_id, action)
    if status == CLAIMED and CLAIMED not in allowed:
        return TaskConflict(task_id, task.assignee)
    if status == CLAIMED:  # held by someone else, and no admin acts
        return TaskNotAllowed(task_id, f"task {task_id} is claimed by {task.assignee}: only "
                                       f"they or an admin may {action} it")
    return TaskConflict(task_id, task.assignee)  # it changed again meanwhile
