"""What the support page shows: the active callback tasks of one view, soonest deadline first,
and a version that changes whenever any task does (the page polls it to refresh itself)."""

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from campaigns.models import (
    CallbackTask,
    CallbackTaskAttempt,
    CallbackTaskNote,
    CallbackTaskStatus,
)

ACTIVE = (CallbackTaskStatus.OPEN, CallbackTaskStatus.CLAIMED)
MAX_SHOWN = 200


class View(StrEnum):
    OPEN = "open"  # every active task
    MINE = "mine"  # claimed by the viewer
    OVERDUE = "overdue"  # past its deadline
    TODAY = "today"  # due before the end of today in the business's zone


@dataclass(frozen=True)
class QueueItem:
    task: CallbackTask
    notes: list[CallbackTaskNote]
    attempts: list[CallbackTaskAttempt]


def _view_condition(view: View, viewer: str, now: datetime, zone: ZoneInfo
                    ) -> ColumnElement[bool] | None:
    match view:
        case View.MINE:
            return CallbackTask.assignee == viewer
        case View.OVERDUE:
            return or_(CallbackTask.deadline < now, CallbackTask.overdue_at.is_not(None))
        case View.TODAY:
            today = now.astimezone(zone).date()
            end = datetime.combine(today + timedelta(days=1), time(), tzinfo=zone)
            return CallbackTask.deadline < end
        case _:
            return None


def queue(session: Session, view: View, viewer: str, now: datetime, zone: ZoneInfo
          ) -> list[QueueItem]:
    """The view's active tasks (at most MAX_SHOWN), soonest deadline first, with their notes
    and attempts."""
    query = select(CallbackTask).where(CallbackTask.status.in_(ACTIVE))
    condition = _view_condition(view, viewer, now, zone)
    if condition is not None:
        query = query.where(condition)
    tasks = list(session.scalars(query.order_by(CallbackTask.deadline, CallbackTask.id)
                                 .limit(MAX_SHOWN)))
    ids = [task.id for task in tasks]
    notes: dict[str, list[CallbackTaskNote]] = {task_id: [] for task_id in ids}
    attempts: dict[str, list[CallbackTaskAttempt]] = {task_id: [] for task_id in ids}
    if ids:
        for note in session.scalars(select(CallbackTaskNote).where(
                CallbackTaskNote.task_id.in_(ids)).order_by(CallbackTaskNote.id)):
            notes[note.task_id].append(note)
        for attempt in session.scalars(select(CallbackTaskAttempt).where(
                CallbackTaskAttempt.task_id.in_(ids)).order_by(CallbackTaskAttempt.id)):
            attempts[attempt.task_id].append(attempt)
    return [QueueItem(task, notes[task.id], attempts[task.id]) for task in tasks]


def version(session: Session) -> str:
    """Changes whenever a task is created or changed (or leaves the queue)."""
    count, created, updated = session.execute(select(
        func.count(), func.max(CallbackTask.created_at), func.max(CallbackTask.updated_at),
    )).one()
    notes = session.scalar(select(func.count()).select_from(CallbackTaskNote))
    return f"{count}:{created}:{updated}:{notes}"
