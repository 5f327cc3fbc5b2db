"""SIP that real trunks and PBXs send, against real peers on loopback (issue 8): a dead trunk,
tel: URIs in From and To, an early answer (SDP in the 183 only), a NUL byte in a header."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest

from audio.g711 import Law, encode
from audio.prompts import EncodedPrompt
from lab.ports import PortBlock
from lab.process import wait_true
from lab.sipp import EXIT_ALL_OK
from telephony.outcomes import Outcome
from telephony.sip.call import EndReason
from telephony.sip.config import EngineConfig, SipAccount
from telephony.sip.transaction import TimerConfig
from telephony.sip.ua import SipUserAgent
from tests.conftest import CaptureFactory, SippFactory
from tests.integration.test_cli_call import run_call

pytestmark = pytest.mark.peers

FAST_TIMERS = TimerConfig(t1=0.1, t2=0.4, t4=0.5)  # Timer B = 64*T1 = 6.4 s
# The defaults put the ring timeout (30 s) just inside Timer B (32 s): the same ratio here.
RING_INSIDE_TIMER_B_S = FAST_TIMERS.timeout * 30 / 32


@asynccontextmanager
async def user_agent(ports: PortBlock) -> AsyncIterator[SipUserAgent]:
    config = EngineConfig(sip_port=0, rtp_ports=(ports[0], ports.last), timers=FAST_TIMERS)
    ua = SipUserAgent(SipAccount(user="ringback"), config)
    await ua.start()
    try:
        yield ua
    finally:
        await ua.stop()


def tone(seconds: float) -> EncodedPrompt:
    pcm = np.round(8000 * np.sin(2 * np.pi * 440 * np.arange(int(8000 * seconds)) / 8000))
    samples = pcm.astype(np.int16)
    return EncodedPrompt(key="tone", ulaw=encode(samples, Law.ULAW),
                         alaw=encode(samples, Law.ALAW), duration_s=seconds)


@pytest.fixture
def silent_peer() -> Iterator[tuple[socket.socket, list[bytes]]]:
    """A trunk that is down: its port swallows everything and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    try:
        yield sock, []
    finally:
        sock.close()


# --- a dead trunk is unreachable, whatever the ring timeout --------------------------------------


@pytest.mark.parametrize("ring_timeout", [None, RING_INSIDE_TIMER_B_S], ids=["default", "inside"])
async def test_a_dead_trunk_is_unreachable_not_a_no_answer(
    silent_peer: tuple[socket.socket, list[bytes]], rtp_ports: PortBlock,
    ring_timeout: float | None,
) -> None:
    sock, received = silent_peer
    loop = asyncio.get_running_loop()

    async def swallow() -> None:
        while True:
            received.append(await loop.sock_recv(sock, 65535))

    swallowing = asyncio.create_task(swallow())
    target = f"sip:nobody@127.0.0.1:{sock.getsockname()[1]}"
    try:
        async with user_agent(rtp_ports) as ua:
            if ring_timeout is None:
                result = await ua.call(target)  # the 30 s default
            else:
                result = await ua.call(target, ring_timeout=ring_timeout)
    finally:
        swallowing.cancel()
    assert (result.outcome, result.sip_status, result.reason) == (
        Outcome.UNREACHABLE, 408, "no response (Timer B)"
    )
    assert received and all(data.startswith(b"INVITE ") for data in received)  # no CANCEL


# --- tel: URIs in From and To --------------------------------------------------------------------


async def test_an_inbound_invite_from_tel_to_tel_is_answered(
    sipp: SippFactory, rtp_ports: PortBlock
) -> None:
    async with user_agent(rtp_ports) as ua:
        trunk = sipp("uac_tel_call", remote=f"127.0.0.1:{ua.endpoint.port}", service="ringback",
                     calls=1, duration_ms=1000)
        trunk.start(allow_exit=True)
        incoming = await ua.next_incoming(20)
        assert incoming is not None, trunk.describe()  # the INVITE was read, not dropped
        assert str(incoming.caller.uri) == "tel:+7-999-123-45-67"
        assert str(incoming.callee.uri) == "tel:7042;phone-context=example.com"
        call = await ua.answer(incoming)
        assert await call.wait_ended(20), trunk.describe()  # the trunk's BYE matched the dialog
        assert call.end_reason is EndReason.REMOTE_HANGUP, trunk.describe()
    assert await asyncio.to_thread(trunk.wait, 15) == EXIT_ALL_OK, trunk.describe()
    [ok] = trunk.received("INVITE", 200)  # its To was checked by the scenario
    assert (ok.header("From") or "").startswith('"Trunk" <tel:+7-999-123-45-67>;tag=')


async def test_responses_with_tel_from_and_to_answer_our_call(
    sipp: SippFactory, rtp_ports: PortBlock
) -> None:
    trunk = sipp("uas_tel_parties", service="trunk", calls=1, start=True)
    async with user_agent(rtp_ports) as ua:
        result = await ua.call(f"sip:+79991234567@127.0.0.1:{trunk.port}", ring_timeout=10)
        assert result.outcome is Outcome.ANSWERED, (result, trunk.describe())
        assert result.call is not None
        await result.call.hangup()
        assert result.call.end_reason is EndReason.LOCAL_HANGUP
    assert await asyncio.to_thread(trunk.wait, 15) == EXIT_ALL_OK, trunk.describe()
    [bye] = trunk.received("BYE")
    assert "<tel:+7-999-123-45-67>;tag=" in (bye.header("To") or "")  # the dialog kept it


def test_ringback_call_dials_a_tel_target_through_the_dial_template(
    sipp: SippFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trunk = sipp("uas_status", service="trunk", status=486, calls=1, start=True)
    monkeypatch.setenv("RINGBACK_SIP_DIAL_TEMPLATE", f"sip:8{{digits}}@127.0.0.1:{trunk.port}")
    code, report, _ = run_call(["tel:+7-999-123-45-67", "--digits", "0"], tmp_path)
    assert (code, report["outcome"], report["sip_status"]) == (1, "busy", 486), report
    [invite] = trunk.received("INVITE")
    assert invite.first_line == f"INVITE sip:879991234567@127.0.0.1:{trunk.port} SIP/2.0"


# --- early answer: SDP in the 183, none in the 200 -----------------------------------------------


async def test_an_early_answer_carries_the_call_and_its_audio(
    sipp: SippFactory, capture: CaptureFactory, rtp_ports: PortBlock
) -> None:
    gateway = sipp("uas_early_answer", service="gateway", calls=1, rtp_echo=True, start=True)
    cap = capture((min(rtp_ports[0], gateway.ports[0]), max(rtp_ports.last, gateway.ports.last)))
    async with user_agent(rtp_ports) as ua:
        result = await ua.call(f"sip:gateway@127.0.0.1:{gateway.port}", ring_timeout=10)
        assert result.outcome is Outcome.ANSWERED, (result, gateway.describe())
        call = result.call
        assert call is not None and call.media is not None
        assert call.media.remote == ("127.0.0.1", gateway.rtp_port)  # the 183's c= and m=
        assert await call.play(tone(1.0), barge_in=False)
        # sipp echoes what reaches its media port; we take RTP only from the SDP's address.
        await wait_true(lambda: call.stream.packets_received >= 10, 10, "echoed RTP")
        await call.hangup()
        local_port = call.stream.local_port
    cap.stop()
    assert await asyncio.to_thread(gateway.wait, 15) == EXIT_ALL_OK, gateway.describe()
    ours = [p for p in cap.rtp_packets([local_port]) if p.src_port == local_port]
    assert len(ours) >= 45  # a second of audio at 50 packets a second
    assert {p.dst_port for p in ours} == {gateway.rtp_port}


# --- a NUL byte in a header ----------------------------------------------------------------------


async def test_a_nul_in_a_header_gets_a_400_naming_it(rtp_ports: PortBlock) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    port = sock.getsockname()[1]
    loop = asyncio.get_running_loop()
    try:
        async with user_agent(rtp_ports) as ua:
            request = (
                f"OPTIONS sip:ringback@127.0.0.1:{ua.endpoint.port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKnul1;rport\r\n"
                "From: <sip:prober@127.0.0.1>;tag=p\x001\r\n"
                f"To: <sip:ringback@127.0.0.1:{ua.endpoint.port}>\r\n"
                "Call-ID: nul-1@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                "Content-Length: 0\r\n\r\n"
            ).encode()
            await loop.sock_sendto(sock, request, ("127.0.0.1", ua.endpoint.port))
            async with asyncio.timeout(5):
                reply = await loop.sock_recv(sock, 65535)
            assert ua.endpoint.dropped_datagrams == 1  # refused, not handled as an OPTIONS
    finally:
        sock.close()
    head = reply.decode()
    assert head.startswith("SIP/2.0 400 Bad Request: control character 0x00 in the From header\r\n")
    assert "Call-ID: nul-1@127.0.0.1\r\n" in head and "CSeq: 1 OPTIONS\r\n" in head
