"""Acceptance 9: inbound calls against real peers on loopback.

ringback's user agent registers at Kamailio as ``ringback``; a sipp caller and a baresip caller
reach it through the proxy, are answered, hear a prompt, cut it short with a digit (barge-in),
and the call ends by a BYE from either side. OPTIONS straight to our port gets 200.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest

from audio.g711 import Law, encode
from audio.prompts import EncodedPrompt
from lab.baresip import Baresip
from lab.capture import Capture
from lab.kamailio import Kamailio
from lab.ports import PortBlock
from lab.process import wait_true
from lab.sipp import EXIT_ALL_OK, Sipp
from telephony.sip.call import Call, EndReason
from telephony.sip.config import EngineConfig, SipAccount
from telephony.sip.ua import SipUserAgent
from tests.conftest import BaresipFactory, CaptureFactory, SippFactory

pytestmark = pytest.mark.peers

PROMPT_S = 10.0
ULAW_SILENCE = 0xFF


def tone_prompt(seconds: float = PROMPT_S) -> EncodedPrompt:
    t = np.arange(int(8000 * seconds)) / 8000
    pcm = np.round(8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    return EncodedPrompt(
        key="tone", ulaw=encode(pcm, Law.ULAW), alaw=encode(pcm, Law.ALAW), duration_s=seconds
    )



@asynccontextmanager
async def registered_ua(kamailio: Kamailio, ports: PortBlock) -> AsyncIterator[SipUserAgent]:
    """Our UA, registered at `kamailio` as ringback/secret (default timers: a real setup)."""
    config = EngineConfig(sip_port=0, rtp_ports=(ports[0], ports.last))
    account = SipAccount(user="ringback", password="secret", registrar=kamailio.domain)
    ua = SipUserAgent(account, config)
    await ua.start()
    try:
        registrations = await asyncio.to_thread(kamailio.registrations)
        assert any(
            r["user"] == "ringback" and f":{ua.endpoint.port}" in r["contact"]
            for r in registrations
        ), registrations
        yield ua
    finally:
        await ua.stop()


async def answer_next(ua: SipUserAgent, caller_user: str) -> Call:
    incoming = await ua.next_incoming(20)
    assert incoming is not None, "no call rang"
    assert incoming.caller.uri.user == caller_user
    assert incoming.callee.uri.user == "ringback"
    call = await ua.answer(incoming)
    assert call.media is not None
    return call


async def play_until_digit(call: Call, send_digit: Callable[[], object] | None = None) -> str:
    """Play a long prompt; the caller's digit must cut it short. Returns the digit."""
    playing = asyncio.create_task(call.play(tone_prompt(), barge_in=True))
    # The caller hears the prompt: a second of it goes out before the digit is asked for.
    await wait_true(lambda: call.stream.packets_sent >= 50, 10, "prompt packets")
    if send_digit is not None:
        await asyncio.to_thread(send_digit)
    completed = await asyncio.wait_for(playing, PROMPT_S + 5)
    assert completed is False, "the prompt played to the end: no barge-in"
    assert not call.ended.is_set(), "the prompt stopped because the call ended, not the digit"
    digit = await call.receive_digit(5)
    assert digit is not None
    assert await call.receive_digit(1.0) is None  # one key press, one digit
    return digit


def our_prompt_packets(cap: Capture, call: Call) -> int:
    """Packets from our RTP port carrying tone audio (not silence) in the capture."""
    packets = cap.rtp_packets()
    return sum(
        1
        for p in packets
        if p.src_port == call.stream.local_port
        and p.payload_type == 0
        and any(byte != ULAW_SILENCE for byte in p.payload)
    )


def peak_of_recording(phone: Baresip, suffix: str) -> int:
    files: list[Path] = [p for p in phone.recordings() if p.name.endswith(suffix)]
    assert files, phone.recordings()
    peak = 0
    for path in files:
        with wave.open(str(path)) as wav:
            samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        if samples.size:
            peak = max(peak, int(np.abs(samples.astype(np.int32)).max()))
    return peak


# --- sipp calls in ---------------------------------------------------------------------------


async def test_sipp_caller_barges_in_then_hangs_up(
    kamailio: Kamailio, sipp: SippFactory, capture: CaptureFactory, rtp_ports: PortBlock
) -> None:
    cap = capture((rtp_ports[0], rtp_ports.last))
    async with registered_ua(kamailio, rtp_ports) as ua:
        caller = sipp("uac_call_bye", remote=kamailio.domain, service="ringback", calls=1,
                      duration_ms=3000, dtmf_digit="1")  # fmt: skip
        await asyncio.to_thread(caller.start, 10.0, True)
        call = await answer_next(ua, "sipp")
        assert await play_until_digit(call) == "1"
        assert await call.wait_ended(20), "the caller's BYE never ended the call"
        assert call.end_reason is EndReason.REMOTE_HANGUP
        code = await asyncio.to_thread(caller.wait, 30.0)
    assert code == EXIT_ALL_OK, caller.describe()
    assert caller.received(status=200, method="BYE"), caller.describe()
    await asyncio.to_thread(cap.stop)
    assert await asyncio.to_thread(our_prompt_packets, cap, call) >= 50


async def test_sipp_caller_barges_in_and_we_hang_up(
    kamailio: Kamailio, sipp: SippFactory, rtp_ports: PortBlock
) -> None:
    async with registered_ua(kamailio, rtp_ports) as ua:
        caller = sipp("uac_call_wait_bye", remote=kamailio.domain, service="ringback",
                      calls=1, dtmf_digit="9")  # fmt: skip
        await asyncio.to_thread(caller.start, 10.0, True)
        call = await answer_next(ua, "sipp")
        assert await play_until_digit(call) == "9"
        await call.hangup()
        assert call.end_reason is EndReason.LOCAL_HANGUP
        code = await asyncio.to_thread(caller.wait, 30.0)
    assert code == EXIT_ALL_OK, caller.describe()
    bye = caller.received("BYE")
    assert bye, caller.describe()
    # It followed the route set: Kamailio relayed it (its Via on top of ours).
    assert bye[0].text.count("\nVia:") == 2, bye[0].text
    assert caller.sent(status=200, method="BYE"), caller.describe()


# --- baresip calls in ------------------------------------------------------------------------


async def start_phone(baresip: BaresipFactory, kamailio: Kamailio) -> Baresip:
    return await asyncio.to_thread(baresip, kamailio)


async def baresip_call_in(phone: Baresip, ua: SipUserAgent, kamailio: Kamailio) -> Call:
    await asyncio.to_thread(phone.dial, f"sip:ringback@{kamailio.domain}")
    call = await answer_next(ua, "client")
    await asyncio.to_thread(phone.wait_event, "CALL_ESTABLISHED", 15.0)
    return call


async def test_baresip_caller_barges_in_then_hangs_up(
    kamailio: Kamailio, baresip: BaresipFactory, rtp_ports: PortBlock
) -> None:
    phone = await start_phone(baresip, kamailio)
    async with registered_ua(kamailio, rtp_ports) as ua:
        call = await baresip_call_in(phone, ua, kamailio)
        assert await play_until_digit(call, lambda: phone.send_digit("5")) == "5"
        await asyncio.to_thread(phone.hangup)
        assert await call.wait_ended(20), "baresip's BYE never ended the call"
        assert call.end_reason is EndReason.REMOTE_HANGUP
        await asyncio.to_thread(phone.wait_event, "CALL_CLOSED", 15.0)
    # What baresip decoded from us is the tone, not silence.
    assert await asyncio.to_thread(peak_of_recording, phone, "-dec.wav") > 2000


async def test_baresip_caller_barges_in_and_we_hang_up(
    kamailio: Kamailio, baresip: BaresipFactory, rtp_ports: PortBlock
) -> None:
    phone = await start_phone(baresip, kamailio)
    async with registered_ua(kamailio, rtp_ports) as ua:
        call = await baresip_call_in(phone, ua, kamailio)
        assert await play_until_digit(call, lambda: phone.send_digit("#")) == "#"
        await call.hangup()
        assert call.end_reason is EndReason.LOCAL_HANGUP
        closed = await asyncio.to_thread(phone.wait_event, "CALL_CLOSED", 15.0)
    assert closed.get("type") == "CALL_CLOSED"
    assert await asyncio.to_thread(peak_of_recording, phone, "-dec.wav") > 2000


# --- OPTIONS ---------------------------------------------------------------------------------


async def test_options_straight_to_our_port_gets_200(
    kamailio: Kamailio, sipp: SippFactory, rtp_ports: PortBlock
) -> None:
    async with registered_ua(kamailio, rtp_ports) as ua:
        prober: Sipp = sipp("uac_options", remote=f"127.0.0.1:{ua.endpoint.port}",
                            service="ringback", calls=1)  # fmt: skip
        code = await asyncio.to_thread(prober.run, 30.0)
    assert code == EXIT_ALL_OK, prober.describe()
    ok = prober.received(status=200, method="OPTIONS")
    assert ok, prober.describe()
    assert "INVITE" in (ok[0].header("Allow") or ""), ok[0].text
