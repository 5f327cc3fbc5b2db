"""The shared dialing budget in the database, on SQLite and PostgreSQL: it survives restarts,
rolls back with the caller's transaction, and several instances taking slots at the same time
never get the same slot or two slots closer than the spacing. Time is injected, never slept."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from campaigns.dial_budget import NEVER_USED, lock_budget, reserve_slots, slot_spacing
from campaigns.models import DialBudget
from infra.db import make_engine, make_sessions, transaction

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
RATE = 10.0
SPACING = slot_spacing(RATE)
HORIZON = timedelta(seconds=1)

Instance = sessionmaker[Session]
StartInstance = Callable[[], Instance]


@pytest.fixture
def start_instance(sessions: Instance, database_url: str) -> Iterator[StartInstance]:
    """Starts another "instance" of ringback: its own engine and sessions on the same database
    (migrated by `sessions`). Every engine is disposed at teardown."""
    engines = []

    def start() -> Instance:
        engine = make_engine(database_url)
        engines.append(engine)
        return make_sessions(engine)

    try:
        yield start
    finally:
        for engine in engines:
            engine.dispose()


def reserve(
    sessions: Instance, now: datetime, wanted: int, *, name: str = "default"
) -> tuple[datetime, ...]:
    with transaction(sessions) as session:
        return reserve_slots(session, now=now, rate=RATE, wanted=wanted, horizon=HORIZON,
                             name=name)


def stored_budgets(sessions: Instance) -> dict[str, datetime]:
    with transaction(sessions) as session:
        rows = session.execute(select(DialBudget.name, DialBudget.next_slot_at))
        return {name: next_slot for name, next_slot in rows}


def assert_strictly_spaced(slots: list[datetime]) -> None:
    ordered = sorted(slots)
    assert len(set(ordered)) == len(ordered), "a slot was granted twice"
    closest = min(b - a for a, b in pairwise(ordered))
    assert closest >= SPACING


def test_the_first_reservation_creates_the_budget_and_starts_now(sessions: Instance) -> None:
    assert reserve(sessions, NOW, 3) == (NOW, NOW + SPACING, NOW + 2 * SPACING)
    assert stored_budgets(sessions) == {"default": NOW + 3 * SPACING}


def test_a_restart_continues_the_schedule_instead_of_bursting(
    sessions: Instance, start_instance: StartInstance
) -> None:
    before = reserve(start_instance(), NOW, 3)
    after = reserve(start_instance(), NOW + timedelta(milliseconds=20), 3)
    assert after == (before[-1] + SPACING, before[-1] + 2 * SPACING, before[-1] + 3 * SPACING)


def test_after_idling_the_budget_starts_at_now(sessions: Instance) -> None:
    reserve(sessions, NOW, 5)
    later = NOW + timedelta(hours=1)
    assert reserve(sessions, later, 3) == (later, later + SPACING, later + 2 * SPACING)


def test_nothing_is_granted_past_the_horizon_and_the_budget_is_kept(sessions: Instance) -> None:
    assert len(reserve(sessions, NOW, 100)) == 10
    kept = stored_budgets(sessions)
    assert reserve(sessions, NOW + timedelta(milliseconds=10), 5) == ()
    assert stored_budgets(sessions) == kept


def test_wanting_nothing_writes_nothing(sessions: Instance) -> None:
    assert reserve(sessions, NOW, 0) == ()
    assert stored_budgets(sessions) == {}


def test_a_rolled_back_transaction_gives_its_slots_back(sessions: Instance) -> None:
    reserve(sessions, NOW, 1)

    class ClaimFailed(Exception):
        pass

    with pytest.raises(ClaimFailed), transaction(sessions) as session:
        taken = reserve_slots(session, now=NOW, rate=RATE, wanted=2, horizon=HORIZON)
        raise ClaimFailed
    assert reserve(sessions, NOW, 2) == taken


def test_budgets_with_different_names_are_independent(sessions: Instance) -> None:
    reserve(sessions, NOW, 4, name="trunk-a")
    assert reserve(sessions, NOW, 1, name="trunk-b") == (NOW,)


def test_locking_creates_the_budget_without_taking_a_slot(sessions: Instance) -> None:
    with transaction(sessions) as session:
        assert lock_budget(session) == NEVER_USED
    assert stored_budgets(sessions) == {"default": NEVER_USED}
    assert reserve(sessions, NOW, 2) == (NOW, NOW + SPACING)


def wait_for_locks_at_most_a_moment(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL lock_timeout = 200"))
    else:
        session.execute(text("PRAGMA busy_timeout = 200"))


def test_a_held_budget_keeps_other_instances_out_until_its_transaction_ends(
    sessions: Instance, start_instance: StartInstance
) -> None:
    reserve(sessions, NOW, 1)
    other = start_instance()
    with transaction(sessions) as holder:
        lock_budget(holder)
        with pytest.raises(OperationalError), transaction(other) as session:
            wait_for_locks_at_most_a_moment(session)
            reserve_slots(session, now=NOW, rate=RATE, wanted=1, horizon=HORIZON)
    assert reserve(other, NOW, 1) == (NOW + SPACING,)


def warm(instance: Instance) -> Instance:
    """Open a pooled connection now, so the racers start their transactions together."""
    with transaction(instance) as session:
        session.execute(text("SELECT 1"))
    return instance


def race(instances: list[Instance], rounds: int, wanted: int,
         step: timedelta) -> list[list[datetime]]:
    """Every instance reserves in its own thread, all at once in each round; round `r` runs at
    `NOW + r * step` on every instance's (injected) clock. The slots each instance got."""
    start = threading.Barrier(len(instances), timeout=30)

    def run(instance: Instance) -> list[datetime]:
        got: list[datetime] = []
        try:
            for number in range(rounds):
                start.wait()
                got.extend(reserve(instance, NOW + number * step, wanted))
        except BaseException:
            start.abort()  # the others stop at once instead of waiting out the timeout
            raise
        return got

    with ThreadPoolExecutor(len(instances)) as pool:
        return list(pool.map(run, instances))


def test_instances_reserving_at_once_never_share_or_crowd_a_slot(
    sessions: Instance, start_instance: StartInstance
) -> None:
    instances = [warm(start_instance()) for _ in range(4)]
    rounds = 150
    # Each round the four want 8 slots (840 ms) while the clock moves 200 ms: the budget is
    # always contended and the horizon caps what is handed out.
    got = race(instances, rounds, wanted=2, step=timedelta(milliseconds=200))
    everything = [slot for slots in got for slot in slots]
    assert_strictly_spaced(everything)
    assert all(slots for slots in got), "every instance got slots"
    # Nothing was lost either: the slots fill the time the clock covered.
    assert len(everything) >= (rounds - 1) * timedelta(milliseconds=200) // SPACING
    assert stored_budgets(sessions) == {"default": max(everything) + SPACING}


def test_instances_creating_the_budget_at_once_make_one_row(
    sessions: Instance, start_instance: StartInstance
) -> None:
    instances = [warm(start_instance()) for _ in range(8)]
    got = race(instances, rounds=1, wanted=1, step=timedelta(0))
    everything = [slot for slots in got for slot in slots]
    assert len(everything) == 8
    assert_strictly_spaced(everything)
    assert min(everything) == NOW
    assert list(stored_budgets(sessions)) == ["default"]
