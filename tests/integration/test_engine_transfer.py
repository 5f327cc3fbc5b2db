"""Blind transfer by REFER (RFC 3515) and giving up a ringing call from outside, against real
peers on loopback: sipp transferees (accepting, refusing, reporting a failed transfer), baresip
as a real transferee calling a second sipp, and sipp ringing forever for the abort."""

from __future__ import annotations

import asyncio

import pytest

from lab.kamailio import Kamailio
from lab.ports import HOST, PortBlock
from lab.process import wait_until
from lab.sipp import EXIT_ALL_OK
from telephony.outcomes import Outcome
from telephony.sip.call import EndReason
from tests.conftest import BaresipFactory, SippFactory
from tests.integration.test_engine_outbound import Trace, header, sent, user_agent

pytestmark = pytest.mark.peers


async def test_accepted_transfer_ends_our_leg_with_bye(
    sipp: SippFactory, rtp_ports: PortBlock
) -> None:
    callee = sipp("uas_answer_refer", service="transferee", calls=1, status=200, reason="OK",
                  start=True)
    trace: Trace = []
    async with user_agent(rtp_ports, trace=trace) as ua:
        answered = await ua.call(f"sip:transferee@{HOST}:{callee.port}", ring_timeout=10)
        call = answered.call
        assert call is not None, answered
        result = await call.transfer(f"sip:agent@{HOST}:5999", timeout=10)
        assert (result.succeeded, result.status) == (True, 200), result
        assert call.ended.is_set() and call.end_reason is EndReason.TRANSFERRED
    assert callee.wait(15) == EXIT_ALL_OK, callee.describe()  # ends on our BYE
    [refer] = callee.received("REFER")
    assert refer.header("Refer-To") == f"<sip:agent@{HOST}:5999>"
    assert refer.header("Referred-By") == "<sip:ringback@127.0.0.1>"
    assert refer.first_line.startswith(f"REFER sip:transferee@{HOST}:{callee.port}")
    ours = [m for m in sent(trace, r"^SIP/2.0 200 ") if header(m, "CSeq").endswith("NOTIFY")]
    assert [header(m, "CSeq") for m in ours] == ["1 NOTIFY", "2 NOTIFY"]
    assert len(callee.received("BYE")) == 1


@pytest.mark.parametrize(("status", "reason"), [(501, "Not Implemented"),
                                                (405, "Method Not Allowed")])
async def test_refused_refer_fails_and_the_call_goes_on(
    status: int, reason: str, sipp: SippFactory, rtp_ports: PortBlock
) -> None:
    callee = sipp("uas_refuse_refer", service="norefer", calls=1, status=status, reason=reason,
                  start=True)
    async with user_agent(rtp_ports) as ua:
        answered = await ua.call(f"sip:norefer@{HOST}:{callee.port}", ring_timeout=10)
        call = answered.call
        assert call is not None, answered
        result = await call.transfer("agent", timeout=10)  # a bare user: at our domain
        assert (result.succeeded, result.status) == (False, status), result
        assert not await call.wait_ended(1.0)  # still up: the robot can go on talking
        await call.hangup()
        assert call.end_reason is EndReason.LOCAL_HANGUP
    assert callee.wait(15) == EXIT_ALL_OK, callee.describe()
    [refer] = callee.received("REFER")
    assert refer.header("Refer-To") == "<sip:agent@127.0.0.1>"


async def test_failed_transfer_reported_in_sipfrag_keeps_the_call(
    sipp: SippFactory, rtp_ports: PortBlock
) -> None:
    callee = sipp("uas_answer_refer", service="busyagent", calls=1, status=486, start=True)
    async with user_agent(rtp_ports) as ua:
        answered = await ua.call(f"sip:busyagent@{HOST}:{callee.port}", ring_timeout=10)
        call = answered.call
        assert call is not None, answered
        result = await call.transfer(f"sip:agent@{HOST}:5999", timeout=10)
        assert (result.succeeded, result.status) == (False, 486), result
        assert "486 Busy Here" in result.detail
        assert not await call.wait_ended(1.0)
        await call.hangup()
    assert callee.wait(15) == EXIT_ALL_OK, callee.describe()  # both NOTIFYs got 200, then BYE


async def test_baresip_transferee_calls_the_target(
    kamailio: Kamailio, baresip: BaresipFactory, sipp: SippFactory, rtp_ports: PortBlock
) -> None:
    agent = sipp("uas_echo", service="agent", calls=1, start=True)
    phone = baresip(kamailio)
    async with user_agent(rtp_ports, registrar=kamailio.domain) as ua:
        answered = await ua.call("client", ring_timeout=10)
        call = answered.call
        assert call is not None, answered
        await asyncio.to_thread(phone.wait_event, "CALL_ESTABLISHED", 10.0)
        result = await call.transfer(f"sip:agent@{HOST}:{agent.port}", timeout=20)
        assert (result.succeeded, result.status) == (True, 200), (result, phone.log_text())
        assert call.end_reason is EndReason.TRANSFERRED
    [invite] = agent.received("INVITE")  # baresip's own INVITE to the target
    assert f"sip:agent@{HOST}:{agent.port}" in invite.first_line
    assert f":{phone.sip_port}" in (invite.header("Contact") or "")
    await asyncio.to_thread(phone.hangup)
    assert agent.wait(15) == EXIT_ALL_OK, agent.describe()


async def test_abort_while_ringing_cancels(sipp: SippFactory, rtp_ports: PortBlock) -> None:
    callee = sipp("uas_ring_forever", service="ringing", calls=1, start=True)
    abort = asyncio.Event()
    trace: Trace = []
    async with user_agent(rtp_ports, trace=trace) as ua:
        calling = asyncio.create_task(
            ua.call(f"sip:ringing@{HOST}:{callee.port}", ring_timeout=30, abort=abort))
        await asyncio.to_thread(wait_until, lambda: callee.sent(status=180), 10.0)
        abort.set()
        result = await asyncio.wait_for(calling, 10)
    assert (result.outcome, result.sip_status, result.call) == (Outcome.CANCELLED, 487, None)
    assert result.setup_s < 10  # not the ring timeout
    assert callee.wait(15) == EXIT_ALL_OK, callee.describe()  # CANCEL came, 487 was ACKed
    [cancel] = sent(trace, r"^CANCEL ")
    assert header(cancel, "Via") == header(sent(trace, r"^INVITE ")[0], "Via")
    assert sent(trace, r"^ACK ") and not sent(trace, r"^BYE ")  # no orphan


async def test_abort_after_the_answer_changes_nothing(
    sipp: SippFactory, rtp_ports: PortBlock
) -> None:
    callee = sipp("uas_echo", service="answered", calls=1, start=True)
    abort = asyncio.Event()
    async with user_agent(rtp_ports) as ua:
        result = await ua.call(f"sip:answered@{HOST}:{callee.port}", ring_timeout=10,
                               abort=abort)
        assert result.outcome is Outcome.ANSWERED and result.call is not None
        abort.set()
        assert not await result.call.wait_ended(1.0)
        await result.call.hangup()
    assert callee.wait(15) == EXIT_ALL_OK, callee.describe()
