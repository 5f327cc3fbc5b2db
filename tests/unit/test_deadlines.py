from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from campaigns.calendar import BusinessCalendar
from campaigns.deadlines import low_score_deadline, missed_call_deadline

MSK = ZoneInfo("Europe/Moscow")


def msk(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=MSK)


@pytest.fixture
def cal() -> BusinessCalendar:
    return BusinessCalendar(zone=MSK)


@pytest.mark.parametrize(
    ("at", "minutes", "expected"),
    [
        (msk(2026, 11, 24, 12, 0), 120, msk(2026, 11, 24, 14, 0)),
        (msk(2026, 11, 24, 18, 50), 30, msk(2026, 11, 25, 10, 20)),
        (msk(2026, 11, 27, 18, 0), 120, msk(2026, 11, 30, 11, 0)),  # Friday -> Monday
    ],
)
def test_low_score_in_working_hours(
    cal: BusinessCalendar, at: datetime, minutes: int, expected: datetime
) -> None:
    assert low_score_deadline(at, cal, within_working_minutes=minutes) == expected


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (msk(2026, 11, 24, 20, 0), msk(2026, 11, 25, 11, 0)),  # evening
        (msk(2026, 11, 24, 8, 0), msk(2026, 11, 24, 11, 0)),  # before opening: same day
        (msk(2026, 11, 27, 19, 30), msk(2026, 11, 30, 11, 0)),  # Friday evening -> Monday
        (msk(2026, 11, 29, 15, 0), msk(2026, 11, 30, 11, 0)),  # Sunday
        (msk(2026, 4, 30, 19, 0), msk(2026, 5, 4, 11, 0)),  # at closing, May Day next
    ],
)
def test_low_score_out_of_hours_is_due_in_the_first_working_hour(
    cal: BusinessCalendar, at: datetime, expected: datetime
) -> None:
    assert low_score_deadline(at, cal, within_working_minutes=240) == expected


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (msk(2026, 11, 24, 12, 0), msk(2026, 11, 24, 12, 30)),
        (msk(2026, 11, 24, 18, 50), msk(2026, 11, 25, 10, 20)),
        (msk(2026, 11, 24, 23, 0), msk(2026, 11, 25, 11, 0)),
        (msk(2025, 12, 30, 18, 50), msk(2026, 1, 12, 10, 20)),  # New Year holidays
    ],
)
def test_missed_call(cal: BusinessCalendar, at: datetime, expected: datetime) -> None:
    assert missed_call_deadline(at, cal) == expected


def test_missed_call_with_a_configured_sla(cal: BusinessCalendar) -> None:
    assert missed_call_deadline(msk(2026, 11, 24, 12), cal, minutes=15) == msk(2026, 11, 24, 12, 15)


def test_missed_call_on_an_extra_working_saturday() -> None:
    cal = BusinessCalendar(zone=MSK, extra_working_days=frozenset({date(2026, 11, 28)}))
    assert missed_call_deadline(msk(2026, 11, 27, 22), cal) == msk(2026, 11, 28, 11)


def test_deadlines_are_in_the_calendar_zone(cal: BusinessCalendar) -> None:
    deadline = missed_call_deadline(datetime(2026, 11, 24, 15, 50, tzinfo=UTC), cal)
    assert deadline == msk(2026, 11, 25, 10, 20)
    assert deadline.tzinfo is MSK


def test_an_sla_needs_at_least_a_minute(cal: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="at least one working minute"):
        low_score_deadline(msk(2026, 11, 24, 12), cal, within_working_minutes=0)


def test_naive_datetimes_are_rejected(cal: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="aware"):
        low_score_deadline(datetime(2026, 11, 24, 12), cal, within_working_minutes=30)
    with pytest.raises(ValueError, match="aware"):
        missed_call_deadline(datetime(2026, 11, 24, 12), cal)
