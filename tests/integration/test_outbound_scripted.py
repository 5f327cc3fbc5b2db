"""Placing calls against a scripted UDP peer in this process: the ring timeout against Timer B,
and early answers (SDP in a 183, none in the 200). The same cases against sipp are in
test_engine_trunk_quirks.py; here every step of the far end is ours to choose."""

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest

from audio.g711 import Law, encode
from audio.prompts import EncodedPrompt
from lab.ports import PortBlock, allocate_ports
from telephony.outcomes import Outcome
from telephony.sip.config import EngineConfig, SipAccount
from telephony.sip.message import Request, make_response, parse_message
from telephony.sip.transaction import TimerConfig
from telephony.sip.ua import SipUserAgent

TIMERS = TimerConfig(t1=0.1, t2=0.4, t4=0.5)  # Timer B at 6.4 s
RING_S = 0.5  # well inside Timer B, as the default 30 s is inside the default 32 s
WAIT_S = 15.0
Address = tuple[str, int]


class ScriptedPeer:
    """A UDP socket that hands us each new request; BYEs are answered 200 on their own."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]
        self.methods: list[str] = []  # every request that arrived, retransmissions too
        self._requests: asyncio.Queue[tuple[Request, Address]] = asyncio.Queue()
        self._seen: set[tuple[str, str]] = set()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data, address = await loop.sock_recvfrom(self.sock, 65535)
            request = parse_message(data)
            assert isinstance(request, Request)
            self.methods.append(request.method)
            if request.method == "BYE":
                self.send(make_response(request, 200).to_bytes(), address)
            key = (request.top_via.branch or "", request.method)
            if key not in self._seen:
                self._seen.add(key)
                await self._requests.put((request, address))

    async def next(self, method: str) -> tuple[Request, Address]:
        async with asyncio.timeout(WAIT_S):
            while True:
                request, address = await self._requests.get()
                if request.method == method:
                    return request, address

    def send(self, data: bytes, address: Address) -> None:
        self.sock.sendto(data, address)

    def reply(self, request: Request, address: Address, status: int, *, tag: str | None = "uas",
              body: bytes = b"", headers: list[tuple[str, str]] | None = None) -> None:
        extra = [("Contact", f"<sip:uas@127.0.0.1:{self.port}>"), *(headers or [])]
        if body:
            extra.append(("Content-Type", "application/sdp"))
        response = make_response(request, status, to_tag=tag, headers=extra, body=body)
        self.send(response.to_bytes(), address)

    def close(self) -> None:
        self._reader.cancel()
        self.sock.close()


def sdp(port: int) -> bytes:
    return (
        "v=0\r\no=uas 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    ).encode()


@pytest.fixture
def rtp_block() -> Iterator[PortBlock]:
    block = allocate_ports(20)
    try:
        yield block
    finally:
        block.release()


@pytest.fixture
async def ua(rtp_block: PortBlock) -> AsyncIterator[SipUserAgent]:
    config = EngineConfig(sip_port=0, rtp_ports=(rtp_block[0], rtp_block.last), timers=TIMERS)
    agent = SipUserAgent(SipAccount(user="robot", password="secret"), config)
    await agent.start()
    try:
        yield agent
    finally:
        await agent.stop()


@pytest.fixture
async def peer() -> AsyncIterator[ScriptedPeer]:
    far_end = ScriptedPeer()
    try:
        yield far_end
    finally:
        far_end.close()


def target(peer: ScriptedPeer) -> str:
    return f"sip:callee@127.0.0.1:{peer.port}"


# --- the ring timeout never turns silence into a no-answer ---------------------------------------


async def test_a_silent_peer_is_unreachable_when_the_ring_timeout_ends_first(
    ua: SipUserAgent, peer: ScriptedPeer
) -> None:
    result = await ua.call(target(peer), ring_timeout=RING_S)
    assert (result.outcome, result.sip_status, result.reason) == (
        Outcome.UNREACHABLE, 408, "no response (Timer B)"
    )
    assert set(peer.methods) == {"INVITE"}  # no CANCEL can go before a provisional response


async def test_a_peer_that_answers_late_without_ringing_is_answered(
    ua: SipUserAgent, peer: ScriptedPeer
) -> None:
    """No 1xx: the ring timeout could not CANCEL, so a 2xx within Timer B is a real answer."""
    calling = asyncio.create_task(ua.call(target(peer), ring_timeout=RING_S))
    invite, address = await peer.next("INVITE")
    await asyncio.sleep(RING_S * 4)  # past the ring timeout, far inside Timer B
    peer.reply(invite, address, 200, body=sdp(9))
    result = await calling
    assert result.outcome is Outcome.ANSWERED and result.call is not None
    await result.call.hangup()
    assert "CANCEL" not in peer.methods


async def test_a_retried_invite_waits_for_its_own_provisional_before_any_cancel(
    ua: SipUserAgent, peer: ScriptedPeer
) -> None:
    """100 Trying then 407 (as Asterisk challenges), then nothing for the authenticated INVITE:
    the first INVITE's 100 allows no CANCEL of the second; Timer B ends it."""
    calling = asyncio.create_task(ua.call(target(peer), ring_timeout=RING_S))
    invite, address = await peer.next("INVITE")
    peer.reply(invite, address, 100, tag=None)
    peer.reply(invite, address, 407, headers=[
        ("Proxy-Authenticate", 'Digest realm="trunk", nonce="n1", algorithm=MD5')
    ])
    retry, _ = await peer.next("INVITE")
    assert "Proxy-Authorization" in retry.headers
    result = await calling
    assert (result.outcome, result.sip_status) == (Outcome.UNREACHABLE, 408)
    assert "CANCEL" not in peer.methods


async def test_a_peer_that_rings_past_the_ring_timeout_is_still_cancelled(
    ua: SipUserAgent, peer: ScriptedPeer
) -> None:
    calling = asyncio.create_task(ua.call(target(peer), ring_timeout=RING_S))
    invite, address = await peer.next("INVITE")
    peer.reply(invite, address, 180)
    cancel, cancel_from = await peer.next("CANCEL")
    peer.send(make_response(cancel, 200).to_bytes(), cancel_from)
    peer.reply(invite, address, 487)
    result = await calling
    assert (result.outcome, result.sip_status) == (Outcome.NO_ANSWER, 487)


# --- early answers -------------------------------------------------------------------------------


def tone() -> EncodedPrompt:
    pcm = np.round(8000 * np.sin(2 * np.pi * 440 * np.arange(1600) / 8000)).astype(np.int16)
    return EncodedPrompt(key="tone", ulaw=encode(pcm, Law.ULAW), alaw=encode(pcm, Law.ALAW),
                         duration_s=0.2)


@pytest.fixture
def media_sink() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


async def test_a_200_without_sdp_after_a_183_with_sdp_uses_the_early_answer(
    ua: SipUserAgent, peer: ScriptedPeer, media_sink: socket.socket
) -> None:
    media_port = media_sink.getsockname()[1]
    calling = asyncio.create_task(ua.call(target(peer), ring_timeout=10))
    invite, address = await peer.next("INVITE")
    peer.reply(invite, address, 183, body=sdp(media_port))
    peer.reply(invite, address, 200)
    result = await calling
    assert result.outcome is Outcome.ANSWERED, result.reason
    call = result.call
    assert call is not None and call.media is not None
    assert call.media.remote == ("127.0.0.1", media_port)
    playing = asyncio.create_task(call.play(tone(), barge_in=False))
    async with asyncio.timeout(WAIT_S):
        packet = await asyncio.get_running_loop().sock_recv(media_sink, 2048)
    assert packet[0] >> 6 == 2 and packet[1] & 0x7F == 0  # RTP version 2, PCMU
    await playing
    await call.hangup()


async def test_a_200_with_its_own_sdp_wins_over_the_183s(
    ua: SipUserAgent, peer: ScriptedPeer
) -> None:
    calling = asyncio.create_task(ua.call(target(peer), ring_timeout=10))
    invite, address = await peer.next("INVITE")
    peer.reply(invite, address, 183, body=sdp(7000))
    peer.reply(invite, address, 200, body=sdp(7002))
    result = await calling
    assert result.call is not None and result.call.media is not None
    assert result.call.media.remote == ("127.0.0.1", 7002)
    await result.call.hangup()


@pytest.mark.parametrize("early_tag", [None, "another-fork"])
async def test_a_200_without_sdp_and_no_early_sdp_of_its_dialog_fails(
    ua: SipUserAgent, peer: ScriptedPeer, early_tag: str | None
) -> None:
    calling = asyncio.create_task(ua.call(target(peer), ring_timeout=10))
    invite, address = await peer.next("INVITE")
    if early_tag is not None:
        peer.reply(invite, address, 183, tag=early_tag, body=sdp(7000))
    peer.reply(invite, address, 200)
    result = await calling
    assert (result.outcome, result.sip_status) == (Outcome.FAILED, 200)
    assert result.reason == (
        "unusable SDP answer: none in the 2xx nor in an early 1xx of its dialog"
    )
    await peer.next("BYE")  # the call that came up without media is hung up at once
