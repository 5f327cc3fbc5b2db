"""Hold-tip rotation: no repeat within a caller's round, order and weight, schedules in the
business's zone (daily hours across midnight, inclusive date ranges). Random checks use fixed
seeds, so every run sees the same draws."""

import itertools
import random
from collections import Counter
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from ivr.hold_rotation import (
    CallerRotation,
    HoldTiming,
    RotationMode,
    RotationTip,
    TipSchedule,
    cycle_order,
)

NOON = datetime(2026, 6, 15, 12, 0)
NIGHT = TipSchedule(daily_from=time(22, 0), daily_to=time(2, 0))


def tips(*positions: int, weights: tuple[int, ...] = ()) -> list[RotationTip]:
    return [RotationTip(tip_id=10 + i, position=p, weight=weights[i] if weights else 1)
            for i, p in enumerate(positions)]


def played(rotation: CallerRotation, line: list[RotationTip], count: int,
           local: datetime = NOON) -> list[int | None]:
    return [rotation.next_tip(line, local) for _ in range(count)]


# -- rounds -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(RotationMode))
def test_no_tip_repeats_until_every_active_tip_played(mode: RotationMode) -> None:
    draw = random.Random(2026)
    for _ in range(300):
        size = draw.randint(1, 8)
        line = [RotationTip(tip_id=draw.randint(1, 10_000) * 10 + i,
                            position=draw.randint(0, 5), weight=draw.randint(1, 100))
                for i in range(size)]
        rotation = CallerRotation(mode, random.Random(draw.random()))
        sequence = [tip_id for tip_id in played(rotation, line, size * 4) if tip_id is not None]
        rounds = [sequence[i:i + size] for i in range(0, len(sequence), size)]
        for one in rounds:
            assert sorted(one) == sorted(tip.tip_id for tip in line)
        for earlier, later in itertools.pairwise(rounds):
            if size > 1:
                assert later[0] != earlier[-1]


@pytest.mark.parametrize("mode", list(RotationMode))
def test_no_repeat_within_a_round_while_the_active_set_changes(mode: RotationMode) -> None:
    """Each call sees a random subset of the line active. A tip may come again only once every
    tip active at that moment has played in the round; a round never opens with the tip just
    played when another is active."""
    draw = random.Random(4711)
    for _ in range(200):
        line = tips(*(draw.randint(0, 5) for _ in range(draw.randint(1, 8))))
        rotation = CallerRotation(mode, random.Random(draw.random()))
        in_round: set[int] = set()
        last: int | None = None
        for _ in range(40):
            active = [tip for tip in line if draw.random() < 0.7]
            chosen = rotation.next_tip(active, NOON)
            ids = {tip.tip_id for tip in active}
            if chosen is None:
                assert not active
                continue
            assert chosen in ids
            if chosen in in_round:  # a new round
                assert ids <= in_round
                assert chosen != last or ids == {last}
                in_round = set()
            in_round.add(chosen)
            last = chosen


def test_a_single_tip_plays_again_and_again() -> None:
    rotation = CallerRotation(RotationMode.WEIGHT, random.Random(1))
    assert played(rotation, tips(1), 3) == [10, 10, 10]


def test_order_mode_goes_by_position_then_id_and_wraps() -> None:
    line = [RotationTip(tip_id=7, position=2), RotationTip(tip_id=3, position=1),
            RotationTip(tip_id=5, position=2)]
    rotation = CallerRotation(RotationMode.ORDER, random.Random(0))
    assert played(rotation, line, 7) == [3, 5, 7, 3, 5, 7, 3]


def test_a_tip_joining_mid_round_plays_in_that_round() -> None:
    line = tips(1, 2, 3)  # ids 10, 11, 12
    rotation = CallerRotation(RotationMode.ORDER, random.Random(0))
    assert played(rotation, line, 2) == [10, 11]
    joined = [*line, RotationTip(tip_id=13, position=0)]
    # 12 comes next in order, then the newcomer (wrapping), then a new round after 13.
    assert played(rotation, joined, 5) == [12, 13, 10, 11, 12]


def test_a_tip_gone_mid_round_is_skipped_and_the_round_ends_without_it() -> None:
    line = tips(1, 2, 3)
    rotation = CallerRotation(RotationMode.ORDER, random.Random(0))
    assert played(rotation, line, 1) == [10]
    without_11 = [tip for tip in line if tip.tip_id != 11]
    assert played(rotation, without_11, 3) == [12, 10, 12]


def test_a_tip_that_left_and_came_back_is_not_repeated_in_the_round() -> None:
    line = tips(1, 2, 3)
    rotation = CallerRotation(RotationMode.WEIGHT, random.Random(4))
    first = rotation.next_tip(line, NOON)
    others = [tip for tip in line if tip.tip_id != first]
    second = rotation.next_tip(others, NOON)
    third = rotation.next_tip(line, NOON)  # `first` is back: still played in this round
    assert {first, second, third} == {10, 11, 12}


def test_weights_decide_how_often_a_tip_opens_the_wait() -> None:
    """20,000 callers, weights 1/2/5: the first tip's share is within 2 points of 1/8, 2/8, 5/8
    (the standard deviation of a share is at most 0.35 points at this count, so 2 points is more
    than 5 sigma; the seed makes the run repeatable anyway)."""
    line = tips(1, 2, 3, weights=(1, 2, 5))
    seeds = random.Random(20_000)
    callers = 20_000
    firsts = Counter(
        CallerRotation(RotationMode.WEIGHT, random.Random(seeds.random())).next_tip(line, NOON)
        for _ in range(callers)
    )
    for tip, weight in zip(line, (1, 2, 5), strict=True):
        assert abs(firsts[tip.tip_id] / callers - weight / 8) < 0.02


def test_no_active_tip_gives_none() -> None:
    rotation = CallerRotation(RotationMode.ORDER, random.Random(0))
    assert rotation.next_tip([], NOON) is None
    night_only = [RotationTip(tip_id=1, position=1, schedule=NIGHT)]
    assert rotation.next_tip(night_only, NOON) is None


def test_duplicate_tip_ids_are_refused() -> None:
    rotation = CallerRotation(RotationMode.ORDER, random.Random(0))
    with pytest.raises(ValueError, match="unique"):
        rotation.next_tip([RotationTip(1, 1), RotationTip(1, 2)], NOON)


def test_cycle_order_is_one_round_by_position_or_a_seeded_draw() -> None:
    line = [RotationTip(tip_id=3, position=9), RotationTip(tip_id=1, position=5),
            RotationTip(tip_id=2, position=7, schedule=NIGHT)]
    assert cycle_order(line, RotationMode.ORDER, NOON) == [1, 3]
    drawn = cycle_order(line, RotationMode.WEIGHT, NOON, seed=7)
    assert sorted(drawn) == [1, 3]
    assert cycle_order(line, RotationMode.WEIGHT, NOON, seed=7) == drawn
    assert cycle_order(line, RotationMode.ORDER, datetime(2026, 6, 15, 23, 0)) == [1, 2, 3]


# -- schedules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("hour", "minute", "active"), [
    (21, 59, False), (22, 0, True), (1, 59, True), (2, 0, False), (12, 0, False),
])
def test_daily_hours_across_midnight(hour: int, minute: int, active: bool) -> None:
    assert NIGHT.active(datetime(2026, 6, 15, hour, minute)) is active


@pytest.mark.parametrize(("hour", "active"), [(8, False), (9, True), (16, True), (17, False)])
def test_daily_hours_within_a_day(hour: int, active: bool) -> None:
    schedule = TipSchedule(daily_from=time(9), daily_to=time(17))
    assert schedule.active(datetime(2026, 6, 15, hour)) is active


@pytest.mark.parametrize("moment", [time(0), time(9, 30), time(23, 59, 59)])
def test_equal_daily_hours_mean_all_day(moment: time) -> None:
    schedule = TipSchedule(daily_from=time(9, 30), daily_to=time(9, 30))
    assert schedule.active(datetime.combine(date(2026, 6, 15), moment))
    assert TipSchedule().active(datetime.combine(date(2026, 6, 15), moment))


@pytest.mark.parametrize(("day", "active"), [
    (date(2026, 2, 28), False), (date(2026, 3, 1), True), (date(2026, 3, 31), True),
    (date(2026, 4, 1), False),
])
def test_date_range_is_inclusive(day: date, active: bool) -> None:
    schedule = TipSchedule(starts_on=date(2026, 3, 1), ends_on=date(2026, 3, 31))
    assert schedule.active(datetime.combine(day, time(0))) is active
    assert schedule.active(datetime.combine(day, time(23, 59))) is active


def test_open_ended_date_ranges() -> None:
    assert TipSchedule(starts_on=date(2026, 3, 1)).active(datetime(2030, 1, 1))
    assert not TipSchedule(starts_on=date(2026, 3, 1)).active(datetime(2026, 2, 28, 23, 59))
    assert TipSchedule(ends_on=date(2026, 3, 1)).active(datetime(2020, 1, 1))


def test_a_night_window_belongs_to_the_day_it_started() -> None:
    last_night = TipSchedule(ends_on=date(2026, 12, 31), daily_from=time(22), daily_to=time(2))
    assert last_night.active(datetime(2027, 1, 1, 1, 0))  # the night of Dec 31
    assert not last_night.active(datetime(2027, 1, 1, 22, 0))
    first_night = TipSchedule(starts_on=date(2027, 1, 1), daily_from=time(22), daily_to=time(2))
    assert not first_night.active(datetime(2027, 1, 1, 1, 0))  # the night of Dec 31
    assert first_night.active(datetime(2027, 1, 1, 22, 0))
    assert first_night.active(datetime(2027, 1, 2, 1, 0))


def test_an_aware_time_is_read_as_its_wall_clock() -> None:
    local = datetime(2026, 6, 15, 23, 0, tzinfo=ZoneInfo("Europe/Moscow"))
    assert NIGHT.active(local)


@pytest.mark.parametrize("arguments", [
    {"daily_from": time(9)},
    {"daily_to": time(17)},
    {"starts_on": date(2026, 3, 2), "ends_on": date(2026, 3, 1)},
    {"daily_from": time(9, tzinfo=ZoneInfo("UTC")), "daily_to": time(17)},
])
def test_invalid_schedules_are_refused(arguments: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        TipSchedule(**arguments)  # type: ignore[arg-type]


def test_a_one_day_range_is_valid() -> None:
    schedule = TipSchedule(starts_on=date(2026, 3, 1), ends_on=date(2026, 3, 1))
    assert schedule.active(datetime(2026, 3, 1, 12))


@pytest.mark.parametrize("weight", [0, 101, -1])
def test_weights_out_of_range_are_refused(weight: int) -> None:
    with pytest.raises(ValueError, match="weight"):
        RotationTip(tip_id=1, position=1, weight=weight)


@pytest.mark.parametrize(("first", "gap"), [(-1.0, 3.0), (5.0, 601.0), (float("nan"), 3.0)])
def test_invalid_timing_is_refused(first: float, gap: float) -> None:
    with pytest.raises(ValueError):
        HoldTiming(first_delay_s=first, gap_s=gap)


def test_timing_bounds_are_allowed() -> None:
    assert HoldTiming(0, 600) == HoldTiming(first_delay_s=0.0, gap_s=600.0)
