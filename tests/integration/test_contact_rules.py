"""The contact rules under concurrency, on SQLite and PostgreSQL: one survey per client per period
when a client's events arrive together, one job of a capped kind per client when many writers
race (the hook for the warning kinds), one call to a client at a time, and an answer stored
when given settles the job after a crash instead of a redial."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from campaigns.contact_rules import ContactCap, contacted_recently, lock_client
from campaigns.dial_budget import lock_budget
from campaigns.dispatcher import Claimed, Dispatcher, DispatchLimits, RunningCall
from campaigns.events import parse_event
from campaigns.models import CallAttempt, CallbackTask, DialBudget, Job, JobStatus, OutboxEvent
from infra.db import transaction, utcnow
from infra.tasks import TaskSupervisor
from ivr.results import FlowResult
from telephony.backend import CallProgress, CallReport, FlowCall
from telephony.memory import MemoryBackend, Scripted
from telephony.outcomes import Outcome
from tests.integration.test_survey_jobs import (
    Clock,
    completed,
    make_surveys,
    moscow,
    new_job,
    purposes,
    survey_intake,
)

WRITERS = 8


def together(count: int, work: Callable[[int], object]) -> list[object]:
    """Run `work(i)` for i in range(count) on as many threads, released at the same moment."""
    start = threading.Barrier(count, timeout=30)

    def run(i: int) -> object:
        start.wait()
        return work(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def call_completed_event(client: str, phone: str) -> bytes:
    at = "2026-11-24T11:30:00+03:00"
    return json.dumps({
        "id": f"evt-{uuid.uuid4().hex}", "type": "call.completed", "occurred_at": at,
        "data": {"call_id": f"call-{uuid.uuid4().hex[:6]}", "client_id": client, "phone": phone,
                 "ended_at": at, "duration_s": 120},
    }).encode()


def test_events_for_one_client_arriving_together_queue_one_survey(
    sessions: sessionmaker[Session],
) -> None:
    intake = survey_intake(sessions, make_surveys(Clock(moscow("2026-11-24T12:00"))))
    for round_ in range(4):
        client, phone = f"c-{round_}", f"+7999000000{round_}"
        if round_ % 2:  # a client seen before: its lock rows exist already
            with transaction(sessions) as session:
                lock_client(session, client, phone)
        events = [parse_event(call_completed_event(client, phone), "RU") for _ in range(WRITERS)]
        together(WRITERS, lambda i, events=events: intake.handle(events[i]))  # type: ignore[misc]
        with transaction(sessions) as session:
            statuses = session.scalars(select(Job.status).where(Job.client_id == client)).all()
        assert sorted(statuses) == [JobStatus.PENDING] + [JobStatus.SKIPPED] * (WRITERS - 1)


def test_the_same_phone_under_two_client_ids_is_one_client(
    sessions: sessionmaker[Session],
) -> None:
    intake = survey_intake(sessions, make_surveys(Clock(moscow("2026-11-24T12:00"))))
    events = [parse_event(call_completed_event(f"c-{i}", "+79990000009"), "RU")
              for i in range(WRITERS)]
    together(WRITERS, lambda i: intake.handle(events[i]))
    with transaction(sessions) as session:
        pending = session.scalar(select(func.count()).where(Job.status == JobStatus.PENDING))
    assert pending == 1


def test_a_capped_kind_admits_one_job_per_client_among_racing_writers(
    sessions: sessionmaker[Session],
) -> None:
    """The rule any kind plugs into (a warning: one per client per reason per day)."""
    cap = ContactCap("balance_warning", timedelta(days=1))
    clock = Clock(moscow("2026-11-24T12:00"))
    template = new_job(sessions, make_surveys(clock), completed(clock.at), event_id="evt-t")

    def admit(i: int) -> bool:
        with transaction(sessions) as session:
            lock_client(session, "c-w", "+79990000077")
            if contacted_recently(session, cap, "c-w", "+79990000077", clock.at):
                return False
            session.add(Job(
                id=str(uuid.uuid4()), kind=cap.kind, status=JobStatus.PENDING,
                source_event_id=f"evt-w{i}", client_id="c-w", phone="+79990000077",
                timezone=template.timezone, locale="ru", context={}, due_at=clock.at,
                not_before=clock.at, not_after=clock.at + timedelta(hours=1), attempts=0,
                max_attempts=1, created_at=clock.at, updated_at=clock.at,
            ))
            return True

    admitted = together(WRITERS, admit)
    assert admitted.count(True) == 1
    with transaction(sessions) as session:
        assert session.scalar(select(func.count()).where(Job.kind == cap.kind)) == 1


def HangingBackend(score: int | None) -> MemoryBackend:
    """Answers, stores the dialog, records the score the client pressed, then never returns:
    the process is about to die mid-goodbye."""
    return MemoryBackend(Scripted(result=FlowResult.SCORE if score is not None else None,
                                  value=score, hangs=True))


def make_dispatcher(sessions: sessionmaker[Session], clock: Clock, backend: object,
                    instance: str = "host:8080", **policy: object,
                    ) -> tuple[Dispatcher, TaskSupervisor]:
    """A dispatcher and its tasks: cancelling them is the process dying."""
    tasks = TaskSupervisor()
    return Dispatcher(
        sessions, purposes(make_surveys(clock, **policy)), backend,
        instance=instance,
        limits=DispatchLimits(channels=5, calls_per_second=50, lease=timedelta(seconds=60)),
        clock=clock, tasks=tasks,
    ), tasks


async def wait_for(sessions: sessionmaker[Session], check: Callable[[Session], bool]) -> None:
    async with asyncio.timeout(20):
        while True:
            with transaction(sessions) as session:
                if check(session):
                    return
            await asyncio.sleep(0.05)


async def test_an_answer_given_before_a_crash_is_never_asked_again(
    sessions: sessionmaker[Session],
) -> None:
    clock = Clock(moscow("2026-11-24T12:00"))
    job = new_job(sessions, make_surveys(clock), completed(clock.at - timedelta(minutes=30)))
    dying, dies = make_dispatcher(sessions, clock, HangingBackend(score=2))
    assert await dying.tick() == 1
    await wait_for(sessions, lambda s: s.scalars(select(CallAttempt.result_value)).all() == [2]
                   and s.scalars(select(CallAttempt.dialog)).one() is not None)
    with transaction(sessions) as session:  # stored at once: the call is still up
        assert session.get_one(Job, job.id).status == JobStatus.DIALING

    successor_backend = HangingBackend(score=None)
    successor, _ = make_dispatcher(sessions, clock, successor_backend)
    recovered = await successor.recover()
    await dies.cancel_all()

    assert (recovered.settled, recovered.hung_up) == (1, 1)
    assert [dialog["job_id"] for dialog in successor_backend.ended] == [job.id]
    with transaction(sessions) as session:
        stored = session.get_one(Job, job.id)
        assert (stored.status, stored.final_reason) == (JobStatus.COMPLETED, "score 2")
        assert session.scalars(select(CallbackTask.score)).all() == [2]
        assert session.scalars(select(CallAttempt.outcome)).all() == ["crashed"]
        assert session.scalars(select(OutboxEvent.type).order_by(OutboxEvent.id)).all() == [
            "survey.completed", "callback_task.created"]
    assert await successor.tick() == 0  # nobody is called again
    assert successor_backend.calls == []


async def test_a_crash_before_the_answer_follows_the_retry_policy(
    sessions: sessionmaker[Session],
) -> None:
    clock = Clock(moscow("2026-11-24T12:00"))
    job = new_job(sessions, make_surveys(clock, retry_delay=timedelta(minutes=1)),
                  completed(clock.at - timedelta(minutes=30)))
    dying, dies = make_dispatcher(sessions, clock, HangingBackend(score=None))
    assert await dying.tick() == 1
    await wait_for(sessions, lambda s: s.scalars(select(CallAttempt.dialog)).one() is not None)
    other, _ = make_dispatcher(sessions, clock, HangingBackend(None), instance="other:8080")
    assert (await other.recover()).settled == 0  # another instance's live call: not ours
    successor, _ = make_dispatcher(sessions, clock, HangingBackend(None),
                                   retry_delay=timedelta(minutes=1))
    assert (await successor.recover()).settled == 1
    await dies.cancel_all()
    with transaction(sessions) as session:
        stored = session.get_one(Job, job.id)
        assert stored.status == JobStatus.PENDING
        assert stored.not_before == clock.at + timedelta(minutes=1)


class NotingBackend:
    """Answers, and looks in the database the moment `progress.answered` returned: where a
    SIP backend sends its ACK."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.stored_when_answered: list[object] = []

    async def prepare(self, call: FlowCall) -> None:
        return None

    async def run(self, call: FlowCall, progress: CallProgress) -> CallReport:
        await progress.dial_slot()
        await progress.answered({"call_id": "call-1", "job_id": call.job_id})
        with transaction(self.sessions) as session:
            self.stored_when_answered.append(session.scalars(select(CallAttempt.dialog)).one())
        return CallReport(Outcome.ANSWERED, 200, "call-1", FlowResult.SCORE, 4)

    async def end_orphan(self, dialog: object) -> bool:
        return True


async def test_an_answered_calls_dialog_is_stored_before_the_answer_is_confirmed(
    sessions: sessionmaker[Session],
) -> None:
    clock = Clock(moscow("2026-11-24T12:00"))
    job = new_job(sessions, make_surveys(clock), completed(clock.at - timedelta(minutes=30)))
    backend = NotingBackend(sessions)
    d, tasks = make_dispatcher(sessions, clock, backend)
    assert await d.tick() == 1
    await wait_for(sessions, lambda s: s.get_one(Job, job.id).status == JobStatus.COMPLETED)
    assert backend.stored_when_answered == [{"call_id": "call-1", "job_id": job.id}]
    await tasks.cancel_all()


async def test_one_call_to_a_client_at_a_time(sessions: sessionmaker[Session]) -> None:
    clock = Clock(moscow("2026-11-24T12:00"))
    surveys = make_surveys(clock, period=timedelta(seconds=1))  # a cap that does not bite
    ended = clock.at - timedelta(minutes=30)
    first = new_job(sessions, surveys, completed(ended), event_id="evt-1")
    clock.at += timedelta(seconds=2)
    second = new_job(sessions, surveys, completed(ended, client="c-2"), event_id="evt-2")
    clock.at += timedelta(seconds=2)
    third = new_job(sessions, surveys, completed(ended, phone="+79990000002"), event_id="evt-3")
    backend = HangingBackend(score=None)
    d, tasks = make_dispatcher(sessions, clock, backend)
    assert await d.tick() == 1  # the other two share its phone or its client
    assert await d.tick() == 0
    with transaction(sessions) as session:
        statuses = {job_id: session.get_one(Job, job_id).status
                    for job_id in (first.id, second.id, third.id)}
    assert sorted(statuses.values()) == [JobStatus.DIALING, JobStatus.PENDING, JobStatus.PENDING]
    await tasks.cancel_all()


async def test_the_channel_limit_counts_every_instance(sessions: sessionmaker[Session]) -> None:
    clock = Clock(moscow("2026-11-24T12:00"))
    surveys = make_surveys(clock)
    for n in range(6):
        new_job(sessions, surveys, completed(clock.at - timedelta(minutes=30), client=f"c-{n}",
                                             phone=f"+7999000001{n}"), event_id=f"evt-{n}")
    one, one_tasks = make_dispatcher(sessions, clock, HangingBackend(None), instance="a:1")
    two, two_tasks = make_dispatcher(sessions, clock, HangingBackend(None), instance="b:1")
    assert await one.tick() == 5  # its own channels
    assert await two.tick() == 0  # the shared limit (5) is used up by the other instance
    await one_tasks.cancel_all()
    await two_tasks.cancel_all()


async def test_a_call_woken_too_late_takes_a_fresh_dial_slot(
    sessions: sessionmaker[Session],
) -> None:
    d, _ = make_dispatcher(sessions, utcnow, HangingBackend(None))  # type: ignore[arg-type]
    call = FlowCall("job-1", "+79990000001", "survey", "ru")
    on_time = RunningCall(d, Claimed("job-1", 1, call, utcnow()))
    await on_time.dial_slot()
    with transaction(sessions) as session:
        assert session.get(DialBudget, "default") is None  # nothing taken again
    woken = utcnow()
    late = RunningCall(d, Claimed("job-2", 2, FlowCall("job-2", "+79990000002", "survey", "ru"),
                                  woken - timedelta(milliseconds=200)))
    await late.dial_slot()
    with transaction(sessions) as session:
        assert lock_budget(session) > woken  # it took a fresh slot and dialed at that one
