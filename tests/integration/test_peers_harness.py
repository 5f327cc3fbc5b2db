"""The test harness against real peers only (no ringback engine): Kamailio, sipp, baresip,
dumpcap/tshark. If these fail, every peer test built on them is suspect."""

from __future__ import annotations

import wave

import pytest

from lab.kamailio import Kamailio
from lab.process import wait_until
from lab.sipp import EXIT_ALL_OK
from tests.conftest import BaresipFactory, CaptureFactory, SippFactory

pytestmark = pytest.mark.peers


def test_baresip_registers_with_digest_auth(kamailio: Kamailio, baresip: BaresipFactory) -> None:
    phone = baresip(kamailio)
    regs = kamailio.registrations()
    mine = [r for r in regs if r["user"] == "client"]
    assert mine, regs
    assert f"127.0.0.1:{phone.sip_port}" in mine[0]["contact"]
    assert "baresip" in mine[0].get("user_agent", "")
    assert phone.registration_state() == "OK"


def test_register_with_wrong_password_is_refused(
    kamailio: Kamailio, baresip: BaresipFactory
) -> None:
    phone = baresip(kamailio, password="wrong", wait_registered=False)
    phone.wait_registration_state("ERR", timeout=15)
    assert "401 Unauthorized" in phone.log_text()
    assert not [r for r in kamailio.registrations() if r["user"] == "client"]


def test_sipp_calls_baresip_through_kamailio(
    kamailio: Kamailio, baresip: BaresipFactory, sipp: SippFactory
) -> None:
    phone = baresip(kamailio)
    caller = sipp("uac_call_bye", remote=kamailio.domain, service="client", calls=1,
                  duration_ms=2000)  # fmt: skip
    code = caller.run(timeout=30)
    assert code == EXIT_ALL_OK, caller.describe()
    assert 200 in caller.received_statuses()
    # The 200 came through the proxy with a route set, and the BYE followed it.
    ok = caller.received(status=200, method="INVITE")[0]
    assert ok.header("Record-Route"), ok.text
    assert caller.sent("BYE")[0].header("Route"), caller.sent("BYE")[0].text
    phone.wait_event("CALL_ESTABLISHED")
    dtmf = phone.wait_event("CALL_DTMF_START")
    assert dtmf["param"] == "1"
    phone.wait_event("CALL_CLOSED")
    recordings = phone.recordings()
    assert len(recordings) == 2, recordings
    # "-enc" is what baresip sent (the tone WAV), "-dec" what it received: sipp sends only
    # RFC 4733 events here, which are not audio, so the -dec file has no samples.
    sent = [p for p in recordings if p.name.endswith("-enc.wav")]
    assert sent, recordings
    with wave.open(str(sent[0])) as wav:
        assert wav.getframerate() == 8000
        assert wav.getnframes() > 0, sent[0]


def test_busy_callee_gives_486_to_the_caller(kamailio: Kamailio, sipp: SippFactory) -> None:
    callee = sipp("uas_status", service="busy", status=486, start=True)
    kamailio.add_contact("busy", callee.contact)
    caller = sipp("uac_call_rejected", remote=kamailio.domain, service="busy", calls=1)
    code = caller.run(timeout=30)
    assert code == EXIT_ALL_OK, caller.describe()
    assert caller.received_statuses()[-1] == 486
    # The callee's 486 was ACKed (by the stateful proxy, hop by hop).
    assert callee.received("ACK"), callee.describe()


def test_unregistered_user_gives_404(kamailio: Kamailio, sipp: SippFactory) -> None:
    caller = sipp("uac_call_rejected", remote=kamailio.domain, service="nobody", calls=1)
    assert caller.run(timeout=30) == EXIT_ALL_OK, caller.describe()
    assert caller.received_statuses()[-1] == 404


def test_invite_auth_challenges_known_users(
    kamailio_invite_auth: Kamailio, sipp: SippFactory
) -> None:
    kam = kamailio_invite_auth
    callee = sipp("uas_echo", service="echo", start=True)
    kam.add_contact("echo", callee.contact)
    # From user "sipp" is unknown: relayed without a challenge.
    caller = sipp("uac_call_bye", remote=kam.domain, service="echo", calls=1, duration_ms=500)
    assert caller.run(timeout=30) == EXIT_ALL_OK, caller.describe()
    # From a known user ("ringback") without credentials: 407.
    known = sipp("uac_call_rejected", remote=kam.domain, service="echo", calls=1,
                 from_user="ringback")  # fmt: skip
    known.run(timeout=30)
    assert 407 in known.received_statuses(), known.describe()


def test_kamailio_restart_loses_and_regains_registrations(
    kamailio: Kamailio, baresip: BaresipFactory
) -> None:
    kamailio.add_contact("ringback", "sip:ringback@127.0.0.1:5999")
    assert kamailio.contacts_of("ringback") == ["sip:ringback@127.0.0.1:5999"]
    kamailio.restart()
    assert kamailio.running()
    assert kamailio.registrations() == []  # usrloc lives in memory
    phone = baresip(kamailio)  # registers against the restarted proxy
    assert kamailio.contacts_of("client"), phone.log_text()


def test_capture_sees_rtp_of_a_sipp_call(
    kamailio: Kamailio, sipp: SippFactory, capture: CaptureFactory
) -> None:
    callee = sipp("uas_echo", service="echo", rtp_echo=True, start=True)
    kamailio.add_contact("echo", callee.contact)
    caller = sipp("uac_call_bye", remote=kamailio.domain, service="echo", calls=1,
                  duration_ms=1000)  # fmt: skip
    low = min(callee.ports.base, caller.ports.base)
    high = max(callee.ports.last, caller.ports.last)
    cap = capture((low, high))
    assert caller.run(timeout=30) == EXIT_ALL_OK, caller.describe()
    cap.stop()
    packets = cap.rtp_packets()
    events = [p for p in packets if p.payload_type == 101]
    assert events, f"no RTP event packets in {cap.path}"
    streams = cap.streams(events)
    # The caller's digit, and the same packets echoed back by the callee.
    assert any(key[1] == caller.rtp_port for key in streams), streams.keys()
    assert any(key[1] == callee.rtp_port for key in streams), streams.keys()
    assert any(p.marker for p in events) or events[0].payload[0] == 1
    stats = cap.pacing(next(iter(streams.values())))
    assert stats.packets >= 2


def test_baresip_cancels_a_ringing_sipp(
    kamailio: Kamailio, baresip: BaresipFactory, sipp: SippFactory
) -> None:
    callee = sipp("uas_ring_forever", service="ring", start=True, calls=1)
    kamailio.add_contact("ring", callee.contact)
    phone = baresip(kamailio)
    phone.dial(kamailio.aor("ring"))
    phone.wait_event("CALL_RINGING")
    phone.hangup()
    assert callee.wait(timeout=15) == EXIT_ALL_OK, callee.describe()
    assert callee.received("CANCEL") and callee.received("ACK"), callee.describe()
    assert callee.sent(status=487), callee.describe()


@pytest.mark.parametrize("scenario", ["uas_answer_then_bye", "uas_reinvite", "uas_answer_dtmf"])
def test_baresip_calls_sipp_scenarios(
    kamailio: Kamailio, baresip: BaresipFactory, sipp: SippFactory, scenario: str
) -> None:
    callee = sipp(scenario, service="far", start=True, calls=1)
    kamailio.add_contact("far", callee.contact)
    phone = baresip(kamailio)
    phone.dial(kamailio.aor("far"))
    phone.wait_event("CALL_ESTABLISHED")
    if scenario == "uas_answer_then_bye":
        phone.wait_event("CALL_CLOSED")
    elif scenario == "uas_reinvite":
        wait_until(
            lambda: bool(callee.received(status=200, method="INVITE")),
            timeout=15,
            what="200 to the re-INVITE",
        )
        phone.hangup()
    else:
        assert phone.wait_event("CALL_DTMF_START")["param"] == "1"
        phone.hangup()
    assert callee.wait(timeout=15) == EXIT_ALL_OK, callee.describe()
