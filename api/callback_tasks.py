"""`/api/v1/callback-tasks`: what support must call back, soonest deadline first."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy import select

from api.auth import require_role
from api.tokens import ApiToken
from campaigns.models import CallbackTask, CallbackTaskStatus
from infra.db import transaction

router = APIRouter(prefix="/api/v1", tags=["callback tasks"])


class CallbackTaskOut(BaseModel):
    id: str
    reason: str
    status: str
    client_id: str
    phone: str
    original_call_id: str | None
    agent_id: str | None
    score: int | None
    deadline: datetime
    created_at: datetime


class CallbackTaskList(BaseModel):
    items: list[CallbackTaskOut]


@router.get("/callback-tasks", response_model=CallbackTaskList)
def list_callback_tasks(
    request: Request,
    _token: Annotated[ApiToken, Depends(require_role("support", "admin"))],
    status: Annotated[CallbackTaskStatus | None, Query()] = CallbackTaskStatus.OPEN,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> CallbackTaskList:
    query = select(CallbackTask).order_by(CallbackTask.deadline).limit(limit)
    if status is not None:
        query = query.where(CallbackTask.status == status)
    with transaction(request.app.state.sessions) as session:
        tasks = session.scalars(query).all()
        return CallbackTaskList(items=[
            CallbackTaskOut(
                id=t.id, reason=t.reason, status=t.status, client_id=t.client_id, phone=t.phone,
                original_call_id=t.original_call_id, agent_id=t.agent_id, score=t.score,
                deadline=t.deadline, created_at=t.created_at,
            )
            for t in tasks
        ])
