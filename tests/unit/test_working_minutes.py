"""`BusinessCalendar.working_minutes_between`: expectations worked out by hand (Moscow,
mon-fri 10:00-19:00 = 540 minutes a day, Russian public holidays; New York for DST)."""

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from campaigns.calendar import BusinessCalendar

MSK = ZoneInfo("Europe/Moscow")
NYC = ZoneInfo("America/New_York")
DAY = 9 * 60


def msk(month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2025, month, day, hour, minute, second, tzinfo=MSK)


@pytest.fixture
def cal() -> BusinessCalendar:
    return BusinessCalendar(zone=MSK)


@pytest.mark.parametrize(("start", "end", "minutes"), [
    (msk(3, 4, 11), msk(3, 4, 11), 0),  # the same instant
    (msk(3, 4, 11), msk(3, 4, 12, 30), 90),  # inside one day (Tuesday)
    (msk(3, 4, 8), msk(3, 4, 10, 15), 15),  # from before the opening
    (msk(3, 4, 18), msk(3, 4, 23), 60),  # past the closing
    (msk(3, 4, 19), msk(3, 5, 10), 0),  # the whole night: nothing
    (msk(3, 4, 18), msk(3, 5, 11), 120),  # across a night
    (msk(3, 7, 18), msk(3, 10, 11), 120),  # Friday to Monday: the weekend counts nothing
    (msk(3, 8, 12), msk(3, 9, 18), 0),  # inside a weekend
    (msk(3, 3, 10), msk(3, 10, 10), 5 * DAY),  # a whole week
    # Thursday 30 April 18:00 to Monday 5 May 11:00: 1, 2 May are public holidays.
    (msk(4, 30, 18), msk(5, 5, 11), 60 + 60),
    # Friday 31 October to Wednesday 5 November: Saturday 1 November is a working day moved
    # from the 3rd, the 3rd and 4th are holidays.
    (msk(10, 31, 10), msk(11, 5, 10), 2 * DAY),
    (msk(3, 4, 10, 0, 0), msk(3, 4, 10, 1, 59), 1),  # whole minutes, rounded down
])
def test_working_minutes_between(cal: BusinessCalendar, start: datetime, end: datetime,
                                 minutes: int) -> None:
    assert cal.working_minutes_between(start, end) == minutes


def test_instants_in_any_zone_count_the_same(cal: BusinessCalendar) -> None:
    start = datetime(2025, 3, 4, 15, 0, tzinfo=UTC)  # 18:00 Moscow
    end = datetime(2025, 3, 5, 8, 0, tzinfo=UTC)  # 11:00 Moscow
    assert cal.working_minutes_between(start, end) == 120


def test_extra_holidays_and_working_days_count_as_configured() -> None:
    cal = BusinessCalendar(zone=MSK, country=None, extra_holidays=frozenset({date(2025, 3, 5)}),
                           extra_working_days=frozenset({date(2025, 3, 8)}))
    # Tue 18:00 .. Mon 11:00: Tue 60, Wed off, Thu 540, Fri 540, Sat (working, Monday's hours)
    # 540, Mon 60.
    assert cal.working_minutes_between(msk(3, 4, 18), msk(3, 10, 11)) == 60 + 3 * DAY + 60


def test_a_period_across_a_dst_change_counts_real_minutes() -> None:
    # Sunday 01:00-04:00 in New York: 9 March 2025 springs forward at 02:00 (2 real hours),
    # 2 November 2025 falls back at 02:00 (4 real hours).
    cal = BusinessCalendar(zone=NYC, hours={6: (time(1), time(4))}, country=None)
    spring = datetime(2025, 3, 9, tzinfo=NYC), datetime(2025, 3, 10, tzinfo=NYC)
    autumn = datetime(2025, 11, 2, tzinfo=NYC), datetime(2025, 11, 3, tzinfo=NYC)
    assert cal.working_minutes_between(*spring) == 120
    assert cal.working_minutes_between(*autumn) == 240
    # Mon-fri 10:00-19:00 on both sides of the spring change: the same 540 minutes a day.
    weekdays = BusinessCalendar(zone=NYC, country=None)
    assert weekdays.working_minutes_between(datetime(2025, 3, 7, tzinfo=NYC),
                                            datetime(2025, 3, 11, tzinfo=NYC)) == 2 * DAY


def test_it_agrees_with_add_working_minutes(cal: BusinessCalendar) -> None:
    start = msk(4, 29, 17, 13)
    for minutes in (0, 1, 107, 540, 541, 2000):
        end = cal.add_working_minutes(start, minutes)
        assert cal.working_minutes_between(start, end) == minutes


def test_bad_arguments(cal: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="before start"):
        cal.working_minutes_between(msk(3, 5), msk(3, 4))
    with pytest.raises(ValueError, match="naive"):
        cal.working_minutes_between(datetime(2025, 3, 4), msk(3, 5))
