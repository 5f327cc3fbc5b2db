"""Data retention on SQLite and PostgreSQL: old finished jobs lose their phone numbers (and what
else holds one about them), recent and unfinished jobs and the do-not-call lists are kept, and a
second purge changes nothing. Also `ringback db purge` as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from campaigns.models import (
    CallAttempt,
    CallbackTask,
    DoNotCall,
    DoNotCallClient,
    Job,
    JobKind,
    JobStatus,
    OutboxEvent,
    OutboxStatus,
    SurveyResponse,
    WebhookEvent,
)
from campaigns.retention import RetentionPolicy, RetentionPurge, purge
from infra.db import make_engine, make_sessions, transaction
from infra.migrate import upgrade

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
POLICY = RetentionPolicy(days=30, contact_period=timedelta(days=30))
OLD = NOW - timedelta(days=31)
RECENT = NOW - timedelta(days=29)
RINGBACK = Path(sys.executable).with_name("ringback")


def _job(job_id: str, status: JobStatus, finished: datetime, phone: str) -> Job:
    return Job(id=job_id, kind=JobKind.SURVEY, status=status, source_event_id=f"evt-{job_id}",
               client_id=f"client-{job_id}", phone=phone, timezone="Europe/Moscow", locale="ru",
               context={"call_id": f"call-{job_id}"}, due_at=finished, not_before=finished,
               not_after=finished, attempts=1, max_attempts=3, created_at=finished,
               updated_at=finished)


def _seed(sessions: sessionmaker[Session]) -> None:
    dialog = {"call_id": "sip-call", "remote_target": "sip:79990000001@trunk"}
    with transaction(sessions) as session:
        session.add_all([
            _job("old-done", JobStatus.COMPLETED, OLD, "+79990000001"),
            _job("old-unanswered", JobStatus.UNANSWERED, OLD, "+79990000002"),
            _job("old-skipped", JobStatus.SKIPPED, OLD, "+79990000003"),
            _job("recent-done", JobStatus.COMPLETED, RECENT, "+79990000004"),
            _job("old-pending", JobStatus.PENDING, OLD, "+79990000005"),
            _job("old-dialing", JobStatus.DIALING, OLD, "+79990000006"),
        ])
        session.flush()
        for job_id, phone in (("old-done", "+79990000001"), ("recent-done", "+79990000004")):
            session.add(SurveyResponse(job_id=job_id, original_call_id=f"call-{job_id}",
                                       client_id=f"client-{job_id}", phone=phone, score=2,
                                       outcome="scored", answered_at=OLD))
        for job_id in ("old-done", "old-dialing"):
            session.add(CallAttempt(job_id=job_id, number=1, started_at=OLD, dialog=dialog))
        session.add(CallbackTask(id="task-1", reason="low_score", client_id="client-old-done",
                                 phone="+79990000001", deadline=OLD, source_job_id="old-done",
                                 created_at=OLD))
        session.add(DoNotCall(phone="+79990000002", client_id="client-old-unanswered",
                              created_at=OLD))
        session.add(DoNotCallClient(client_id="client-old-unanswered", created_at=OLD))
        for event_id, received in (("evt-old", OLD), ("evt-recent", RECENT)):
            session.add(WebhookEvent(id=event_id, type="call.completed", occurred_at=received,
                                     received_at=received,
                                     payload={"id": event_id, "data": {"phone": "+79990000001"}}))
        for event_id, status, delivered in (
            ("out-old", OutboxStatus.DELIVERED, OLD),
            ("out-recent", OutboxStatus.DELIVERED, RECENT),
            ("out-pending", OutboxStatus.PENDING, None),
        ):
            session.add(OutboxEvent(event_id=event_id, type="survey.completed",
                                    ordering_key="client-1", status=status, created_at=OLD,
                                    next_attempt_at=OLD, delivered_at=delivered,
                                    payload={"data": {"phone": "+79990000001"}}))


def _pairs(session: Session, key: Any, value: Any) -> dict[Any, Any]:
    return {row[0]: row[1] for row in session.execute(select(key, value))}


def _state(sessions: sessionmaker[Session]) -> dict[str, object]:
    with transaction(sessions) as session:
        return {
            "jobs": {job.id: (job.phone, job.status, job.updated_at)
                     for job in session.scalars(select(Job))},
            "responses": _pairs(session, SurveyResponse.job_id, SurveyResponse.phone),
            "dialogs": _pairs(session, CallAttempt.job_id, CallAttempt.dialog),
            "task_phone": session.scalar(select(CallbackTask.phone)),
            "do_not_call": list(session.scalars(select(DoNotCall.phone))),
            "do_not_call_clients": list(session.scalars(select(DoNotCallClient.client_id))),
            "event_payloads": _pairs(session, WebhookEvent.id, WebhookEvent.payload),
            "outbox": sorted(session.scalars(select(OutboxEvent.event_id))),
        }


def test_old_finished_jobs_lose_their_numbers_and_nothing_else_does(
    sessions: sessionmaker[Session],
) -> None:
    _seed(sessions)

    counts = RetentionPurge(sessions, POLICY, clock=lambda: NOW).run()

    assert counts == {"jobs": 3, "survey_responses": 1, "call_attempt_dialogs": 1,
                      "webhook_event_payloads": 1, "delivered_outbox_events": 1}
    state = _state(sessions)
    assert state["jobs"] == {
        "old-done": ("", JobStatus.COMPLETED, OLD),  # when it finished is kept
        "old-unanswered": ("", JobStatus.UNANSWERED, OLD),
        "old-skipped": ("", JobStatus.SKIPPED, OLD),
        "recent-done": ("+79990000004", JobStatus.COMPLETED, RECENT),
        "old-pending": ("+79990000005", JobStatus.PENDING, OLD),
        "old-dialing": ("+79990000006", JobStatus.DIALING, OLD),
    }
    assert state["responses"] == {"old-done": "", "recent-done": "+79990000004"}
    assert state["dialogs"]["old-done"] is None  # type: ignore[index]
    assert state["dialogs"]["old-dialing"] is not None  # type: ignore[index]
    assert state["task_phone"] == "+79990000001"  # open: kept whole
    assert state["do_not_call"] == ["+79990000002"]
    assert state["do_not_call_clients"] == ["client-old-unanswered"]
    assert state["event_payloads"] == {
        "evt-old": {}, "evt-recent": {"id": "evt-recent", "data": {"phone": "+79990000001"}},
    }
    assert state["outbox"] == ["out-pending", "out-recent"]


def test_a_second_purge_changes_nothing(sessions: sessionmaker[Session]) -> None:
    _seed(sessions)
    with transaction(sessions) as session:
        purge(session, POLICY.cutoff(NOW))
    before = _state(sessions)

    with transaction(sessions) as session:
        counts = purge(session, POLICY.cutoff(NOW))

    assert set(counts.values()) == {0}
    assert _state(sessions) == before


def test_the_contact_period_holds_numbers_longer_than_a_shorter_retention(
    sessions: sessionmaker[Session],
) -> None:
    """One survey per phone per period: a job the rule still looks at keeps its number."""
    _seed(sessions)
    policy = RetentionPolicy(days=1, contact_period=timedelta(days=30))

    RetentionPurge(sessions, policy, clock=lambda: NOW).run()

    jobs = _state(sessions)["jobs"]
    assert jobs["recent-done"][0] == "+79990000004"  # type: ignore[index]
    assert jobs["old-done"][0] == ""  # type: ignore[index]


def _ringback_db_purge(
    database_url: str, tmp_path: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RINGBACK_")}
    return subprocess.run(
        [str(RINGBACK), "db", "purge"], capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**base, "RINGBACK_DATABASE_URL": database_url, "RINGBACK_LOG_LEVEL": "WARNING",
             **env},
        check=False,
    )


def test_ringback_db_purge_purges_once_retention_is_set(
    database_url: str, tmp_path: Path
) -> None:
    upgrade(database_url)
    long_ago = datetime.now(UTC) - timedelta(days=400)
    engine = make_engine(database_url)
    try:
        sessions = make_sessions(engine)
        with transaction(sessions) as session:
            session.add(_job("ancient", JobStatus.COMPLETED, long_ago, "+79990000001"))

        unset = _ringback_db_purge(database_url, tmp_path)
        assert unset.returncode == 2, unset.stderr
        assert json.loads(unset.stderr.splitlines()[-1])["error"]["code"] == "invalid-settings"
        assert _state(sessions)["jobs"]["ancient"][0] == "+79990000001"  # type: ignore[index]

        done = _ringback_db_purge(database_url, tmp_path, RINGBACK_RETENTION_DAYS="90")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["purged"]["jobs"] == 1
        assert _state(sessions)["jobs"]["ancient"][0] == ""  # type: ignore[index]
    finally:
        engine.dispose()
