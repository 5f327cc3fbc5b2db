"""Acceptance 10: hostile input while real calls are up.

ringback's user agent calls sipp (directly, no registrar); while the call is up a raw socket on
loopback throws at it: RTP with timestamp jumps, from a wrong source, telephone-event codes of
16 and up, garbage, 64 KiB and truncated datagrams, and malformed, truncated and oversized SIP.
All of it must be ignored (counted as dropped) or answered with an error status; afterwards the
call still works and hangs up cleanly, a new call succeeds, no task or callback died, memory
stays flat over a flood, and other calls never notice.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import re
import socket
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from lab.ports import PortBlock
from lab.process import eventually, wait_true
from lab.sipp import EXIT_ALL_OK, Sipp
from telephony.outcomes import Outcome
from telephony.sip.call import Call, EndReason
from telephony.sip.config import EngineConfig, SipAccount
from telephony.sip.dtmf import build_event
from telephony.sip.rtp import build_rtp
from telephony.sip.transaction import TimerConfig
from telephony.sip.ua import SipUserAgent
from tests.conftest import SippFactory

pytestmark = pytest.mark.peers

FAST_TIMERS = TimerConfig(t1=0.1, t2=0.4, t4=0.5)
HOST = "127.0.0.1"
MAX_UDP = 65507  # the largest UDP payload over IPv4: "64 KiB"
FLOOD = 5000
MEMORY_BOUND = 256_000  # bytes the engine may keep after the flood; it keeps a few KB
EVENT_PT = 101


# --- harness ---------------------------------------------------------------------------------


class LoopErrors:
    """Everything the event loop reports to its exception handler (a task or callback died)."""

    def __init__(self) -> None:
        self.contexts: list[dict[str, Any]] = []

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.contexts.append(context)
        loop.default_exception_handler(context)

    def check(self) -> None:
        gc.collect()  # "Task exception was never retrieved" is reported when a task is freed
        assert not self.contexts, [c.get("message") for c in self.contexts]


@pytest.fixture
async def loop_errors() -> AsyncIterator[LoopErrors]:
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    errors = LoopErrors()
    loop.set_exception_handler(errors)
    try:
        yield errors
        errors.check()
    finally:
        loop.set_exception_handler(previous)



@pytest.fixture
def attacker() -> Iterator[socket.socket]:
    """A raw UDP socket on loopback, somewhere no call agreed to hear from."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # A flood draws a 400 for every malformed request: room for them, so no answer is lost.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024 * 1024)
    sock.bind((HOST, 0))
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


@asynccontextmanager
async def user_agent(
    ports: PortBlock, *, inband_dtmf: bool = False
) -> AsyncIterator[SipUserAgent]:
    config = EngineConfig(sip_port=0, rtp_ports=(ports[0], ports.last), timers=FAST_TIMERS)
    ua = SipUserAgent(SipAccount(user="ringback"), config, inband_dtmf=inband_dtmf)
    await ua.start()
    try:
        yield ua
    finally:
        await ua.stop()


async def place_call(ua: SipUserAgent, callee: Sipp, user: str = "echo") -> Call:
    result = await ua.call(f"sip:{user}@{HOST}:{callee.port}", ring_timeout=10)
    assert result.outcome is Outcome.ANSWERED, result
    assert result.call is not None
    return result.call


async def hearing_echo(call: Call, more: int = 25) -> None:
    """The far end's echo keeps arriving: `more` packets beyond what arrived so far."""
    start = call.stream.packets_received
    await wait_true(lambda: call.stream.packets_received >= start + more, 10, "echoed RTP")


async def send_all(sock: socket.socket, datagrams: list[bytes], port: int) -> None:
    """Send each datagram to HOST:port, yielding to the loop in between so that the engine
    reads them as they come (a flood, but not one the kernel drops before we look at it)."""
    for data in datagrams:
        sock.sendto(data, (HOST, port))
        await asyncio.sleep(0)


def receive_all(sock: socket.socket) -> list[bytes]:
    out: list[bytes] = []
    while True:
        try:
            out.append(sock.recv(MAX_UDP))
        except BlockingIOError:
            return out


async def hang_up_cleanly(calls: list[Call], callee: Sipp) -> None:
    for call in calls:
        await call.hangup()
        assert call.end_reason is EndReason.LOCAL_HANGUP
    assert await asyncio.to_thread(callee.wait, 20.0) == EXIT_ALL_OK, callee.describe()
    assert len(callee.received("BYE")) >= len(calls), callee.describe()
    assert len(callee.sent(status=200, method="BYE")) >= len(calls), callee.describe()


# --- hostile RTP -----------------------------------------------------------------------------


def rtp(pt: int, seq: int, ts: int, payload: bytes, *, ssrc: int = 0x0BADF00D,
        marker: bool = False) -> bytes:  # fmt: skip
    return build_rtp(pt, marker, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, payload)


def timestamp_jumps(rng: random.Random) -> list[bytes]:
    stamps = [0, 2**31, 2**32 - 1, 1, 2**16, 2**32 - 160, 12345678, 0, 2**31 + 7]
    stamps += [rng.randrange(2**32) for _ in range(20)]
    seqs = [0, 65535, 1, 40000, 7, 65534] + [rng.randrange(2**16) for _ in range(23)]
    return [
        rtp(0, seq, ts, rng.randbytes(160), marker=i % 3 == 0)
        for i, (seq, ts) in enumerate(zip(seqs, stamps, strict=True))
    ]


def high_events(rng: random.Random) -> list[bytes]:
    """telephone-event codes 16..255 (not keys), each at a new timestamp, some ended."""
    return [
        rtp(EVENT_PT, 1000 + code, rng.randrange(2**32),
            build_event(code, end=code % 2 == 0, duration=rng.randrange(1, 65536)), marker=True)
        for code in range(16, 256)
    ]  # fmt: skip


def key_events() -> list[bytes]:
    """Real key presses (codes 0..15): digits, if they came from the agreed source."""
    return [
        rtp(EVENT_PT, 3000 + code, 500_000 + 1000 * code, build_event(code, end=True,
                                                                     duration=800))
        for code in range(16)
    ]


def malformed_rtp(rng: random.Random) -> list[bytes]:
    header = rtp(0, 1, 2, b"")
    out = [header[:n] for n in range(12)]  # truncated headers, the empty datagram included
    out += [bytes([version << 6]) + header[1:] + rng.randbytes(160) for version in (0, 1, 3)]
    out.append(bytes([0xA0]) + header[1:] + rng.randbytes(20) + b"\x00")  # padding count 0
    out.append(bytes([0xA0]) + header[1:] + rng.randbytes(20) + b"\xff")  # padding > payload
    out.append(bytes([0x90]) + header[1:] + b"\x00\x01")  # extension header cut short
    out.append(bytes([0x90]) + header[1:] + b"\xbe\xde\xff\xff" + rng.randbytes(40))
    out.append(bytes([0x8F]) + header[1:] + rng.randbytes(20))  # 15 CSRCs announced, 5 there
    out.append(rtp(0, 9, 9, rng.randbytes(1501)))  # payload over the limit
    out += [rtp(EVENT_PT, 50 + n, 77_000 + n, rng.randbytes(n)) for n in range(4)]  # short
    return out


def garbage(rng: random.Random) -> list[bytes]:
    out = [rng.randbytes(rng.randrange(1, 1400)) for _ in range(40)]
    out += [b"\x00" * 172, b"\xff" * 172, b"\r\n\r\n", b"INVITE sip:x SIP/2.0\r\n\r\n"]
    out += [rng.randbytes(MAX_UDP), rtp(0, 5, 5, rng.randbytes(MAX_UDP - 12))]  # 64 KiB
    return out


def unexpected_payload_types(rng: random.Random) -> list[bytes]:
    return [rtp(pt, 200 + pt, 3000 * pt, rng.randbytes(160)) for pt in (8, 13, 96, 100, 127)]


async def test_hostile_rtp_from_a_wrong_source_is_ignored(
    sipp: SippFactory, rtp_ports: PortBlock, attacker: socket.socket, loop_errors: LoopErrors
) -> None:
    rng = random.Random(10)
    callee = sipp("uas_echo", service="echo", rtp_echo=True, calls=2, start=True)
    async with user_agent(rtp_ports) as ua:
        call = await place_call(ua, callee)
        stream = call.stream
        await hearing_echo(call)
        state = stream.receive_state_size()
        before = (stream.dropped_malformed, stream.dropped_unexpected_payload,
                  stream.digits_received)  # fmt: skip
        datagrams = [
            *timestamp_jumps(rng), *high_events(rng), *key_events(), *malformed_rtp(rng),
            *garbage(rng), *unexpected_payload_types(rng),
        ]
        wrong = stream.dropped_wrong_source
        await send_all(attacker, datagrams, stream.local_port)
        await wait_true(lambda: stream.dropped_wrong_source >= wrong + len(datagrams), 10,
                       "every hostile datagram to be looked at")  # fmt: skip
        assert stream.dropped_wrong_source == wrong + len(datagrams)
        assert await call.receive_digit(0.5) is None  # sixteen key presses, none of them ours
        after = (stream.dropped_malformed, stream.dropped_unexpected_payload,
                 stream.digits_received)  # fmt: skip
        assert after == before
        assert stream.receive_state_size() == state
        # The call is unharmed: the echo still comes back, a second call works, BYEs are 200ed.
        await hearing_echo(call)
        second = await place_call(ua, callee)
        await hearing_echo(second)
        await hang_up_cleanly([call, second], callee)


@pytest.mark.parametrize("inband_dtmf", [False, True], ids=["events", "inband-too"])
async def test_hostile_rtp_from_the_agreed_source_is_ignored(
    sipp: SippFactory, rtp_ports: PortBlock, loop_errors: LoopErrors, inband_dtmf: bool
) -> None:
    """The far end's own address sends the junk: it gets past the source check, so parsing,
    event decoding and in-band detection must each hold up."""
    rng = random.Random(11)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as far:
        far.bind((HOST, 0))
        far.setblocking(False)
        media_port = far.getsockname()[1]
        callee = sipp("uas_answer_media_at", service="far", calls=1,
                      template={"MEDIA_PORT": str(media_port)}, start=True)  # fmt: skip
        async with user_agent(rtp_ports, inband_dtmf=inband_dtmf) as ua:
            call = await place_call(ua, callee, "far")
            stream = call.stream
            assert call.media is not None and call.media.remote == (HOST, media_port)
            await wait_true(lambda: bool(receive_all(far)), 5, "our RTP at the far end")
            wrong = stream.dropped_wrong_source
            malformed = [*malformed_rtp(rng), rng.randbytes(MAX_UDP)]
            unexpected = unexpected_payload_types(rng)
            accepted = timestamp_jumps(rng) + high_events(rng)
            received = stream.packets_received
            await send_all(far, malformed + unexpected + accepted, stream.local_port)
            # A real key press last: once it is heard, everything before it was handled.
            press = [rtp(EVENT_PT, 9000 + n, 4_000_000, build_event(4, end=n >= 2,
                                                                    duration=160 * (n + 1)),
                         ssrc=0xFEED, marker=n == 0) for n in range(5)]  # fmt: skip
            await send_all(far, press, stream.local_port)
            assert await call.receive_digit(10) == "4"
            assert await call.receive_digit(0.5) is None
            assert stream.digits_received == 1  # the junk gave no digit; the press gave one
            assert stream.dropped_wrong_source == wrong
            assert stream.dropped_unexpected_payload >= len(unexpected)
            assert stream.dropped_malformed >= len(malformed) - 4  # short events count here too
            assert stream.packets_received >= received + len(accepted) + len(press)
            # Bounded: a few event timestamps and less than one 20 ms block of samples.
            assert stream.receive_state_size() <= 8 + 160
            await hang_up_cleanly([call], callee)


# --- hostile SIP -----------------------------------------------------------------------------


def sip(lines: list[str], body: bytes = b"", *, length: int | None = None) -> bytes:
    head = list(lines)
    if length is not None or body:
        head.append(f"Content-Length: {len(body) if length is None else length}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


SDP = (
    b"v=0\r\no=evil 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
)


class Hostile:
    """Requests from the attacker's socket; each Call-ID says what answer it may get."""

    def __init__(self, attacker_port: int, ua_port: int) -> None:
        self.src = attacker_port
        self.dst = ua_port
        self.n = 0

    def request(
        self, method: str, call_id: str, *, skip: tuple[str, ...] = (),
        extra: tuple[str, ...] = (), cseq: str | None = None, to_tag: str | None = None,
        uri: str | None = None,
    ) -> list[str]:  # fmt: skip
        self.n += 1
        to = f"<sip:ringback@{HOST}:{self.dst}>" + (f";tag={to_tag}" if to_tag else "")
        fields = {
            "Via": f"SIP/2.0/UDP {HOST}:{self.src};branch=z9hG4bK-hostile-{self.n};rport",
            "Max-Forwards": "70",
            "From": f'"evil" <sip:evil@{HOST}:{self.src}>;tag=evil{self.n}',
            "To": to,
            "Call-ID": call_id,
            "CSeq": f"1 {method}" if cseq is None else cseq,
            "Contact": f"<sip:evil@{HOST}:{self.src}>",
        }
        lines = [f"{method} {uri or f'sip:ringback@{HOST}:{self.dst}'} SIP/2.0"]
        lines += [f"{name}: {value}" for name, value in fields.items() if name not in skip]
        return lines + list(extra)

    def malformed(self, rng: random.Random, real_invite: bytes) -> list[bytes]:
        """Datagrams that are not SIP we can read: their Call-IDs start with "bad-"."""
        out: list[bytes] = []
        # Every truncation of a real INVITE (ours, as sent to sipp), and of one of these.
        invite = sip(self.request("INVITE", "bad-truncated"), SDP)
        for whole in (real_invite, invite):
            out += [whole[:k] for k in range(1, len(whole)) if whole[:k].strip()]
        # Each mandatory header missing in turn.
        for name in ("Via", "From", "To", "Call-ID", "CSeq"):
            out.append(sip(self.request("INVITE", f"bad-no-{name}", skip=(name,)), SDP))
        # Bad CSeq, Content-Length, start lines, header syntax, Via, From/To.
        for cseq in ("abc INVITE", "1", "1 BYE", "-1 INVITE", "99999999999 INVITE",
                     "4294967296 INVITE", "1 INV ITE", "²³ INVITE", ""):  # fmt: skip
            out.append(sip(self.request("INVITE", "bad-cseq", cseq=cseq), SDP))
        for length in (-5, 9999, 2**40):
            out.append(sip(self.request("OPTIONS", "bad-length"), b"x", length=length))
        out.append(sip(self.request("OPTIONS", "bad-length", extra=("Content-Length: abc",))))
        for start in ("INVITE sip:x", "INVITE  SIP/2.0", "INVITE sip:x SIP/3.0", "IN VITE",
                      "SIP/2.0 999 Nope", "SIP/2.0 20 OK", "SIP/2.0", "\x00\x01 x y"):  # fmt: skip
            lines = self.request("INVITE", "bad-start")
            out.append(sip([start, *lines[1:]], SDP))
        lines = self.request("OPTIONS", "bad-header")
        out.append(sip([*lines, "No colon here"]))
        out.append(sip([*lines, "Bad Name: x"]))
        out.append(sip([lines[0], "Via: SMTP/2.0 nowhere", *lines[2:]]))
        out.append(sip([lines[0], "Via: SIP/2.0/UDP", *lines[2:]]))
        out.append(sip([*(x for x in lines if not x.startswith("From")), "From: <<<>>>;;"]))
        out.append(sip([*(x for x in lines if not x.startswith("To")), "To: \x7f"]))
        out.append(sip(lines).replace(b"OPTIONS", b"OPTIONS\xff\xfe", 1))  # not UTF-8
        # Oversized: a 64 KB header line, too many header fields, ~65000 bytes of junk.
        out.append(sip([*lines, "X-Big: " + "a" * 64_000]))
        out.append(sip(lines + [f"X-Many-{i}: {i}" for i in range(400)]))
        out.append(rng.randbytes(65_000))
        out.append(b"OPTIONS " + b"A" * 64_990 + b" SIP/2.0\r\n\r\n")
        out += [rng.randbytes(rng.randrange(1, 2000)) for _ in range(30)]
        return out

    def refused(self, bad_contact: str) -> list[tuple[bytes, int]]:
        """Well-formed but unacceptable requests, each with the status it must get."""
        big = b"x" * 60_000
        return [
            (sip(self.request("FOO", "refuse-method")), 501),
            (sip(self.request("SUBSCRIBE", "refuse-subscribe")), 405),
            (sip(self.request("BYE", "refuse-bye")), 481),
            (sip(self.request("INFO", "refuse-tag", to_tag="nosuchdialog")), 481),
            (sip(self.request("CANCEL", "refuse-cancel")), 481),
            (sip(self.request("OPTIONS", "refuse-require", extra=("Require: 100rel",))), 420),
            (sip(self.request("INVITE", "refuse-contact", skip=("Contact",),
                              extra=(f"Contact: {bad_contact}",)), SDP), 400),
            (sip(self.request("INVITE", "refuse-no-contact", skip=("Contact",)), SDP), 400),
            (sip([*self.request("OPTIONS", "ok-big", uri="sip:!!!"),
                  "Content-Type: text/plain"], big), 200),
        ]


def in_dialog(call: Call, hostile: Hostile, method: str, cseq: int, body: bytes,
              content_type: str, contact: str | None = None) -> bytes:  # fmt: skip
    """A request inside `call`'s dialog (as if from the far end), sent from the attacker."""
    dialog = call.dialog
    hostile.n += 1
    lines = [
        f"{method} sip:ringback@{HOST}:{hostile.dst} SIP/2.0",
        f"Via: SIP/2.0/UDP {HOST}:{hostile.src};branch=z9hG4bK-dialog-{hostile.n};rport",
        "Max-Forwards: 70",
        f"From: {dialog.remote_address}",
        f"To: {dialog.local_address}",
        f"Call-ID: {dialog.call_id}",
        f"CSeq: {cseq} {method}",
        f"Content-Type: {content_type}",
    ]
    if contact is not None:
        lines.append(f"Contact: {contact}")
    return sip(lines, body)


_STATUS = re.compile(rb"^SIP/2\.0 (\d{3})")
_CALL_ID = re.compile(rb"^Call-ID:\s*(\S+)", re.MULTILINE | re.IGNORECASE)
_CSEQ = re.compile(rb"^CSeq:\s*(\d+) (\w+)", re.MULTILINE | re.IGNORECASE)


def responses(datagrams: list[bytes]) -> list[tuple[int, str, str]]:
    """(status, Call-ID, CSeq number and method) of each response among `datagrams`."""
    out = []
    for data in datagrams:
        status, call_id, cseq = _STATUS.match(data), _CALL_ID.search(data), _CSEQ.search(data)
        if status and call_id and cseq:
            out.append((int(status.group(1)), call_id.group(1).decode(),
                        f"{cseq.group(1).decode()} {cseq.group(2).decode()}"))  # fmt: skip
    return out


async def test_malformed_sip_is_ignored_or_refused_and_the_call_survives(
    sipp: SippFactory, rtp_ports: PortBlock, attacker: socket.socket, loop_errors: LoopErrors
) -> None:
    rng = random.Random(12)
    callee = sipp("uas_echo", service="echo", rtp_echo=True, calls=2, start=True)
    wire: list[tuple[str, bytes, tuple[str, int]]] = []
    async with user_agent(rtp_ports) as ua:
        ua.endpoint.tracer = lambda direction, data, peer: wire.append((direction, data, peer))
        call = await place_call(ua, callee)
        await hearing_echo(call)
        real_invite = next(d for way, d, _ in wire if way == "out" and d.startswith(b"INVITE"))
        hostile = Hostile(attacker.getsockname()[1], ua.endpoint.port)
        mine = (HOST, hostile.src)

        malformed = hostile.malformed(rng, real_invite)
        refused = hostile.refused("<<<not a uri")
        stray = [  # responses to nothing we sent: a 2xx is ACKed and BYEd (RFC 3261 13.2.2.4)
            sip(["SIP/2.0 200 OK", *hostile.request("INVITE", "stray-2xx")[1:]], SDP),
            sip(["SIP/2.0 180 Ringing", *hostile.request("INVITE", "stray-1xx")[1:]]),
            sip(["SIP/2.0 200 OK", *hostile.request("OPTIONS", "stray-options")[1:]]),
        ]
        dialog_id = call.dialog.call_id
        tricks = [  # inside the live call, as its far end could: each is refused, none ends it
            (in_dialog(call, hostile, "INFO", 1000, b"Signal=Z\r\n", "application/dtmf-relay"),
             (415, "1000 INFO")),
            (in_dialog(call, hostile, "INFO", 999, b"Signal=5\r\n", "application/dtmf-relay"),
             (500, "999 INFO")),
            (in_dialog(call, hostile, "INVITE", 1001, b"v=0\r\ngarbage\r\n", "application/sdp"),
             (488, "1001 INVITE")),
            (in_dialog(call, hostile, "OPTIONS", 1002, b"", "text/plain"),
             (200, "1002 OPTIONS")),
        ]  # fmt: skip

        seen_before = sum(1 for way, _, peer in wire if way == "in" and peer == mine)
        everything = malformed + [d for d, _ in refused] + stray + [d for d, _ in tricks]
        await send_all(attacker, everything, ua.endpoint.port)
        await wait_true(
            lambda: sum(1 for way, _, peer in wire if way == "in" and peer == mine)
            >= seen_before + len(everything), 10, "every hostile datagram to be read",
        )  # fmt: skip

        answers: list[bytes] = []
        expected = [(call_id_of(data), status) for data, status in refused]

        def answered() -> bool:
            answers.extend(receive_all(attacker))
            got = responses(answers)
            finals = {(s, c) for s, c, _ in got if s >= 200}
            return all((status, cid) in finals for cid, status in expected) and all(
                any(s == status and c == dialog_id and q == cseq for s, c, q in got)
                for _, (status, cseq) in tricks
            )

        await eventually(answered, 10)  # the assertions below say what is missing
        got = responses(answers)
        # Nothing unreadable was answered, except possibly with 400.
        assert all(status == 400 for status, cid, _ in got if cid.startswith("bad-")), got
        # Each well-formed refusal got exactly its status (retransmissions aside).
        for call_id, status in expected:
            finals = {s for s, c, _ in got if c == call_id and s >= 200}
            assert finals == {status}, (call_id, finals)
        for _, (status, cseq) in tricks:
            finals = {s for s, c, q in got if c == dialog_id and q == cseq and s >= 200}
            assert finals == {status}, (cseq, finals)
        # The stray 2xx was acknowledged and refused with a BYE; the other strays ignored.
        await wait_true(lambda: bool(answers.extend(receive_all(attacker)))
                       or any(d.startswith(b"BYE ") and b"stray-2xx" in d for d in answers),
                       10, "the BYE for the stray 2xx")  # fmt: skip
        assert any(d.startswith(b"ACK ") and b"stray-2xx" in d for d in answers)
        assert not any(b"stray-1xx" in d or b"stray-options" in d for d in answers)
        # The hostile INVITEs rang nobody: nothing is offered to the application.
        assert await ua.next_incoming(0.5) is None

        # The live call is unharmed: still up, still hears its echo, got no digit.
        assert not call.ended.is_set()
        assert await call.receive_digit(0.2) is None
        await hearing_echo(call)
        # OPTIONS from a real peer still gets 200.
        options = sipp("uac_options", remote=f"{HOST}:{ua.endpoint.port}", service="ringback",
                       calls=1)  # fmt: skip
        assert await asyncio.to_thread(options.run, 30.0) == EXIT_ALL_OK, options.describe()
        # A second call still succeeds; both hang up cleanly and sipp 200s both BYEs.
        second = await place_call(ua, callee)
        await hearing_echo(second)
        await hang_up_cleanly([call, second], callee)


def call_id_of(data: bytes) -> str:
    match = _CALL_ID.search(data)
    assert match is not None
    return match.group(1).decode()


async def test_refused_reinvite_leaves_the_remote_target_alone(
    sipp: SippFactory, rtp_ports: PortBlock, attacker: socket.socket, loop_errors: LoopErrors
) -> None:
    """A re-INVITE we refuse (488: its SDP is junk) must not move the dialog's remote target
    to its Contact: a target refresh takes effect only when the request succeeds
    (RFC 6141 section 4). Otherwise our BYE goes wherever the refused request pointed."""
    callee = sipp("uas_echo", service="echo", rtp_echo=True, calls=1, start=True)
    async with user_agent(rtp_ports) as ua:
        call = await place_call(ua, callee)
        await hearing_echo(call)
        hostile = Hostile(attacker.getsockname()[1], ua.endpoint.port)
        reinvite = in_dialog(call, hostile, "INVITE", 1001, b"v=0\r\ngarbage\r\n",
                             "application/sdp", contact=f"<sip:evil@{HOST}:{hostile.src}>")
        target = str(call.dialog.remote_target)
        attacker.sendto(reinvite, (HOST, ua.endpoint.port))
        answers: list[bytes] = []

        def refused() -> bool:
            answers.extend(receive_all(attacker))
            return any(s == 488 for s, _, _ in responses(answers))

        await wait_true(refused, 10, "488 for the re-INVITE")
        assert str(call.dialog.remote_target) == target
        assert not call.ended.is_set()
        await hang_up_cleanly([call], callee)


# --- memory and other calls ------------------------------------------------------------------


def junk_rtp(rng: random.Random) -> list[bytes]:
    """RTP-shaped junk that yields no digit from any source: jumps, codes 16+, malformed."""
    return [*timestamp_jumps(rng), *high_events(rng)[:60], *malformed_rtp(rng),
            *unexpected_payload_types(rng)]  # fmt: skip


def junk_sip(rng: random.Random, hostile: Hostile) -> list[bytes]:
    """Unreadable SIP: truncations, broken headers, oversized and random datagrams."""
    return hostile.malformed(rng, sip(hostile.request("INVITE", "bad-flood"), SDP))


def flood_datagrams(rng: random.Random, hostile: Hostile, count: int) -> list[tuple[bytes, str]]:
    """`count` hostile datagrams, each tagged "rtp" or "sip" for where it goes."""
    rtp_kinds = [*junk_rtp(rng), *key_events()]
    sip_kinds = junk_sip(rng, hostile)
    out: list[tuple[bytes, str]] = []
    for i in range(count):
        if i % 50 == 0:
            out.append((rng.randbytes(MAX_UDP), "rtp"))
        elif i % 2:
            out.append((rng.choice(rtp_kinds), "rtp"))
        else:
            out.append((rng.choice(sip_kinds), "sip"))
    return out


async def flood(sock: socket.socket, datagrams: list[tuple[bytes, str]], rtp_port: int,
                sip_port: int) -> None:  # fmt: skip
    for data, kind in datagrams:
        sock.sendto(data, (HOST, rtp_port if kind == "rtp" else sip_port))
        await asyncio.sleep(0)


def key_press(digit_code: int, timestamp: int) -> list[bytes]:
    """One key press as a real sender puts it: updates, then the end packet three times."""
    return [
        rtp(EVENT_PT, timestamp // 160 + n, timestamp,
            build_event(digit_code, end=n >= 2, duration=160 * min(n + 1, 3)), ssrc=0xFEED,
            marker=n == 0)
        for n in range(5)
    ]  # fmt: skip


def fresh_junk(rng: random.Random, i: int) -> bytes:
    """Junk never seen before: each event or audio packet at a new timestamp."""
    kind = i % 4
    if kind == 0:
        return rtp(EVENT_PT, i, rng.randrange(2**32),
                   build_event(rng.randrange(16, 256), end=False, duration=160))  # fmt: skip
    if kind == 1:
        return rtp(0, i, rng.randrange(2**32), rng.randbytes(rng.randrange(1, 1501)))
    if kind == 2:
        return rng.randbytes(MAX_UDP) if i % 40 == 2 else rng.randbytes(rng.randrange(1, 300))
    return rtp(EVENT_PT, i, rng.randrange(2**32), rng.randbytes(rng.randrange(0, 4)))


async def test_memory_stays_flat_over_a_flood(
    sipp: SippFactory, rtp_ports: PortBlock, attacker: socket.socket, loop_errors: LoopErrors
) -> None:
    """FLOOD datagrams: a third from the far end's own address (past the source check, into
    parsing, event decoding and in-band detection), a third from a wrong source, a third of
    unreadable SIP. What the engine holds afterwards must not have grown with them."""
    rng = random.Random(13)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as far:
        far.bind((HOST, 0))
        media_port = far.getsockname()[1]
        callee = sipp("uas_answer_media_at", service="far", calls=1,
                      template={"MEDIA_PORT": str(media_port)}, start=True)  # fmt: skip
        seen = [0]
        async with user_agent(rtp_ports, inband_dtmf=True) as ua:
            mine = attacker.getsockname()

            def count(direction: str, data: bytes, peer: tuple[str, int]) -> None:
                if direction == "in" and peer == mine:
                    seen[0] += 1

            ua.endpoint.tracer = count
            call = await place_call(ua, callee, "far")
            stream = call.stream
            hostile = Hostile(mine[1], ua.endpoint.port)
            rtp_junk, sip_junk = junk_rtp(rng), junk_sip(rng, hostile)
            kinds = [(far, "rtp"), (attacker, "rtp"), (attacker, "sip")]
            presses = iter(range(1, 100))

            async def run_flood(count_: int) -> None:
                sip_before, wrong_before = seen[0], stream.dropped_wrong_source
                sip_n = wrong_n = 0
                for i in range(count_):
                    sock, kind = kinds[i % 3]
                    if kind == "sip":
                        sock.sendto(rng.choice(sip_junk), (HOST, ua.endpoint.port))
                        sip_n += 1
                    else:
                        data = fresh_junk(rng, i) if sock is far else rng.choice(rtp_junk)
                        sock.sendto(data, (HOST, stream.local_port))
                        wrong_n += sock is attacker
                    await asyncio.sleep(0)
                # A real key press from the far end last: heard once all before it was read.
                for packet in key_press(4, 1_000_000 * next(presses)):
                    far.sendto(packet, (HOST, stream.local_port))
                assert await call.receive_digit(10) == "4"
                await wait_true(
                    lambda: seen[0] >= sip_before + sip_n
                    and stream.dropped_wrong_source >= wrong_before + wrong_n,
                    20, "the flood to be read",
                )  # fmt: skip

            # Warm up (first-use caches, code paths), then measure a flood of FLOOD.
            await run_flood(600)
            logging.getLogger("telephony").setLevel(logging.WARNING)  # pytest keeps no records
            try:
                gc.collect()
                tracemalloc.start()
                try:
                    before = tracemalloc.take_snapshot()
                    await run_flood(FLOOD)
                    gc.collect()
                    after = tracemalloc.take_snapshot()
                finally:
                    tracemalloc.stop()
            finally:
                logging.getLogger("telephony").setLevel(logging.NOTSET)
            growth = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
            top = after.compare_to(before, "lineno")[:10]
            assert growth < MEMORY_BOUND, "\n".join(str(stat) for stat in top)
            assert stream.digits_received == 2  # the two key presses; the junk gave none
            assert await call.receive_digit(0.3) is None
            assert stream.receive_state_size() <= 8 + 160
            assert not call.ended.is_set()
            await hang_up_cleanly([call], callee)


async def test_flooding_one_call_leaves_the_other_alone(
    sipp: SippFactory, rtp_ports: PortBlock, attacker: socket.socket, loop_errors: LoopErrors
) -> None:
    rng = random.Random(14)
    callee = sipp("uas_echo", service="echo", rtp_echo=True, calls=2, start=True)
    async with user_agent(rtp_ports) as ua:
        target = await place_call(ua, callee)
        bystander = await place_call(ua, callee)
        assert target.stream.local_port != bystander.stream.local_port
        await hearing_echo(target)
        await hearing_echo(bystander)
        quiet = (bystander.stream.dropped_wrong_source, bystander.stream.dropped_malformed,
                 bystander.stream.dropped_unexpected_payload)  # fmt: skip
        heard = bystander.stream.packets_received
        hostile = Hostile(attacker.getsockname()[1], ua.endpoint.port)
        datagrams = [(data, "rtp") for data, _ in flood_datagrams(rng, hostile, 2000)]
        wrong = target.stream.dropped_wrong_source
        await flood(attacker, datagrams, target.stream.local_port, ua.endpoint.port)
        await wait_true(lambda: target.stream.dropped_wrong_source >= wrong + len(datagrams), 20,
                       "the flood to be read")  # fmt: skip
        # The bystander kept hearing its echo through the flood and after it, untouched.
        assert bystander.stream.packets_received > heard
        await hearing_echo(bystander)
        await hearing_echo(target)
        assert (bystander.stream.dropped_wrong_source, bystander.stream.dropped_malformed,
                bystander.stream.dropped_unexpected_payload) == quiet  # fmt: skip
        assert target.stream.digits_received == bystander.stream.digits_received == 0
        await hang_up_cleanly([target, bystander], callee)
