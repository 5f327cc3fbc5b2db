"""The calls-per-second budget every instance shares, held in the database.

The budget is one row per name (table ``dial_budget``): the next free dialing slot, an
instant. It is the generic cell rate algorithm in its "virtual scheduling" form: a dispatcher
that wants ``n`` calls takes the slots ``max(now, next_slot)``, then one ``spacing`` after the
other, and moves ``next_slot`` past the last one it took. Slots are handed out at most
``horizon`` ahead of ``now`` (the dispatch tick interval, say); the caller starts each call at
its slot, never before.

- **No burst, ever.** There is no bucket to fill up: a budget idle for an hour, or one whose
  process just restarted, hands out ``now``, ``now + spacing``, ``now + 2 * spacing``, ... and
  never several calls at once. The row lives in the database, so a restart or a second
  instance continues from the same next slot.
- **The lateness allowance.** ``spacing`` is ``(1 + LATENESS_ALLOWANCE) / rate``. A call
  reaches the far end some time after its slot (the event loop, the proxy, a loaded machine);
  ``rate + 1`` consecutive slots span at least ``1.1 s``, so the first of them may arrive up to
  100 ms later than the last and a packet capture still counts at most ``rate`` INVITEs
  (``ceil(rate)`` for a fractional rate) in any calendar second. (A fixed 5 ms guard was tried
  first: the soak benchmark saw 6 INVITEs in one second at 5/s, calls arriving 40-100 ms after
  their slots.) The price: the budget dials at ``rate / 1.1`` (10/s gives 9.09/s).

``grant_slots`` is the pure rule (no I/O, no clock); ``reserve_slots`` applies it to the row,
locked (``lock_budget``), inside the caller's transaction, so the slots and the calls claimed
for them commit or roll back together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from campaigns.calendar import require_aware
from campaigns.models import DialBudget
from infra.db import upsert_insert

DEFAULT_BUDGET = "default"
LATENESS_ALLOWANCE = 0.1  # of each spacing: 100 ms of lateness per second, at any rate
# The next slot of a budget row created before any slot was taken: any past instant will do,
# as the first slot is never before ``now``.
NEVER_USED = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Grant:
    """The slots handed out, in order, and the budget's new next free slot."""

    slots: tuple[datetime, ...]
    next_slot: datetime


def slot_spacing(rate: float) -> timedelta:
    """The least time between two slots: ``(1 + LATENESS_ALLOWANCE) / rate``, rounded up to the
    microsecond."""
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"rate must be a positive number of calls per second, got {rate}")
    return timedelta(microseconds=math.ceil(1_000_000 * (1 + LATENESS_ALLOWANCE) / rate))


def grant_slots(
    stored_next: datetime | None,
    now: datetime,
    rate: float,
    wanted: int,
    horizon: timedelta,
) -> Grant:
    """Up to ``wanted`` slots from ``max(now, stored_next)``, ``slot_spacing(rate)`` apart,
    none after ``now + horizon``; ``stored_next`` None is a budget never used.

    With no slot granted, ``next_slot`` is ``max(now, stored_next)``: nothing to store.
    """
    if wanted < 0:
        raise ValueError(f"wanted must be >= 0, got {wanted}")
    if horizon < timedelta(0):
        raise ValueError(f"horizon must be >= 0, got {horizon}")
    spacing = slot_spacing(rate)
    now = require_aware(now, "now")
    first = now if stored_next is None else max(now, require_aware(stored_next, "stored_next"))
    room = now + horizon - first
    count = 0 if room < timedelta(0) else min(wanted, room // spacing + 1)
    return Grant(
        slots=tuple(first + i * spacing for i in range(count)),
        next_slot=first + count * spacing,
    )


def lock_budget(session: Session, name: str = DEFAULT_BUDGET) -> datetime:
    """Lock the budget ``name`` until the caller's transaction ends, creating it on first use,
    and return its next free slot. A transaction of another instance that wants the same
    budget waits here, so whatever the holder reads and writes meanwhile is decided by one
    transaction at a time (the dispatcher counts busy channels under it).

    The first statement is a write (an insert that does nothing when the row exists), so
    SQLite, which ignores FOR UPDATE, takes its write lock before the row is read; instances
    racing to create the row all succeed.
    """
    session.execute(
        upsert_insert(session, DialBudget).values(name=name, next_slot_at=NEVER_USED)
        .on_conflict_do_nothing()
    )
    return session.scalars(
        select(DialBudget.next_slot_at).where(DialBudget.name == name).with_for_update()
    ).one()


def reserve_slots(
    session: Session,
    *,
    now: datetime,
    rate: float,
    wanted: int,
    horizon: timedelta,
    name: str = DEFAULT_BUDGET,
) -> tuple[datetime, ...]:
    """Take up to ``wanted`` slots of the budget ``name`` (``grant_slots``) in the caller's
    transaction, which holds the budget locked from here to its end: every instance takes its
    slots one after the other, and rolling the transaction back gives the slots back.
    ``wanted`` 0 touches nothing.
    """
    if wanted == 0:
        return ()
    grant = grant_slots(lock_budget(session, name), now, rate, wanted, horizon)
    if grant.slots:
        session.execute(
            update(DialBudget).where(DialBudget.name == name).values(next_slot_at=grant.next_slot)
        )
    return grant.slots
