"""`/api/v1/outbox`: whether events reach the CRM, and why not when they do not."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from api.auth import require_role
from api.paging import LIST_ERRORS, PageOut, PageQuery, cursor_checked
from api.tokens import ApiToken
from campaigns import queries
from campaigns.events import EventType
from campaigns.models import OutboxStatus
from campaigns.outbox import pending_summary
from infra.db import transaction

router = APIRouter(prefix="/api/v1", tags=["outbox"])


class OutboxQuery(PageQuery):
    status: OutboxStatus | None = Field(None, description="default: every status")
    type: EventType | None = Field(None, description="e.g. survey.completed")


class OutboxEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    event_id: str = Field(description="the webhook-id the CRM receives")
    type: str
    ordering_key: str = Field(description="whose events go out in order: the client id")
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class OutboxList(PageOut):
    pending: int = Field(description="events not delivered yet (whatever the filters)")
    failing: int = Field(description="pending events that failed at least once")
    oldest_pending_at: datetime | None
    last_error: str | None = Field(description="of the oldest failing event: the one holding "
                                               "its client's later events back")
    items: list[OutboxEventOut]


@router.get(
    "/outbox",
    response_model=OutboxList,
    summary="Events for the CRM and their delivery",
    description=(
        "What is pending and the last delivery error, then the events themselves, oldest "
        "first (the order they go out in), filtered and cut into pages: pass `next_cursor` "
        "back as `cursor` until it is null. Needs an admin token."
    ),
    responses=LIST_ERRORS,
)
def outbox_status(
    request: Request,
    _token: Annotated[ApiToken, Depends(require_role("admin"))],
    query: Annotated[OutboxQuery, Query()],
) -> OutboxList:
    where = queries.OutboxFilter(status=query.status, type=query.type)
    with cursor_checked(), transaction(request.app.state.sessions) as session:
        summary = pending_summary(session)
        page = queries.outbox_events(session, where, limit=query.limit, cursor=query.cursor)
        return OutboxList(
            pending=summary.pending, failing=summary.failing,
            oldest_pending_at=summary.oldest_pending_at, last_error=summary.last_error,
            items=[OutboxEventOut.model_validate(event) for event in page.items],
            total=page.total, next_cursor=page.next_cursor,
        )
