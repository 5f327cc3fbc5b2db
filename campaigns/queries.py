"""The lists the API shows: filtered, counted, and cut into pages by an opaque cursor.

A page is `limit` rows in a fixed order (callback tasks: deadline, then id; outbox events: id,
the order they go out in; jobs and call attempts: newest first, by creation / start time, then
id), with the total of rows matching the filters. The cursor is where the page ended (the last
row's sort key, base64url JSON): the next page starts after it, so rows added or removed
meanwhile neither repeat nor push others off (keyset pagination).
"""

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import Field, TypeAdapter
from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session, contains_eager

from campaigns.events import BoundedDateTime, Id
from campaigns.models import (
    CallAttempt,
    CallbackTask,
    CallbackTaskStatus,
    Job,
    JobKind,
    JobStatus,
    OutboxEvent,
    OutboxStatus,
)
from infra.db import Base

MAX_LIMIT = 500
MAX_CURSOR_LENGTH = 512

Row = TypeVar("Row", bound=Base)


class InvalidCursor(ValueError):
    """A cursor this list did not give out (or one made for another list)."""


@dataclass(frozen=True)
class Page(Generic[Row]):
    items: list[Row]
    total: int  # rows matching the filters, on every page
    next_cursor: str | None  # None on the last page


@dataclass(frozen=True)
class CallbackTaskFilter:
    status: CallbackTaskStatus | None = None
    reason: str | None = None
    client_id: str | None = None
    deadline_before: datetime | None = None  # deadline < this
    deadline_after: datetime | None = None  # deadline >= this
    assignee: str | None = None
    overdue: bool | None = None  # marked overdue (True) or not (False)

    def conditions(self) -> list[ColumnElement[bool]]:
        wanted: list[ColumnElement[bool]] = []
        if self.status is not None:
            wanted.append(CallbackTask.status == self.status)
        if self.assignee is not None:
            wanted.append(CallbackTask.assignee == self.assignee)
        if self.overdue is not None:
            wanted.append(CallbackTask.overdue_at.is_not(None) if self.overdue
                          else CallbackTask.overdue_at.is_(None))
        if self.reason is not None:
            wanted.append(CallbackTask.reason == self.reason)
        if self.client_id is not None:
            wanted.append(CallbackTask.client_id == self.client_id)
        if self.deadline_before is not None:
            wanted.append(CallbackTask.deadline < self.deadline_before)
        if self.deadline_after is not None:
            wanted.append(CallbackTask.deadline >= self.deadline_after)
        return wanted


@dataclass(frozen=True)
class OutboxFilter:
    status: OutboxStatus | None = None
    type: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        wanted: list[ColumnElement[bool]] = []
        if self.status is not None:
            wanted.append(OutboxEvent.status == self.status)
        if self.type is not None:
            wanted.append(OutboxEvent.type == self.type)
        return wanted


@dataclass(frozen=True)
class JobFilter:
    kind: JobKind | None = None
    client_id: str | None = None
    status: JobStatus | None = None
    created_from: datetime | None = None  # created_at >= this
    created_to: datetime | None = None  # created_at < this

    def conditions(self) -> list[ColumnElement[bool]]:
        wanted: list[ColumnElement[bool]] = []
        if self.kind is not None:
            wanted.append(Job.kind == self.kind)
        if self.client_id is not None:
            wanted.append(Job.client_id == self.client_id)
        if self.status is not None:
            wanted.append(Job.status == self.status)
        if self.created_from is not None:
            wanted.append(Job.created_at >= self.created_from)
        if self.created_to is not None:
            wanted.append(Job.created_at < self.created_to)
        return wanted


@dataclass(frozen=True)
class CallFilter:
    kind: JobKind | None = None  # the job's
    client_id: str | None = None  # the job's
    outcome: str | None = None
    started_from: datetime | None = None  # started_at >= this
    started_to: datetime | None = None  # started_at < this

    def conditions(self) -> list[ColumnElement[bool]]:
        wanted: list[ColumnElement[bool]] = []
        if self.kind is not None:
            wanted.append(Job.kind == self.kind)
        if self.client_id is not None:
            wanted.append(Job.client_id == self.client_id)
        if self.outcome is not None:
            wanted.append(CallAttempt.outcome == self.outcome)
        if self.started_from is not None:
            wanted.append(CallAttempt.started_at >= self.started_from)
        if self.started_to is not None:
            wanted.append(CallAttempt.started_at < self.started_to)
        return wanted


# What a list may show of a job's context: the reason for the call, never the client's name
# or another person's number (a warning's manager_phone). Anything not named here is left
# out, so a key added to the context later stays hidden until it is added here.
SHOWN_CONTEXT = frozenset({
    # warnings (campaigns/warnings.py)
    "balance", "currency", "days_left", "occurred_at", "campaign_id", "campaign", "stops_at",
    "stop_date", "stop_reason", "manager_id",
    # surveys (campaigns/surveys.py)
    "call_id", "agent_id", "queue", "ended_at", "duration_s",
    # both
    "timezone_source",
})


def shown_context(context: dict[str, Any] | None) -> dict[str, Any]:
    """The part of a job's context a list may show (`SHOWN_CONTEXT`)."""
    return {key: value for key, value in (context or {}).items() if key in SHOWN_CONTEXT}


@dataclass(frozen=True)
class _Keyset:
    """A list's order (unique: it ends with the primary key) and its cursors."""

    columns: tuple[InstrumentedAttribute[Any], ...]
    values: TypeAdapter[Any]  # the JSON form of one row's key, as a tuple
    descending: bool = False  # newest first: every column from the greatest down

    def encode(self, row: object) -> str:
        key = tuple(getattr(row, column.key) for column in self.columns)
        raw = self.values.dump_json(key)
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def decode(self, cursor: str) -> tuple[Any, ...]:
        try:
            raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_",
                                   validate=True)
            key: tuple[Any, ...] = self.values.validate_json(raw)
        except ValueError:  # binascii.Error, ValidationError and non-ASCII text alike
            raise InvalidCursor("not a cursor of this list: pass next_cursor as it came") from None
        return key

    def after(self, cursor: str) -> ColumnElement[bool]:
        """The rows after the cursor's row in this order."""
        return _after(self.columns, self.decode(cursor), self.descending)

    def order(self) -> list[ColumnElement[Any]]:
        return [column.desc() if self.descending else column.asc() for column in self.columns]


def _after(
    columns: Sequence[InstrumentedAttribute[Any]], key: Sequence[Any], descending: bool
) -> ColumnElement[bool]:
    """(a, b) > (x, y), or < when descending, spelled out for every database."""
    first, *rest = columns
    beyond: ColumnElement[bool] = first < key[0] if descending else first > key[0]
    if not rest:
        return beyond
    return or_(beyond, and_(first == key[0], _after(rest, key[1:], descending)))


# The values are checked as the databases will take them: no NUL in text (PostgreSQL), no
# integer past 64 bits (SQLite), no time whose conversion to UTC overflows.
_RowId = Annotated[int, Field(ge=0, lt=2**63)]
_TASKS = _Keyset((CallbackTask.deadline, CallbackTask.id),
                 TypeAdapter(tuple[BoundedDateTime, Id], config={"strict": True}))
_OUTBOX = _Keyset((OutboxEvent.id,), TypeAdapter(tuple[_RowId], config={"strict": True}))
_JOBS = _Keyset((Job.created_at, Job.id),
                TypeAdapter(tuple[BoundedDateTime, Id], config={"strict": True}), descending=True)
_CALLS = _Keyset((CallAttempt.started_at, CallAttempt.id),
                 TypeAdapter(tuple[BoundedDateTime, _RowId], config={"strict": True}),
                 descending=True)


def callback_tasks(
    session: Session, where: CallbackTaskFilter, *, limit: int, cursor: str | None = None
) -> Page[CallbackTask]:
    """Callback tasks, soonest deadline first."""
    return _page(session, CallbackTask, where.conditions(), _TASKS, limit, cursor)


def outbox_events(
    session: Session, where: OutboxFilter, *, limit: int, cursor: str | None = None
) -> Page[OutboxEvent]:
    """Events for the CRM, oldest first (the order they are delivered in)."""
    return _page(session, OutboxEvent, where.conditions(), _OUTBOX, limit, cursor)


def jobs(
    session: Session, where: JobFilter, *, limit: int, cursor: str | None = None
) -> Page[Job]:
    """Jobs, newest first."""
    return _page(session, Job, where.conditions(), _JOBS, limit, cursor)


def call_attempts(
    session: Session, where: CallFilter, *, limit: int, cursor: str | None = None
) -> Page[CallAttempt]:
    """Call attempts, the latest started first, each with its job loaded."""
    return _page(session, CallAttempt, where.conditions(), _CALLS, limit, cursor,
                 joined=CallAttempt.job)


def _page(
    session: Session,
    model: type[Row],
    conditions: list[ColumnElement[bool]],
    keyset: _Keyset,
    limit: int,
    cursor: str | None,
    joined: InstrumentedAttribute[Any] | None = None,
) -> Page[Row]:
    """One page of `model`; `joined`: a relationship filtered on and loaded with each row."""
    after = [] if cursor is None else [keyset.after(cursor)]
    listed = select(model)
    counted = select(func.count()).select_from(model)
    if joined is not None:
        listed = listed.join(joined).options(contains_eager(joined))
        counted = counted.join(joined)
    total = session.scalar(counted.where(*conditions)) or 0
    found = list(session.scalars(
        listed.where(*conditions, *after).order_by(*keyset.order()).limit(limit + 1)
    ))
    more = len(found) > limit
    items = found[:limit]
    return Page(items, total, keyset.encode(items[-1]) if more else None)
