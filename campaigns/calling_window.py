"""The calling window: when a robot may ring a client, in the client's own time zone.

This is not the support team's working hours (``campaigns.calendar``): clients are called on
weekends too, but never at night where they live and, by default, never on a public holiday.
The default, Mon-Fri 09:00-21:00 and Sat-Sun 10:00-20:00 local time, sits inside both the
Russian rule for collection calls (230-FZ: weekdays 08:00-22:00, days off 09:00-20:00) and the
US TCPA rule (08:00-21:00).

Pure logic: every instant is an aware ``datetime`` passed in, and results are in the client's
zone. A window is ``start <= t < end``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from types import MappingProxyType
from typing import Protocol
from zoneinfo import ZoneInfo

from campaigns.calendar import (
    Period,
    WeeklyHours,
    check_weekly_hours,
    format_duration,
    parse_weekly_hours,
    periods_from,
    require_aware,
)

DEFAULT_CALLING_HOURS = "mon-fri 09:00-21:00; sat-sun 10:00-20:00"


class HolidaySource(Protocol):
    """Says which dates are public holidays; ``BusinessCalendar`` is one."""

    def is_public_holiday(self, day: date, /) -> bool: ...


@dataclass(frozen=True)
class Scheduled:
    """Call at ``at`` (in the client's zone)."""

    at: datetime


@dataclass(frozen=True)
class Dropped:
    """Do not call; ``reason`` is for the CRM's ``survey.unanswered`` and for the logs."""

    reason: str


@dataclass(frozen=True)
class CallingWindow:
    """Allowed calling hours per weekday in the client's zone, closed on ``holidays``.

    ``holidays=None`` allows calls on public holidays; pass the business calendar (or any
    ``HolidaySource``) to keep them quiet.
    """

    holidays: HolidaySource | None
    hours: WeeklyHours = field(default_factory=lambda: parse_weekly_hours(DEFAULT_CALLING_HOURS))

    def __post_init__(self) -> None:
        object.__setattr__(self, "hours", MappingProxyType(check_weekly_hours(self.hours)))

    @classmethod
    def from_settings(
        cls,
        holidays: HolidaySource | None,
        hours: str | Mapping[str, str] = DEFAULT_CALLING_HOURS,
    ) -> CallingWindow:
        """Build from an hours string like ``"mon-sun 09:00-21:00"``; bad input -> ValueError."""
        return cls(holidays=holidays, hours=parse_weekly_hours(hours))

    def is_allowed(self, at: datetime, client_zone: ZoneInfo) -> bool:
        """Whether a call may be placed at ``at``."""
        return self._first_window(at, client_zone).start <= require_aware(at)

    def next_allowed(self, at: datetime, client_zone: ZoneInfo) -> datetime:
        """``at`` itself when calls are allowed then, else the start of the next window."""
        return self._next_allowed_utc(require_aware(at), client_zone).astimezone(client_zone)

    def window_end(self, at: datetime, client_zone: ZoneInfo) -> datetime:
        """When the window open at ``at`` closes; outside a window, when the next one closes."""
        return self._first_window(at, client_zone).end.astimezone(client_zone)

    def schedule(
        self, due: datetime, client_zone: ZoneInfo, max_lateness: timedelta
    ) -> Scheduled | Dropped:
        """When to place a call due at ``due``: at once, at the next window, or not at all.

        Inside a window -> ``due``. Outside -> the next window's start when that is at most
        ``max_lateness`` after ``due``; later than that -> ``Dropped`` with the reason.
        """
        if max_lateness < timedelta(0):
            raise ValueError(f"max_lateness must be >= 0, got {max_lateness}")
        due_utc = require_aware(due, "due")
        start = self._next_allowed_utc(due_utc, client_zone)
        wait = start - due_utc
        if wait <= max_lateness:
            return Scheduled(start.astimezone(client_zone))
        return Dropped(
            f"outside calling window: next window "
            f"{start.astimezone(client_zone).isoformat(timespec='minutes')} is "
            f"{format_duration(wait)} after due, over the {format_duration(max_lateness)} "
            f"lateness limit"
        )

    def retry_at(
        self,
        previous: datetime,
        delay: timedelta,
        client_zone: ZoneInfo,
        deadline: datetime | None = None,
    ) -> datetime | None:
        """When to retry a call placed at ``previous``, ``delay`` later but inside a window.

        A retry that would land outside a window moves to the next window's start; None when
        that is after ``deadline`` (so a retry never lands outside the window).
        """
        if delay < timedelta(0):
            raise ValueError(f"delay must be >= 0, got {delay}")
        at = self._next_allowed_utc(require_aware(previous, "previous") + delay, client_zone)
        if deadline is not None and at > require_aware(deadline, "deadline"):
            return None
        return at.astimezone(client_zone)

    def _hours_on(self, day: date) -> tuple[time, time] | None:
        if self.holidays is not None and self.holidays.is_public_holiday(day):
            return None
        return self.hours.get(day.weekday())

    def _next_allowed_utc(self, at_utc: datetime, client_zone: ZoneInfo) -> datetime:
        return max(at_utc, self._first_window(at_utc, client_zone).start)

    def _first_window(self, at: datetime, client_zone: ZoneInfo) -> Period:
        return next(periods_from(at, client_zone, self._hours_on))
