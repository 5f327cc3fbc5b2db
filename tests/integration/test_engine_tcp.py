"""SIP over TCP (RFC 3261 18) and an advertised address apart from the bound one (NAT), against
real peers: sipp over TCP (`-t t1`) as callee and caller, Kamailio as a registrar over TCP, and
sipp over UDP reading what a NATed ringback advertises."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from lab.kamailio import Kamailio
from lab.ports import PortBlock
from lab.sipp import EXIT_ALL_OK, Sipp
from telephony.outcomes import Outcome
from telephony.sip.call import Call
from telephony.sip.config import EngineConfig, SipAccount
from telephony.sip.message import Request, parse_message
from telephony.sip.sdp import parse_sdp
from telephony.sip.transaction import TimerConfig
from telephony.sip.ua import SipUserAgent
from tests.conftest import SippFactory

pytestmark = pytest.mark.peers

FAST_TIMERS = TimerConfig(t1=0.1, t2=0.4, t4=0.5)
DIGIT_WAIT_S = 10.0
PUBLIC_HOST = "127.0.0.2"  # advertised; the agent binds 127.0.0.1

Trace = list[tuple[str, bytes, tuple[str, int]]]


@asynccontextmanager
async def user_agent(
    ports: PortBlock, *, registrar: str | None = None, public_host: str | None = None
) -> AsyncIterator[tuple[SipUserAgent, Trace]]:
    config = EngineConfig(sip_port=0, rtp_ports=(ports[0], ports.last), timers=FAST_TIMERS,
                          public_host=public_host)
    account = SipAccount(user="ringback", password="secret" if registrar else None,
                         registrar=registrar)
    ua = SipUserAgent(account, config)
    trace: Trace = []
    ua.endpoint.tracer = lambda direction, data, peer: trace.append((direction, data, peer))
    await ua.start()
    try:
        yield ua, trace
    finally:
        await ua.stop()


async def answered(ua: SipUserAgent, target: str, **kwargs: object) -> Call:
    result = await ua.call(target, ring_timeout=10, **kwargs)  # type: ignore[arg-type]
    assert result.outcome is Outcome.ANSWERED, result
    assert result.call is not None
    return result.call


async def finished(peer: Sipp) -> None:
    code = await asyncio.to_thread(peer.wait, 20.0)
    assert code == EXIT_ALL_OK, peer.describe()


def requests_out(trace: Trace) -> list[tuple[Request, tuple[str, int]]]:
    out = []
    for direction, data, peer in trace:
        message = parse_message(data)
        if direction == "out" and isinstance(message, Request):
            out.append((message, peer))
    return out


async def test_call_to_a_tcp_callee_with_a_digit_and_bye_on_one_connection(
    sipp: SippFactory, rtp_ports: PortBlock
) -> None:
    callee = sipp("uas_answer_dtmf", service="dtmf", calls=1, dtmf_digit="7", transport="t1",
                  start=True)
    async with user_agent(rtp_ports) as (ua, trace):
        call = await answered(ua, f"sip:dtmf@127.0.0.1:{callee.port};transport=tcp")
        assert await call.receive_digit(DIGIT_WAIT_S) == "7"
        await call.hangup()
        assert len(ua.endpoint.tcp) == 1  # one connection carried the whole call
        await finished(callee)
        sent = requests_out(trace)
        assert [request.method for request, _ in sent] == ["INVITE", "ACK", "BYE"]
        assert {peer for _, peer in sent} == {("127.0.0.1", callee.port)}
        assert all(request.top_via.transport == "TCP" for request, _ in sent)
    [invite] = callee.received("INVITE")
    assert "transport=tcp" in (invite.header("Contact") or "")
    assert callee.received("BYE"), callee.describe()


async def test_a_request_over_the_udp_limit_goes_over_tcp(
    sipp: SippFactory, rtp_ports: PortBlock
) -> None:
    callee = sipp("uas_echo", service="big", calls=1, transport="t1", start=True)
    async with user_agent(rtp_ports) as (ua, trace):
        call = await answered(ua, f"sip:big@127.0.0.1:{callee.port}",
                              headers=[("X-Padding", "p" * 1400)])
        await call.hangup()
        await finished(callee)
        [(invite, _)] = [(r, p) for r, p in requests_out(trace) if r.method == "INVITE"]
        assert invite.top_via.transport == "TCP"


async def test_a_large_request_falls_back_to_udp_without_a_tcp_listener(
    sipp: SippFactory, rtp_ports: PortBlock
) -> None:
    callee = sipp("uas_echo", service="big", calls=1, start=True)  # UDP only
    async with user_agent(rtp_ports) as (ua, _):
        call = await answered(ua, f"sip:big@127.0.0.1:{callee.port}",
                              headers=[("X-Padding", "p" * 1400)])
        await call.hangup()
        await finished(callee)
    [invite] = callee.received("INVITE")
    assert (invite.header("Via") or "").startswith("SIP/2.0/UDP")


async def test_registration_at_kamailio_over_tcp(
    kamailio: Kamailio, rtp_ports: PortBlock
) -> None:
    async with user_agent(rtp_ports, registrar=f"{kamailio.domain};transport=tcp") as (ua, _):
        assert ua.registration is not None and ua.registration.current()
        [binding] = [row for row in kamailio.registrations() if row["user"] == "ringback"]
        assert binding["socket"].startswith("tcp:"), binding
        assert "transport=tcp" in binding["contact"]
        assert len(ua.endpoint.tcp) == 1


async def test_call_through_kamailio_over_tcp(
    sipp: SippFactory, kamailio: Kamailio, rtp_ports: PortBlock
) -> None:
    """Registrar and proxy over TCP, callee behind it over UDP: every request we send, ACK and
    BYE along the route set included, goes over our one connection to Kamailio."""
    callee = sipp("uas_answer_dtmf", service="dtmf", calls=1, dtmf_digit="4", start=True)
    kamailio.add_contact("dtmf", callee.contact)
    async with user_agent(rtp_ports, registrar=f"sip:{kamailio.domain};transport=tcp") as (
        ua, trace
    ):
        call = await answered(ua, "dtmf")
        assert await call.receive_digit(DIGIT_WAIT_S) == "4"
        await call.hangup()
        await finished(callee)
        sent = requests_out(trace)
        assert {request.method for request, _ in sent} == {"REGISTER", "INVITE", "ACK", "BYE"}
        assert {peer for _, peer in sent} == {("127.0.0.1", kamailio.port)}
        assert all(request.top_via.transport == "TCP" for request, _ in sent)
        assert len(ua.endpoint.tcp) == 1


async def test_inbound_call_over_tcp_is_answered_on_its_connection(
    sipp: SippFactory, rtp_ports: PortBlock
) -> None:
    async with user_agent(rtp_ports) as (ua, trace):
        caller = sipp("uac_call_bye", service="ringback", calls=1, duration_ms=1000,
                      transport="t1", remote=f"127.0.0.1:{ua.endpoint.port}")
        caller.start(allow_exit=True)
        incoming = await ua.next_incoming(timeout=10)
        assert incoming is not None
        call = await ua.answer(incoming)
        assert await call.receive_digit(DIGIT_WAIT_S) == "1"
        await asyncio.wait_for(call.ended.wait(), 15)
        await finished(caller)
        invite_from = next(peer for direction, data, peer in trace
                           if direction == "in" and data.startswith(b"INVITE "))
        answers_to = {peer for direction, data, peer in trace
                      if direction == "out" and data.startswith(b"SIP/2.0 ")}
        assert answers_to == {invite_from}
    [ok] = caller.received(status=200, method="INVITE")
    assert "transport=tcp" in (ok.header("Contact") or "")


async def test_behind_nat_we_advertise_the_public_host(
    sipp: SippFactory, rtp_ports: PortBlock
) -> None:
    callee = sipp("uas_echo", service="nat", calls=1, start=True)
    async with user_agent(rtp_ports, public_host=PUBLIC_HOST) as (ua, _):
        call = await answered(ua, f"sip:nat@127.0.0.1:{callee.port}")
        await call.hangup()
        await finished(callee)
    [invite] = callee.received("INVITE")
    port = ua.endpoint.port
    assert invite.header("Contact") == f"<sip:ringback@{PUBLIC_HOST}:{port}>"
    via = invite.header("Via") or ""
    assert via.startswith(f"SIP/2.0/UDP {PUBLIC_HOST}:{port};") and ";rport" in via
    sdp = parse_sdp(invite.body.encode())
    assert sdp.origin.address == PUBLIC_HOST
    assert sdp.connection is not None and sdp.connection.address == PUBLIC_HOST
    [bye] = callee.received("BYE")
    assert (bye.header("Via") or "").startswith(f"SIP/2.0/UDP {PUBLIC_HOST}:{port};")
