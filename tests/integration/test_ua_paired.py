"""Two ringback user agents on loopback, calling each other directly (no registrar).

The paired-peer test in the h11 style: both ends are ours, so every step can be checked from
both sides. The tests against Kamailio, sipp and baresip prove the same against real peers.
"""

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from audio.g711 import Law, encode
from audio.prompts import EncodedPrompt
from telephony.outcomes import Outcome
from telephony.sip.call import EndReason
from telephony.sip.config import EngineConfig, SipAccount
from telephony.sip.transaction import TimerConfig
from telephony.sip.ua import SipUserAgent

FAST_TIMERS = TimerConfig(t1=0.1, t2=0.4, t4=0.5)


def tone_prompt(seconds: float = 1.0) -> EncodedPrompt:
    t = np.arange(int(8000 * seconds)) / 8000
    pcm = np.round(8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    return EncodedPrompt(
        key="tone", ulaw=encode(pcm, Law.ULAW), alaw=encode(pcm, Law.ALAW), duration_s=seconds
    )


def config(rtp_base: int) -> EngineConfig:
    return EngineConfig(sip_port=0, rtp_ports=(rtp_base, rtp_base + 99), timers=FAST_TIMERS)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[SipUserAgent, SipUserAgent]]:
    caller = SipUserAgent(SipAccount(user="robot"), config(41000))
    callee = SipUserAgent(SipAccount(user="client"), config(41200))
    await caller.start()
    await callee.start()
    yield caller, callee
    await caller.stop()
    await callee.stop()


def target_of(ua: SipUserAgent) -> str:
    return f"sip:client@127.0.0.1:{ua.endpoint.port}"


async def test_call_answer_prompt_digit_and_bye(
    pair: tuple[SipUserAgent, SipUserAgent],
) -> None:
    caller, callee = pair

    async def answer() -> str | None:
        incoming = await callee.next_incoming(5)
        assert incoming is not None
        assert incoming.caller.uri.user == "robot"
        call = await callee.answer(incoming)
        await call.send_digit("7")
        ended = await call.wait_ended(10)
        assert ended and call.end_reason is EndReason.REMOTE_HANGUP
        return "ok"

    answering = asyncio.create_task(answer())
    result = await caller.call(target_of(callee), ring_timeout=5)
    assert result.outcome is Outcome.ANSWERED and result.sip_status == 200
    call = result.call
    assert call is not None
    digit = await call.receive_digit(5)
    assert digit == "7"
    assert await call.play(tone_prompt(0.3), barge_in=False)
    await call.hangup()
    assert call.end_reason is EndReason.LOCAL_HANGUP
    assert await answering == "ok"


async def test_reject_busy_is_reported(
    pair: tuple[SipUserAgent, SipUserAgent],
) -> None:
    caller, callee = pair

    async def reject() -> None:
        incoming = await callee.next_incoming(5)
        assert incoming is not None
        incoming.reject(486)

    rejecting = asyncio.create_task(reject())
    result = await caller.call(target_of(callee), ring_timeout=5)
    await rejecting
    assert result.outcome is Outcome.BUSY and result.sip_status == 486
    assert result.call is None


async def test_ring_timeout_cancels_and_reports_no_answer(
    pair: tuple[SipUserAgent, SipUserAgent],
) -> None:
    caller, callee = pair
    result = await caller.call(target_of(callee), ring_timeout=0.5)
    assert result.outcome is Outcome.NO_ANSWER and result.sip_status == 487
    incoming = await callee.next_incoming(0.1)
    assert incoming is None  # the cancelled call is no longer offered to the application


async def test_remote_bye_stops_playback_at_once(
    pair: tuple[SipUserAgent, SipUserAgent],
) -> None:
    caller, callee = pair

    async def answer_then_hang_up() -> None:
        incoming = await callee.next_incoming(5)
        assert incoming is not None
        call = await callee.answer(incoming)
        await asyncio.sleep(0.3)
        await call.hangup()

    hanging_up = asyncio.create_task(answer_then_hang_up())
    result = await caller.call(target_of(callee), ring_timeout=5)
    assert result.call is not None
    completed = await result.call.play(tone_prompt(20.0))
    assert completed is False
    assert result.call.end_reason is EndReason.REMOTE_HANGUP
    await hanging_up


async def test_unreachable_target_times_out_per_timer_b() -> None:
    async with SipUserAgent(SipAccount(user="robot"), config(41400)) as caller:
        # Nothing listens on this port: the INVITE is retransmitted, then Timer B fires.
        result = await caller.call("sip:nobody@127.0.0.1:9", ring_timeout=30)
    assert result.outcome is Outcome.UNREACHABLE and result.sip_status == 408
