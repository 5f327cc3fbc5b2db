"""Acceptance 11: DTMF reaches ringback by RFC 4733, by SIP INFO and as in-band tones.

Each far end is a real sipp UAS answering a call placed by ringback's user agent (directly, or
through Kamailio); each digit must be received exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from lab.kamailio import Kamailio
from lab.ports import PortBlock
from lab.sipp import EXIT_ALL_OK, Sipp
from telephony.outcomes import Outcome
from telephony.sip.call import Call, EndReason
from telephony.sip.config import EngineConfig, SipAccount
from telephony.sip.transaction import TimerConfig
from telephony.sip.ua import SipUserAgent
from tests.conftest import SippFactory

pytestmark = pytest.mark.peers

FAST_TIMERS = TimerConfig(t1=0.1, t2=0.4, t4=0.5)
DIGIT_WAIT_S = 10.0



@asynccontextmanager
async def user_agent(
    ports: PortBlock, *, registrar: str | None = None, inband_dtmf: bool = False
) -> AsyncIterator[SipUserAgent]:
    config = EngineConfig(sip_port=0, rtp_ports=(ports[0], ports.last), timers=FAST_TIMERS)
    account = SipAccount(
        user="ringback", password="secret" if registrar else None, registrar=registrar
    )
    ua = SipUserAgent(account, config, inband_dtmf=inband_dtmf)
    await ua.start()
    try:
        yield ua
    finally:
        await ua.stop()


async def place_call(ua: SipUserAgent, target: str) -> Call:
    result = await ua.call(target, ring_timeout=10)
    assert result.outcome is Outcome.ANSWERED, result
    assert result.call is not None
    return result.call


async def expect_one_digit(call: Call, digit: str) -> None:
    """`digit` arrives, and no second copy of it follows."""
    assert await call.receive_digit(DIGIT_WAIT_S) == digit
    assert await call.receive_digit(1.0) is None
    assert call.stream.digits_received == 1


async def hang_up_and_finish(call: Call, callee: Sipp) -> None:
    await call.hangup()
    assert call.end_reason is EndReason.LOCAL_HANGUP
    code = await asyncio.to_thread(callee.wait, 15.0)
    assert code == EXIT_ALL_OK, callee.describe()
    assert callee.received("BYE"), callee.describe()


async def test_rfc4733_digit_from_sipp_called_directly(
    sipp: SippFactory, rtp_ports: PortBlock
) -> None:
    callee = sipp("uas_answer_dtmf", service="dtmf", calls=1, dtmf_digit="7", start=True)
    async with user_agent(rtp_ports) as ua:
        call = await place_call(ua, f"sip:dtmf@127.0.0.1:{callee.port}")
        assert call.media is not None and call.media.telephone_event_pt == 101
        await expect_one_digit(call, "7")
        await hang_up_and_finish(call, callee)


async def test_rfc4733_digit_through_kamailio(
    kamailio: Kamailio, sipp: SippFactory, rtp_ports: PortBlock
) -> None:
    callee = sipp("uas_answer_dtmf", service="dtmf", calls=1, dtmf_digit="#", start=True)
    kamailio.add_contact("dtmf", callee.contact)
    async with user_agent(rtp_ports, registrar=kamailio.domain) as ua:
        call = await place_call(ua, "dtmf")
        await expect_one_digit(call, "#")
        await hang_up_and_finish(call, callee)


async def test_sip_info_digit(sipp: SippFactory, rtp_ports: PortBlock) -> None:
    callee = sipp("uas_answer_info", service="info", calls=1, start=True)
    async with user_agent(rtp_ports) as ua:
        call = await place_call(ua, f"sip:info@127.0.0.1:{callee.port}")
        await expect_one_digit(call, "5")
        # The INFO was confirmed with 200 (the scenario fails on anything else).
        await hang_up_and_finish(call, callee)
        assert callee.received(status=200, method="INFO"), callee.describe()


async def test_sip_info_digit_through_kamailio(
    kamailio: Kamailio, sipp: SippFactory, rtp_ports: PortBlock
) -> None:
    callee = sipp("uas_answer_info", service="info", calls=1, start=True)
    kamailio.add_contact("info", callee.contact)
    async with user_agent(rtp_ports, registrar=kamailio.domain) as ua:
        call = await place_call(ua, "info")
        await expect_one_digit(call, "5")
        await hang_up_and_finish(call, callee)
        info = callee.sent("INFO")[0]
        assert info.header("Route"), info.text  # it followed the route set through the proxy


@pytest.mark.parametrize("digit", ["5", "0", "*"])
async def test_inband_digit_without_telephone_event(
    sipp: SippFactory, rtp_ports: PortBlock, digit: str
) -> None:
    callee = sipp("uas_answer_inband", service="inband", calls=1, inband_digit=digit,
                  start=True)  # fmt: skip
    async with user_agent(rtp_ports) as ua:
        call = await place_call(ua, f"sip:inband@127.0.0.1:{callee.port}")
        assert call.media is not None and call.media.telephone_event_pt is None
        await expect_one_digit(call, digit)
        await hang_up_and_finish(call, callee)
