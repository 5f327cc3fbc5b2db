"""Acceptance of the SIP engine's outbound side against real peers on loopback:
Kamailio (registrar, record-routing proxy, digest), sipp scenarios and a baresip softphone."""

from __future__ import annotations

import asyncio
import itertools
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np
import pytest

from audio.g711 import Law, decode, encode
from audio.prompts import EncodedPrompt
from lab.kamailio import Kamailio
from lab.ports import PortBlock
from lab.process import wait_until
from lab.sipp import EXIT_ALL_OK
from telephony.outcomes import Outcome
from telephony.sip.call import EndReason
from telephony.sip.config import EngineConfig, SipAccount
from telephony.sip.errors import RegistrationError
from telephony.sip.transaction import TimerConfig
from telephony.sip.ua import SipUserAgent
from tests.conftest import BaresipFactory, CaptureFactory, SippFactory

pytestmark = pytest.mark.peers

FAST_TIMERS = TimerConfig(t1=0.1, t2=0.4, t4=0.5)
Trace = list[tuple[str, bytes]]


def noise_prompt(seconds: float, seed: int = 7) -> EncodedPrompt:
    """Speech-band noise: any reordering, loss or corruption shows in the correlation."""
    rng = np.random.default_rng(seed)
    pcm = np.clip(rng.normal(0, 5000, int(8000 * seconds)), -32768, 32767).astype(np.int16)
    return EncodedPrompt(
        key=f"noise-{seed}", ulaw=encode(pcm, Law.ULAW), alaw=encode(pcm, Law.ALAW),
        duration_s=seconds,
    )



@asynccontextmanager
async def user_agent(
    ports: PortBlock,
    *,
    registrar: str | None = None,
    password: str | None = "secret",
    user: str = "ringback",
    timers: TimerConfig = FAST_TIMERS,
    register_expires: int = 300,
    trace: Trace | None = None,
) -> AsyncIterator[SipUserAgent]:
    config = EngineConfig(
        sip_port=0, rtp_ports=(ports[0], ports.last), timers=timers,
        register_expires=register_expires, register_retry_max_s=2.0,
    )
    ua = SipUserAgent(SipAccount(user=user, password=password, registrar=registrar), config)
    if trace is not None:
        ua.endpoint.tracer = lambda direction, data, _peer: trace.append((direction, data))
    await ua.start()
    try:
        yield ua
    finally:
        await ua.stop()


def sent(trace: Trace, pattern: str) -> list[str]:
    return [d.decode(errors="replace") for way, d in trace if way == "out"
            and re.search(pattern, d.decode(errors="replace"))]


def header(message: str, name: str) -> str:
    match = re.search(rf"^{name}:\s*(.*)$", message, re.MULTILINE | re.IGNORECASE)
    assert match, message
    return match.group(1).strip()


# --- 1. registration ---------------------------------------------------------------------------


async def test_registers_with_digest_and_refreshes(
    kamailio: Kamailio, rtp_ports: PortBlock
) -> None:
    trace: Trace = []
    async with user_agent(rtp_ports, registrar=kamailio.domain, register_expires=4,
                          trace=trace) as ua:
        assert ua.registration is not None and ua.registration.registered.is_set()
        mine = [r for r in kamailio.registrations() if r["user"] == "ringback"]
        assert mine and f":{ua.endpoint.port}" in mine[0]["contact"]
        # The 4 s binding is refreshed before it expires: a second authenticated REGISTER.
        await asyncio.to_thread(
            wait_until, lambda: len(sent(trace, r"^REGISTER .*\r\n(?s:.*)Authorization:")) >= 2,
            15.0,
        )
        registers = sent(trace, r"^REGISTER ")
        call_ids = {header(m, "Call-ID") for m in registers}
        cseqs = [int(header(m, "CSeq").split()[0]) for m in registers]
        assert len(call_ids) == 1  # one registration, one Call-ID
        assert cseqs == sorted(cseqs) and len(set(cseqs)) == len(cseqs)
        assert [r for r in kamailio.registrations() if r["user"] == "ringback"]
    assert not [r for r in kamailio.registrations() if r["user"] == "ringback"]  # unregistered


async def test_wrong_password_is_a_clear_error_not_a_hang(
    kamailio: Kamailio, rtp_ports: PortBlock
) -> None:
    async with asyncio.timeout(20):
        with pytest.raises(RegistrationError, match="rejected the credentials"):
            async with user_agent(rtp_ports, registrar=kamailio.domain, password="wrong"):
                pass


async def test_registration_recovers_after_the_registrar_comes_back(
    kamailio: Kamailio, rtp_ports: PortBlock
) -> None:
    async with user_agent(rtp_ports, registrar=kamailio.domain, register_expires=3) as ua:
        registration = ua.registration
        assert registration is not None
        kamailio.stop()
        await asyncio.to_thread(wait_until, lambda: registration.last_error is not None, 20.0)
        kamailio.restart()  # usrloc is in memory: the restarted registrar knows nobody
        await asyncio.to_thread(
            wait_until,
            lambda: any(r["user"] == "ringback" for r in kamailio.registrations()), 30.0,
        )
        assert registration.registered.is_set()


# --- 2. a real softphone through the record-routing proxy ----------------------------------------


async def test_call_to_baresip_prompt_digit_and_40s(
    kamailio: Kamailio, baresip: BaresipFactory, capture: CaptureFactory, rtp_ports: PortBlock
) -> None:
    phone = baresip(kamailio)
    prompt = noise_prompt(3.0)
    cap = capture((rtp_ports[0], rtp_ports.last))
    async with user_agent(rtp_ports, registrar=kamailio.domain) as ua:
        result = await ua.call("client", ring_timeout=10)
        assert result.outcome is Outcome.ANSWERED, result
        call = result.call
        assert call is not None
        assert any(f":{kamailio.port}" in route for route in call.dialog.route_set)
        assert await call.play(prompt, barge_in=False)
        await asyncio.to_thread(phone.send_digit, "4")
        assert await call.receive_digit(10) == "4"
        assert not await call.wait_ended(40)  # still up after 40 s: ACK and routes were right
        await call.hangup()
        assert call.end_reason is EndReason.LOCAL_HANGUP
        await asyncio.to_thread(phone.wait_event, "CALL_CLOSED", 10.0)
        local_port = call.stream.local_port
    cap.stop()
    ours = sorted((p for p in cap.rtp_packets([local_port]) if p.src_port == local_port
                   and p.payload_type == 0), key=lambda p: p.time)
    start = next(i for i, p in enumerate(ours) if p.marker)
    audio = b"".join(p.payload for p in ours[start:])[: len(prompt.ulaw)]
    assert audio == prompt.ulaw  # every byte, in order
    sent_pcm = decode(audio, Law.ULAW).astype(np.float64)
    source = decode(prompt.ulaw, Law.ULAW).astype(np.float64)
    correlation = float(np.dot(sent_pcm, source) / np.sqrt(np.dot(sent_pcm, sent_pcm)
                                                           * np.dot(source, source)))
    assert correlation > 0.99


async def test_baresip_hangs_up_and_the_call_ends(
    kamailio: Kamailio, baresip: BaresipFactory, rtp_ports: PortBlock
) -> None:
    phone = baresip(kamailio)
    async with user_agent(rtp_ports, registrar=kamailio.domain) as ua:
        result = await ua.call("client", ring_timeout=10)
        assert result.call is not None
        await asyncio.to_thread(phone.wait_event, "CALL_ESTABLISHED", 10.0)
        await asyncio.to_thread(phone.hangup)
        assert await result.call.wait_ended(10)
        assert result.call.end_reason is EndReason.REMOTE_HANGUP


# --- 3. final responses --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(486, Outcome.BUSY), (480, Outcome.NO_ANSWER), (404, Outcome.UNREACHABLE),
     (603, Outcome.DECLINED), (503, Outcome.FAILED)],
)
async def test_final_responses_map_to_outcomes_and_are_acked(
    status: int, outcome: Outcome, sipp: SippFactory, rtp_ports: PortBlock
) -> None:
    callee = sipp("uas_status", service="callee", status=status, calls=1, start=True)
    async with user_agent(rtp_ports) as ua:
        result = await ua.call(f"sip:callee@127.0.0.1:{callee.port}", ring_timeout=10)
    assert result.outcome is outcome and result.sip_status == status
    assert callee.wait(15) == EXIT_ALL_OK, callee.describe()  # the scenario ends on our ACK
    assert callee.received("ACK")


async def test_busy_through_the_proxy(
    kamailio: Kamailio, sipp: SippFactory, rtp_ports: PortBlock
) -> None:
    callee = sipp("uas_status", service="busy", status=486, start=True)
    kamailio.add_contact("busy", callee.contact)
    trace: Trace = []
    async with user_agent(rtp_ports, registrar=kamailio.domain, trace=trace) as ua:
        result = await ua.call("busy", ring_timeout=10)
    assert result.outcome is Outcome.BUSY
    assert sent(trace, r"^ACK sip:busy@")  # our ACK for the proxy's 486


# --- 4. ring timeout -----------------------------------------------------------------------------


async def test_ring_timeout_cancels_and_acks_the_487(
    sipp: SippFactory, rtp_ports: PortBlock
) -> None:
    callee = sipp("uas_ring_forever", service="ringing", calls=1, start=True)
    trace: Trace = []
    async with user_agent(rtp_ports, trace=trace) as ua:
        result = await ua.call(f"sip:ringing@127.0.0.1:{callee.port}", ring_timeout=2)
    assert result.outcome is Outcome.NO_ANSWER and result.sip_status == 487
    assert callee.wait(15) == EXIT_ALL_OK, callee.describe()
    invite = sent(trace, r"^INVITE ")[0]
    cancel = sent(trace, r"^CANCEL ")[0]
    assert header(cancel, "Via") == header(invite, "Via")  # same branch as the INVITE
    assert header(cancel, "CSeq").split()[0] == header(invite, "CSeq").split()[0]


# --- 5. 407 on INVITE ----------------------------------------------------------------------------


async def test_proxy_auth_on_invite_is_answered(
    kamailio_invite_auth: Kamailio, baresip: BaresipFactory, rtp_ports: PortBlock
) -> None:
    baresip(kamailio_invite_auth)
    trace: Trace = []
    async with user_agent(rtp_ports, registrar=kamailio_invite_auth.domain, trace=trace) as ua:
        result = await ua.call("client", ring_timeout=10)
        assert result.outcome is Outcome.ANSWERED, result
        assert result.call is not None
        await result.call.hangup()
    invites = sent(trace, r"^INVITE ")
    assert "Proxy-Authorization" not in invites[0]
    assert any("Proxy-Authorization: Digest" in m for m in invites[1:])
    acks = sent(trace, r"^ACK ")
    first_cseq = header(invites[0], "CSeq").split()[0]
    assert any(header(a, "CSeq") == f"{first_cseq} ACK" for a in acks)  # the 407 was ACKed


# --- 6. Timer A and Timer B ----------------------------------------------------------------------


async def test_silent_peer_gets_retransmissions_then_timer_b(rtp_ports: PortBlock) -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    silent.setblocking(False)
    port = silent.getsockname()[1]
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []

    async def listen() -> None:
        while True:
            data = await loop.sock_recv(silent, 65535)
            if data.startswith(b"INVITE "):
                arrivals.append(loop.time())

    listening = asyncio.create_task(listen())
    timers = TimerConfig(t1=0.25, t2=4.0, t4=5.0)  # intervals long enough to stand out of jitter
    try:
        async with user_agent(rtp_ports, timers=timers) as ua:
            result = await ua.call(f"sip:nobody@127.0.0.1:{port}", ring_timeout=60)
    finally:
        listening.cancel()
        silent.close()
    assert result.outcome is Outcome.UNREACHABLE and result.sip_status == 408
    intervals = np.diff(arrivals)
    # T1 = 0.25 s: 0.25, 0.5, 1, 2, 4, 8 (doubling), then Timer B at 64*T1 = 16 s.
    assert 5 <= len(intervals) <= 6, arrivals
    ratios = intervals[1:] / intervals[:-1]
    assert all(1.5 < r < 2.5 for r in ratios), intervals


# --- 7. re-INVITE and BYE mid-prompt -------------------------------------------------------------


async def test_reinvite_keeps_media_and_rate(
    sipp: SippFactory, capture: CaptureFactory, rtp_ports: PortBlock
) -> None:
    callee = sipp("uas_reinvite", service="reinvite", calls=1, start=True)
    cap = capture((rtp_ports[0], rtp_ports.last))
    trace: Trace = []
    async with user_agent(rtp_ports, trace=trace) as ua:
        result = await ua.call(f"sip:reinvite@127.0.0.1:{callee.port}", ring_timeout=10)
        call = result.call
        assert call is not None
        media_before = call.media
        assert await call.play(noise_prompt(5.0))  # the re-INVITE lands while we talk
        assert call.media == media_before  # same peer address, codec and events
        await call.hangup()
        local_port = call.stream.local_port
    assert callee.wait(15) == EXIT_ALL_OK, callee.describe()
    ok_to_reinvite = [m for m in sent(trace, r"^SIP/2.0 200 ") if "INVITE" in header(m, "CSeq")]
    assert ok_to_reinvite and f"m=audio {local_port} " in ok_to_reinvite[0]
    cap.stop()
    ours = [p for p in cap.rtp_packets([local_port]) if p.src_port == local_port]
    assert len({p.ssrc for p in ours}) == 1  # one stream, never a second sender
    seqs = [p.seq for p in sorted(ours, key=lambda p: p.time)]
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))
    span_s = (ours[-1].timestamp - ours[0].timestamp) % 2**32 / 8000
    assert len(ours) <= span_s * 50 + 5  # 50 packets per second of media clock, not doubled


async def test_bye_from_far_end_mid_prompt_stops_playback(
    sipp: SippFactory, rtp_ports: PortBlock
) -> None:
    callee = sipp("uas_answer_then_bye", service="bye", calls=1, start=True)
    async with user_agent(rtp_ports) as ua:
        result = await ua.call(f"sip:bye@127.0.0.1:{callee.port}", ring_timeout=10)
        call = result.call
        assert call is not None
        assert await call.play(noise_prompt(30.0)) is False
        assert call.end_reason is EndReason.REMOTE_HANGUP
        assert call.stream.closed
    assert callee.wait(15) == EXIT_ALL_OK, callee.describe()


# --- 8. no identifier repeats across runs --------------------------------------------------------


async def test_two_runs_never_repeat_call_ids_tags_or_branches(
    sipp: SippFactory, rtp_ports: PortBlock
) -> None:
    callee = sipp("uas_status", service="busy", status=486, calls=4, start=True)
    traces: list[Trace] = []
    for _ in range(2):  # two user agents one after the other, as two process runs would be
        trace: Trace = []
        async with user_agent(rtp_ports, trace=trace) as ua:
            for _ in range(2):
                await ua.call(f"sip:busy@127.0.0.1:{callee.port}", ring_timeout=5)
        traces.append(trace)
    ids: dict[str, list[str]] = {"call-id": [], "tag": [], "branch": []}
    for trace in traces:
        for message in sent(trace, r"^INVITE "):
            ids["call-id"].append(header(message, "Call-ID"))
            ids["tag"].append(re.findall(r"tag=([^;>\s]+)", header(message, "From"))[0])
            ids["branch"].append(re.findall(r"branch=([^;\s]+)", header(message, "Via"))[0])
    for kind, values in ids.items():
        assert len(values) == 4 and len(set(values)) == 4, (kind, values)


# --- 9. the answer is noted before the ACK -------------------------------------------------------


async def test_the_dialog_is_handed_over_before_the_ack_goes_out(
    sipp: SippFactory, rtp_ports: PortBlock
) -> None:
    callee = sipp("uas_answer_then_bye", service="noted", calls=1, start=True)
    trace: Trace = []
    noted: list[dict[str, object]] = []
    acks_when_noted: list[int] = []

    async def note(dialog: dict[str, object]) -> None:
        await asyncio.sleep(0.3)  # a database write; an early ACK would be out by now
        acks_when_noted.append(len(sent(trace, r"^ACK ")))
        noted.append(dialog)

    async with user_agent(rtp_ports, trace=trace) as ua:
        result = await ua.call(f"sip:noted@127.0.0.1:{callee.port}", ring_timeout=10,
                               on_answer=note)
        assert result.outcome is Outcome.ANSWERED and result.call is not None
        assert acks_when_noted == [0]  # nothing confirmed the answer before it was noted
        assert len(sent(trace, r"^ACK ")) == 1
        assert noted == [result.call.dialog_state()]  # what a successor needs to send BYE
        await result.call.ended.wait()
    assert callee.wait(15) == EXIT_ALL_OK, callee.describe()


@pytest.mark.parametrize("failure", ["hangs", "raises"])
async def test_a_failing_answer_hook_never_loses_the_call(
    sipp: SippFactory, rtp_ports: PortBlock, failure: str
) -> None:
    callee = sipp("uas_answer_then_bye", service="hook", calls=1, start=True)

    async def note(dialog: dict[str, object]) -> None:
        if failure == "raises":
            raise RuntimeError("the database is gone")
        await asyncio.Event().wait()  # never returns: the engine's bound ends the wait

    async with user_agent(rtp_ports) as ua:
        result = await ua.call(f"sip:hook@127.0.0.1:{callee.port}", ring_timeout=10,
                               on_answer=note)
        assert result.outcome is Outcome.ANSWERED and result.call is not None
        await result.call.ended.wait()
    assert callee.wait(15) == EXIT_ALL_OK, callee.describe()  # ACKed, then its BYE answered
