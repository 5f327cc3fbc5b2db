"""The deadline of every source of a callback task, on hand-checked dates.

Each case gives the moment an event happens (the injected "now") and, for every source, the
deadline written by hand as wall-clock time with its offset: a Friday at 18:50, a public holiday,
a transferred working Saturday from the configuration, a business in another zone than the
client, and the nights of the daylight-saving changes in a zone that has them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from api.app import build_calendar
from campaigns.calendar import BusinessCalendar
from campaigns.deadlines import (
    low_score_deadline,
    missed_call_deadline,
    requested_callback_deadline,
)
from infra.settings import Settings

MSK = ZoneInfo("Europe/Moscow")
VLADIVOSTOK = ZoneInfo("Asia/Vladivostok")
BERLIN = ZoneInfo("Europe/Berlin")

LOW_SCORE_MINUTES = 120
MANAGER_MINUTES = 90
MISSED_MINUTES = 30

Source = Callable[[datetime, BusinessCalendar], datetime]

SOURCES: dict[str, Source] = {
    "low_score": lambda now, cal: low_score_deadline(now, cal, LOW_SCORE_MINUTES),
    "manager_requested": lambda now, cal: low_score_deadline(now, cal, MANAGER_MINUTES),
    "missed_call": lambda now, cal: missed_call_deadline(now, cal, MISSED_MINUTES),
    # asked for a callback at the moment `now`, an hour before, when the request arrived
    "callback_requested_at": lambda now, cal: requested_callback_deadline(
        now, now - timedelta(hours=1), cal, MISSED_MINUTES),
    "callback_requested_no_time": lambda now, cal: requested_callback_deadline(
        None, now, cal, MISSED_MINUTES),
}


def moscow() -> BusinessCalendar:
    return BusinessCalendar(zone=MSK)


def berlin() -> BusinessCalendar:
    return BusinessCalendar.from_settings(timezone="Europe/Berlin", country="DE")


def transferred_saturday() -> BusinessCalendar:
    """Saturday 2026-11-28 made a working day in the settings, as an operator writes it
    (`RINGBACK_CALENDAR_EXTRA_WORKING_DAYS='["2026-11-28"]'`)."""
    extra = {"calendar_extra_working_days": '["2026-11-28"]'}
    return build_calendar(Settings(_env_file=None, **extra))  # type: ignore[arg-type]


def expect(low: str, manager: str, missed: str, at: str, no_time: str) -> dict[str, str]:
    return {"low_score": low, "manager_requested": manager, "missed_call": missed,
            "callback_requested_at": at, "callback_requested_no_time": no_time}


def same(first_hour: str, opening: str) -> dict[str, str]:
    """Out of hours: the first working hour for every rule, the opening for a requested time."""
    return expect(first_hour, first_hour, first_hour, opening, first_hour)


CASES = [
    pytest.param(moscow, datetime(2026, 11, 27, 18, 50, tzinfo=MSK), expect(
        low="2026-11-30T11:50:00+03:00", manager="2026-11-30T11:20:00+03:00",
        missed="2026-11-30T10:20:00+03:00", at="2026-11-27T18:50:00+03:00",
        no_time="2026-11-30T10:20:00+03:00"), id="friday-18:50"),
    pytest.param(moscow, datetime(2026, 11, 4, 12, 0, tzinfo=MSK), same(
        "2026-11-05T11:00:00+03:00", "2026-11-05T10:00:00+03:00"), id="unity-day-holiday"),
    pytest.param(moscow, datetime(2026, 11, 3, 18, 50, tzinfo=MSK), expect(
        low="2026-11-05T11:50:00+03:00", manager="2026-11-05T11:20:00+03:00",
        missed="2026-11-05T10:20:00+03:00", at="2026-11-03T18:50:00+03:00",
        no_time="2026-11-05T10:20:00+03:00"), id="eve-of-holiday-18:50"),
    pytest.param(transferred_saturday, datetime(2026, 11, 27, 18, 50, tzinfo=MSK), expect(
        low="2026-11-28T11:50:00+03:00", manager="2026-11-28T11:20:00+03:00",
        missed="2026-11-28T10:20:00+03:00", at="2026-11-27T18:50:00+03:00",
        no_time="2026-11-28T10:20:00+03:00"), id="friday-18:50-before-working-saturday"),
    pytest.param(transferred_saturday, datetime(2026, 11, 28, 9, 0, tzinfo=MSK), same(
        "2026-11-28T11:00:00+03:00", "2026-11-28T10:00:00+03:00"),
        id="working-saturday-morning"),
    pytest.param(transferred_saturday, datetime(2026, 11, 28, 19, 30, tzinfo=MSK), same(
        "2026-11-30T11:00:00+03:00", "2026-11-30T10:00:00+03:00"),
        id="working-saturday-evening"),
    pytest.param(moscow, datetime(2026, 11, 28, 9, 0, tzinfo=MSK), same(
        "2026-11-30T11:00:00+03:00", "2026-11-30T10:00:00+03:00"),
        id="ordinary-saturday-morning"),
    # The client in Vladivostok (MSK+7); working time is Moscow's.
    pytest.param(moscow, datetime(2026, 11, 24, 9, 0, tzinfo=VLADIVOSTOK), same(
        "2026-11-24T11:00:00+03:00", "2026-11-24T10:00:00+03:00"),
        id="client-morning-is-business-night"),
    pytest.param(moscow, datetime(2026, 11, 24, 18, 30, tzinfo=VLADIVOSTOK), expect(
        low="2026-11-24T13:30:00+03:00", manager="2026-11-24T13:00:00+03:00",
        missed="2026-11-24T12:00:00+03:00", at="2026-11-24T11:30:00+03:00",
        no_time="2026-11-24T12:00:00+03:00"), id="client-evening-is-business-morning"),
    pytest.param(moscow, datetime(2026, 11, 25, 1, 55, tzinfo=VLADIVOSTOK), expect(
        low="2026-11-25T11:55:00+03:00", manager="2026-11-25T11:25:00+03:00",
        missed="2026-11-25T10:25:00+03:00", at="2026-11-24T18:55:00+03:00",
        no_time="2026-11-25T10:25:00+03:00"), id="client-past-midnight-business-18:55"),
    # Berlin: CET (+01:00) in winter, CEST (+02:00) from 2026-03-29 to 2026-10-25.
    pytest.param(berlin, datetime(2026, 3, 27, 18, 50, tzinfo=BERLIN), expect(
        low="2026-03-30T11:50:00+02:00", manager="2026-03-30T11:20:00+02:00",
        missed="2026-03-30T10:20:00+02:00", at="2026-03-27T18:50:00+01:00",
        no_time="2026-03-30T10:20:00+02:00"), id="friday-18:50-before-spring-forward"),
    pytest.param(berlin, datetime(2026, 3, 29, 3, 30, tzinfo=BERLIN), same(
        "2026-03-30T11:00:00+02:00", "2026-03-30T10:00:00+02:00"), id="spring-forward-night"),
    pytest.param(berlin, datetime(2026, 10, 23, 18, 50, tzinfo=BERLIN), expect(
        low="2026-10-26T11:50:00+01:00", manager="2026-10-26T11:20:00+01:00",
        missed="2026-10-26T10:20:00+01:00", at="2026-10-23T18:50:00+02:00",
        no_time="2026-10-26T10:20:00+01:00"), id="friday-18:50-before-fall-back"),
    pytest.param(berlin, datetime(2026, 10, 24, 18, 50, tzinfo=BERLIN), same(
        "2026-10-26T11:00:00+01:00", "2026-10-26T10:00:00+01:00"), id="saturday-before-fall-back"),
    pytest.param(berlin, datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN), same(
        "2026-10-26T11:00:00+01:00", "2026-10-26T10:00:00+01:00"), id="fall-back-first-02:30"),
    pytest.param(berlin, datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=BERLIN), same(
        "2026-10-26T11:00:00+01:00", "2026-10-26T10:00:00+01:00"), id="fall-back-second-02:30"),
]


@pytest.mark.parametrize("source", sorted(SOURCES))
@pytest.mark.parametrize(("calendar", "now", "expected"), CASES)
def test_deadline_of_every_source(
    source: str, calendar: Callable[[], BusinessCalendar], now: datetime,
    expected: dict[str, str],
) -> None:
    cal = calendar()
    deadline = SOURCES[source](now, cal)
    assert deadline.isoformat() == expected[source]
    assert deadline.tzinfo == cal.zone  # business time; the client's zone is only shown


def test_the_saturday_works_only_because_of_the_configuration() -> None:
    assert date(2026, 11, 28) in transferred_saturday().extra_working_days
    assert not moscow().is_working_day(date(2026, 11, 28))


ROUND_THE_CLOCK = "mon-sun 00:00-23:59"


@pytest.mark.parametrize(("now", "expected"), [
    # 02:00 CET -> 03:00 CEST: 30 real minutes from 01:50 end at 03:20 on the wall clock
    (datetime(2026, 3, 29, 1, 50, tzinfo=BERLIN), "2026-03-29T03:20:00+02:00"),
    # 03:00 CEST -> 02:00 CET: from the first 02:50, the second 02:20
    (datetime(2026, 10, 25, 2, 50, tzinfo=BERLIN), "2026-10-25T02:20:00+01:00"),
    # across midnight: 9 minutes before 23:59, 21 after 00:00
    (datetime(2026, 3, 28, 23, 50, tzinfo=BERLIN), "2026-03-29T00:21:00+01:00"),
])
def test_working_minutes_across_the_change_itself(now: datetime, expected: str) -> None:
    cal = BusinessCalendar.from_settings(timezone="Europe/Berlin", hours=ROUND_THE_CLOCK,
                                         country=None)
    assert missed_call_deadline(now, cal, MISSED_MINUTES).isoformat() == expected


@pytest.mark.parametrize(("requested", "received", "expected"), [
    # already past: as if asked for now, which is working time
    (datetime(2026, 11, 23, 12, 0, tzinfo=MSK), datetime(2026, 11, 24, 12, 0, tzinfo=MSK),
     "2026-11-24T12:00:00+03:00"),
    # already past, and now is after closing: the next opening
    (datetime(2026, 11, 24, 15, 0, tzinfo=MSK), datetime(2026, 11, 24, 20, 0, tzinfo=MSK),
     "2026-11-25T10:00:00+03:00"),
    # the closing instant is not working time
    (datetime(2026, 11, 24, 19, 0, tzinfo=MSK), datetime(2026, 11, 24, 12, 0, tzinfo=MSK),
     "2026-11-25T10:00:00+03:00"),
    # a week ahead, inside hours: exactly then
    (datetime(2026, 12, 1, 16, 45, tzinfo=MSK), datetime(2026, 11, 24, 12, 0, tzinfo=MSK),
     "2026-12-01T16:45:00+03:00"),
    # New Year holidays: the first working day after them
    (datetime(2026, 1, 2, 12, 0, tzinfo=MSK), datetime(2025, 12, 30, 12, 0, tzinfo=MSK),
     "2026-01-12T10:00:00+03:00"),
])
def test_requested_callback_times(requested: datetime, received: datetime, expected: str) -> None:
    assert requested_callback_deadline(requested, received, moscow()).isoformat() == expected


def test_requested_callback_needs_aware_times() -> None:
    with pytest.raises(ValueError, match="aware"):
        requested_callback_deadline(datetime(2026, 11, 24, 12), datetime.now(MSK), moscow())
    with pytest.raises(ValueError, match="aware"):
        requested_callback_deadline(None, datetime(2026, 11, 24, 12), moscow())
