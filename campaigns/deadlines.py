"""SLA deadlines for callback tasks, computed on the business calendar.

==================  ====================================  ==================================
what happened       at working time                       out of hours
==================  ====================================  ==================================
score below 4       + ``within_working_minutes`` working  the end of the first working hour
                    minutes                               of the next working period
missed call         + 30 working minutes (``minutes``)    the same
==================  ====================================  ==================================

"Next working period" means the next opening at or after the event: a score given at 08:00
on a working day is due by 11:00 that same day with 10:00-19:00 hours; one given on Friday
evening is due by Monday 11:00 (or later if Monday is a holiday). Working minutes skip nights,
weekends and holidays, so a missed call at 18:50 is due at 10:20 on the next working day.

Pure functions: the instant comes in as an aware datetime; results are in the calendar's zone.
"""

from __future__ import annotations

from datetime import datetime

from campaigns.calendar import BusinessCalendar

FIRST_WORKING_HOUR_MINUTES = 60
MISSED_CALL_MINUTES = 30


def low_score_deadline(
    at: datetime, cal: BusinessCalendar, within_working_minutes: int
) -> datetime:
    """Deadline for the callback task of a survey score below 4 given at ``at``."""
    return _deadline(at, cal, within_working_minutes)


def missed_call_deadline(
    at: datetime, cal: BusinessCalendar, minutes: int = MISSED_CALL_MINUTES
) -> datetime:
    """Deadline for the callback task of a call missed at ``at``."""
    return _deadline(at, cal, minutes)


def _deadline(at: datetime, cal: BusinessCalendar, working_minutes: int) -> datetime:
    if working_minutes < 1:
        raise ValueError(f"an SLA needs at least one working minute, got {working_minutes}")
    if cal.is_working_time(at):
        return cal.add_working_minutes(at, working_minutes)
    return cal.add_working_minutes(cal.next_working_start(at), FIRST_WORKING_HOUR_MINUTES)
