"""Post-call CSAT end to end: `ringback serve` on SQLite, Kamailio, sipp as the client's phone,
a local CRM receiver checking signatures. The survey delay is a few seconds."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from campaigns.calendar import BusinessCalendar
from campaigns.deadlines import low_score_deadline
from infra.settings import DEV_WEBHOOK_SECRET
from lab.capture import Capture
from lab.crm_events import call_completed
from lab.crm_receiver import CrmReceiver
from lab.kamailio import Kamailio
from lab.process import wait_until
from lab.ringback import RINGBACK, RingbackService, sign
from lab.sipp import Sipp
from tests.conftest import COMPANY, CaptureFactory, ServiceFactory, SippFactory

pytestmark = pytest.mark.peers

CLIENT = "79990000001"  # the client's phone is registered at Kamailio under its digits
PHONE = f"+{CLIENT}"

def rows(svc: RingbackService, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(svc.database) as db:
        return db.execute(query).fetchall()


def token(svc: RingbackService, role: str) -> str:
    done = subprocess.run(
        [str(RINGBACK), "token", "create", "--role", role], capture_output=True, text=True,
        env={**svc.process.env}, cwd=svc.workdir, timeout=60, check=True,
    )
    return done.stdout.strip()


def rendered(svc: RingbackService, prompt_id: str) -> bytes:
    """The μ-law the service rendered for one survey prompt."""
    return svc.survey_prompt(prompt_id, COMPANY).ulaw


def greeting_seconds(svc: RingbackService) -> float:
    return svc.survey_prompt("survey.greeting", COMPANY).duration_s


def client_phone(sipp: SippFactory, kamailio: Kamailio, scenario: str, **kwargs: Any) -> Sipp:
    """A sipp UAS reachable at Kamailio as the client's number."""
    phone = sipp(scenario, service=CLIENT, start=True, **kwargs)
    kamailio.add_contact(CLIENT, phone.contact)
    return phone


def scoring_phone(
    svc: RingbackService, sipp: SippFactory, kamailio: Kamailio, key: str, calls: int = 1
) -> Sipp:
    """The client's phone: answers, and presses `key` while the question plays."""
    pause_ms = int((greeting_seconds(svc) + 2.5) * 1000)
    return client_phone(sipp, kamailio, "uas_survey_answer", dtmf_digit=key, calls=calls,
                        template={"PAUSE_MS": str(pause_ms)})


def sent_audio(svc: RingbackService, cap: Capture) -> bytes:
    """Every PCMU payload the service sent, in order."""
    low, high = svc.rtp_range
    ours = sorted((p for p in cap.rtp_packets() if low <= p.src_port <= high
                   and p.payload_type == 0), key=lambda p: p.time)
    return b"".join(p.payload for p in ours)


def test_low_score_becomes_a_callback_task_and_reaches_the_crm(
    service: ServiceFactory, kamailio: Kamailio, sipp: SippFactory, crm: CrmReceiver,
    capture: CaptureFactory,
) -> None:
    svc = service()
    phone = scoring_phone(svc, sipp, kamailio, "3")
    cap = capture(svc.rtp_range)
    status, body = svc.post_event(call_completed())
    assert status == 202, body

    completed = crm.wait_for("survey.completed", timeout=60)
    created = crm.wait_for("callback_task.created", timeout=10)
    assert completed.verified and created.verified
    assert completed.payload["data"]["score"] == 3
    assert phone.wait(20) == 0, phone.describe()  # the robot hung up with a clean BYE
    cap.stop()

    # The client heard the question: its rendered prompt is in the captured RTP, byte for byte.
    assert rendered(svc, "survey.question")[:8000] in sent_audio(svc, cap)

    support = token(svc, "support")
    status, listing = svc.get("/api/v1/callback-tasks", support)
    assert status == 200
    [task] = listing["items"]
    assert task["score"] == 3 and task["phone"] == PHONE and task["agent_id"] == "agent-7"
    calendar = BusinessCalendar.from_settings(timezone="Europe/Moscow")
    created_at = datetime.fromisoformat(task["created_at"])
    assert datetime.fromisoformat(task["deadline"]) == low_score_deadline(created_at, calendar,
                                                                        120)
    assert created.payload["data"]["task_id"] == task["id"]
    assert rows(svc, "select score from survey_responses") == [(3,)]
    status, _ = svc.get("/api/v1/callback-tasks", token(svc, "marketing"))
    assert status == 403


def test_top_score_makes_no_task(
    service: ServiceFactory, kamailio: Kamailio, sipp: SippFactory, crm: CrmReceiver
) -> None:
    svc = service()
    scoring_phone(svc, sipp, kamailio, "5")
    assert svc.post_event(call_completed())[0] == 202
    completed = crm.wait_for("survey.completed", timeout=60)
    assert completed.payload["data"]["score"] == 5
    time.sleep(2)  # give a wrongly created task time to show up
    assert [e.type for e in crm.events] == ["survey.completed"]
    assert rows(svc, "select count(*) from callback_tasks") == [(0,)]
    with urllib.request.urlopen(f"{svc.url}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    assert 'ringback_calls_outcome_total{outcome="answered"} 1.0' in metrics
    assert 'ringback_webhooks_total{result="accepted",type="call.completed"} 1.0' in metrics
    status, openapi = svc.get("/openapi.json")
    assert status == 200 and {"/webhooks/crm", "/api/v1/callback-tasks"} <= set(openapi["paths"])
    with urllib.request.urlopen(f"{svc.url}/docs", timeout=5) as response:
        assert response.status == 200


def test_silence_repeats_the_question_then_gives_up(
    service: ServiceFactory, kamailio: Kamailio, sipp: SippFactory, crm: CrmReceiver,
    capture: CaptureFactory,
) -> None:
    svc = service()
    phone = client_phone(sipp, kamailio, "uas_echo", calls=1)
    cap = capture(svc.rtp_range)
    assert svc.post_event(call_completed())[0] == 202
    unanswered = crm.wait_for("survey.unanswered", timeout=120)
    assert "no_input" in unanswered.payload["data"]["reason"]
    assert phone.wait(20) == 0, phone.describe()
    cap.stop()
    audio = sent_audio(svc, cap)
    assert audio.count(rendered(svc, "survey.question")[:4000]) == 3  # asked three times
    assert rendered(svc, "survey.goodbye")[:2000] in audio
    assert rows(svc, "select status, attempts from jobs") == [("unanswered", 1)]


def test_a_key_pressed_during_the_greeting_is_ignored_and_pressing_again_counts(
    service: ServiceFactory, kamailio: Kamailio, sipp: SippFactory, crm: CrmReceiver,
    capture: CaptureFactory,
) -> None:
    svc = service()
    # Too early: 3 s before the greeting ends. No BYE follows, so 6 s later (3 s into the
    # question) the phone presses "2" once more.
    pause_ms = int((greeting_seconds(svc) - 3.0) * 1000)
    assert pause_ms > 0
    phone = client_phone(sipp, kamailio, "uas_survey_answer", dtmf_digit="2", calls=1,
                         template={"PAUSE_MS": str(pause_ms)})
    cap = capture(svc.rtp_range)
    assert svc.post_event(call_completed())[0] == 202
    completed = crm.wait_for("survey.completed", timeout=60)
    assert completed.payload["data"]["score"] == 2
    assert phone.wait(20) == 0, phone.describe()
    cap.stop()
    # Two key presses reached the robot: two RFC 4733 events, told apart by their timestamps.
    events = {p.timestamp for p in cap.rtp_packets()
              if p.payload_type == 101 and not svc.rtp_range[0] <= p.src_port <= svc.rtp_range[1]}
    assert len(events) == 2
    assert rendered(svc, "survey.question")[:4000] in sent_audio(svc, cap)  # asked, then answered
    assert rows(svc, "select number, outcome from call_attempts") == [(1, "answered")]


def test_busy_is_retried_then_reported_unanswered(
    service: ServiceFactory, kamailio: Kamailio, sipp: SippFactory, crm: CrmReceiver
) -> None:
    svc = service(survey_max_attempts="2")
    phone = client_phone(sipp, kamailio, "uas_status", status=486, calls=2)
    assert svc.post_event(call_completed())[0] == 202
    unanswered = crm.wait_for("survey.unanswered", timeout=60)
    assert "busy after 2 attempt(s)" in unanswered.payload["data"]["reason"]
    assert len(phone.received("INVITE")) == 2
    assert rows(svc, "select outcome from call_attempts order by number") == [("busy",),
                                                                            ("busy",)]


def test_duplicates_bad_signatures_and_opt_outs(
    service: ServiceFactory, kamailio: Kamailio, sipp: SippFactory, crm: CrmReceiver
) -> None:
    svc = service()
    phone = scoring_phone(svc, sipp, kamailio, "4")
    event = call_completed()
    assert svc.post_event(event)[0] == 202
    status, body = svc.post_event(event)
    assert status == 200 and body["status"] == "duplicate"
    crm.wait_for("survey.completed", timeout=60)
    assert len(phone.received("INVITE")) == 1  # the same event twice: one call

    stored = rows(svc, "select count(*) from webhook_events")
    other = call_completed(client="c-2", phone="+79990000002")
    assert svc.post_event(other, headers={})[0] == 401  # unsigned
    assert svc.post_event(other, secret="whsec_" + "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==")[0] \
        == 401  # fmt: skip
    assert svc.post_event(other, headers={"webhook-id": "x", "webhook-timestamp": "1",
                                          "webhook-signature": "v1,!!!"})[0] == 401
    tampered = {**other, "data": {**other["data"], "duration_s": 999}}
    headers = sign(json.dumps(other).encode(), other["id"], DEV_WEBHOOK_SECRET)
    assert svc.post_event(tampered, headers=headers)[0] == 401
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    expired = sign(json.dumps(other).encode(), other["id"], DEV_WEBHOOK_SECRET, at=an_hour_ago)
    assert svc.post_event(other, headers=expired)[0] == 401
    malformed = {**other, "data": {**other["data"], "phone": "not a phone"}}
    status, body = svc.post_event(malformed)
    assert status == 422 and body["error"]["code"] == "invalid-phone"
    assert rows(svc, "select count(*) from webhook_events") == stored  # nothing stored

    opted = {"id": f"evt-{uuid.uuid4()}", "type": "client.opted_out",
             "occurred_at": datetime.now(UTC).isoformat(), "data": {"phone": "+79990000003"}}
    assert svc.post_event(opted)[0] == 202
    crm.wait_for("client.opted_out", timeout=20)
    assert svc.post_event(call_completed(client="c-3", phone="+79990000003"))[0] == 202
    wait_until(lambda: rows(svc, "select status from jobs where phone='+79990000003'")
               == [("skipped",)], 10.0)


def test_kill_while_calls_are_up_loses_no_job_and_dials_none_twice(
    service: ServiceFactory, kamailio: Kamailio, sipp: SippFactory, crm: CrmReceiver
) -> None:
    svc = service(survey_max_attempts="2", lease_s="10")
    phone = scoring_phone(svc, sipp, kamailio, "2", calls=2)
    event = call_completed()
    assert svc.post_event(event)[0] == 202
    wait_until(lambda: len(phone.received("ACK")) >= 1, 30.0)  # the call is up
    svc.kill()
    assert rows(svc, "select status, attempts from jobs") == [("dialing", 1)]
    svc.start()
    completed = crm.wait_for("survey.completed", timeout=90)
    assert completed.payload["data"]["score"] == 2
    attempts = rows(svc, "select number, outcome from call_attempts order by number")
    assert attempts == [(1, "crashed"), (2, "answered")]
    assert rows(svc, "select status from jobs") == [("completed",)]
    assert len(phone.received("INVITE")) == 2  # the retry policy's one redial, no more
    assert [e.type for e in crm.events].count("survey.completed") == 1


def test_crm_down_then_back_gets_every_event_in_order(
    service: ServiceFactory, kamailio: Kamailio, sipp: SippFactory, crm: CrmReceiver
) -> None:
    crm.fail()
    svc = service(survey_min_call_s="100")  # short calls: skipped, no dialing needed
    opt_outs = [
        {"id": f"evt-{uuid.uuid4()}", "type": "client.opted_out",
         "occurred_at": datetime.now(UTC).isoformat(),
         "data": {"phone": f"+7999000001{n}", "client_id": "c-9"}}
        for n in range(3)
    ]
    for event in opt_outs:
        assert svc.post_event(event)[0] == 202
    wait_until(lambda: len(crm.requests) >= 2, 20.0)  # it tried, and failed
    assert crm.events == []
    crm.fail(None)
    wait_until(lambda: len(crm.events) == 3, 60.0)
    assert [e.payload["data"]["phones"] for e in crm.events] == [
        [e["data"]["phone"]] for e in opt_outs
    ]
