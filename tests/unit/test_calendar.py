from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest

from campaigns.calendar import BusinessCalendar, format_duration, parse_weekly_hours

MSK = ZoneInfo("Europe/Moscow")
VVO = ZoneInfo("Asia/Vladivostok")
NYC = ZoneInfo("America/New_York")

MON_FRI_10_19 = {d: (time(10), time(19)) for d in range(5)}


def msk(year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, sec, tzinfo=MSK)


def nyc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=NYC)


@pytest.fixture
def cal() -> BusinessCalendar:
    return BusinessCalendar(zone=MSK)


def ru_holidays(year: int) -> holidays.HolidayBase:
    return holidays.country_holidays("RU", years=year)


# --- defaults and working time -----------------------------------------------------------


def test_default_hours_are_mon_fri_10_to_19_in_russia(cal: BusinessCalendar) -> None:
    assert dict(cal.hours) == MON_FRI_10_19
    assert cal.country == "RU"


@pytest.mark.parametrize(
    ("at", "working"),
    [
        (msk(2026, 11, 24, 9, 59), False),
        (msk(2026, 11, 24, 10, 0), True),
        (msk(2026, 11, 24, 18, 59, 59), True),
        (msk(2026, 11, 24, 19, 0), False),
        (msk(2026, 11, 28, 12, 0), False),  # Saturday
    ],
)
def test_is_working_time(cal: BusinessCalendar, at: datetime, working: bool) -> None:
    assert cal.is_working_time(at) is working


def test_is_working_time_uses_the_instant_not_the_given_zone(cal: BusinessCalendar) -> None:
    assert cal.is_working_time(datetime(2026, 11, 24, 7, 0, tzinfo=UTC))  # 10:00 in Moscow
    assert not cal.is_working_time(datetime(2026, 11, 24, 16, 0, tzinfo=UTC))  # 19:00


def test_working_hours_are_aware_in_the_calendar_zone(cal: BusinessCalendar) -> None:
    start, end = cal.working_hours(date(2026, 11, 24)) or pytest.fail("a working Tuesday")
    assert (start, end) == (msk(2026, 11, 24, 10), msk(2026, 11, 24, 19))
    assert start.tzinfo is MSK
    assert cal.working_hours(date(2026, 11, 28)) is None


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (msk(2026, 11, 24, 8, 0), msk(2026, 11, 24, 10)),  # before opening: today
        (msk(2026, 11, 24, 10, 0), msk(2026, 11, 24, 10)),  # at opening: itself
        (msk(2026, 11, 24, 12, 0), msk(2026, 11, 25, 10)),  # mid-period: the next opening
        (msk(2026, 11, 27, 19, 30), msk(2026, 11, 30, 10)),  # Friday evening: Monday
        (msk(2026, 11, 28, 12, 0), msk(2026, 11, 30, 10)),  # Saturday: Monday
    ],
)
def test_next_working_start(cal: BusinessCalendar, at: datetime, expected: datetime) -> None:
    assert cal.next_working_start(at) == expected


# --- adding working minutes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "minutes", "expected"),
    [
        (msk(2026, 11, 24, 11, 0), 30, msk(2026, 11, 24, 11, 30)),
        (msk(2026, 11, 24, 18, 50), 30, msk(2026, 11, 25, 10, 20)),  # just before closing
        (msk(2026, 11, 24, 18, 30), 30, msk(2026, 11, 24, 19, 0)),  # lands on closing
        (msk(2026, 11, 27, 18, 30), 60, msk(2026, 11, 30, 10, 30)),  # Friday -> Monday
        (msk(2026, 11, 28, 12, 0), 30, msk(2026, 11, 30, 10, 30)),  # from a Saturday
        (msk(2026, 11, 24, 22, 0), 0, msk(2026, 11, 25, 10, 0)),  # zero: the next opening
        (msk(2026, 11, 23, 10, 0), 600, msk(2026, 11, 24, 11, 0)),  # a 9h day and an hour
        (msk(2026, 11, 23, 10, 0), 5 * 9 * 60, msk(2026, 11, 27, 19, 0)),  # the whole week
    ],
)
def test_add_working_minutes(
    cal: BusinessCalendar, start: datetime, minutes: int, expected: datetime
) -> None:
    result = cal.add_working_minutes(start, minutes)
    assert result == expected
    assert result.tzinfo is MSK


def test_add_working_minutes_returns_the_calendar_zone_for_any_input_zone(
    cal: BusinessCalendar,
) -> None:
    result = cal.add_working_minutes(datetime(2026, 11, 24, 15, 50, tzinfo=UTC), 30)
    assert result == msk(2026, 11, 25, 10, 20)
    assert result.tzinfo is MSK


def test_negative_minutes_are_rejected(cal: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="minutes"):
        cal.add_working_minutes(msk(2026, 11, 24, 11), -1)


# --- holidays ----------------------------------------------------------------------------


def test_may_day_from_the_package_is_a_day_off(cal: BusinessCalendar) -> None:
    assert date(2026, 5, 1) in ru_holidays(2026)
    assert not cal.is_working_day(date(2026, 5, 1))
    assert cal.is_public_holiday(date(2026, 5, 1))
    # Thursday 18:50 + 30 working minutes: Friday is May Day -> Monday
    assert cal.add_working_minutes(msk(2026, 4, 30, 18, 50), 30) == msk(2026, 5, 4, 10, 20)


def test_new_year_holidays_and_transferred_days_off(cal: BusinessCalendar) -> None:
    days_off = [date(2025, 12, 31), *(date(2026, 1, d) for d in range(1, 10))]
    assert all(d in ru_holidays(d.year) for d in days_off)  # 12-31 and 01-09 are moved days
    assert not any(cal.is_working_day(d) for d in days_off)
    assert cal.add_working_minutes(msk(2025, 12, 30, 18, 50), 30) == msk(2026, 1, 12, 10, 20)


def test_a_saturday_the_package_moved_to_a_working_day(cal: BusinessCalendar) -> None:
    saturday = date(2025, 11, 1)
    assert saturday in ru_holidays(2025).weekend_workdays
    assert cal.is_working_day(saturday)
    assert cal.working_hours(saturday) == (msk(2025, 11, 1, 10), msk(2025, 11, 1, 19))
    assert cal.add_working_minutes(msk(2025, 10, 31, 18, 50), 30) == msk(2025, 11, 1, 10, 20)


def test_extra_holiday() -> None:
    cal = BusinessCalendar(zone=MSK, extra_holidays=frozenset({date(2026, 11, 24)}))
    assert not cal.is_working_day(date(2026, 11, 24))
    assert cal.is_public_holiday(date(2026, 11, 24))
    assert cal.add_working_minutes(msk(2026, 11, 23, 18, 50), 30) == msk(2026, 11, 25, 10, 20)


def test_extra_working_saturday_uses_monday_hours() -> None:
    cal = BusinessCalendar(zone=MSK, extra_working_days=frozenset({date(2026, 11, 28)}))
    assert cal.working_hours(date(2026, 11, 28)) == (msk(2026, 11, 28, 10), msk(2026, 11, 28, 19))
    assert cal.add_working_minutes(msk(2026, 11, 27, 18, 50), 30) == msk(2026, 11, 28, 10, 20)


def test_extra_working_saturday_with_its_own_hours() -> None:
    cal = BusinessCalendar(
        zone=MSK,
        extra_working_days=frozenset({date(2026, 11, 28)}),
        extra_working_hours=(time(11), time(15)),
    )
    assert cal.working_hours(date(2026, 11, 28)) == (msk(2026, 11, 28, 11), msk(2026, 11, 28, 15))
    assert cal.working_hours(date(2026, 11, 27)) == (msk(2026, 11, 27, 10), msk(2026, 11, 27, 19))


def test_extra_working_day_overrides_a_public_holiday() -> None:
    cal = BusinessCalendar(zone=MSK, extra_working_days=frozenset({date(2026, 6, 12)}))
    assert cal.is_working_day(date(2026, 6, 12))


def test_no_country_means_no_public_holidays() -> None:
    cal = BusinessCalendar(zone=MSK, country=None)
    assert cal.is_working_day(date(2026, 5, 1))
    assert not cal.is_public_holiday(date(2026, 5, 1))


def test_another_country() -> None:
    cal = BusinessCalendar(zone=NYC, country="US")
    assert not cal.is_working_day(date(2026, 11, 26))  # Thanksgiving
    assert cal.is_working_day(date(2026, 5, 1))


def test_a_calendar_without_working_days_fails_instead_of_looping() -> None:
    mondays = frozenset(date(2026, 1, 5) + timedelta(weeks=w) for w in range(110))
    cal = BusinessCalendar(
        zone=MSK, hours={0: (time(10), time(11))}, country=None, extra_holidays=mondays
    )
    with pytest.raises(ValueError, match="no working day within"):
        cal.add_working_minutes(msk(2026, 1, 1, 12), 30)


# --- time zones and DST ------------------------------------------------------------------


def test_the_calendar_zone_decides_what_is_working_time() -> None:
    moscow = BusinessCalendar(zone=MSK)
    vladivostok = BusinessCalendar(zone=VVO)
    at = msk(2026, 11, 24, 8, 30)
    assert at.astimezone(VVO).time() == time(15, 30)
    assert vladivostok.is_working_time(at)
    assert not moscow.is_working_time(at)
    # Vladivostok closes at 19:00 local, 12:00 in Moscow
    assert vladivostok.add_working_minutes(at, 4 * 60) == datetime(2026, 11, 25, 10, 30, tzinfo=VVO)


@pytest.mark.parametrize(
    ("start", "expected", "offset_hours"),
    [
        (nyc(2026, 3, 6, 18, 30), nyc(2026, 3, 9, 10, 30), -4),  # EST -> EDT on 03-08
        (nyc(2026, 10, 30, 18, 30), nyc(2026, 11, 2, 10, 30), -5),  # EDT -> EST on 11-01
    ],
)
def test_working_minutes_across_a_dst_weekend_keep_wall_clock_hours(
    start: datetime, expected: datetime, offset_hours: int
) -> None:
    cal = BusinessCalendar(zone=NYC, country=None)
    result = cal.add_working_minutes(start, 60)
    assert (result.date(), result.time()) == (expected.date(), expected.time())
    assert result.utcoffset() == timedelta(hours=offset_hours)


def test_a_working_period_containing_spring_forward_counts_real_minutes() -> None:
    cal = BusinessCalendar(zone=NYC, hours={6: (time(0), time(5))}, country=None)
    start, end = cal.working_hours(date(2026, 3, 8)) or pytest.fail("a working Sunday")
    assert end - start.astimezone(UTC) == timedelta(hours=4)
    result = cal.add_working_minutes(nyc(2026, 3, 8, 1, 30), 60)
    assert result.time() == time(3, 30)
    assert result.utcoffset() == timedelta(hours=-4)


def test_a_working_period_containing_fall_back_counts_real_minutes() -> None:
    cal = BusinessCalendar(zone=NYC, hours={6: (time(0), time(5))}, country=None)
    result = cal.add_working_minutes(nyc(2026, 11, 1, 1, 30), 60)  # 01:30 EDT
    assert result.time() == time(1, 30)
    assert result.utcoffset() == timedelta(hours=-5)  # 01:30 EST, an hour later
    # an ambiguous wall time never equals another zone's instant (PEP 495): compare in UTC
    assert result.astimezone(UTC) == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)


# --- naive datetimes ---------------------------------------------------------------------


def test_naive_datetimes_are_rejected(cal: BusinessCalendar) -> None:
    naive = datetime(2026, 11, 24, 12)
    with pytest.raises(ValueError, match="aware"):
        cal.is_working_time(naive)
    with pytest.raises(ValueError, match="aware"):
        cal.next_working_start(naive)
    with pytest.raises(ValueError, match="aware"):
        cal.add_working_minutes(naive, 30)


# --- settings ----------------------------------------------------------------------------


def test_from_settings() -> None:
    cal = BusinessCalendar.from_settings(
        "Asia/Vladivostok",
        hours="mon-thu 9:00-18:00; fri 09:00-16:45",
        country="ru",
        extra_holidays=["2026-11-24"],
        extra_working_days=[date(2026, 11, 28)],
        extra_working_hours="10:00-14:00",
    )
    assert cal.zone == VVO
    assert cal.hours[0] == (time(9), time(18))
    assert cal.hours[4] == (time(9), time(16, 45))
    assert 5 not in cal.hours
    assert cal.country == "RU"
    assert cal.extra_holidays == {date(2026, 11, 24)}
    assert cal.working_hours(date(2026, 11, 28)) == (
        datetime(2026, 11, 28, 10, tzinfo=VVO),
        datetime(2026, 11, 28, 14, tzinfo=VVO),
    )


def test_from_settings_defaults() -> None:
    cal = BusinessCalendar.from_settings("Europe/Moscow")
    assert cal == BusinessCalendar(zone=MSK)


def test_hours_as_a_mapping() -> None:
    assert parse_weekly_hours({"mon-fri": "10:00-19:00", "sat,sun": "11:00-15:00"}) == {
        **MON_FRI_10_19,
        5: (time(11), time(15)),
        6: (time(11), time(15)),
    }


@pytest.mark.parametrize(
    ("hours", "message"),
    [
        ("", "no weekday"),
        ("mon-fri", "bad hours rule"),
        ("mon-fri 10-19", "bad hours"),
        ("mon-fri 10:00-25:00", "bad time of day"),
        ("mon-fri 19:00-10:00", "start before they end"),
        ("mon-fri 10:00-10:00", "start before they end"),
        ("fri-mon 10:00-19:00", "backwards"),
        ("mon-fri 10:00-19:00; fri 10:00-12:00", "fri has hours twice"),
        ("monday 10:00-19:00", "unknown day"),
        ({"mon": "10:00 to 19:00"}, "bad hours"),
    ],
)
def test_bad_hours(hours: str | dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BusinessCalendar.from_settings("Europe/Moscow", hours=hours)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"timezone": ""}, "unknown time zone"),
        ({"timezone": "Europe/Moscow", "country": "XX"}, "no country 'XX'"),
        ({"timezone": "Europe/Moscow", "extra_holidays": ["24.11.2026"]}, "bad date"),
        ({"timezone": "Europe/Moscow", "extra_working_hours": "15:00-11:00"}, "start before"),
        (
            {
                "timezone": "Europe/Moscow",
                "extra_holidays": ["2026-11-28"],
                "extra_working_days": ["2026-11-28"],
            },
            "both extra holidays and extra working days: 2026-11-28",
        ),
    ],
)
def test_bad_settings(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BusinessCalendar.from_settings(**settings)  # type: ignore[arg-type]


def test_hours_out_of_range_are_rejected() -> None:
    with pytest.raises(ValueError, match="weekday"):
        BusinessCalendar(zone=MSK, hours={7: (time(10), time(19))})


def test_hours_are_a_frozen_copy() -> None:
    hours = dict(MON_FRI_10_19)
    cal = BusinessCalendar(zone=MSK, hours=hours)
    hours[5] = (time(10), time(19))
    assert 5 not in cal.hours


@pytest.mark.parametrize(
    ("span", "text"),
    [
        (timedelta(minutes=45), "45m"),
        (timedelta(hours=13), "13h"),
        (timedelta(hours=2, minutes=5), "2h05m"),
        (timedelta(days=2, hours=1), "49h"),
    ],
)
def test_format_duration(span: timedelta, text: str) -> None:
    assert format_duration(span) == text
