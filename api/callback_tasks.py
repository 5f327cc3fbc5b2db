"""`/api/v1/callback-tasks`: what support must call back, soonest deadline first, and each
task's life (claim, release, notes, attempts, resolve, cancel, reassign: campaigns/task_life.py).
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.orm import Session, sessionmaker

from api.auth import require_role
from api.errors import TOKEN_ERRORS, ApiError, error_responses
from api.paging import LIST_ERRORS, PageOut, PageQuery, cursor_checked
from api.state import Clock, Sessions
from api.tokens import ApiToken, Role
from campaigns import queries, task_life
from campaigns.events import Id, IsoDateTime
from campaigns.models import CallbackTask, CallbackTaskStatus, TaskOutcome
from campaigns.task_errors import TaskError
from campaigns.task_life import Actor, AttemptResult
from infra.db import transaction

router = APIRouter(prefix="/api/v1", tags=["callback tasks"])

Reason = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z_]{0,31}$")]
# Who holds a task, as the audit log names actors: "token:<name>", "user:<name>".
Holder = Annotated[str, StringConstraints(
    min_length=1, max_length=100, pattern=r"^[a-z]+:[^\x00-\x1f\x7f]+$")]
# What a person writes: several lines, no other control characters, not blank.
_WRITTEN = r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
Text = Annotated[str, StringConstraints(
    min_length=1, max_length=4000,
    pattern=rf"^{_WRITTEN}*[^\s\x00-\x1f\x7f]{_WRITTEN}*$")]
TaskId = Annotated[Id, Path(description="the task's id")]


class CallbackTaskQuery(PageQuery):
    status: CallbackTaskStatus = Field(CallbackTaskStatus.OPEN, description="default: open")
    reason: Reason | None = Field(None, description="why the task exists, e.g. low_score")
    client_id: Id | None = None
    deadline_before: IsoDateTime | None = Field(
        None, description="only tasks due before this time")
    deadline_after: IsoDateTime | None = Field(
        None, description="only tasks due at or after this time")
    assignee: Holder | None = Field(None, description="only tasks this actor holds")
    overdue: bool | None = Field(
        None, description="true: only tasks marked overdue; false: only the others")


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
    updated_at: datetime | None
    assignee: str | None
    claimed_at: datetime | None
    resolved_at: datetime | None
    outcome: str | None
    resolution_note: str | None
    cancel_reason: str | None
    overdue_at: datetime | None
    escalations: int


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
        assignee=query.assignee, overdue=query.overdue,
    )
    with cursor_checked(), transaction(request.app.state.sessions) as session:
        page = queries.callback_tasks(session, where, limit=query.limit, cursor=query.cursor)
        return CallbackTaskList(
            items=[CallbackTaskOut.model_validate(task) for task in page.items],
            total=page.total, next_cursor=page.next_cursor,
        )


class NoteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    author: str
    text: str
    created_at: datetime


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    agent: str
    at: datetime
    result: str
    note: str | None


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor: str
    action: str
    details: dict[str, Any] | None


class CallbackTaskDetail(CallbackTaskOut):
    context: dict[str, Any] | None
    client_timezone: str | None
    requests: int
    notes: list[NoteOut]
    attempts: list[AttemptOut]
    audit: list[AuditOut] = Field(description="who changed what, oldest first")


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Text


class AttemptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    result: AttemptResult
    note: Text | None = None


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: TaskOutcome
    note: Text | None = None


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Text


class ReassignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: Holder = Field(description='who holds the task from now, e.g. "token:anna"')


def current_actor(
    token: Annotated[ApiToken, Depends(require_role("support", "admin"))],
) -> Actor:
    """Who acts: the API token for now (`token:<name>`); signed-in users join here later."""
    return Actor(f"token:{token.name}", admin=token.role == Role.ADMIN)


ActorDep = Annotated[Actor, Depends(current_actor)]

_TASK_ERRORS = {
    **TOKEN_ERRORS,
    403: "`forbidden`: the token's role may not do this; `task-not-allowed`: another agent "
         "holds the task (only they or an admin may change it), or only an admin may",
    404: "`task-not-found`: no task with this id",
    409: "`task-already-claimed`: someone claimed it first (the message names them); "
         "`task-not-claimed`: the task is open and must be claimed first; `task-closed`: "
         "the task is resolved or cancelled",
    422: "`invalid-request`: the body is not valid (the message names what)",
}
TASK_ERRORS = error_responses(_TASK_ERRORS)
# A change with a body: one that is not JSON at all (not UTF-8, say) is 400.
BODY_ERRORS = error_responses({400: "`bad-request`: the body is not JSON", **_TASK_ERRORS})


@contextmanager
def _task_errors() -> Iterator[None]:
    try:
        yield
    except TaskError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None


def _detail(session: Session, task_id: str) -> CallbackTaskDetail:
    found = task_life.detail(session, task_id)
    return CallbackTaskDetail.model_validate({
        **CallbackTaskOut.model_validate(found.task).model_dump(),
        "context": found.task.context, "client_timezone": found.task.client_timezone,
        "requests": found.task.requests,
        "notes": [NoteOut.model_validate(note) for note in found.notes],
        "attempts": [AttemptOut.model_validate(attempt) for attempt in found.attempts],
        "audit": [AuditOut.model_validate(entry) for entry in found.audit],
    })


def _act(
    sessions: sessionmaker[Session], task_id: str,
    change: Callable[[Session], CallbackTask],
) -> CallbackTaskDetail:
    """One change in one transaction; the task as it is after it."""
    with _task_errors(), transaction(sessions) as session:
        change(session)
        return _detail(session, task_id)


@router.get(
    "/callback-tasks/{task_id}", response_model=CallbackTaskDetail, summary="One callback task",
    description="The task with its notes, call attempts and audit trail (oldest first). Needs "
                "a support or admin token.",
    responses=TASK_ERRORS,
)
def get_callback_task(
    task_id: TaskId, _actor: ActorDep, sessions: Sessions,
) -> CallbackTaskDetail:
    with _task_errors(), transaction(sessions) as session:
        return _detail(session, task_id)


@router.post(
    "/callback-tasks/{task_id}/claim", response_model=CallbackTaskDetail,
    summary="Claim a callback task",
    description="The caller holds the open task from now. Of concurrent claims exactly one "
                "wins; the others get 409 `task-already-claimed` naming the holder.",
    responses=TASK_ERRORS,
)
def claim_callback_task(
    task_id: TaskId, actor: ActorDep, sessions: Sessions, clock: Clock,
) -> CallbackTaskDetail:
    return _act(sessions, task_id, lambda s: task_life.claim(s, task_id, actor, clock()))


@router.post(
    "/callback-tasks/{task_id}/release", response_model=CallbackTaskDetail,
    summary="Release a callback task",
    description="Back to open, for anyone to claim: by its holder or an admin.",
    responses=TASK_ERRORS,
)
def release_callback_task(
    task_id: TaskId, actor: ActorDep, sessions: Sessions, clock: Clock,
) -> CallbackTaskDetail:
    return _act(sessions, task_id, lambda s: task_life.release(s, task_id, actor, clock()))


@router.post(
    "/callback-tasks/{task_id}/notes", response_model=CallbackTaskDetail,
    summary="Add a note to a callback task",
    description="A note on an open or claimed task.", responses=BODY_ERRORS,
)
def add_callback_task_note(
    task_id: TaskId, body: NoteIn, actor: ActorDep, sessions: Sessions, clock: Clock,
) -> CallbackTaskDetail:
    return _act(sessions, task_id,
                lambda s: task_life.add_note(s, task_id, body.text, actor, clock()))


@router.post(
    "/callback-tasks/{task_id}/attempts", response_model=CallbackTaskDetail,
    summary="Record a call attempt on a callback task",
    description="The caller called the client back, with this result: on an open task or one "
                "they hold (an admin: any open or claimed task).",
    responses=BODY_ERRORS,
)
def record_callback_task_attempt(
    task_id: TaskId, body: AttemptIn, actor: ActorDep, sessions: Sessions, clock: Clock,
) -> CallbackTaskDetail:
    return _act(sessions, task_id, lambda s: task_life.record_attempt(
        s, task_id, body.result, body.note, actor, clock()))


@router.post(
    "/callback-tasks/{task_id}/resolve", response_model=CallbackTaskDetail,
    summary="Resolve a callback task",
    description="Done, with an outcome and a note: by its holder, or by an admin (an open "
                "task too).",
    responses=BODY_ERRORS,
)
def resolve_callback_task(
    task_id: TaskId, body: ResolveIn, actor: ActorDep, sessions: Sessions, clock: Clock,
) -> CallbackTaskDetail:
    return _act(sessions, task_id, lambda s: task_life.resolve(
        s, task_id, body.outcome, body.note, actor, clock()))


@router.post(
    "/callback-tasks/{task_id}/cancel", response_model=CallbackTaskDetail,
    summary="Cancel a callback task",
    description="No longer wanted, with a reason: an open task by any agent, a claimed one by "
                "its holder or an admin.",
    responses=BODY_ERRORS,
)
def cancel_callback_task(
    task_id: TaskId, body: CancelIn, actor: ActorDep, sessions: Sessions, clock: Clock,
) -> CallbackTaskDetail:
    return _act(sessions, task_id,
                lambda s: task_life.cancel(s, task_id, body.reason, actor, clock()))


@router.post(
    "/callback-tasks/{task_id}/reassign", response_model=CallbackTaskDetail,
    summary="Reassign a callback task",
    description="An admin gives an open or claimed task to someone: it is claimed by them "
                "from now. Needs an admin token.",
    responses=BODY_ERRORS,
)
def reassign_callback_task(
    task_id: TaskId, body: ReassignIn, actor: ActorDep, sessions: Sessions, clock: Clock,
) -> CallbackTaskDetail:
    return _act(sessions, task_id,
                lambda s: task_life.reassign(s, task_id, body.to, actor, clock()))
