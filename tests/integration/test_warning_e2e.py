"""Warning calls end to end: `ringback serve` registered at Kamailio, the client's phone a sipp
UAS, the CRM a real HTTP receiver checking signatures, the audio captured with dumpcap."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from lab.capture import Capture
from lab.crm_events import balance_low, call_completed, topped_up
from lab.crm_receiver import CrmReceiver
from lab.kamailio import Kamailio
from lab.process import wait_until
from lab.ringback import RingbackService
from lab.sipp import Sipp
from tests.conftest import COMPANY, CaptureFactory, ServiceFactory, SippFactory
from tests.integration.test_csat_e2e import (
    PHONE,
    client_phone,
    rows,
    sent_audio,
    token,
)

pytestmark = pytest.mark.peers

BALANCE = {"balance": "350.50", "currency": "USD", "days_left": 3}
WARNING = "balance_warning"
MANAGER = "79990000077"  # the account manager's line, registered at Kamailio


def values(event: dict[str, Any]) -> dict[str, str]:
    """The warning call's values, as the job hands them to the flow."""
    data = event["data"]
    return {name: str(data[name]) for name in ("balance", "currency", "days_left", "name")
            if name in data}


def menu_reached_after_s(svc: RingbackService, event: dict[str, Any]) -> float:
    """How long the robot speaks before its menu starts (greeting, balance, days left)."""
    spoken = values(event)
    hello = "warning.hello_named" if "name" in spoken else "warning.hello"
    prompts = [hello, "warning.balance"] + (["warning.days_left"] if "days_left" in spoken
                                            else [])
    locale = event["data"]["locale"]
    return sum(svc.prompt(WARNING, prompt, COMPANY, locale, spoken).duration_s
               for prompt in prompts)


def zone_at_midday() -> str:
    """A client zone whose local time is well inside a day."""
    for zone in ("UTC", "Asia/Tokyo", "America/New_York", "Asia/Kolkata"):
        local = datetime.now(ZoneInfo(zone))
        if 1 <= local.hour <= 22:
            return zone
    raise AssertionError("some zone is always inside its day")


def pressing_phone(svc: RingbackService, sipp: SippFactory, kamailio: Kamailio,
                   event: dict[str, Any], key: str, scenario: str = "uas_survey_answer",
                   **kwargs: Any) -> Sipp:
    """The client's phone: answers and presses `key` once the menu plays."""
    pause_ms = int((menu_reached_after_s(svc, event) + 2.0) * 1000)
    return client_phone(sipp, kamailio, scenario, dtmf_digit=key, calls=1,
                        template={"PAUSE_MS": str(pause_ms)}, **kwargs)


def job_rows(svc: RingbackService) -> list[tuple[Any, ...]]:
    return rows(svc, "select kind, status, final_reason from jobs order by created_at")


def test_balance_low_speaks_the_amount_and_key_1_asks_for_the_invoice(
    service: ServiceFactory, kamailio: Kamailio, sipp: SippFactory, crm: CrmReceiver,
    capture: CaptureFactory,
) -> None:
    svc = service()
    event = balance_low(name="Alice", **BALANCE)
    phone = pressing_phone(svc, sipp, kamailio, event, "1")
    cap: Capture = capture(svc.rtp_range)
    status, body = svc.post_event(event)
    assert status == 202, body

    invoice = crm.wait_for("invoice.requested", timeout=60)
    delivered = crm.wait_for("warning.delivered", timeout=20)
    assert invoice.verified and delivered.verified
    assert delivered.payload["data"]["key"] == "1"
    assert delivered.payload["data"]["balance"] == "350.50"
    assert invoice.payload["data"]["client_id"] == "c-1"
    assert phone.wait(20) == 0, phone.describe()  # the robot said goodbye and hung up
    cap.stop()

    # The client heard its own amount: the rendered personalised prompt is in the RTP.
    balance = svc.prompt(WARNING, "warning.balance", COMPANY, "en", values(event))
    assert balance.ulaw[:8000] in sent_audio(svc, cap)
    assert job_rows(svc) == [("balance_warning", "completed", "delivered, key 1")]


def test_key_2_with_a_manager_line_transfers_by_refer(
    service: ServiceFactory, kamailio: Kamailio, sipp: SippFactory, crm: CrmReceiver,
) -> None:
    svc = service(manager_phone=f"+{MANAGER}")
    event = balance_low(**BALANCE)
    phone = pressing_phone(svc, sipp, kamailio, event, "2", scenario="uas_key_then_refer",
                           status=200, reason="OK")
    assert svc.post_event(event)[0] == 202

    delivered = crm.wait_for("warning.delivered", timeout=60)
    assert delivered.payload["data"]["key"] == "2"
    assert delivered.payload["data"]["transferred"] is True
    assert phone.wait(20) == 0, phone.describe()  # REFER accepted, NOTIFYs answered, our BYE
    [refer] = phone.received("REFER")
    assert MANAGER in (refer.header("Refer-To") or "")
    assert [e.type for e in crm.events] == ["warning.delivered"]  # no task: put through
    assert rows(svc, "select count(*) from callback_tasks") == [(0,)]


def test_key_2_without_a_manager_line_makes_a_callback_task(
    service: ServiceFactory, kamailio: Kamailio, sipp: SippFactory, crm: CrmReceiver,
) -> None:
    svc = service()
    event = balance_low(**BALANCE, manager_id="manager-5")
    phone = pressing_phone(svc, sipp, kamailio, event, "2")
    assert svc.post_event(event)[0] == 202

    requested = crm.wait_for("manager.requested", timeout=60)
    created = crm.wait_for("callback_task.created", timeout=20)
    crm.wait_for("warning.delivered", timeout=20)
    assert phone.wait(20) == 0, phone.describe()
    assert requested.payload["data"]["task_id"] == created.payload["data"]["task_id"]
    status, listing = svc.get("/api/v1/callback-tasks", token(svc, "support"))
    assert status == 200
    [task] = listing["items"]
    assert task["reason"] == "manager_requested" and task["agent_id"] == "manager-5"
    assert not phone.received("REFER")


def test_key_9_opts_out_of_every_kind_of_call(
    service: ServiceFactory, kamailio: Kamailio, sipp: SippFactory, crm: CrmReceiver,
) -> None:
    svc = service()
    event = balance_low(**BALANCE)
    phone = pressing_phone(svc, sipp, kamailio, event, "9")
    assert svc.post_event(event)[0] == 202
    opted = crm.wait_for("client.opted_out", timeout=60)
    crm.wait_for("warning.delivered", timeout=20)
    assert phone.wait(20) == 0, phone.describe()
    assert opted.payload["data"]["phones"] == [PHONE]

    # Later events for the client: a survey and another warning are never dialed.
    assert svc.post_event(call_completed())[0] == 202
    assert svc.post_event(balance_low(balance="10", currency="USD"))[0] == 202
    time.sleep(4)  # several dispatch ticks and the survey's delay
    assert len(phone.received("INVITE")) == 1
    assert job_rows(svc)[1:] == [("survey", "skipped", "client opted out"),
                                 ("balance_warning", "skipped", "client opted out")]


def test_a_top_up_while_the_phone_rings_cancels_the_call(
    service: ServiceFactory, kamailio: Kamailio, sipp: SippFactory, crm: CrmReceiver,
) -> None:
    svc = service(ring_timeout_s="60")
    phone = client_phone(sipp, kamailio, "uas_ring_forever")
    assert svc.post_event(balance_low(**BALANCE))[0] == 202
    wait_until(lambda: bool(phone.received("INVITE")), timeout=30, what="the INVITE")
    assert svc.post_event(topped_up())[0] == 202

    wait_until(lambda: bool(phone.received("CANCEL")), timeout=20, what="the CANCEL")
    wait_until(lambda: job_rows(svc)[0][1] == "cancelled", timeout=20, what="the job cancelled")
    assert job_rows(svc) == [("balance_warning", "cancelled", "balance topped up")]
    assert rows(svc, "select outcome from call_attempts") == [("cancelled",)]
    time.sleep(2)
    assert len({m.header("Call-ID") for m in phone.received("INVITE")}) == 1  # no retry
    assert not [e for e in crm.events if e.type.startswith("warning.")]


def test_a_top_up_before_the_call_means_no_call(
    service: ServiceFactory, kamailio: Kamailio, sipp: SippFactory, crm: CrmReceiver,
) -> None:
    # The client's calling window opens at a whole minute 15-75 s from now: the warning waits.
    zone = zone_at_midday()
    opens = datetime.now(ZoneInfo(zone)).replace(second=0, microsecond=0) \
        + timedelta(seconds=75)
    opens = opens.replace(second=0)
    svc = service(warning_calling_hours=f"mon-sun {opens:%H:%M}-23:59")
    phone = client_phone(sipp, kamailio, "uas_survey_answer", template={"PAUSE_MS": "100"})
    event = balance_low(**BALANCE)
    event["data"]["timezone"] = zone
    assert svc.post_event(event)[0] == 202
    assert job_rows(svc) == [("balance_warning", "pending", None)]
    assert svc.post_event(topped_up())[0] == 202
    assert job_rows(svc) == [("balance_warning", "cancelled", "balance topped up")]
    wait_until(lambda: datetime.now(ZoneInfo(zone)) > opens + timedelta(seconds=3),
               timeout=120, what="the window to open")
    assert not phone.received("INVITE")
    assert not crm.events


@pytest.mark.parametrize("locale", ["ru"])
def test_the_russian_warning_speaks_roubles_in_words(
    service: ServiceFactory, kamailio: Kamailio, sipp: SippFactory, crm: CrmReceiver,
    capture: CaptureFactory, locale: str,
) -> None:
    svc = service()
    event = balance_low(balance="1000", currency="RUB", locale=locale)
    phone = pressing_phone(svc, sipp, kamailio, event, "1")
    cap = capture(svc.rtp_range)
    assert svc.post_event(event)[0] == 202
    crm.wait_for("warning.delivered", timeout=60)
    assert phone.wait(20) == 0, phone.describe()
    cap.stop()
    spoken = svc.prompt(WARNING, "warning.balance", COMPANY, locale, values(event))
    assert spoken.ulaw[:8000] in sent_audio(svc, cap)
