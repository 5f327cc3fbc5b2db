"""Never twice, never lost (issue 7), end to end: real `ringback serve` processes on SQLite or
PostgreSQL, Kamailio, a sipp callee answering for many clients' numbers, a CRM receiver, and
faults — events racing, the database going away, SIGKILL, two instances sharing limits."""

from __future__ import annotations

import collections
import time
from contextlib import ExitStack
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from lab.crm_events import call_completed, numbers, post_together
from lab.crm_receiver import CrmReceiver
from lab.kamailio import Kamailio
from lab.postgres import PrivatePostgres
from lab.process import wait_until
from lab.ringback import RingbackService
from lab.sipp import Sipp
from tests.conftest import CaptureFactory, ServiceFactory, SippFactory
from tests.conftest_postgres import ImmutableFiles
from tests.integration.test_csat_e2e import (
    greeting_seconds,
)

pytestmark = pytest.mark.peers

CLIENTS = 20


def callee(sipp: SippFactory, kamailio: Kamailio, digits: list[str], scenario: str,
           **kwargs: Any) -> Sipp:
    """One sipp UAS answering for every client's number (each registered at Kamailio)."""
    phone = sipp(scenario, service="callee", start=True, **kwargs)
    for number in digits:
        kamailio.add_contact(number, phone.contact)
    return phone


def invites_per_number(phone: Sipp) -> collections.Counter[str]:
    """INVITEs the callee received (retransmissions aside), by the client number dialed."""
    seen: dict[tuple[str, str], str] = {}
    for message in phone.received("INVITE"):
        to = message.header("To") or ""
        number = to.split("sip:", 1)[1].split("@", 1)[0]
        seen[(message.header("Call-ID") or "", message.header("CSeq") or "")] = number
    return collections.Counter(seen.values())


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql))]
    finally:
        engine.dispose()


def sqlite_url(svc: RingbackService) -> str:
    return f"sqlite:///{svc.database}"


def final_jobs(url: str) -> int:
    return query(url, "select count(*) from jobs where status not in ('pending', 'dialing')")[0][0]


def healthz(svc: RingbackService) -> int:
    try:
        return svc.get("/healthz")[0]
    except OSError:
        return 0


@pytest.mark.parametrize("instances", [1, 2])
def test_events_for_one_client_arriving_together_call_each_client_once(
    postgres_url: str, service: ServiceFactory, kamailio: Kamailio,
    sipp: SippFactory, instances: int,
) -> None:
    settings = {"database_url": postgres_url, "survey_max_attempts": "1",
                "channel_limit": "20", "calls_per_second": "20"}
    services = [service(**settings) for _ in range(instances)]
    digits = numbers(CLIENTS)
    phone = callee(sipp, kamailio, digits, "uas_status", status=486)
    posts = []
    for n, number in enumerate(digits):
        for twin in range(2):
            event = call_completed(phone=f"+{number}", client=f"c-{n}")
            posts.append((services[twin % instances], event))
    assert post_together(posts) == [202] * len(posts)

    wait_until(lambda: final_jobs(postgres_url) == 2 * CLIENTS, 60.0)
    statuses = collections.Counter(
        status for (status,) in query(postgres_url, "select status from jobs"))
    assert statuses == {"unanswered": CLIENTS, "skipped": CLIENTS}
    time.sleep(1)  # a second call would be dialed by now
    assert invites_per_number(phone) == {number: 1 for number in digits}


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_the_database_going_away_mid_call_loses_no_answer_and_redials_nobody(
    service: ServiceFactory, kamailio: Kamailio, sipp: SippFactory,
    crm: CrmReceiver, request: pytest.FixtureRequest, immutable_files: ImmutableFiles,
    database: str,
) -> None:
    server: PrivatePostgres | None = None
    settings = {"channel_limit": "20", "calls_per_second": "10", "survey_max_attempts": "2"}
    if database == "postgresql":
        server = request.getfixturevalue("private_postgres")
        settings["database_url"] = server.url
    svc = service(**settings)
    url = server.url if server is not None else sqlite_url(svc)
    digits = numbers(CLIENTS)
    pause_ms = int((greeting_seconds(svc) + 2.5) * 1000)
    phone = callee(sipp, kamailio, digits, "uas_survey_answer", dtmf_digit="2",
                   template={"PAUSE_MS": str(pause_ms)})
    for n, number in enumerate(digits):
        assert svc.post_event(call_completed(phone=f"+{number}", client=f"c-{n}"))[0] == 202
    wait_until(lambda: len(phone.received("ACK")) >= CLIENTS // 2, 60.0)  # calls are up

    unhealthy_seen = False
    with ExitStack() as outage:
        if server is not None:
            server.stop()
            outage.callback(server.start)
        else:
            # Not the -shm file: SQLite maps it, and writing to an immutable mapping is SIGBUS.
            wal = svc.database.with_name("ringback.db-wal")
            outage.enter_context(immutable_files.held([svc.database, wal]))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # clients press their keys meanwhile
            unhealthy_seen = unhealthy_seen or healthz(svc) == 503
            time.sleep(0.5)
    assert unhealthy_seen
    wait_until(lambda: healthz(svc) == 200, 10.0)  # back within 10 s, no restart

    wait_until(lambda: len(crm.events) >= 2 * CLIENTS, 120.0)  # survey + task per client
    assert query(url, "select count(*), min(score), max(score) from survey_responses") == [
        (CLIENTS, 2, 2)]
    assert query(url, "select count(*) from callback_tasks") == [(CLIENTS,)]
    assert query(url, "select count(*) from call_attempts") == [(CLIENTS,)]  # no redial
    assert invites_per_number(phone) == {number: 1 for number in digits}
    posted = collections.Counter(received.id for received in crm.requests)
    assert max(posted.values()) == 1  # no event POSTed twice
    kinds = collections.Counter(received.type for received in crm.events)
    assert kinds == {"survey.completed": CLIENTS, "callback_task.created": CLIENTS}


def test_a_kill_mid_calls_hangs_up_every_orphan_and_never_reasks_an_answer(
    service: ServiceFactory, kamailio: Kamailio, sipp: SippFactory, crm: CrmReceiver,
) -> None:
    svc = service(channel_limit="20", calls_per_second="2", survey_max_attempts="2",
                  survey_retry_delay_s="1")
    url = sqlite_url(svc)
    digits = numbers(CLIENTS)
    pause_ms = int((greeting_seconds(svc) + 2.5) * 1000)
    phone = callee(sipp, kamailio, digits, "uas_survey_answer", dtmf_digit="4",
                   template={"PAUSE_MS": str(pause_ms)})
    for n, number in enumerate(digits):
        assert svc.post_event(call_completed(phone=f"+{number}", client=f"c-{n}"))[0] == 202

    def answered() -> int:
        return query(url, "select count(*) from call_attempts where result is not null")[0][0]

    wait_until(lambda: answered() >= 3, 90.0)  # some clients have pressed their key
    svc.kill()
    up = query(url, "select json_extract(dialog, '$.call_id') from call_attempts "
                    "where dialog is not null and ended_at is null")
    orphans = {call_id for (call_id,) in up}
    pressed = {phone_ for (phone_,) in query(
        url, "select j.phone from jobs j join call_attempts a on a.job_id = j.id "
             "where a.result is not null")}
    assert orphans and pressed and len(pressed) < CLIENTS

    svc.start()
    wait_until(lambda: orphans <= {m.header("Call-ID") for m in phone.received("BYE")}, 30.0)
    wait_until(lambda: final_jobs(url) == CLIENTS, 180.0)
    invites = invites_per_number(phone)
    for number in pressed:  # answered before the crash: never called again
        assert invites[number.lstrip("+")] == 1
    assert all(count <= 2 for count in invites.values())  # the retry policy's one redial
    wait_until(lambda: len([e for e in crm.events if e.type == "survey.completed"]) == CLIENTS,
               60.0)
    completed = [e.payload["data"]["client_id"] for e in crm.events
                 if e.type == "survey.completed"]
    assert sorted(completed) == sorted(f"c-{n}" for n in range(CLIENTS))  # once each


def test_two_instances_share_the_calls_per_second_budget_and_a_restart_does_not_burst(
    postgres_url: str, service: ServiceFactory, kamailio: Kamailio,
    sipp: SippFactory, capture: CaptureFactory,
) -> None:
    settings = {"database_url": postgres_url, "survey_max_attempts": "1",
                "channel_limit": "50", "calls_per_second": "10"}
    first, second = service(**settings), service(**settings)
    digits = numbers(80)
    phone = callee(sipp, kamailio, digits, "uas_status", status=486)
    cap = capture((phone.port, phone.port))

    def send(batch: list[str], to: list[RingbackService]) -> None:
        events = [(to[n % len(to)], call_completed(phone=f"+{number}", client=f"c-{number}"))
                  for n, number in enumerate(batch)]
        assert post_together(events) == [202] * len(events)

    send(digits[:50], [first, second])
    wait_until(lambda: final_jobs(postgres_url) == 50, 60.0)
    first.kill()
    first.start()  # the restarted instance starts from the shared budget, not a full bucket
    send(digits[50:], [first])
    wait_until(lambda: final_jobs(postgres_url) == 80, 60.0)
    time.sleep(1)  # dumpcap reads the last packets off the ring buffer a little later
    cap.stop()

    sent = cap.sip_request_times("INVITE", [phone.port])
    assert len(sent) == 80
    per_second = collections.Counter(int(at) for at in sent.values())
    assert max(per_second.values()) <= 10, sorted(per_second.items())
