"""`/api/v1/outbox`: whether events reach the CRM, and why not when they do not."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from api.auth import require_role
from api.tokens import ApiToken
from campaigns.outbox import pending_summary
from infra.db import transaction

router = APIRouter(prefix="/api/v1", tags=["outbox"])


class OutboxStatusOut(BaseModel):
    pending: int
    failing: int
    oldest_pending_at: datetime | None
    last_error: str | None


@router.get("/outbox", response_model=OutboxStatusOut)
def outbox_status(
    request: Request, _token: Annotated[ApiToken, Depends(require_role("admin"))]
) -> OutboxStatusOut:
    with transaction(request.app.state.sessions) as session:
        summary = pending_summary(session)
    return OutboxStatusOut(
        pending=summary.pending, failing=summary.failing,
        oldest_pending_at=summary.oldest_pending_at, last_error=summary.last_error,
    )
