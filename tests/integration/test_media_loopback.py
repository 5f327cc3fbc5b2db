"""MediaEngine over 127.0.0.1: streams against each other and against a raw UDP socket.

Waits below are guards against hanging, never assertions about timing.
"""

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import cast

import numpy as np
import pytest

from audio.g711 import Law, encode, silence
from telephony.sip.codecs import PCMA, PCMU, Codec, MediaParams
from telephony.sip.dtmf import EventSender, build_event, dual_tone, parse_event
from telephony.sip.errors import CallError
from telephony.sip.media import MediaEngine, MediaError, RtpStream
from telephony.sip.rtp import RtpPacket, RtpSender, parse_rtp

HOST = "127.0.0.1"
PORTS = (26000, 26999)
GUARD = 5.0
EVENT_PT = 101


class Peer(asyncio.DatagramProtocol):
    """A bare UDP socket that records what it gets."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait((data, addr))

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    def send(self, data: bytes, to: RtpStream) -> None:
        assert self.transport is not None
        self.transport.sendto(data, (HOST, to.local_port))

    async def packet(self) -> RtpPacket:
        data, _ = await asyncio.wait_for(self.received.get(), GUARD)
        packet = parse_rtp(data)
        assert packet is not None
        return packet

    async def packets(self, count: int) -> list[RtpPacket]:
        return [await self.packet() for _ in range(count)]

    def drain(self) -> list[RtpPacket]:
        packets = []
        while not self.received.empty():
            packet = parse_rtp(self.received.get_nowait()[0])
            assert packet is not None
            packets.append(packet)
        return packets


PeerFactory = Callable[[], Awaitable[Peer]]


@pytest.fixture
async def engine() -> AsyncIterator[MediaEngine]:
    media = MediaEngine(HOST, PORTS)
    yield media
    media.close()
    await asyncio.sleep(0)  # let the transports close their sockets


@pytest.fixture
async def new_peer() -> AsyncIterator[PeerFactory]:
    transports: list[asyncio.DatagramTransport] = []

    async def make() -> Peer:
        loop = asyncio.get_running_loop()
        transport, peer = await loop.create_datagram_endpoint(Peer, local_addr=(HOST, 0))
        transports.append(transport)
        return peer

    yield make
    for transport in transports:
        transport.close()
    await asyncio.sleep(0)


def params(
    remote: tuple[str, int], codec: Codec = PCMU, event_pt: int | None = EVENT_PT
) -> MediaParams:
    return MediaParams(remote=remote, codec=codec, telephone_event_pt=event_pt)


async def started(engine: MediaEngine, peer: Peer, **kwargs: object) -> RtpStream:
    stream = await engine.open_stream()
    stream.start(params(peer.address, **kwargs))  # type: ignore[arg-type]
    return stream


async def pair(
    engine: MediaEngine, codec: Codec = PCMU, event_pt: int | None = EVENT_PT
) -> tuple[RtpStream, RtpStream]:
    a, b = await engine.open_stream(), await engine.open_stream()
    a.start(params((HOST, b.local_port), codec, event_pt))
    b.start(params((HOST, a.local_port), codec, event_pt))
    return a, b


def event_packets(
    digit: str, sender: RtpSender, timestamp: int, payload_type: int = EVENT_PT
) -> list[bytes]:
    payloads = EventSender(digit).payloads()
    return [sender.packet(payload_type, p, n == 0, timestamp) for n, p in enumerate(payloads)]


def assert_continuous(packets: list[RtpPacket]) -> None:
    for before, after in itertools.pairwise(packets):
        assert after.sequence == (before.sequence + 1) % 2**16
        assert after.timestamp == (before.timestamp + 160) % 2**32
        assert after.ssrc == before.ssrc


# -- ports ---------------------------------------------------------------------------------------


async def test_streams_get_even_ports_and_skip_ports_in_use() -> None:
    base = 26100
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind((HOST, base))
    media = MediaEngine(HOST, (base, base + 5))  # even ports with a partner: 26100, 26102, 26104
    try:
        first, second = await media.open_stream(), await media.open_stream()
        assert (first.local_port, second.local_port) == (base + 2, base + 4)
        with pytest.raises(MediaError, match="no free even RTP port"):
            await media.open_stream()
        assert issubclass(MediaError, CallError)
        first.close()
        await asyncio.sleep(0)  # the transport closes its socket on the next loop iteration
        third = await media.open_stream()
        assert third.local_port == base + 2
    finally:
        taken.close()
        media.close()
        await asyncio.sleep(0)


# -- sending -------------------------------------------------------------------------------------


async def test_silence_flows_from_start_with_a_marker_first(
    engine: MediaEngine, new_peer: PeerFactory
) -> None:
    peer = await new_peer()
    stream = await started(engine, peer, codec=PCMA)
    packets = await peer.packets(5)
    assert packets[0].marker
    assert not any(p.marker for p in packets[1:])
    assert all(p.payload_type == 8 and p.payload == b"\xd5" * 160 for p in packets)
    assert_continuous(packets)
    assert stream.packets_sent >= 5


@pytest.mark.parametrize("codec", [PCMU, PCMA])
async def test_a_prompt_arrives_byte_exact_and_in_order(
    engine: MediaEngine, new_peer: PeerFactory, codec: Codec
) -> None:
    peer = await new_peer()
    stream = await started(engine, peer, codec=codec)
    await peer.packet()  # the stream runs: the prompt's first frame is marked on its own
    tone = np.sin(2 * np.pi * 440 * np.arange(8000 + 70) / 8000) * 8000
    prompt = encode(tone.astype(np.int16), codec.law)
    assert await stream.play(prompt) is True
    frames = -(-len(prompt) // 160)
    packets = await collect_until_marker(peer)
    packets += await peer.packets(frames - 1)
    sent = b"".join(p.payload for p in packets)
    assert sent == prompt + bytes([silence(codec.law)]) * (frames * 160 - len(prompt))
    assert_continuous(packets)
    assert not stream.playing


async def collect_until_marker(peer: Peer) -> list[RtpPacket]:
    while not (packet := await peer.packet()).marker:
        pass
    return [packet]


async def test_a_digit_goes_out_as_rfc_4733_events(
    engine: MediaEngine, new_peer: PeerFactory
) -> None:
    peer = await new_peer()
    stream = await started(engine, peer)
    await stream.send_digit("*", duration_ms=60)
    packets = [p for p in peer.drain() + await peer.packets(2) if p.payload_type == EVENT_PT]
    events = [parse_event(p.payload) for p in packets]
    assert [(e.code, e.duration, e.end) for e in events if e] == [
        (10, 160, False),
        (10, 320, False),
        (10, 480, True),
        (10, 480, True),
        (10, 480, True),
    ]
    assert [p.marker for p in packets] == [True, False, False, False, False]
    assert len({p.timestamp for p in packets}) == 1
    assert [(p.sequence - packets[0].sequence) % 2**16 for p in packets] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("codec", [PCMU, PCMA])
@pytest.mark.parametrize("event_pt", [EVENT_PT, None])
async def test_a_digit_sent_arrives_once(
    engine: MediaEngine, codec: Codec, event_pt: int | None
) -> None:
    """With telephone-event as RFC 4733, without it as an in-band tone in the codec's law."""
    a, b = await pair(engine, codec, event_pt)
    for digit in "1#D":
        await a.send_digit(digit)
        assert await b.receive_digit(GUARD) == digit
    assert await b.receive_digit(0.3) is None
    assert b.digits_received == 3


async def test_update_keeps_one_sender_and_carries_on(
    engine: MediaEngine, new_peer: PeerFactory
) -> None:
    first, second = await new_peer(), await new_peer()
    stream = await started(engine, first)
    ssrc = stream.ssrc
    await first.packets(3)
    stream.update(params(second.address, PCMA))
    after = await second.packets(5)
    await asyncio.sleep(0.1)
    before = first.drain()
    stream.update(params(second.address, PCMA))  # the same answer again changes nothing
    after += await second.packets(3)
    assert first.drain() == []
    assert_continuous(before[-1:] + after)
    assert after[0].ssrc == ssrc
    assert all(p.payload_type == 8 and p.payload == b"\xd5" * 160 for p in after)
    assert engine.stats().streams == 1


async def test_update_mid_prompt_changes_law(engine: MediaEngine, new_peer: PeerFactory) -> None:
    peer = await new_peer()
    stream = await started(engine, peer)
    playing = asyncio.create_task(stream.play(b"\x00" * 160 * 50))
    await collect_until_marker(peer)
    stream.update(params(peer.address, PCMA))
    assert await asyncio.wait_for(playing, GUARD) is True
    tail = [p for p in peer.drain() if p.payload_type == 8]
    assert tail
    assert tail[0].payload == b"\x2a" * 160  # mu-law 0x00 (-32124) re-encoded in A-law


async def test_hold_pauses_the_prompt_and_sends_nothing(
    engine: MediaEngine, new_peer: PeerFactory
) -> None:
    peer = await new_peer()
    stream = await started(engine, peer)
    await peer.packet()
    on_hold = MediaParams(remote=peer.address, codec=PCMU, sending=False)
    stream.update(on_hold)
    playing = asyncio.create_task(stream.play(b"\x00" * 160))
    await asyncio.sleep(0.2)
    peer.drain()
    await asyncio.sleep(0.1)
    assert peer.drain() == []
    assert not playing.done()
    stream.update(params(peer.address))
    assert await asyncio.wait_for(playing, GUARD) is True


# -- receiving -----------------------------------------------------------------------------------


async def test_event_retransmissions_are_one_digit(
    engine: MediaEngine, new_peer: PeerFactory
) -> None:
    peer = await new_peer()
    stream = await started(engine, peer)
    sender = RtpSender()
    for packet in event_packets("9", sender, 1000) + event_packets("9", sender, 2120):
        peer.send(packet, stream)
    assert await stream.receive_digit(GUARD) == "9"
    assert await stream.receive_digit(GUARD) == "9"
    assert await stream.receive_digit(0.3) is None
    assert stream.digits_received == 2


async def test_event_code_20_is_ignored(engine: MediaEngine, new_peer: PeerFactory) -> None:
    peer = await new_peer()
    stream = await started(engine, peer)
    sender = RtpSender()
    peer.send(sender.packet(EVENT_PT, build_event(20, end=False, duration=160), True), stream)
    peer.send(sender.packet(EVENT_PT, build_event(20, end=True, duration=320)), stream)
    await wait_for_count(lambda: stream.packets_received == 2)
    assert await stream.receive_digit(0.2) is None
    assert stream.digits_received == 0


async def test_packets_from_a_wrong_source_are_dropped(
    engine: MediaEngine, new_peer: PeerFactory
) -> None:
    peer, stranger = await new_peer(), await new_peer()
    stream = await started(engine, peer)
    for packet in event_packets("3", RtpSender(), 500):
        stranger.send(packet, stream)
    await wait_for_count(lambda: stream.dropped_wrong_source == 7)
    assert await stream.receive_digit(0.2) is None
    assert stream.packets_received == 0


async def test_garbage_is_dropped_and_the_stream_lives_on(
    engine: MediaEngine, new_peer: PeerFactory
) -> None:
    peer = await new_peer()
    stream = await started(engine, peer)
    sender = RtpSender()
    good = sender.packet(0, b"\xff" * 160)
    garbage = [
        b"\x80" + bytes(range(256)) * 255,  # 65281 bytes: RTP-looking, payload far over 1500
        bytes(65507),  # the largest UDP datagram: version 0
        good[:7],
        b"\x8f" + good[1:20],  # fifteen CSRCs announced, two present
        sender.packet(EVENT_PT, b"\x01"),  # an event payload of one byte
    ]
    for data in garbage:
        peer.send(data, stream)
    await wait_for_count(lambda: stream.dropped_malformed == len(garbage))
    peer.send(sender.packet(77, b"?"), stream)
    await wait_for_count(lambda: stream.dropped_unexpected_payload == 1)
    for packet in event_packets("0", sender, 123):
        peer.send(packet, stream)
    assert await stream.receive_digit(GUARD) == "0"
    assert not stream.closed
    assert engine.stats().packets_dropped >= len(garbage) + 1


@pytest.mark.parametrize("codec", [PCMU, PCMA])
async def test_timestamp_and_sequence_jumps_keep_state_bounded(
    new_peer: PeerFactory, codec: Codec
) -> None:
    media = MediaEngine(HOST, PORTS, inband_dtmf=True)
    try:
        peer = await new_peer()
        stream = await started(media, peer, codec=codec, event_pt=None)
        sender = RtpSender(timestamp=0)
        for n in range(200):
            sender.timestamp = n * 2**31 % 2**32 + n
            sender.sequence = n * 30000 % 2**16
            peer.send(sender.packet(codec.payload_type, bytes(77 + n)), stream)
            if n % 20 == 0:
                await asyncio.sleep(0.005)
        await wait_for_count(lambda: stream.packets_received == 200)
        assert stream.receive_state_size() < 160
    finally:
        media.close()
        await asyncio.sleep(0)


async def test_event_timestamp_jumps_keep_state_bounded(
    engine: MediaEngine, new_peer: PeerFactory
) -> None:
    peer = await new_peer()
    stream = await started(engine, peer)
    sender = RtpSender()
    for n in range(300):
        event = build_event(n % 16, end=True, duration=160)
        peer.send(sender.packet(EVENT_PT, event, True, (n * 2**31 + n) % 2**32), stream)
        if n % 20 == 0:
            await asyncio.sleep(0.005)  # stay within the socket's receive buffer
    await wait_for_count(lambda: stream.packets_received == 300)
    assert stream.digits_received == 300
    assert stream.receive_state_size() <= 8 + 32  # remembered timestamps + the digit queue


@pytest.mark.parametrize("codec", [PCMU, PCMA])
async def test_inband_tones_from_our_encoder_are_detected(
    engine: MediaEngine, new_peer: PeerFactory, codec: Codec
) -> None:
    peer = await new_peer()
    stream = await started(engine, peer, codec=codec, event_pt=None)
    sender = RtpSender()
    gap = np.zeros(480, dtype=np.int16)
    audio = encode(np.concatenate([dual_tone("5"), gap, dual_tone("A"), gap]), codec.law)
    for start in range(0, len(audio), 160):
        peer.send(sender.packet(codec.payload_type, audio[start : start + 160]), stream)
        sender.advance()
    assert await stream.receive_digit(GUARD) == "5"
    assert await stream.receive_digit(GUARD) == "A"


async def test_inband_listening_stops_once_the_peer_sends_events(
    new_peer: PeerFactory,
) -> None:
    media = MediaEngine(HOST, PORTS, inband_dtmf=True)
    try:
        peer = await new_peer()
        stream = await started(media, peer)
        sender = RtpSender()
        for packet in event_packets("2", sender, 10):
            peer.send(packet, stream)
        tone = encode(dual_tone("2"), Law.ULAW)
        for start in range(0, len(tone), 160):
            peer.send(sender.packet(0, tone[start : start + 160]), stream)
        await wait_for_count(lambda: stream.packets_received == 12)
        assert stream.digits_received == 1
    finally:
        media.close()
        await asyncio.sleep(0)


# -- barge-in and closing ------------------------------------------------------------------------


async def test_a_digit_from_rtp_barges_in(engine: MediaEngine, new_peer: PeerFactory) -> None:
    peer = await new_peer()
    stream = await started(engine, peer)
    playing = asyncio.create_task(stream.play(b"\x00" * 160 * 500))  # 10 s
    await collect_until_marker(peer)
    for packet in event_packets("4", RtpSender(), 99):
        peer.send(packet, stream)
    assert await asyncio.wait_for(playing, GUARD) is False
    assert await stream.receive_digit(GUARD) == "4"
    silence_after = await peer.packets(3)
    assert all(p.payload == b"\xff" * 160 for p in silence_after[-2:])


async def test_an_info_digit_barges_in(engine: MediaEngine, new_peer: PeerFactory) -> None:
    peer = await new_peer()
    stream = await started(engine, peer)
    playing = asyncio.create_task(stream.play(b"\x00" * 160 * 500))
    await collect_until_marker(peer)
    stream.push_digit("b")
    assert await asyncio.wait_for(playing, GUARD) is False
    assert await stream.receive_digit(0) == "B"


async def test_without_barge_in_the_prompt_plays_out(
    engine: MediaEngine, new_peer: PeerFactory
) -> None:
    peer = await new_peer()
    stream = await started(engine, peer)
    playing = asyncio.create_task(stream.play(b"\x00" * 160 * 10, barge_in=False))
    await collect_until_marker(peer)
    stream.push_digit("1")
    assert await asyncio.wait_for(playing, GUARD) is True
    assert await stream.receive_digit(0) == "1"


async def test_stop_and_close_end_playback(engine: MediaEngine, new_peer: PeerFactory) -> None:
    peer = await new_peer()
    stream = await started(engine, peer)
    playing = asyncio.create_task(stream.play(b"\x00" * 160 * 500))
    await collect_until_marker(peer)
    stream.stop_playback()
    assert await asyncio.wait_for(playing, GUARD) is False
    playing = asyncio.create_task(stream.play(b"\x00" * 160 * 500))
    waiting = asyncio.create_task(stream.receive_digit(60))
    await collect_until_marker(peer)
    stream.close()
    assert await asyncio.wait_for(playing, GUARD) is False
    assert await asyncio.wait_for(waiting, GUARD) is None
    assert await stream.play(b"\x00") is False
    assert engine.stats().streams == 0


async def test_the_digit_queue_is_bounded(engine: MediaEngine, new_peer: PeerFactory) -> None:
    peer = await new_peer()
    stream = await started(engine, peer)
    for n in range(100):
        stream.push_digit("0123456789"[n % 10])
    digits = [await stream.receive_digit(0) for _ in range(33)]
    assert digits[0] == "8"  # the oldest 68 were dropped
    assert digits[-1] is None


async def test_using_a_stream_before_start_is_an_error(engine: MediaEngine) -> None:
    stream = await engine.open_stream()
    with pytest.raises(MediaError):
        await stream.play(b"\xff")
    with pytest.raises(MediaError):
        stream.update(params((HOST, 9)))


async def wait_for_count(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(GUARD):
        while not condition():  # noqa: ASYNC110 - counters have no event to wait on
            await asyncio.sleep(0.01)
