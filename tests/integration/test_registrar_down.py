"""`ringback serve` with its registrar away: the API and the webhook intake come up at once,
registration retries in the background, calls wait; a wrong password is said once, clearly.

Kamailio is built on its ports but started 45 s after serve (past the 32 s the first REGISTER
used to block start-up before serve gave up); sipp is the client's phone behind it.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lab.kamailio import Kamailio
from lab.process import wait_until
from lab.ringback import RingbackService, survey_settings
from tests.conftest import SippFactory

pytestmark = pytest.mark.peers

CLIENT = "79990000002"  # the client's phone is registered at Kamailio under its digits
REGISTRAR_AWAY_S = 45.0
API_UP_S = 30.0  # start-up (migrations, prompt rendering) without the registrar: bounded
REGISTERED_S = 40.0  # a REGISTER retransmission or the next retry reaches the registrar
SURVEY_DONE_S = 60.0
WRONG_PASSWORD = "not-the-secret-42"


def settings(kamailio: Kamailio, password: str) -> dict[str, str]:
    return {**survey_settings(kamailio, password=password), "RINGBACK_SURVEY_DELAY_S": "1"}


@pytest.fixture
def later_kamailio(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Kamailio]:
    """A Kamailio on its own ports, not started: the test starts it."""
    kamailio = Kamailio(tmp_path / "kamailio")
    try:
        yield kamailio
    finally:
        kamailio.close()
        if getattr(request.node, "rep_call", None) is None or request.node.rep_call.failed:
            print(f"\n===== kamailio log =====\n{kamailio.log_text()[-4000:]}")


@pytest.fixture
def serve(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[list[RingbackService]]:
    """`ringback serve` processes the test starts itself (it cannot wait for a 200)."""
    started: list[RingbackService] = []
    try:
        yield started
    finally:
        for svc in started:
            svc.close()
            if getattr(request.node, "rep_call", None) is None or request.node.rep_call.failed:
                print(f"\n===== ringback log =====\n{svc.log_text()[-8000:]}")


def start_serving(workdir: Path, env: dict[str, str], started: list[RingbackService]
                  ) -> RingbackService:
    svc = RingbackService(workdir, env)
    started.append(svc)
    svc.process.start()
    svc.process.wait_ready(lambda: svc.get("/healthz")[0] in (200, 503), API_UP_S,
                           what="the HTTP API")
    return svc


def assert_sip_failing(svc: RingbackService) -> None:
    status, body = svc.get("/healthz")
    assert (status, body["status"], body["sip"]) == (503, "failing", "failing"), body
    assert body["database"] == "ok" and body["scheduler"] == "ok", body


def call_completed() -> dict[str, Any]:
    ended = datetime.now(UTC) - timedelta(seconds=1)
    return {
        "id": f"evt-{uuid.uuid4()}",
        "type": "call.completed",
        "occurred_at": ended.isoformat(),
        "data": {
            "call_id": f"call-{uuid.uuid4().hex[:8]}", "client_id": "c-down",
            "phone": f"+{CLIENT}", "ended_at": ended.isoformat(), "duration_s": 120,
            "timezone": "Europe/Moscow", "locale": "en",
        },
    }


def rows(svc: RingbackService, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(svc.database) as db:
        return db.execute(query).fetchall()


def registered(kamailio: Kamailio) -> bool:
    return any(r["user"] == "ringback" for r in kamailio.registrations())


def test_serve_waits_for_its_registrar_then_dials(
    tmp_path: Path, later_kamailio: Kamailio, sipp: SippFactory,
    serve: list[RingbackService],
) -> None:
    kamailio = later_kamailio
    began = time.monotonic()
    svc = start_serving(tmp_path / "ringback",
                        settings(kamailio, kamailio.users["ringback"]), serve)

    # Up without its registrar: health names the SIP part, the intake takes events.
    assert_sip_failing(svc)
    status, body = svc.post_event(call_completed())
    assert status == 202, body

    # Past the point where the first REGISTER used to end start-up: still serving, no call.
    while time.monotonic() < began + REGISTRAR_AWAY_S:
        assert svc.process.running(), svc.log_text()[-4000:]
        time.sleep(0.5)
    assert_sip_failing(svc)
    assert rows(svc, "select status, attempts from jobs") == [("pending", 0)]
    assert rows(svc, "select count(*) from call_attempts") == [(0,)]
    assert f"retrying in 1 s: registrar sip:{kamailio.domain} does not answer" in svc.log_text()

    # The client's phone presses 4 while the question plays (after the greeting).
    pause_ms = int((svc.survey_prompt("survey.greeting", "Acme").duration_s + 2.5) * 1000)
    phone = sipp("uas_survey_answer", service=CLIENT, start=True, dtmf_digit="4",
                 template={"PAUSE_MS": str(pause_ms)})
    kamailio.start()
    kamailio_up = datetime.now(UTC)
    kamailio.add_contact(CLIENT, phone.contact)

    wait_until(lambda: registered(kamailio), REGISTERED_S, interval=0.5,
               what="ringback registered at Kamailio")
    wait_until(lambda: svc.get("/healthz")[0] == 200, REGISTERED_S, interval=0.2,
               what="/healthz 200")
    wait_until(lambda: rows(svc, "select status from jobs") == [("completed",)],
               SURVEY_DONE_S, interval=0.5, what="the survey call")
    assert rows(svc, "select score from survey_responses") == [(4,)]
    # No attempt was made while the line was down: every one came after the registrar.
    for (started_at,) in rows(svc, "select started_at from call_attempts"):
        assert datetime.fromisoformat(started_at).replace(tzinfo=UTC) >= kamailio_up - \
            timedelta(seconds=1), started_at


def test_wrong_password_keeps_serving_and_says_so_once(
    tmp_path: Path, kamailio: Kamailio, serve: list[RingbackService],
) -> None:
    svc = start_serving(tmp_path / "ringback", settings(kamailio, WRONG_PASSWORD), serve)
    line = svc.process.wait_log(
        r"ERROR .*SIP registration failed, retrying in (\d+) s: registrar "
        rf"sip:{kamailio.domain} rejected the credentials of user 'ringback' \(401 [^)]*\)",
        timeout=API_UP_S,
    )
    assert int(line.group(1)) >= 60  # slowly: a wrong password is not fixed by retrying
    assert_sip_failing(svc)
    auth_failures = "REGISTER auth failed for ringback"
    time.sleep(3)  # a tight loop would show many failed authentications by now
    assert kamailio.log_text().count(auth_failures) == 1, kamailio.log_text()[-2000:]
    log = svc.log_text()
    assert log.count("rejected the credentials") == 1
    assert WRONG_PASSWORD not in log
    assert svc.process.running()
    assert_sip_failing(svc)
