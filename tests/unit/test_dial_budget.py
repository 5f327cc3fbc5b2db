"""The shared dialing budget's rule, without a database: which slots a dispatcher gets."""

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from campaigns.dial_budget import grant_slots, slot_spacing

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
TICK = timedelta(seconds=1)
MS = timedelta(milliseconds=1)


def test_slots_start_now_and_are_spaced_with_the_lateness_allowance() -> None:
    grant = grant_slots(None, NOW, rate=10, wanted=3, horizon=TICK)
    assert grant.slots == (NOW, NOW + 110 * MS, NOW + 220 * MS)
    assert grant.next_slot == NOW + 330 * MS


def test_the_spacing_is_one_point_one_over_rate() -> None:
    assert slot_spacing(4) == 275 * MS
    # 1.1/3 s is rounded up to the microsecond, never down.
    assert slot_spacing(3) == timedelta(microseconds=366_667)


def test_no_slot_lies_beyond_the_horizon() -> None:
    grant = grant_slots(None, NOW, rate=10, wanted=50, horizon=TICK)
    assert len(grant.slots) == 10  # 0, 110, ..., 990 ms; 1100 ms is past the horizon
    assert grant.slots[-1] == NOW + 990 * MS
    assert grant.next_slot == NOW + 1100 * MS


def test_a_slot_exactly_at_the_horizon_is_granted() -> None:
    grant = grant_slots(None, NOW, rate=10, wanted=5, horizon=220 * MS)
    assert grant.slots[-1] == NOW + 220 * MS
    assert len(grant.slots) == 3


def test_a_zero_horizon_grants_one_slot_now() -> None:
    grant = grant_slots(NOW - TICK, NOW, rate=10, wanted=5, horizon=timedelta(0))
    assert grant.slots == (NOW,)


def test_an_idle_budget_does_not_burst() -> None:
    long_ago = NOW - timedelta(hours=3)
    grant = grant_slots(long_ago, NOW, rate=10, wanted=20, horizon=timedelta(seconds=2))
    assert grant.slots[:3] == (NOW, NOW + 110 * MS, NOW + 220 * MS)
    gaps = {b - a for a, b in pairwise(grant.slots)}
    assert gaps == {110 * MS}


def test_a_stored_slot_in_the_future_comes_first() -> None:
    later = NOW + 300 * MS
    grant = grant_slots(later, NOW, rate=10, wanted=2, horizon=TICK)
    assert grant.slots == (later, later + 110 * MS)
    assert grant.next_slot == later + 220 * MS


def test_the_horizon_counts_from_now_not_from_the_stored_slot() -> None:
    grant = grant_slots(NOW + 900 * MS, NOW, rate=10, wanted=5, horizon=TICK)
    assert grant.slots == (NOW + 900 * MS,)


def test_a_stored_slot_beyond_the_horizon_grants_nothing_and_keeps_it() -> None:
    beyond = NOW + 1500 * MS
    grant = grant_slots(beyond, NOW, rate=10, wanted=5, horizon=TICK)
    assert grant.slots == ()
    assert grant.next_slot == beyond


def test_wanting_nothing_grants_nothing_and_moves_nothing() -> None:
    grant = grant_slots(NOW - TICK, NOW, rate=10, wanted=0, horizon=TICK)
    assert grant.slots == ()
    assert grant.next_slot == NOW


def test_a_fractional_rate_spaces_slots_seconds_apart() -> None:
    grant = grant_slots(None, NOW, rate=0.5, wanted=3, horizon=timedelta(seconds=4))
    step = timedelta(seconds=2.2)
    assert grant.slots == (NOW, NOW + step)
    assert grant.next_slot == NOW + 2 * step


def test_a_fractional_rate_after_a_recent_call_waits_its_turn() -> None:
    grant = grant_slots(NOW + 1500 * MS, NOW, rate=0.5, wanted=1, horizon=TICK)
    assert grant.slots == ()


def test_successive_grants_continue_one_schedule() -> None:
    first = grant_slots(None, NOW, rate=10, wanted=4, horizon=TICK)
    second = grant_slots(first.next_slot, NOW + 10 * MS, rate=10, wanted=4, horizon=TICK)
    slots = first.slots + second.slots
    gaps = {b - a for a, b in pairwise(slots)}
    assert gaps == {110 * MS}


def test_a_late_call_and_on_time_ones_never_exceed_the_rate_in_a_calendar_second() -> None:
    """What a packet capture counts: INVITEs per whole second. The first call of a run arrives
    100 ms late and lands in the same second as the next `rate` on-time ones: still `rate`."""
    start = NOW - 100 * MS  # a slot 100 ms before a second boundary
    slots = grant_slots(None, start, rate=10, wanted=11, horizon=2 * TICK).slots
    sent = [slots[0] + 100 * MS, *slots[1:]]
    in_second = [t for t in sent if NOW <= t < NOW + TICK]
    assert sent[0] == NOW
    assert len(in_second) == 10


@pytest.mark.parametrize("rate", [0, -1, float("inf"), float("nan")])
def test_a_rate_that_is_not_positive_and_finite_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        grant_slots(None, NOW, rate=rate, wanted=1, horizon=TICK)


def test_negative_wanted_or_horizon_is_refused() -> None:
    with pytest.raises(ValueError, match="wanted"):
        grant_slots(None, NOW, rate=1, wanted=-1, horizon=TICK)
    with pytest.raises(ValueError, match="horizon"):
        grant_slots(None, NOW, rate=1, wanted=1, horizon=-TICK)


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="now"):
        grant_slots(None, NOW.replace(tzinfo=None), rate=1, wanted=1, horizon=TICK)
