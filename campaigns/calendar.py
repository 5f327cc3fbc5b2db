"""The business calendar: when the support team works.

Pure logic: no I/O and no clock reads. Every instant comes in as an aware ``datetime`` and a
naive one is a ``ValueError``. Results are aware datetimes in the calendar's own zone.

A working day has one working period, ``start <= t < end`` in local wall-clock time; periods
never cross midnight. Working minutes are real elapsed minutes inside working periods, so a
period that contains a DST change is an hour shorter or longer, while the usual 10:00-19:00
periods are the same length on both sides of a change.

Which days are working, first rule that matches:

1. ``extra_holidays`` -> day off;
2. ``extra_working_days`` -> working (the business works even on a public holiday);
3. a public holiday of ``country`` from the ``holidays`` package -> day off;
4. a weekend day that the package lists as a transferred working day -> working
   (for Russia the package knows the moved Saturdays, e.g. 2025-11-01);
5. otherwise the weekday's entry in ``hours``.

A working day without its own weekday hours (a working Saturday) uses ``extra_working_hours``,
by default Monday's hours.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

WeeklyHours = Mapping[int, tuple[time, time]]
"""Hours per weekday (0 = Monday ... 6 = Sunday); a missing weekday is a day off."""

DayHours = Callable[[date], tuple[time, time] | None]
"""The hours of one local date, or None for a day off."""

DEFAULT_WORKING_HOURS = "mon-fri 10:00-19:00"
DEFAULT_COUNTRY = "RU"

MAX_DAYS_OFF_IN_A_ROW = 366
"""A schedule with a longer run of days off is a configuration error, not a long wait."""

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RULE = re.compile(r"^(?P<days>[a-z,\-]+)\s+(?P<span>\S+)$")
_SPAN = re.compile(r"^(\d{1,2}:\d{2})-(\d{1,2}:\d{2})$")


@dataclass(frozen=True)
class Period:
    """One working (or calling) period, both ends aware and in UTC: ``start <= t < end``."""

    start: datetime
    end: datetime


def require_aware(at: datetime, name: str = "at") -> datetime:
    """Return ``at`` in UTC; a naive datetime is a ``ValueError``."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got naive {at.isoformat()}")
    return at.astimezone(UTC)


def parse_zone(name: str) -> ZoneInfo:
    """The IANA zone called ``name``; an unknown zone is a ``ValueError``."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def parse_weekly_hours(spec: str | Mapping[str, str]) -> dict[int, tuple[time, time]]:
    """Parse ``"mon-fri 10:00-19:00; sat 11:00-15:00"`` or ``{"mon-fri": "10:00-19:00"}``.

    Days are ``mon`` ... ``sun``, a forward range (``mon-fri``) or a comma list (``mon,wed``).
    A weekday named twice, a bad time, or ``start >= end`` is a ``ValueError``.
    """
    if isinstance(spec, str):
        rules = [_split_rule(rule) for rule in spec.split(";") if rule.strip()]
    else:
        rules = [(days, span) for days, span in spec.items()]
    hours: dict[int, tuple[time, time]] = {}
    for days, span in rules:
        period = _parse_span(span.strip())
        for weekday in _parse_days(days.strip().lower()):
            if weekday in hours:
                raise ValueError(f"{_DAY_NAMES[weekday]} has hours twice")
            hours[weekday] = period
    return check_weekly_hours(hours)


def check_weekly_hours(hours: WeeklyHours) -> dict[int, tuple[time, time]]:
    """A copy of ``hours`` after checking weekdays, naive times and ``start < end``."""
    if not hours:
        raise ValueError("hours name no weekday at all")
    for weekday, span in hours.items():
        if weekday not in range(7):
            raise ValueError(f"weekday must be 0 (Monday) to 6 (Sunday), got {weekday}")
        _check_span(span)
    return dict(hours)


def periods_from(at: datetime, zone: ZoneInfo, hours_on: DayHours) -> Iterator[Period]:
    """The periods of ``hours_on`` in ``zone`` that end after ``at``, in order, without end."""
    at_utc = require_aware(at)
    day = at_utc.astimezone(zone).date()
    days_off = 0
    while True:
        span = hours_on(day)
        if span is None:
            days_off += 1
            if days_off > MAX_DAYS_OFF_IN_A_ROW:
                raise ValueError(f"no working day within {MAX_DAYS_OFF_IN_A_ROW} days after {day}")
        else:
            days_off = 0
            period = _local_period(day, span, zone)
            if period.end > at_utc:
                yield period
        day += timedelta(days=1)


def format_duration(span: timedelta) -> str:
    """``13h``, ``45m``, ``2h30m``: whole minutes, for humans reading a reason."""
    hours, minutes = divmod(int(span.total_seconds()) // 60, 60)
    if not hours:
        return f"{minutes}m"
    return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"


@dataclass(frozen=True)
class BusinessCalendar:
    """Working hours in one zone, with public and explicit holidays and extra working days."""

    zone: ZoneInfo
    hours: WeeklyHours = field(default_factory=lambda: parse_weekly_hours(DEFAULT_WORKING_HOURS))
    country: str | None = DEFAULT_COUNTRY
    extra_holidays: frozenset[date] = frozenset()
    extra_working_days: frozenset[date] = frozenset()
    extra_working_hours: tuple[time, time] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "hours", MappingProxyType(check_weekly_hours(self.hours)))
        if self.extra_working_hours is not None:
            _check_span(self.extra_working_hours)
        if self.country is not None and self.country not in holidays.list_supported_countries():
            raise ValueError(f"the holidays package has no country {self.country!r}")
        clash = self.extra_holidays & self.extra_working_days
        if clash:
            days = ", ".join(sorted(d.isoformat() for d in clash))
            raise ValueError(f"dates both extra holidays and extra working days: {days}")

    @classmethod
    def from_settings(
        cls,
        timezone: str,
        hours: str | Mapping[str, str] = DEFAULT_WORKING_HOURS,
        country: str | None = DEFAULT_COUNTRY,
        extra_holidays: Iterable[date | str] = (),
        extra_working_days: Iterable[date | str] = (),
        extra_working_hours: str | None = None,
    ) -> BusinessCalendar:
        """Build from plain settings values; any bad value is a ``ValueError``.

        Dates are ``YYYY-MM-DD``; the country is case-insensitive and empty or None means no
        public holidays.
        """
        return cls(
            zone=parse_zone(timezone),
            hours=parse_weekly_hours(hours),
            country=country.strip().upper() if country else None,
            extra_holidays=_parse_dates(extra_holidays),
            extra_working_days=_parse_dates(extra_working_days),
            extra_working_hours=_parse_span(extra_working_hours) if extra_working_hours else None,
        )

    def is_public_holiday(self, day: date) -> bool:
        """A public holiday of ``country`` or one of ``extra_holidays``.

        The calling window asks this, so ``extra_holidays`` also keep clients' phones quiet:
        they are meant for days off the package misses (a decree, a regional holiday).
        """
        return day in self.extra_holidays or day in _public_days(self.country, day.year).holidays

    def is_working_day(self, day: date) -> bool:
        """Whether ``day`` has working hours (see the module docstring for the rules)."""
        if day in self.extra_holidays:
            return False
        if day in self.extra_working_days:
            return True
        public = _public_days(self.country, day.year)
        if day in public.holidays:
            return False
        return day in public.working_weekends or day.weekday() in self.hours

    def working_hours(self, day: date) -> tuple[datetime, datetime] | None:
        """Start and end of work on ``day`` as aware datetimes in the zone, None on a day off."""
        span = self._hours_on(day)
        if span is None:
            return None
        period = _local_period(day, span, self.zone)
        return period.start.astimezone(self.zone), period.end.astimezone(self.zone)

    def is_working_time(self, at: datetime) -> bool:
        """Whether ``at`` falls inside a working period (the end instant is not inside)."""
        return self._first_period(at).start <= require_aware(at)

    def next_working_start(self, at: datetime) -> datetime:
        """The start of the first working period that begins at or after ``at``.

        Never a mid-period instant: at 12:00 on a working day this is the next day's opening.
        """
        at_utc = require_aware(at)
        period = next(p for p in self._periods(at_utc) if p.start >= at_utc)
        return period.start.astimezone(self.zone)

    def add_working_minutes(self, start: datetime, minutes: int) -> datetime:
        """The instant after ``minutes`` of working time counted from ``start``.

        Time outside working periods (nights, weekends, holidays) does not count; from an
        out-of-hours ``start``, counting begins at the next opening. Landing exactly on a
        period's end returns that end (19:00), not the next opening.
        """
        if minutes < 0:
            raise ValueError(f"minutes must be >= 0, got {minutes}")
        cursor = require_aware(start, "start")
        remaining = timedelta(minutes=minutes)
        for period in self._periods(cursor):
            cursor = max(cursor, period.start)
            available = period.end - cursor
            if remaining <= available:
                break
            remaining -= available
        return (cursor + remaining).astimezone(self.zone)

    def working_minutes_between(self, start: datetime, end: datetime) -> int:
        """Whole working minutes (rounded down) from ``start`` to ``end``: the real time
        between them that lies inside working periods. Nights, days off and holidays count
        nothing; a period spanning a DST change counts its real length. ``end`` before
        ``start`` is a ``ValueError``; equal instants give 0."""
        start_utc = require_aware(start, "start")
        end_utc = require_aware(end, "end")
        if end_utc < start_utc:
            raise ValueError(f"end {end.isoformat()} is before start {start.isoformat()}")
        total = timedelta()
        for period in self._periods(start_utc):
            if period.start >= end_utc:
                break
            total += min(period.end, end_utc) - max(period.start, start_utc)
        return total // timedelta(minutes=1)

    def _hours_on(self, day: date) -> tuple[time, time] | None:
        if not self.is_working_day(day):
            return None
        return self.hours.get(day.weekday()) or self.extra_working_hours or self._fallback_hours()

    def _fallback_hours(self) -> tuple[time, time]:
        return self.hours.get(0) or self.hours[min(self.hours)]

    def _periods(self, at: datetime) -> Iterator[Period]:
        return periods_from(at, self.zone, self._hours_on)

    def _first_period(self, at: datetime) -> Period:
        return next(self._periods(at))


@dataclass(frozen=True)
class _YearDays:
    holidays: frozenset[date]
    working_weekends: frozenset[date]


_NO_DAYS = _YearDays(frozenset(), frozenset())


@lru_cache(maxsize=64)
def _public_days(country: str | None, year: int) -> _YearDays:
    """Public holidays and transferred working weekend days of one country and year."""
    if country is None:
        return _NO_DAYS
    table = holidays.country_holidays(country, years=year)
    return _YearDays(frozenset(table.keys()), frozenset(table.weekend_workdays))


def _local_period(day: date, span: tuple[time, time], zone: ZoneInfo) -> Period:
    start, end = (datetime.combine(day, t, tzinfo=zone).astimezone(UTC) for t in span)
    return Period(start, end)


def _split_rule(rule: str) -> tuple[str, str]:
    match = _RULE.match(rule.strip().lower())
    if match is None:
        raise ValueError(f"bad hours rule {rule.strip()!r}: expected like 'mon-fri 10:00-19:00'")
    return match["days"], match["span"]


def _parse_days(days: str) -> list[int]:
    weekdays: list[int] = []
    for item in days.split(","):
        first, _, last = item.strip().partition("-")
        low, high = _day_index(first), _day_index(last or first)
        if low > high:
            raise ValueError(f"day range {item.strip()!r} runs backwards")
        weekdays.extend(range(low, high + 1))
    return weekdays


def _day_index(name: str) -> int:
    try:
        return _DAY_NAMES.index(name.strip())
    except ValueError:
        raise ValueError(f"unknown day {name!r}: use {', '.join(_DAY_NAMES)}") from None


def _parse_span(span: str) -> tuple[time, time]:
    match = _SPAN.match(span.strip())
    if match is None:
        raise ValueError(f"bad hours {span!r}: expected like '10:00-19:00'")
    return _check_span((_parse_time(match[1]), _parse_time(match[2])))


def _parse_time(text: str) -> time:
    try:
        return time.fromisoformat(text.zfill(5))
    except ValueError:
        raise ValueError(f"bad time of day {text!r}") from None


def _check_span(span: tuple[time, time]) -> tuple[time, time]:
    start, end = span
    if start.tzinfo is not None or end.tzinfo is not None:
        raise ValueError("working hours are wall-clock times: give naive times")
    if start >= end:
        raise ValueError(f"hours must start before they end, got {start:%H:%M}-{end:%H:%M}")
    return span


def _parse_dates(values: Iterable[date | str]) -> frozenset[date]:
    return frozenset(_parse_date(value) for value in values)


def _parse_date(value: date | str) -> date:
    if isinstance(value, datetime):
        raise ValueError(f"expected a date, got the datetime {value.isoformat()}")
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"bad date {value!r}: expected YYYY-MM-DD") from None
