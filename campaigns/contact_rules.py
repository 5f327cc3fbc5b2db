"""The contact rules, held by the database (docs/contact-rules.md):

- at most one job of a kind per client (by client id and by phone) within the kind's period;
- never two calls to one client at once (partial unique indexes on dialing jobs, see models);
- never a client on the do-not-call lists (campaigns/do_not_call.py).

Every transaction that decides whether to contact a client first locks that client's rows in
`contact_locks` (one per client id, one per phone, created on first use), always in the same
order. Two webhooks for one client, on one instance or several, are therefore decided one after
the other, and the second sees the first's job; the dispatcher takes the same locks in its claim
transaction and checks the rules again just before dialing.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Table, bindparam, exists, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from campaigns.models import ContactLock, Job, JobStatus
from infra.db import utcnow

ALREADY_CONTACTED = "client already contacted"  # how a job skipped by a cap's reason begins

# Jobs that count against a cap when a new one is queued: waiting, being called, or done with.
# A job that was skipped or went unanswered does not stop a later one.
COUNTED = (JobStatus.PENDING, JobStatus.DIALING, JobStatus.COMPLETED)
# ... and just before dialing: the jobs that did reach the client.
CONTACTED = (JobStatus.DIALING, JobStatus.COMPLETED)


@dataclass(frozen=True)
class ContactCap:
    """At most one job of `kind` per client within `period` (by client id and by phone)."""

    kind: str
    period: timedelta


def lock_keys(client_id: str, phone: str) -> list[str]:
    return sorted({f"client:{client_id}", f"phone:{phone}"})


_LOCKS = ContactLock.metadata.tables[ContactLock.__tablename__]


def _lock_upsert(
    insert: Callable[[Table], postgresql.Insert | sqlite.Insert],
) -> postgresql.Insert | sqlite.Insert:
    """Both keys' rows, created or (no-op update) locked: one prebuilt statement whose values
    are bound parameters, so it is compiled once (the ORM's bulk path cost three times as much
    as the insert itself: docs/performance.md)."""
    statement = insert(_LOCKS)
    now = bindparam("now", type_=_LOCKS.c.created_at.type)
    return statement.values([{"key": bindparam("first"), "created_at": now},
                              {"key": bindparam("second"), "created_at": now}]) \
        .on_conflict_do_update(index_elements=[_LOCKS.c.key],
                               set_={"key": statement.excluded.key})


_LOCK_UPSERTS = {"postgresql": _lock_upsert(postgresql.insert),
                 "sqlite": _lock_upsert(sqlite.insert)}


def lock_client(session: Session, client_id: str, phone: str) -> None:
    """Lock the client's rows until the transaction ends (creating them on first use); a
    concurrent transaction for the same client id or phone waits here.

    One statement: an upsert whose no-op update locks an existing row (PostgreSQL) and whose
    write takes the database's write lock (SQLite); the keys go in sorted order, so two
    transactions never wait on each other crosswise."""
    connection = session.connection()
    first, second = lock_keys(client_id, phone)
    connection.execute(_LOCK_UPSERTS[connection.dialect.name],
                       {"first": first, "second": second, "now": utcnow()})


def contacted_recently(
    session: Session, cap: ContactCap, client_id: str, phone: str, now: datetime,
    *, counting: Iterable[JobStatus] = COUNTED, besides: Iterable[str] = (),
) -> bool:
    """Whether another job of the cap's kind, in one of the `counting` states, exists for this
    client within the period before `now`."""
    return bool(session.scalar(select(exists().where(
        Job.kind == cap.kind,
        or_(Job.client_id == client_id, Job.phone == phone),
        Job.created_at >= now - cap.period,
        Job.status.in_(list(counting)),
        Job.id.not_in(list(besides)),
    ))))


def on_call_elsewhere(session: Session, client_id: str, phone: str, besides: str) -> bool:
    """Whether another job is calling this client (by client id or phone) right now."""
    return bool(session.scalar(select(exists().where(
        Job.status == JobStatus.DIALING,
        or_(Job.client_id == client_id, Job.phone == phone),
        Job.id != besides,
    ))))
