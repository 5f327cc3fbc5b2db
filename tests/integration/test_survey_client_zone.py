"""The survey job of an event without a time zone is scheduled in the zone of the client's
number, on SQLite and PostgreSQL: a Vladivostok landline is not called by Moscow's clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from campaigns.calendar import BusinessCalendar
from campaigns.calling_window import CallingWindow
from campaigns.events import CallCompletedData
from campaigns.models import Job, JobStatus
from campaigns.survey_policy import SurveyPolicy
from campaigns.surveys import Surveys
from infra.db import transaction

MOSCOW = ZoneInfo("Europe/Moscow")
VLADIVOSTOK = ZoneInfo("Asia/Vladivostok")
VLADIVOSTOK_LANDLINE = "+74232400000"
MOSCOW_LANDLINE = "+74951234567"
RUSSIAN_MOBILE = "+79991234567"


def surveys_at(now: datetime, max_lateness: timedelta = timedelta(hours=4)) -> Surveys:
    calendar = BusinessCalendar.from_settings(timezone="Europe/Moscow")
    window = CallingWindow.from_settings(calendar, "mon-fri 09:00-21:00; sat-sun 10:00-20:00")
    policy = SurveyPolicy(max_lateness=max_lateness, default_timezone="Europe/Moscow")
    return Surveys(policy, window, calendar, lambda: now)


def survey_job(sessions: sessionmaker[Session], surveys: Surveys, ended: datetime, phone: str,
               client: str) -> Job:
    """The stored job for a `call.completed` without a time zone."""
    data = CallCompletedData.model_validate(
        {"call_id": f"call-{client}", "client_id": client, "phone": phone,
         "ended_at": ended.isoformat(), "duration_s": 120},
        context={"default_region": "RU"},
    )
    with transaction(sessions) as session:
        job_id = surveys.on_call_completed(session, data, f"evt-{client}").id
    with transaction(sessions) as session:
        job = session.scalars(select(Job).where(Job.id == job_id)).one()
        session.expunge(job)
        return job


def test_a_vladivostok_landline_is_called_in_the_vladivostok_window(
    sessions: sessionmaker[Session],
) -> None:
    # Tuesday 02:30 in Moscow is 09:30 in Vladivostok: due 30 minutes later, 10:00 there.
    ended = datetime(2026, 11, 24, 2, 30, tzinfo=MOSCOW)
    surveys = surveys_at(ended, max_lateness=timedelta(hours=8))

    job = survey_job(sessions, surveys, ended, VLADIVOSTOK_LANDLINE, "c-vvo")
    assert job.timezone == "Asia/Vladivostok"
    assert job.context["timezone_source"] == "number"
    assert job.status == JobStatus.PENDING
    assert job.not_before == ended + timedelta(minutes=30)
    assert job.not_before.astimezone(VLADIVOSTOK).hour == 10

    # The same call from a Moscow landline waits for Moscow's 09:00.
    moscow = survey_job(sessions, surveys, ended, MOSCOW_LANDLINE, "c-mow")
    assert (moscow.timezone, moscow.context["timezone_source"]) == ("Europe/Moscow", "number")
    assert moscow.not_before == datetime(2026, 11, 24, 9, 0, tzinfo=MOSCOW)


def test_a_vladivostok_landline_is_not_called_after_its_evening(
    sessions: sessionmaker[Session],
) -> None:
    # Friday 14:00 in Moscow, due 14:30: open in Moscow, but 21:30 in Vladivostok, where the
    # window closed at 21:00 and opens again on Saturday at 10:00, past the 4 h lateness limit.
    ended = datetime(2026, 11, 27, 14, 0, tzinfo=MOSCOW)
    surveys = surveys_at(ended)

    job = survey_job(sessions, surveys, ended, VLADIVOSTOK_LANDLINE, "c-vvo")
    assert job.status == JobStatus.UNANSWERED
    assert "next window 2026-11-28T10:00+10:00" in (job.final_reason or "")

    moscow = survey_job(sessions, surveys, ended, MOSCOW_LANDLINE, "c-mow")
    assert moscow.status == JobStatus.PENDING
    assert moscow.not_before == ended + timedelta(minutes=30)


def test_a_mobile_of_many_zones_uses_the_default_and_the_job_says_so(
    sessions: sessionmaker[Session],
) -> None:
    ended = datetime(2026, 11, 24, 2, 30, tzinfo=MOSCOW)
    job = survey_job(sessions, surveys_at(ended, timedelta(hours=8)), ended, RUSSIAN_MOBILE,
                     "c-mobile")
    assert job.timezone == "Europe/Moscow"
    assert job.context["timezone_source"].startswith("default (number ambiguous: ")
    assert job.not_before == datetime(2026, 11, 24, 9, 0, tzinfo=MOSCOW)
