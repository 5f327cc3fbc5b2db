"""Survey jobs with an injected clock, on SQLite and PostgreSQL: when they are scheduled,
skipped or dropped, how a report settles them, and how the reaper settles a crash."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from campaigns.calendar import BusinessCalendar
from campaigns.callback_sources import CallbackSources
from campaigns.calling_window import CallingWindow
from campaigns.deadlines import low_score_deadline
from campaigns.dispatcher import Dispatcher, DispatchLimits
from campaigns.events import CallCompletedData
from campaigns.intake import Intake, event_handlers
from campaigns.models import (
    CallAttempt,
    CallbackTask,
    DoNotCall,
    DoNotCallClient,
    Job,
    JobStatus,
    OutboxEvent,
)
from campaigns.purpose import CallPurpose
from campaigns.survey_policy import SurveyPolicy
from campaigns.surveys import Surveys
from campaigns.warnings import WarningPolicy, Warnings
from infra.db import transaction
from ivr.results import FlowResult
from telephony.backend import CallReport
from telephony.memory import MemoryBackend, Scripted
from telephony.outcomes import Outcome

MOSCOW = ZoneInfo("Europe/Moscow")


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def moscow(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=MOSCOW)


def make_surveys(clock: Clock, **policy: object) -> Surveys:
    calendar = BusinessCalendar.from_settings(timezone="Europe/Moscow")
    window = CallingWindow.from_settings(calendar, "mon-fri 09:00-21:00; sat-sun 10:00-20:00")
    return Surveys(SurveyPolicy(**policy), window, calendar, clock)  # type: ignore[arg-type]


def purposes(surveys: Surveys) -> dict[str, CallPurpose]:
    return {surveys.kind: surveys}


def survey_intake(sessions: sessionmaker[Session], surveys: Surveys) -> Intake:
    """The intake as `serve` builds it, around these surveys."""
    warnings = Warnings(WarningPolicy(window=surveys.window), surveys.calendar, surveys.clock)
    callbacks = CallbackSources(surveys.calendar, surveys.clock)
    return Intake(sessions, event_handlers(surveys, warnings, callbacks), default_region="RU")


def completed(ended: datetime, *, phone: str = "+79990000001", client: str = "c-1",
              duration: float = 120, zone: str | None = "Europe/Moscow") -> CallCompletedData:
    return CallCompletedData.model_validate(
        {"call_id": "call-1", "client_id": client, "phone": phone, "ended_at": ended.isoformat(),
         "duration_s": duration, "agent_id": "agent-7", "timezone": zone, "locale": "ru"},
        context={"default_region": "RU"},
    )


def new_job(sessions: sessionmaker[Session], surveys: Surveys, data: CallCompletedData,
            event_id: str = "evt-1") -> Job:
    with transaction(sessions) as session:
        return surveys.on_call_completed(session, data, event_id)


def outbox_types(sessions: sessionmaker[Session]) -> list[str]:
    with transaction(sessions) as session:
        return list(session.scalars(select(OutboxEvent.type).order_by(OutboxEvent.id)))


def test_inside_the_window_the_survey_is_due_thirty_minutes_later(
    sessions: sessionmaker[Session],
) -> None:
    ended = moscow("2026-11-24T12:00")  # a Tuesday
    job = new_job(sessions, make_surveys(Clock(ended)), completed(ended))
    assert job.status == JobStatus.PENDING
    assert job.not_before == ended + timedelta(minutes=30)


def test_just_before_closing_the_survey_is_dropped_past_the_lateness_limit(
    sessions: sessionmaker[Session],
) -> None:
    ended = moscow("2026-11-27T20:40")  # Friday: due 21:10, the window closed at 21:00
    job = new_job(sessions, make_surveys(Clock(ended)), completed(ended))
    assert job.status == JobStatus.UNANSWERED
    assert "lateness limit" in (job.final_reason or "")
    assert outbox_types(sessions) == ["survey.unanswered"]


def test_a_weekend_call_waits_for_the_window_within_the_lateness(
    sessions: sessionmaker[Session],
) -> None:
    ended = moscow("2026-11-28T08:00")  # Saturday: due 08:30, window opens at 10:00
    job = new_job(sessions, make_surveys(Clock(ended)), completed(ended))
    assert job.status == JobStatus.PENDING
    assert job.not_before == moscow("2026-11-28T10:00")


def test_a_public_holiday_is_not_called(sessions: sessionmaker[Session]) -> None:
    ended = moscow("2026-01-01T12:00")  # New Year holidays in Russia
    job = new_job(sessions, make_surveys(Clock(ended)), completed(ended))
    assert job.status == JobStatus.UNANSWERED


def test_the_clients_own_time_zone_decides(sessions: sessionmaker[Session]) -> None:
    ended = moscow("2026-11-24T02:30")  # 09:30 in Vladivostok: inside the client's window
    surveys = make_surveys(Clock(ended), max_lateness=timedelta(hours=8))
    job = new_job(sessions, surveys, completed(ended, zone="Asia/Vladivostok"))
    assert job.status == JobStatus.PENDING and job.not_before == ended + timedelta(minutes=30)
    other = new_job(sessions, surveys, completed(ended, client="c-2", phone="+79990000002"),
                    event_id="evt-2")
    assert other.status == JobStatus.PENDING
    assert other.not_before == moscow("2026-11-24T09:00")  # Moscow client: waits for 09:00


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [({"duration": 5}, "minimum"), ({"phone": "+79990000009"}, "opted out")],
)
def test_short_calls_and_opted_out_numbers_are_skipped(
    sessions: sessionmaker[Session], kwargs: dict[str, object], reason: str
) -> None:
    with transaction(sessions) as session:
        session.add(DoNotCall(phone="+79990000009"))
    ended = moscow("2026-11-24T12:00")
    job = new_job(sessions, make_surveys(Clock(ended)), completed(ended, **kwargs))  # type: ignore[arg-type]
    assert job.status == JobStatus.SKIPPED and reason in (job.final_reason or "")
    assert outbox_types(sessions) == []


def test_a_client_who_opted_out_as_a_whole_is_not_called_on_a_new_number(
    sessions: sessionmaker[Session],
) -> None:
    with transaction(sessions) as session:
        session.add(DoNotCallClient(client_id="c-1"))
    ended = moscow("2026-11-24T12:00")
    job = new_job(sessions, make_surveys(Clock(ended)), completed(ended, phone="+79990000077"))
    assert job.status == JobStatus.SKIPPED and job.final_reason == "client opted out"


async def test_an_opt_out_after_queueing_stops_the_dial(sessions: sessionmaker[Session]) -> None:
    clock = Clock(moscow("2026-11-24T12:00"))
    surveys = make_surveys(clock)
    job = new_job(sessions, surveys, completed(clock.at - timedelta(minutes=30)))
    with transaction(sessions) as session:
        session.add(DoNotCallClient(client_id="c-1"))
    d, backend = dispatcher(sessions, surveys, CallReport(Outcome.BUSY, 486, "x"))
    assert await run_due(d) == 0 and backend.calls == []
    with transaction(sessions) as session:
        stored = session.get(Job, job.id)
        assert stored is not None and stored.status == JobStatus.SKIPPED


def test_one_survey_per_client_per_period(sessions: sessionmaker[Session]) -> None:
    ended = moscow("2026-11-24T12:00")
    surveys = make_surveys(Clock(ended))
    new_job(sessions, surveys, completed(ended))
    second = new_job(sessions, surveys, completed(ended), event_id="evt-2")
    assert second.status == JobStatus.SKIPPED


def dispatcher(sessions: sessionmaker[Session], surveys: Surveys, report: CallReport,
               instance: str = "test") -> tuple[Dispatcher, MemoryBackend]:
    """A dispatcher whose every call ends as `report` says."""
    backend = MemoryBackend(Scripted(report.outcome, report.sip_status, report.result,
                                     report.value))
    return Dispatcher(
        sessions, purposes(surveys), backend, instance=instance,
        limits=DispatchLimits(channels=5, calls_per_second=50, lease=timedelta(seconds=60)),
        clock=surveys.clock,
    ), backend


async def run_due(d: Dispatcher) -> int:
    claimed = await d.tick()
    await d.drain(10)
    return claimed


async def test_a_low_score_creates_a_task_with_the_calendar_deadline(
    sessions: sessionmaker[Session],
) -> None:
    clock = Clock(moscow("2026-11-24T18:20"))
    surveys = make_surveys(clock)
    job = new_job(sessions, surveys, completed(clock.at - timedelta(minutes=30)))
    d, backend = dispatcher(sessions, surveys,
                            CallReport(Outcome.ANSWERED, 200, "sip-1", FlowResult.SCORE, 3))
    assert await run_due(d) == 1
    assert backend.calls[0].phone == "+79990000001"
    with transaction(sessions) as session:
        task = session.scalars(select(CallbackTask)).one()
        assert task.score == 3 and task.source_job_id == job.id
        calendar = surveys.calendar
        assert task.deadline == low_score_deadline(clock.at, calendar, 120)
        assert task.deadline == moscow("2026-11-25T11:20")  # 40 min today, 80 tomorrow
        assert session.get(Job, job.id).status == JobStatus.COMPLETED  # type: ignore[union-attr]
    assert outbox_types(sessions) == ["survey.completed", "callback_task.created"]
    assert await run_due(d) == 0  # never twice for one job


async def test_busy_is_retried_inside_the_window_only(sessions: sessionmaker[Session]) -> None:
    clock = Clock(moscow("2026-11-24T12:00"))
    surveys = make_surveys(clock, retry_delay=timedelta(minutes=10), max_attempts=3)
    job = new_job(sessions, surveys, completed(clock.at - timedelta(minutes=30)))
    d, backend = dispatcher(sessions, surveys, CallReport(Outcome.BUSY, 486, "sip-1"))
    assert await run_due(d) == 1
    with transaction(sessions) as session:
        stored = session.get(Job, job.id)
        assert stored is not None and stored.status == JobStatus.PENDING
        assert stored.not_before == clock.at + timedelta(minutes=10)
    clock.at = moscow("2026-11-24T15:55")  # next retry would be 16:05: past due + 4 h
    assert await run_due(d) == 1
    with transaction(sessions) as session:
        stored = session.get(Job, job.id)
        assert stored is not None and stored.status == JobStatus.UNANSWERED
        assert "busy after 2 attempt(s)" in (stored.final_reason or "")
    assert len(backend.calls) == 2


async def test_the_reaper_counts_a_crashed_call_and_the_retry_policy_redials(
    sessions: sessionmaker[Session],
) -> None:
    clock = Clock(moscow("2026-11-24T12:00"))
    surveys = make_surveys(clock, retry_delay=timedelta(minutes=1))
    job = new_job(sessions, surveys, completed(clock.at - timedelta(minutes=30)))
    with transaction(sessions) as session:  # a process claimed it, then died mid-call
        stored = session.get(Job, job.id)
        assert stored is not None
        stored.status, stored.attempts = JobStatus.DIALING, 1
        stored.lease_owner, stored.lease_expires_at = "dead", clock.at + timedelta(seconds=60)
        session.add(CallAttempt(job_id=job.id, number=1, started_at=clock.at))
    d, _ = dispatcher(sessions, surveys,
                      CallReport(Outcome.ANSWERED, 200, "x", FlowResult.SCORE, 5))
    assert (await d.reap()).settled == 0  # the lease still runs: the call may be alive elsewhere
    clock.at += timedelta(seconds=61)
    assert (await d.reap()).settled == 1
    with transaction(sessions) as session:
        stored = session.get(Job, job.id)
        assert stored is not None and stored.status == JobStatus.PENDING
        attempt = session.scalars(select(CallAttempt)).one()
        assert attempt.outcome == "crashed" and attempt.ended_at is not None
    clock.at += timedelta(minutes=2)
    assert await run_due(d) == 1
    with transaction(sessions) as session:
        stored = session.get(Job, job.id)
        assert stored is not None and stored.status == JobStatus.COMPLETED
        assert stored.attempts == 2


def test_naive_times_never_reach_the_database(sessions: sessionmaker[Session]) -> None:
    naive = completed(moscow("2026-11-24T12:00")).model_copy(
        update={"ended_at": datetime(2026, 11, 24, 12, 0)}  # what validation would refuse
    )
    with pytest.raises(ValueError, match="naive"):
        new_job(sessions, make_surveys(Clock(datetime.now(UTC))), naive)
