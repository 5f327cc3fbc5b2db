"""SLA deadlines for callback tasks, computed on the business calendar.

Every source of a callback task and its deadline (settings in brackets):

========================  =====================================  ================================
what happened             at working time                        out of hours
========================  =====================================  ================================
survey score below        + N working minutes (``low_score_      the end of the first working
the threshold             callback_working_minutes``, 120)       hour of the next working period
``manager.requested``     + N working minutes (``manager_        the same
(key 2 of a warning)      callback_working_minutes``, 120)
``call.missed``           + N working minutes (``missed_call_    the same
                          callback_working_minutes``, 30)
``callback.requested``    the requested time (a time already     the next opening at or after
with a time               past counts as the moment the          the requested time
                          request arrived)
``callback.requested``    the missed-call rule, from the         the same
without a time            moment the request arrived
========================  =====================================  ================================

"Next working period" means the next opening at or after the event: a score given at 08:00
on a working day is due by 11:00 that same day with 10:00-19:00 hours; one given on Friday
evening is due by Monday 11:00 (or later if Monday is a holiday). Working minutes skip nights,
weekends and holidays, so a missed call at 18:50 is due at 10:20 on the next working day.

Working time is the business's calendar (its hours, holidays, transferred working days and its
zone), never the client's zone: the client's zone is only shown to the agent.

Pure functions: the instant comes in as an aware datetime; results are in the calendar's zone.
"""

from __future__ import annotations

from datetime import datetime

from campaigns.calendar import BusinessCalendar, require_aware

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


def requested_callback_deadline(
    requested_at: datetime | None,
    received_at: datetime,
    cal: BusinessCalendar,
    missed_minutes: int = MISSED_CALL_MINUTES,
) -> datetime:
    """Deadline for a callback the client asked for at ``requested_at`` (``received_at`` is
    when the request arrived).

    The requested time when it is working time, else the next opening after it; a time in the
    past counts as ``received_at``; no time at all is the missed-call rule from ``received_at``.
    """
    received = require_aware(received_at, "received_at")
    if requested_at is None:
        return missed_call_deadline(received, cal, missed_minutes)
    wanted = max(require_aware(requested_at, "requested_at"), received)
    if cal.is_working_time(wanted):
        return wanted.astimezone(cal.zone)
    return cal.next_working_start(wanted)


def _deadline(at: datetime, cal: BusinessCalendar, working_minutes: int) -> datetime:
    if working_minutes < 1:
        raise ValueError(f"an SLA needs at least one working minute, got {working_minutes}")
    if cal.is_working_time(at):
        return cal.add_working_minutes(at, working_minutes)
    return cal.add_working_minutes(cal.next_working_start(at), FIRST_WORKING_HOUR_MINUTES)
