"""`/api/v1/jobs` and `/api/v1/calls`: who the robot is to call or called, and how each call
went, newest first."""

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AfterValidator, AliasPath, BaseModel, ConfigDict, Field

from api.auth import require_role
from api.paging import LIST_ERRORS, PageOut, PageQuery, cursor_checked
from api.tokens import ApiToken
from campaigns import queries
from campaigns.events import Id, IsoDateTime
from campaigns.models import JobKind, JobStatus
from infra.db import transaction
from infra.logs import mask_phone

router = APIRouter(prefix="/api/v1", tags=["jobs and calls"])

# An attempt's outcome: telephony's `Outcome`, or what campaigns write themselves (`crashed`:
# its process died mid-call; `not_wanted`: the CRM called it off just before dialing).
CallOutcome = Literal["answered", "busy", "declined", "no_answer", "unreachable", "failed",
                      "cancelled", "crashed", "not_wanted"]
MaskedPhone = Annotated[str, AfterValidator(mask_phone)]
ShownContext = Annotated[dict[str, Any], AfterValidator(queries.shown_context)]


class JobQuery(PageQuery):
    kind: JobKind | None = Field(None, description="default: every kind")
    client_id: Id | None = None
    status: JobStatus | None = Field(None, description="default: every status")
    created_from: IsoDateTime | None = Field(None, description="only jobs created at or after")
    created_to: IsoDateTime | None = Field(None, description="only jobs created before")


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    status: str
    client_id: str
    phone: MaskedPhone = Field(description="masked as in the logs: all digits but the last two")
    timezone: str
    locale: str
    due_at: datetime
    not_before: datetime
    attempts: int
    max_attempts: int
    final_reason: str | None = Field(description="why the job ended (null while it has not)")
    created_at: datetime
    context: ShownContext = Field(
        description="what the call is about (balance, campaign, original call ...); never the "
                    "client's name or another person's number")


class JobList(PageOut):
    items: list[JobOut]


class CallQuery(PageQuery):
    kind: JobKind | None = Field(None, description="the job's kind; default: every kind")
    client_id: Id | None = None
    outcome: CallOutcome | None = Field(None, description="default: every outcome, and none")
    started_from: IsoDateTime | None = Field(None, description="only calls started at or after")
    started_to: IsoDateTime | None = Field(None, description="only calls started before")


class CallOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="the attempt's id")
    job_id: str
    kind: str = Field(validation_alias=AliasPath("job", "kind"), description="the job's")
    client_id: str = Field(validation_alias=AliasPath("job", "client_id"))
    number: int = Field(description="1 for the job's first attempt, 2 for its retry ...")
    started_at: datetime
    ended_at: datetime | None = Field(description="null while the call is up")
    outcome: str | None = Field(description="null while the call is up")
    sip_status: int | None
    result: str | None = Field(description="what the client chose, e.g. score, invoice, opt_out")
    result_value: int | None = Field(description="e.g. the survey score")


class CallList(PageOut):
    items: list[CallOut]


@router.get(
    "/jobs",
    response_model=JobList,
    summary="List jobs",
    description=(
        "Calls the robot is to place or has placed (surveys and warnings), newest first (then "
        "by id), filtered and cut into pages: pass `next_cursor` back as `cursor` until it is "
        "null. `created_from` is inclusive, `created_to` exclusive. Phone numbers are masked. "
        "Needs a support or admin token."
    ),
    responses=LIST_ERRORS,
)
def list_jobs(
    request: Request,
    _token: Annotated[ApiToken, Depends(require_role("support", "admin"))],
    query: Annotated[JobQuery, Query()],
) -> JobList:
    where = queries.JobFilter(
        kind=query.kind, client_id=query.client_id, status=query.status,
        created_from=query.created_from, created_to=query.created_to,
    )
    with cursor_checked(), transaction(request.app.state.sessions) as session:
        page = queries.jobs(session, where, limit=query.limit, cursor=query.cursor)
        return JobList(
            items=[JobOut.model_validate(job) for job in page.items],
            total=page.total, next_cursor=page.next_cursor,
        )


@router.get(
    "/calls",
    response_model=CallList,
    summary="List calls",
    description=(
        "Every call attempt of every job, the latest started first (then by id), filtered and "
        "cut into pages: pass `next_cursor` back as `cursor` until it is null. `started_from` "
        "is inclusive, `started_to` exclusive. Needs a support or admin token."
    ),
    responses=LIST_ERRORS,
)
def list_calls(
    request: Request,
    _token: Annotated[ApiToken, Depends(require_role("support", "admin"))],
    query: Annotated[CallQuery, Query()],
) -> CallList:
    where = queries.CallFilter(
        kind=query.kind, client_id=query.client_id, outcome=query.outcome,
        started_from=query.started_from, started_to=query.started_to,
    )
    with cursor_checked(), transaction(request.app.state.sessions) as session:
        page = queries.call_attempts(session, where, limit=query.limit, cursor=query.cursor)
        return CallList(
            items=[CallOut.model_validate(call) for call in page.items],
            total=page.total, next_cursor=page.next_cursor,
        )
