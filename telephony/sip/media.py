"""RTP media for every call, paced from one asyncio timer.

`MediaEngine` owns the clock: every 20 ms on an absolute schedule (t0 + k * 20 ms of the loop's
clock, never accumulating drift) it asks each started stream for its next packet. A stream
always has one: a frame of the playing prompt, a packet of the DTMF digit being sent, or
silence, so the peer gets 50 packets/s from the answer on. A prompt is never copied per call:
each tick slices its next 160-byte frame from the one shared bytes object; sending a packet is
that slice, one header pack, one concatenation and one `sendto` on the stream's own
non-blocking socket.

Receiving is symmetric RTP: only packets from the agreed remote address count. Digits arrive as
RFC 4733 events, from SIP INFO (`push_digit`), or in-band (Goertzel on decoded audio, when the
peer has no telephone-event or the engine is told to listen). Whatever arrives, a stream keeps a
few timestamps, a partial 20 ms block and a bounded digit queue: nothing grows with the call.
"""

import asyncio
import errno
import logging
import socket
from collections import deque
from dataclasses import dataclass

from audio.g711 import Law, decode, encode, silence
from telephony.sip.codecs import PTIME_MS, SAMPLES_PER_FRAME, MediaParams
from telephony.sip.dtmf import (
    EventReceiver,
    EventSender,
    InbandDetector,
    dual_tone,
    parse_event,
    validate_digit,
)
from telephony.sip.errors import CallError
from telephony.sip.rtp import HEADER_SIZE, MAX_PAYLOAD, RtpPacket, RtpSender, parse_rtp

log = logging.getLogger(__name__)

PERIOD = PTIME_MS / 1000
MAX_CATCH_UP = 5  # frames sent in one tick when the loop was late; older ones are skipped
MAX_QUEUED_DIGITS = 32
INBAND_GAP_FRAMES = 3  # silence after an in-band digit, so the next one is heard apart
_PLAIN_RTP = 0x80  # first byte of RTP v2 without padding, extension or CSRC
_LONGEST_PLAIN = HEADER_SIZE + MAX_PAYLOAD


class MediaError(CallError):
    """RTP could not be set up: no free port, the engine closed, a stream used before start."""


@dataclass(frozen=True)
class MediaStats:
    streams: int
    packets_sent: int
    packets_received: int
    packets_dropped: int  # wrong source, malformed, unexpected payload type, failed sends
    late_ticks: int  # ticks that found at least one 20 ms period missed
    skipped_frames: int  # missed beyond the catch-up limit: the clock jumped, nothing was sent


class _Frames:
    """G.711 audio as 160-byte frames without copying it: frame `i` is sliced from the one
    shared bytes object when it goes out, and only the last, short frame is padded.

    A prompt played on a thousand calls is one bytes object in memory, not a thousand lists of
    frames; a frame costs one 160-byte slice per tick, which the packet concatenation drops.
    """

    __slots__ = ("_audio", "_count", "_fill")

    def __init__(self, audio: bytes, fill: int) -> None:
        self._audio = audio if type(audio) is bytes else bytes(audio)
        self._fill = fill
        self._count = -(-len(audio) // SAMPLES_PER_FRAME)

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> bytes:
        start = index * SAMPLES_PER_FRAME
        frame = self._audio[start : start + SAMPLES_PER_FRAME]
        short = SAMPLES_PER_FRAME - len(frame)
        if short:
            frame += bytes((self._fill,)) * short
        return frame

    def rest(self, index: int) -> bytes:
        """The audio from frame `index` on."""
        return self._audio[index * SAMPLES_PER_FRAME :]


def _transcode(frames: _Frames, index: int, old: Law, new: Law) -> _Frames:
    return _Frames(encode(decode(frames.rest(index), old), new), silence(new))


def _settle(future: "asyncio.Future[bool]", result: bool) -> None:
    if not future.done():
        future.set_result(result)


class _Queued:
    """Frames waiting to go out one per tick: a prompt or one DTMF digit."""

    __slots__ = ("barge_in", "done", "frames", "index", "payload_type", "timestamp")

    def __init__(
        self,
        frames: _Frames | list[bytes],
        done: "asyncio.Future[bool]",
        *,
        payload_type: int | None = None,
        barge_in: bool = False,
    ) -> None:
        self.frames = frames
        self.index = 0
        self.done = done
        self.payload_type = payload_type  # RFC 4733 events; None: audio in the stream's codec
        self.barge_in = barge_in
        self.timestamp: int | None = None  # an event's, fixed when its first packet goes out

    def take(self) -> bytes:
        frame = self.frames[self.index]
        self.index += 1
        if self.index == len(self.frames):
            _settle(self.done, True)
        return frame

    @property
    def finished(self) -> bool:
        return self.index >= len(self.frames)

    def relaw(self, old: Law, new: Law) -> None:
        if isinstance(self.frames, _Frames) and not self.finished:
            self.frames = _transcode(self.frames, self.index, old, new)
            self.index = 0


class _RtpProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.stream: RtpStream | None = None

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if self.stream is not None:
            self.stream._datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("RTP socket error: %s", exc)


class RtpStream:
    """One call's audio: a UDP socket on an even port, its sender state and its receive state."""

    def __init__(
        self,
        engine: "MediaEngine",
        transport: asyncio.DatagramTransport,
        sock: socket.socket,
        local_port: int,
        inband_dtmf: bool,
    ) -> None:
        self.local_port = local_port
        self.closed = False
        self.packets_sent = 0
        self.packets_received = 0
        self.dropped_wrong_source = 0
        self.dropped_malformed = 0
        self.dropped_unexpected_payload = 0
        self.send_errors = 0
        self.digits_received = 0
        self._engine = engine
        self._transport = transport
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._params: MediaParams | None = None
        self._sender = RtpSender()
        self._silence = b""
        self._marker = True
        self._playback: _Queued | None = None
        self._bursts: deque[_Queued] = deque()
        self._digits: deque[str] = deque(maxlen=MAX_QUEUED_DIGITS)
        self._digit_ready = asyncio.Event()
        self._events = EventReceiver()
        self._event_ssrc: int | None = None
        self._inband_forced = inband_dtmf
        self._detector: InbandDetector | None = None

    @property
    def params(self) -> MediaParams | None:
        return self._params

    @property
    def playing(self) -> bool:
        return self._playback is not None

    @property
    def ssrc(self) -> int:
        return self._sender.ssrc

    @property
    def packets_dropped(self) -> int:
        return (
            self.dropped_wrong_source
            + self.dropped_malformed
            + self.dropped_unexpected_payload
            + self.send_errors
        )

    def receive_state_size(self) -> int:
        """Items held for receiving (timestamps, buffered samples, digits); bounded by design."""
        detector = 0 if self._detector is None else self._detector.pending_samples
        return len(self._events) + detector + len(self._digits)

    # -- control ------------------------------------------------------------------------------

    def start(self, params: MediaParams) -> None:
        """Begin sending to `params.remote` (silence until a prompt plays) and accept its RTP."""
        if self.closed:
            raise MediaError(f"RTP stream on port {self.local_port} is closed")
        self._apply(params)
        self._engine._activate(self)

    def update(self, params: MediaParams) -> None:
        """A new offer/answer (re-INVITE, UPDATE): same SSRC, sequence and clock carry on."""
        if self._params is None:
            raise MediaError("update() before start()")
        if not self.closed:
            self._apply(params)

    def _apply(self, params: MediaParams) -> None:
        old, self._params = self._params, params
        law = params.codec.law
        self._silence = bytes((silence(law),)) * SAMPLES_PER_FRAME
        if old is not None and old.codec.law != law:
            for queued in (self._playback, *self._bursts):
                if queued is not None:
                    queued.relaw(old.codec.law, law)
        listen = self._inband_forced or params.telephone_event_pt is None
        if not listen:
            self._detector = None
        elif self._detector is None:
            self._detector = InbandDetector()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.stop_playback()
        for burst in self._bursts:
            _settle(burst.done, False)
        self._bursts.clear()
        self._digit_ready.set()
        self._transport.close()
        self._engine._forget(self)

    # -- prompts and digits -------------------------------------------------------------------

    async def play(self, audio: bytes, *, barge_in: bool = True) -> bool:
        """Send G.711 `audio` (in the agreed codec's law); True when every frame went out.

        False when it was cut short: a digit arrived (with `barge_in`), `stop_playback`, another
        `play`, or `close`. While the call is on hold (not sending) the prompt waits.
        """
        if self.closed:
            return False
        params = self._started()
        self.stop_playback()
        frames = _Frames(audio, silence(params.codec.law))
        if not frames:
            return True
        playback = _Queued(frames, self._loop.create_future(), barge_in=barge_in)
        self._playback = playback
        self._marker = True
        try:
            return await playback.done
        finally:
            if self._playback is playback:
                self._playback = None

    def stop_playback(self) -> None:
        playback, self._playback = self._playback, None
        if playback is not None:
            _settle(playback.done, False)

    async def send_digit(self, digit: str, duration_ms: int = 100) -> None:
        """Send one digit as RFC 4733 events, or as an in-band tone when the peer has none.

        Prompt frames pause while it goes out; returns when its last packet was sent.
        """
        key = validate_digit(digit)
        if self.closed:
            return
        params = self._started()
        done = self._loop.create_future()
        if params.telephone_event_pt is not None:
            payloads = EventSender(key, duration_ms).payloads()
            burst = _Queued(payloads, done, payload_type=params.telephone_event_pt)
        else:
            law = params.codec.law
            tone = encode(dual_tone(key, duration_ms), law)
            tone += bytes((silence(law),)) * (-len(tone) % SAMPLES_PER_FRAME)
            burst = _Queued(_Frames(tone + self._silence * INBAND_GAP_FRAMES, silence(law)), done)
        self._bursts.append(burst)
        await done

    def push_digit(self, digit: str) -> None:
        """A digit from signalling (SIP INFO): queued and barging in like one from RTP."""
        key = validate_digit(digit)
        if not self.closed:
            self._deliver(key)

    async def receive_digit(self, timeout: float) -> str | None:
        """The oldest digit not yet taken, waiting up to `timeout` s; None if none came."""
        try:
            async with asyncio.timeout(timeout):
                while not self._digits and not self.closed:
                    self._digit_ready.clear()
                    await self._digit_ready.wait()
        except TimeoutError:
            return None
        return self._digits.popleft() if self._digits else None

    def _started(self) -> MediaParams:
        if self._params is None:
            raise MediaError(f"RTP stream on port {self.local_port} not started")
        return self._params

    def _deliver(self, digit: str) -> None:
        self.digits_received += 1
        self._digits.append(digit)
        self._digit_ready.set()
        if self._playback is not None and self._playback.barge_in:
            self.stop_playback()

    # -- sending: called by the engine's tick -------------------------------------------------

    def _tick(self, frames: int, skipped: int) -> None:
        for _ in range(frames):
            self._send_next()
        if skipped:
            self._sender.advance(skipped * SAMPLES_PER_FRAME)

    def _send_next(self) -> None:
        """One packet (unless on hold) and one frame on the media clock: the hot path."""
        params = self._params
        sender = self._sender
        if params is not None and params.sending:
            if self._bursts:
                packet = self._burst_packet(params.codec.payload_type)
            else:
                playback = self._playback
                payload = self._silence if playback is None else self._prompt_frame(playback)
                marker, self._marker = self._marker, False
                packet = sender.packet(params.codec.payload_type, payload, marker)
            try:
                self._sock.sendto(packet, params.remote)
            except OSError:
                self.send_errors += 1
            else:
                self.packets_sent += 1
        sender.advance()

    def _prompt_frame(self, playback: _Queued) -> bytes:
        frame = playback.take()
        if playback.finished:
            self._playback = None
        return frame

    def _burst_packet(self, audio_payload_type: int) -> bytes:
        burst = self._bursts[0]
        first = burst.index == 0
        payload = burst.take()
        if burst.payload_type is None:
            packet = self._sender.packet(audio_payload_type, payload, first)
        else:
            if first:
                burst.timestamp = self._sender.timestamp
            packet = self._sender.packet(burst.payload_type, payload, first, burst.timestamp)
        if burst.finished:
            self._bursts.popleft()
            self._marker = True  # audio resumes: a new talkspurt
        return packet

    # -- receiving ----------------------------------------------------------------------------

    def _datagram(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            self._receive(data, addr)
        except Exception:
            self.dropped_malformed += 1
            log.exception("RTP packet on port %d not handled", self.local_port)

    def _receive(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        params = self._params
        if params is None or self.closed or addr[:2] != params.remote:
            self.dropped_wrong_source += 1
            return
        if (
            self._detector is None
            and HEADER_SIZE <= len(data) <= _LONGEST_PLAIN
            and data[0] == _PLAIN_RTP
            and data[1] & 0x7F == params.codec.payload_type
        ):
            self.packets_received += 1  # well-formed audio no one listens to: nothing to parse
            return
        packet = parse_rtp(data)
        if packet is None:
            self.dropped_malformed += 1
            return
        self.packets_received += 1
        if packet.payload_type == params.telephone_event_pt:
            self._on_event(packet)
        elif packet.payload_type == params.codec.payload_type:
            if self._detector is not None:
                self._on_audio(packet.payload, params.codec.law, self._detector)
        else:
            self.dropped_unexpected_payload += 1

    def _on_event(self, packet: RtpPacket) -> None:
        event = parse_event(packet.payload)
        if event is None:
            self.dropped_malformed += 1
            return
        if packet.ssrc != self._event_ssrc:
            self._event_ssrc = packet.ssrc
            self._events.reset()
        self._detector = None  # the peer sends events: in-band would hear its digits twice
        digit = self._events.feed(packet.timestamp, event)
        if digit is not None:
            self._deliver(digit)

    def _on_audio(self, payload: bytes, law: Law, detector: InbandDetector) -> None:
        for digit in detector.feed(decode(payload, law)):
            self._deliver(digit)


class MediaEngine:
    """Every RTP stream of the process, on even ports of `port_range` (inclusive), one clock.

    `inband_dtmf=True` listens for in-band digits even when the peer agreed to telephone-event
    (until it actually sends one); without it, only peers without telephone-event are listened
    to in-band.
    """

    def __init__(
        self, host: str, port_range: tuple[int, int], *, inband_dtmf: bool = False
    ) -> None:
        low, high = port_range
        if not 0 < low < high <= 65535:
            raise ValueError(f"bad RTP port range {low}-{high}")
        self.host = host
        self.port_range = port_range
        self.inband_dtmf = inband_dtmf
        self._ports = range(low + low % 2, high, 2)  # even, with port + 1 left for RTCP
        self._cursor = 0
        self._family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._streams: dict[int, RtpStream] = {}
        self._active: dict[int, RtpStream] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._t0 = 0.0
        self._next_tick = 0
        self._closed = False
        self._late_ticks = 0
        self._skipped_frames = 0
        self._gone = [0, 0, 0]  # sent, received, dropped by streams already closed

    async def open_stream(self) -> RtpStream:
        """A stream bound to a free even port; MediaError when the range is exhausted."""
        if self._closed:
            raise MediaError("media engine is closed")
        self._loop = asyncio.get_running_loop()
        sock, port = self._bind()
        protocol = _RtpProtocol()
        try:
            transport, _ = await self._loop.create_datagram_endpoint(lambda: protocol, sock=sock)
        except BaseException:
            sock.close()
            raise
        stream = RtpStream(self, transport, sock, port, self.inband_dtmf)
        protocol.stream = stream
        self._streams[port] = stream
        return stream

    def _bind(self) -> tuple[socket.socket, int]:
        for _ in range(len(self._ports)):
            port = self._ports[self._cursor]
            self._cursor = (self._cursor + 1) % len(self._ports)
            if port not in self._streams:
                sock = self._try_bind(port)
                if sock is not None:
                    return sock, port
        low, high = self.port_range
        raise MediaError(f"no free even RTP port in {low}-{high} on {self.host}")

    def _try_bind(self, port: int) -> socket.socket | None:
        """A non-blocking socket bound to `port`; None when something else holds the port."""
        try:
            sock = socket.socket(self._family, socket.SOCK_DGRAM)
        except OSError as exc:
            raise MediaError(f"cannot open an RTP socket (file descriptor limit?): {exc}") from exc
        try:
            sock.bind((self.host, port))
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return None
            raise MediaError(f"cannot bind RTP to {self.host}:{port}: {exc}") from exc
        sock.setblocking(False)
        return sock

    def close(self) -> None:
        self._closed = True
        for stream in list(self._streams.values()):
            stream.close()
        self._stop_clock()

    def stats(self) -> MediaStats:
        streams = self._streams.values()
        sent, received, dropped = self._gone
        return MediaStats(
            streams=len(self._streams),
            packets_sent=sent + sum(s.packets_sent for s in streams),
            packets_received=received + sum(s.packets_received for s in streams),
            packets_dropped=dropped + sum(s.packets_dropped for s in streams),
            late_ticks=self._late_ticks,
            skipped_frames=self._skipped_frames,
        )

    # -- streams report here ------------------------------------------------------------------

    def _activate(self, stream: RtpStream) -> None:
        self._active[stream.local_port] = stream
        if self._timer is None and self._loop is not None:
            self._t0 = self._loop.time()
            self._next_tick = 1
            self._timer = self._loop.call_at(self._t0 + PERIOD, self._on_tick)

    def _forget(self, stream: RtpStream) -> None:
        self._streams.pop(stream.local_port, None)
        self._active.pop(stream.local_port, None)
        self._gone[0] += stream.packets_sent
        self._gone[1] += stream.packets_received
        self._gone[2] += stream.packets_dropped
        if not self._active:
            self._stop_clock()

    # -- the clock ----------------------------------------------------------------------------

    def _stop_clock(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_tick(self) -> None:
        """Tick `k` runs at t0 + k * PERIOD; a late one sends the frames it missed as well."""
        assert self._loop is not None
        due = max(self._next_tick, int((self._loop.time() - self._t0) / PERIOD))
        missed = due - self._next_tick + 1
        frames = min(missed, MAX_CATCH_UP)
        if missed > 1:
            self._late_ticks += 1
            self._skipped_frames += missed - frames
        self._next_tick = due + 1
        self._timer = self._loop.call_at(self._t0 + self._next_tick * PERIOD, self._on_tick)
        for stream in list(self._active.values()):
            try:
                stream._tick(frames, missed - frames)
            except Exception:
                log.exception("RTP stream on port %d failed; closing it", stream.local_port)
                stream.close()
