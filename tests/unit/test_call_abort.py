"""`SipUserAgent.call(abort=...)` on an engine without sockets (`sip_offline`): the test plays
the callee. Against sipp (CANCEL, 487, ACK) see tests/integration/test_engine_transfer.py."""

import asyncio

from telephony.outcomes import Outcome
from telephony.sip.message import make_response
from tests.unit.sip_offline import FAR_END, GUARD_S, OfflineUa

TARGET = f"sip:callee@{FAR_END[0]}:{FAR_END[1]}"


async def test_an_abort_set_before_the_call_sends_nothing() -> None:
    far_end = OfflineUa()
    abort = asyncio.Event()
    abort.set()
    result = await asyncio.wait_for(far_end.ua.call(TARGET, abort=abort), GUARD_S)
    assert (result.outcome, result.sip_status, result.call) == (Outcome.CANCELLED, None, None)
    assert far_end.requests("INVITE") == []


async def test_an_abort_while_ringing_cancels_and_the_487_decides() -> None:
    far_end = OfflineUa()
    abort = asyncio.Event()
    calling = asyncio.create_task(far_end.ua.call(TARGET, ring_timeout=GUARD_S, abort=abort))
    invite = await far_end.wait_request("INVITE")
    far_end.feed(make_response(invite, 180, to_tag="callee1").to_bytes())
    await asyncio.sleep(0)
    abort.set()
    cancel = await far_end.wait_request("CANCEL")
    far_end.feed(make_response(cancel, 200).to_bytes())
    far_end.feed(make_response(invite, 487, to_tag="callee1").to_bytes())
    result = await asyncio.wait_for(calling, GUARD_S)
    assert (result.outcome, result.sip_status) == (Outcome.CANCELLED, 487)
    assert [ack.cseq for ack in far_end.requests("ACK")][:1] == [(invite.cseq[0], "ACK")]
