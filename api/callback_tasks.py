"""`/api/v1/callback-tasks`: what support must call back, soonest deadline first."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.auth import require_role
from api.paging import LIST_ERRORS, PageOut, PageQuery, cursor_checked
from api.tokens import ApiToken
from campaigns import queries
from campaigns.events import Id, IsoDateTime
from campaigns.models import CallbackTaskStatus
from infra.db import transaction

router = APIRouter(prefix="/api/v1", tags=["callback tasks"])

Reason = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z_]{0,31}$")]


class CallbackTaskQuery(PageQuery):
    status: CallbackTaskStatus = Field(CallbackTaskStatus.OPEN, description="default: open")
    reason: Reason | None = Field(None, description="why the task exists, e.g. low_score")
    client_id: Id | None = None
    deadline_before: IsoDateTime | None = Field(
        None, description="only tasks due before this time")
    deadline_after: IsoDateTime | None = Field(
        None, description="only tasks due at or after this time")


class CallbackTaskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

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


class CallbackTaskList(PageOut):
    items: list[CallbackTaskOut]


@router.get(
    "/callback-tasks",
    response_model=CallbackTaskList,
    summary="List callback tasks",
    description=(
        "The tasks support must call back, soonest deadline first (then by id), filtered and "
        "cut into pages: pass `next_cursor` back as `cursor` until it is null. `total` counts "
        "every task matching the filters. Needs a support or admin token."
    ),
    responses=LIST_ERRORS,
)
def list_callback_tasks(
    request: Request,
    _token: Annotated[ApiToken, Depends(require_role("support", "admin"))],
    query: Annotated[CallbackTaskQuery, Query()],
) -> CallbackTaskList:
    where = queries.CallbackTaskFilter(
        status=query.status, reason=query.reason, client_id=query.client_id,
        deadline_before=query.deadline_before, deadline_after=query.deadline_after,
    )
    with cursor_checked(), transaction(request.app.state.sessions) as session:
        page = queries.callback_tasks(session, where, limit=query.limit, cursor=query.cursor)
        return CallbackTaskList(
            items=[CallbackTaskOut.model_validate(task) for task in page.items],
            total=page.total, next_cursor=page.next_cursor,
        )
