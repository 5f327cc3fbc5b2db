"""Overdue callback tasks: an open or claimed task past its deadline is marked overdue and
escalated, and escalated once more `second_after` past its deadline.

    past deadline                  → overdue_at set (once), escalations = 1,
                                     `callback_task.overdue` to the CRM,
                                     `callback_task.escalated` (level 1) to the supervisor
    past deadline + second_after   → escalations = 2,
                                     `callback_task.updated` (change "escalated") to the CRM,
                                     `callback_task.escalated` (level 2) to the supervisor

A task first seen past both thresholds (the service was down) gets both levels in one tick:
the CRM hears `callback_task.overdue` (escalations 2), the supervisor both levels, in order.

The supervisor's events go through the outbox like the CRM's (signed with the same outbound
secret, retried until acknowledged, never lost): their ordering key starts with
`outbox.SUPERVISOR_PREFIX`, and a second `OutboxDelivery` sends them to
RINGBACK_SUPERVISOR_URL. Without that URL none are written: the CRM's events still are.

Each escalation is a compare-and-set on `escalations` (and the status), so two instances
ticking at once escalate a task once, and a task resolved meanwhile is left alone.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from campaigns.models import CallbackTask
from campaigns.outbox import SUPERVISOR_PREFIX, enqueue
from campaigns.task_life import ACTIVE, UPDATED, record_change, task_payload
from infra.db import DatabaseTick, transaction

OVERDUE = "callback_task.overdue"
ESCALATED = "callback_task.escalated"  # to the supervisor only
RINGBACK = "ringback"  # the actor of the audit entries
LEVELS = 2
BATCH = 200


@dataclass(frozen=True)
class EscalationPolicy:
    second_after: timedelta  # past the deadline: the second escalation
    supervisor: bool = False  # a supervisor URL is configured: write the supervisor's events


def mark_overdue(
    session: Session, policy: EscalationPolicy, now: datetime, limit: int = BATCH
) -> int:
    """Escalate the tasks due for it (at most `limit`); return how many escalated."""
    due = session.scalars(
        select(CallbackTask)
        .where(
            CallbackTask.status.in_(ACTIVE),
            CallbackTask.deadline < now,
            or_(CallbackTask.escalations == 0,
                (CallbackTask.escalations < LEVELS)
                & (CallbackTask.deadline < now - policy.second_after)),
        )
        .order_by(CallbackTask.deadline, CallbackTask.id)
        .limit(limit)
    ).all()
    escalated = 0
    for task in due:
        before = task.escalations
        level = LEVELS if task.deadline + policy.second_after < now else 1
        values = {"escalations": level, "updated_at": now}
        if task.overdue_at is None:
            values["overdue_at"] = now
        won = session.execute(
            update(CallbackTask)
            .where(CallbackTask.id == task.id, CallbackTask.escalations == before,
                   CallbackTask.status.in_(ACTIVE))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if won.rowcount != 1:  # type: ignore[attr-defined]
            continue  # another instance escalated it, or it was closed meanwhile
        session.refresh(task)
        details = {"escalations": level}
        if before == 0:
            record_change(session, task, RINGBACK, "overdue", OVERDUE, now, details)
        else:
            record_change(session, task, RINGBACK, "escalated", UPDATED, now, details)
        if policy.supervisor:
            for reached in range(before + 1, level + 1):
                enqueue(session, ESCALATED, SUPERVISOR_PREFIX + task.client_id,
                        {**task_payload(task, "escalated", RINGBACK), "level": reached,
                         "phone": task.phone}, occurred_at=now)
        escalated += 1
    return escalated


class OverdueTick(DatabaseTick[EscalationPolicy]):
    """The scheduler's tick: one transaction on the database thread."""

    def run(self) -> int:
        with transaction(self._sessions) as session:
            return mark_overdue(session, self._policy, self._clock())
