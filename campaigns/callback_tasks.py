"""Callback tasks for support: opened by any kind of call (a low score, a client asking for the
account manager ...), each change reported to the CRM in the same transaction.

A client with an open task for the same reason gets that task updated (asked once more, the
newer context, the earlier deadline), never a second one.
"""

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.models import CallbackTask, CallbackTaskStatus
from campaigns.outbox import enqueue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskRequest:
    """What a task is for: who to call back, why, by when, and what the agent should know."""

    reason: str  # "low_score", "manager_requested", ...
    client_id: str
    phone: str
    deadline: datetime
    source_job_id: str | None = None
    original_call_id: str | None = None
    agent_id: str | None = None
    score: int | None = None
    context: dict[str, Any] = field(default_factory=dict)
    client_timezone: str | None = None  # IANA, shown to the agent; deadlines use the calendar


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds")


def open_task(session: Session, request: TaskRequest, now: datetime) -> CallbackTask:
    """Open the task, or update the client's open task for the same reason; the CRM hears
    `callback_task.created` or `callback_task.updated`. The caller holds the client's lock."""
    task = session.scalars(
        select(CallbackTask).where(
            CallbackTask.client_id == request.client_id,
            CallbackTask.reason == request.reason,
            CallbackTask.status == CallbackTaskStatus.OPEN,
        ).order_by(CallbackTask.created_at).limit(1)
    ).first()
    if task is None:
        task = CallbackTask(
            id=str(uuid.uuid4()), reason=request.reason, client_id=request.client_id,
            phone=request.phone, original_call_id=request.original_call_id,
            agent_id=request.agent_id, score=request.score, deadline=request.deadline,
            source_job_id=request.source_job_id, context=request.context or None, requests=1,
            created_at=now, client_timezone=request.client_timezone,
        )
        session.add(task)
        event = "callback_task.created"
    else:
        task.requests += 1
        task.deadline = min(task.deadline, request.deadline)
        task.context = {**(task.context or {}), **request.context} or None
        task.score = request.score if request.score is not None else task.score
        task.client_timezone = request.client_timezone or task.client_timezone
        task.updated_at = now
        event = "callback_task.updated"
    payload: dict[str, Any] = {
        "task_id": task.id, "reason": task.reason, "client_id": task.client_id,
        "phone": task.phone, "call_id": request.original_call_id, "agent_id": request.agent_id,
        "score": request.score, "deadline": _iso(task.deadline),
    }
    if task.context:
        payload["context"] = task.context
    if event == "callback_task.updated":
        payload["requests"] = task.requests
    enqueue(session, event, task.client_id, payload)
    log.info("%s: task %s (%s), due %s", event, task.id, task.reason, _iso(task.deadline))
    return task
