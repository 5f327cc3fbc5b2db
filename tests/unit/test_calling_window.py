from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest

from campaigns.calendar import BusinessCalendar
from campaigns.calling_window import CallingWindow, Dropped, Scheduled

MSK = ZoneInfo("Europe/Moscow")
VVO = ZoneInfo("Asia/Vladivostok")
NYC = ZoneInfo("America/New_York")


def msk(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=MSK)


@pytest.fixture
def window() -> CallingWindow:
    return CallingWindow(holidays=BusinessCalendar(zone=MSK))


def test_default_hours_are_quieter_on_weekends(window: CallingWindow) -> None:
    weekday, weekend = (time(9), time(21)), (time(10), time(20))
    assert dict(window.hours) == {**dict.fromkeys(range(5), weekday), 5: weekend, 6: weekend}


@pytest.mark.parametrize(
    ("at", "allowed"),
    [
        (msk(2026, 11, 24, 8, 59), False),
        (msk(2026, 11, 24, 9, 0), True),
        (msk(2026, 11, 24, 20, 59), True),
        (msk(2026, 11, 24, 21, 0), False),
        (msk(2026, 11, 28, 9, 30), False),  # Saturday opens at 10:00
        (msk(2026, 11, 28, 19, 59), True),
        (msk(2026, 11, 28, 20, 0), False),
    ],
)
def test_is_allowed(window: CallingWindow, at: datetime, allowed: bool) -> None:
    assert window.is_allowed(at, MSK) is allowed


def test_the_client_zone_decides() -> None:
    window = CallingWindow(holidays=None)
    at = msk(2026, 11, 24, 8, 30)
    assert at.astimezone(VVO).time() == time(15, 30)
    assert window.is_allowed(at, VVO)
    assert not window.is_allowed(at, MSK)
    assert window.next_allowed(at, MSK) == msk(2026, 11, 24, 9)
    allowed = window.next_allowed(at, VVO)
    assert allowed == at
    assert allowed.tzinfo is VVO


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (msk(2026, 11, 24, 12, 0), msk(2026, 11, 24, 12, 0)),
        (msk(2026, 11, 24, 21, 30), msk(2026, 11, 25, 9, 0)),
        (msk(2026, 11, 27, 21, 30), msk(2026, 11, 28, 10, 0)),  # Friday night -> Saturday
        (msk(2026, 4, 30, 21, 30), msk(2026, 5, 2, 10, 0)),  # May Day is skipped
    ],
)
def test_next_allowed(window: CallingWindow, at: datetime, expected: datetime) -> None:
    assert window.next_allowed(at, MSK) == expected


def test_public_holidays_are_closed_in_the_clients_local_date(window: CallingWindow) -> None:
    assert date(2026, 5, 1) in holidays.country_holidays("RU", years=2026)
    assert not window.is_allowed(msk(2026, 5, 1, 12), MSK)
    at = msk(2026, 4, 30, 23, 0)  # already 06:00 on May Day in Vladivostok
    assert window.next_allowed(at, VVO) == datetime(2026, 5, 2, 10, tzinfo=VVO)


def test_without_a_holiday_source_holidays_are_open() -> None:
    assert CallingWindow(holidays=None).is_allowed(msk(2026, 5, 1, 12), MSK)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (msk(2026, 11, 24, 15, 0), msk(2026, 11, 24, 21, 0)),
        (msk(2026, 11, 24, 7, 0), msk(2026, 11, 24, 21, 0)),  # before opening: today's end
        (msk(2026, 11, 27, 22, 0), msk(2026, 11, 28, 20, 0)),  # after closing: the next end
    ],
)
def test_window_end(window: CallingWindow, at: datetime, expected: datetime) -> None:
    assert window.window_end(at, MSK) == expected


# --- scheduling against the lateness limit -----------------------------------------------


def test_schedule_inside_the_window_calls_at_due(window: CallingWindow) -> None:
    due = datetime(2026, 11, 24, 12, tzinfo=UTC)
    scheduled = window.schedule(due, MSK, timedelta(hours=4))
    assert scheduled == Scheduled(due)
    assert isinstance(scheduled, Scheduled)
    assert scheduled.at.tzinfo is MSK


@pytest.mark.parametrize("lateness", [timedelta(hours=1), timedelta(hours=4)])
def test_schedule_within_the_lateness_waits_for_the_window(
    window: CallingWindow, lateness: timedelta
) -> None:
    due = msk(2026, 11, 24, 8, 0)
    assert window.schedule(due, MSK, lateness) == Scheduled(msk(2026, 11, 24, 9, 0))


def test_schedule_beyond_the_lateness_drops_with_a_reason(window: CallingWindow) -> None:
    due = msk(2026, 11, 23, 21, 0)
    assert window.schedule(due, MSK, timedelta(hours=4)) == Dropped(
        "outside calling window: next window 2026-11-24T09:00+03:00 is 12h after due, "
        "over the 4h lateness limit"
    )


def test_schedule_with_zero_lateness(window: CallingWindow) -> None:
    assert isinstance(window.schedule(msk(2026, 11, 24, 8, 59), MSK, timedelta(0)), Dropped)
    assert window.schedule(msk(2026, 11, 24, 9), MSK, timedelta(0)) == Scheduled(
        msk(2026, 11, 24, 9)
    )


def test_lateness_is_real_time_across_a_dst_change() -> None:
    window = CallingWindow(holidays=None)
    due = datetime(2026, 3, 7, 20, 30, tzinfo=NYC)  # Saturday, window closed at 20:00 EST
    # Sunday 10:00 EDT is 13h30m later on the wall clock but 12h30m in real time
    scheduled = window.schedule(due, NYC, timedelta(hours=13))
    assert scheduled == Scheduled(datetime(2026, 3, 8, 10, tzinfo=NYC))
    assert isinstance(scheduled, Scheduled)
    assert scheduled.at.utcoffset() == timedelta(hours=-4)
    dropped = window.schedule(due, NYC, timedelta(hours=12))
    assert isinstance(dropped, Dropped)
    assert "2026-03-08T10:00-04:00 is 12h30m after due" in dropped.reason


def test_negative_lateness_is_rejected(window: CallingWindow) -> None:
    with pytest.raises(ValueError, match="max_lateness"):
        window.schedule(msk(2026, 11, 24, 12), MSK, timedelta(minutes=-1))


# --- retries -----------------------------------------------------------------------------


def test_retry_inside_the_window(window: CallingWindow) -> None:
    retry = window.retry_at(msk(2026, 11, 24, 12), timedelta(minutes=30), MSK)
    assert retry == msk(2026, 11, 24, 12, 30)


def test_retry_past_closing_moves_to_the_next_window(window: CallingWindow) -> None:
    retry = window.retry_at(msk(2026, 11, 24, 20, 45), timedelta(minutes=30), MSK)
    assert retry == msk(2026, 11, 25, 9, 0)


def test_retry_after_the_deadline_is_none(window: CallingWindow) -> None:
    previous, delay = msk(2026, 11, 24, 20, 45), timedelta(minutes=30)
    assert window.retry_at(previous, delay, MSK, deadline=msk(2026, 11, 25, 8)) is None
    assert window.retry_at(previous, delay, MSK, deadline=msk(2026, 11, 25, 9)) == msk(
        2026, 11, 25, 9
    )


@pytest.mark.parametrize("zone", [MSK, VVO, NYC])
def test_retries_never_land_outside_the_window(window: CallingWindow, zone: ZoneInfo) -> None:
    start = datetime(2026, 3, 6, tzinfo=UTC)
    delays = [timedelta(minutes=m) for m in (5, 30, 90, 240, 600)]
    for step in range(0, 14 * 24 * 60, 37):  # two weeks, DST in New York included
        previous = start + timedelta(minutes=step)
        for delay in delays:
            retry = window.retry_at(previous, delay, zone)
            assert retry is not None
            assert window.is_allowed(retry, zone)
            assert retry >= previous + delay


def test_negative_delay_is_rejected(window: CallingWindow) -> None:
    with pytest.raises(ValueError, match="delay"):
        window.retry_at(msk(2026, 11, 24, 12), timedelta(minutes=-5), MSK)


# --- naive datetimes and settings --------------------------------------------------------


def test_naive_datetimes_are_rejected(window: CallingWindow) -> None:
    naive = datetime(2026, 11, 24, 12)
    aware = msk(2026, 11, 24, 12)
    with pytest.raises(ValueError, match="aware"):
        window.is_allowed(naive, MSK)
    with pytest.raises(ValueError, match="aware"):
        window.next_allowed(naive, MSK)
    with pytest.raises(ValueError, match="aware"):
        window.window_end(naive, MSK)
    with pytest.raises(ValueError, match="due must be an aware"):
        window.schedule(naive, MSK, timedelta(hours=1))
    with pytest.raises(ValueError, match="previous must be an aware"):
        window.retry_at(naive, timedelta(minutes=5), MSK)
    with pytest.raises(ValueError, match="deadline must be an aware"):
        window.retry_at(aware, timedelta(minutes=5), MSK, deadline=naive)


def test_from_settings() -> None:
    window = CallingWindow.from_settings(holidays=None, hours="mon-sun 08:00-20:00")
    assert dict(window.hours) == dict.fromkeys(range(7), (time(8), time(20)))


def test_from_settings_rejects_bad_hours() -> None:
    with pytest.raises(ValueError, match="start before they end"):
        CallingWindow.from_settings(holidays=None, hours="mon-sun 21:00-09:00")
