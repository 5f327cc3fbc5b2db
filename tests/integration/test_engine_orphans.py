"""Calls a dead process left up, hung up by its successor (issue #7), against real peers: the
first user agent answers a call and dies without a BYE (its sockets closed, as SIGKILL leaves
them); a second one sends the BYE from the state the first one stored."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest

from lab.kamailio import Kamailio
from lab.ports import HOST, PortBlock
from lab.sipp import EXIT_ALL_OK
from telephony.sip.config import EngineConfig, SipAccount
from telephony.sip.dialog_state import SUCCESSOR_CSEQ_MARGIN
from telephony.sip.orphans import OrphanOutcome
from telephony.sip.transaction import TimerConfig
from telephony.sip.ua import SipUserAgent
from tests.conftest import BaresipFactory, SippFactory
from tests.integration.test_engine_outbound import FAST_TIMERS, header, user_agent

pytestmark = pytest.mark.peers

Sent = list[tuple[str, tuple[str, int]]]  # (datagram, destination) the successor sent


def engine_config(ports: PortBlock, sip_port: int = 0) -> EngineConfig:
    return EngineConfig(sip_port=sip_port, rtp_ports=(ports[0], ports.last), timers=FAST_TIMERS)


async def answered_then_killed(
    ports: PortBlock, target: str, *, registrar: str | None = None
) -> tuple[dict[str, Any], int]:
    """A call answered by a first user agent that then dies without a word: the state it
    stored when the call was answered (as the database gives it back), and its SIP port."""
    first = SipUserAgent(SipAccount(password="secret", registrar=registrar),
                         engine_config(ports))
    await first.start()
    try:
        result = await first.call(target, ring_timeout=10)
        assert result.call is not None, result
        stored: dict[str, Any] = json.loads(json.dumps(result.call.dialog_state()))
        return stored, first.endpoint.port
    finally:  # what SIGKILL leaves: sockets closed by the kernel, no BYE, no un-REGISTER
        first.media.close()
        first.endpoint.close()


def record_sent(ua: SipUserAgent) -> Sent:
    sent: Sent = []

    def tracer(direction: str, data: bytes, peer: tuple[str, int]) -> None:
        if direction == "out":
            sent.append((data.decode(errors="replace"), peer))

    ua.endpoint.tracer = tracer
    return sent


def byes(sent: Sent) -> Sent:
    return [(text, peer) for text, peer in sent if text.startswith("BYE ")]


def orphan_state(target: str) -> dict[str, Any]:
    """A stored state for a dialog nobody answers for."""
    return {
        "version": 1,
        "call_id": "0d1e2a3d@127.0.0.1",
        "local_tag": "dead",
        "remote_tag": "far",
        "local_address": "<sip:ringback@127.0.0.1>;tag=dead",
        "remote_address": "<sip:orphan@127.0.0.1>;tag=far",
        "remote_target": target,
        "route_set": [],
        "local_seq": 1,
    }


async def test_restarted_process_hangs_up_a_direct_call(
    sipp: SippFactory, rtp_ports: PortBlock
) -> None:
    callee = sipp("uas_echo", service="orphan", calls=1, start=True)
    stored, sip_port = await answered_then_killed(rtp_ports, f"sip:orphan@{HOST}:{callee.port}")
    # The restarted service binds its configured SIP port again. It has to here: sipp answers
    # every request of a call at the address the call came from, whatever the Via says.
    async with SipUserAgent(SipAccount(), engine_config(rtp_ports, sip_port)) as successor:
        sent = record_sent(successor)
        result = await successor.end_orphan(stored)
    assert (result.outcome, result.sip_status, result.ended) == (OrphanOutcome.ANSWERED, 200,
                                                                 True)
    assert result.call_id == stored["call_id"]
    assert callee.wait(15) == EXIT_ALL_OK, callee.describe()  # its call ended on our BYE
    [bye] = callee.received("BYE")
    assert bye.first_line == f"BYE sip:orphan@{HOST}:{callee.port};transport=UDP SIP/2.0"
    assert bye.header("Call-ID") == stored["call_id"]
    assert bye.header("CSeq") == f"{stored['local_seq'] + SUCCESSOR_CSEQ_MARGIN} BYE"
    assert [peer for _, peer in byes(sent)] == [(HOST, callee.port)]
    [(ours, _)] = byes(sent)
    assert bye.header("Via") == header(ours, "Via")
    assert bye.header("Via") != callee.received("INVITE")[0].header("Via")  # a new branch


async def test_another_process_hangs_up_through_the_record_routing_proxy(
    kamailio: Kamailio, sipp: SippFactory, rtp_ports: PortBlock
) -> None:
    callee = sipp("uas_echo", service="orphan", calls=1, start=True)
    kamailio.add_contact("orphan", callee.contact)
    stored, sip_port = await answered_then_killed(rtp_ports, "orphan", registrar=kamailio.domain)
    assert any(f":{kamailio.port};lr" in route for route in stored["route_set"]), stored
    async with user_agent(rtp_ports, registrar=kamailio.domain) as successor:
        assert successor.endpoint.port != sip_port  # the proxy answers by Via, any port will do
        sent = record_sent(successor)
        result = await successor.end_orphan(stored)
    assert (result.outcome, result.sip_status) == (OrphanOutcome.ANSWERED, 200)
    assert callee.wait(15) == EXIT_ALL_OK, callee.describe()
    [(ours, destination)] = byes(sent)
    assert destination == (HOST, kamailio.port)  # the first route, not the remote target
    assert f"Route: {stored['route_set'][0]}" in ours
    [relayed] = callee.received("BYE")
    assert relayed.first_line.startswith(f"BYE sip:orphan@{HOST}:{callee.port}")
    assert f"{HOST}:{kamailio.port};branch=" in (relayed.header("Via") or "")  # via the proxy


async def test_a_dialog_the_far_end_already_ended_answers_481(
    kamailio: Kamailio, baresip: BaresipFactory, rtp_ports: PortBlock
) -> None:
    # Not sipp: it answers a BYE for a dialog it never had with 200 OK ("Aborting call on an
    # unexpected BYE"). baresip (libre) answers a BYE for no session with 481.
    phone = baresip(kamailio)
    async with user_agent(rtp_ports, registrar=kamailio.domain) as first:
        result = await first.call("client", ring_timeout=10)
        assert result.call is not None, result
        stored = json.loads(json.dumps(result.call.dialog_state()))
        await asyncio.to_thread(phone.wait_event, "CALL_ESTABLISHED", 10.0)
        await result.call.hangup()  # the BYE went out before the process died
        await asyncio.to_thread(phone.wait_event, "CALL_CLOSED", 10.0)
    async with user_agent(rtp_ports, registrar=kamailio.domain) as successor:
        sent = record_sent(successor)
        ended = await successor.end_orphan(stored)
    assert (ended.outcome, ended.sip_status, ended.ended) == (OrphanOutcome.GONE, 481, True)
    [(_, destination)] = byes(sent)
    assert destination == (HOST, kamailio.port)


SHORT_TIMERS = TimerConfig(t1=0.05, t2=0.2, t4=0.25)  # Timer F at 64*T1 = 3.2 s


async def test_a_closed_port_is_a_timeout_not_an_exception(rtp_ports: PortBlock) -> None:
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind((HOST, 0))
    port = closed.getsockname()[1]
    closed.close()
    async with user_agent(rtp_ports, timers=SHORT_TIMERS) as successor:
        sent = record_sent(successor)
        result = await successor.end_orphan(orphan_state(f"sip:orphan@{HOST}:{port}"))
    assert (result.outcome, result.sip_status, result.ended) == (OrphanOutcome.TIMEOUT, None,
                                                                 False)
    assert len(byes(sent)) > 1  # retransmitted (Timer E) until Timer F gave up


async def test_an_unresolvable_next_hop_is_unreachable(rtp_ports: PortBlock) -> None:
    async with user_agent(rtp_ports, timers=SHORT_TIMERS) as successor:
        sent = record_sent(successor)
        result = await successor.end_orphan(orphan_state("sip:orphan@nowhere.invalid"))
    assert (result.outcome, result.sip_status, result.ended) == (OrphanOutcome.UNREACHABLE,
                                                                 None, False)
    assert "nowhere.invalid" in result.reason
    assert byes(sent) == []
