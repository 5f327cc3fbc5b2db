"""A hold from the far end never wedges a call: prompts stop, the flow's timers run on, the hold
limit and the call cap end the call with their own end reasons.

The engine runs without sockets (`sip_offline`); the RTP stream is a stand-in that behaves as
the real one does on hold: a prompt makes no progress while we may not send.
"""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from audio.prompts import EncodedPrompt
from ivr.results import FlowResult
from ivr.survey import survey_session
from telephony.flow_runner import FlowRunner
from telephony.sip.call import Call, EndReason
from telephony.sip.codecs import MediaParams
from telephony.sip.dialog import Dialog
from telephony.sip.sdp import LocalMedia
from tests.unit.sip_offline import (
    FAR_END,
    GUARD_S,
    OfflineUa,
    invite,
    parse_request,
    sdp,
    sip,
)

PROMPT_S = 0.2  # how long a prompt takes when the far end listens
LOCAL_TAG = "ourtag"


class PausingStream:
    """Stands in for `RtpStream`: a prompt ends `prompt_s` after it started (or after the
    hold ended); while the agreed direction forbids sending it waits, like the real stream."""

    local_port = 40000

    def __init__(self, prompt_s: float = PROMPT_S) -> None:
        self.prompt_s = prompt_s
        self.params: MediaParams | None = None
        self.closed = False
        self.playing = asyncio.Event()
        self._done: asyncio.Future[bool] | None = None
        self._end: asyncio.TimerHandle | None = None

    def start(self, params: MediaParams) -> None:
        self.params = params

    def update(self, params: MediaParams) -> None:
        self.params = params
        self._schedule()

    async def play(self, _audio: bytes, *, barge_in: bool = True) -> bool:
        self.stop_playback()
        done = self._done = asyncio.get_running_loop().create_future()
        self._schedule()
        self.playing.set()
        try:
            return await done
        finally:
            self.playing.clear()

    def stop_playback(self) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(False)

    def close(self) -> None:
        self.closed = True
        self.stop_playback()

    async def receive_digit(self, timeout: float) -> str | None:
        await asyncio.sleep(timeout)
        return None

    def _schedule(self) -> None:
        if self._end is not None:
            self._end.cancel()
        done, params = self._done, self.params
        if done is not None and not done.done() and params is not None and params.sending:
            self._end = asyncio.get_running_loop().call_later(
                self.prompt_s, lambda: done.done() or done.set_result(True)
            )


@dataclass
class Line:
    far_end: OfflineUa
    call: Call
    stream: PausingStream
    _cseq: int = 1

    def reoffer(self, direction: str, *, address: str = FAR_END[0]) -> None:
        """The far end's re-INVITE with this direction (or c= address), and its ACK."""
        self._cseq += 1
        for method in ("INVITE", "ACK"):
            self.far_end.feed(sip(
                f"{method} sip:ringback@127.0.0.1:5060 SIP/2.0",
                f"Via: SIP/2.0/UDP {FAR_END[0]}:{FAR_END[1]};branch=z9hG4bK-re{self._cseq}"
                f"{method}",
                "Max-Forwards: 70",
                f"From: <sip:caller@{FAR_END[0]}>;tag=from1",
                f"To: <sip:ringback@127.0.0.1>;tag={LOCAL_TAG}",
                f"Call-ID: call-1@{FAR_END[0]}",
                f"CSeq: {self._cseq} {method}",
                f"Contact: <sip:caller@{FAR_END[0]}:{FAR_END[1]}>",
                body=sdp(direction, address=address, version=self._cseq) if method == "INVITE"
                else b"",
            ))

    def hold(self) -> None:
        self.reoffer("sendonly")

    def resume(self) -> None:
        self.reoffer("sendrecv")


@pytest.fixture
async def line() -> AsyncIterator[Line]:
    """An answered call (as `IncomingCall.answer` builds it), its far end played by the test."""
    far_end = OfflineUa()
    request = parse_request(invite(1, sdp()))
    local = LocalMedia("127.0.0.1", PausingStream.local_port)
    _, params = local.answer(request.body)
    stream = PausingStream()
    dialog = Dialog.from_uas(request, LOCAL_TAG)
    call = Call(far_end.ua.stack, dialog, local, stream, outbound=False)
    call.start_media(params)
    far_end.ua.stack.dialogs[dialog.key] = call
    yield Line(far_end, call, stream)
    await call.hangup()


def prompt() -> EncodedPrompt:
    return EncodedPrompt(key="p", ulaw=b"\xff" * 160, alaw=b"\xd5" * 160, duration_s=0.02)


async def test_a_hold_cuts_the_prompt_and_nothing_plays_until_the_resume(line: Line) -> None:
    playing = asyncio.create_task(line.call.play(prompt()))
    await asyncio.wait_for(line.stream.playing.wait(), GUARD_S)
    line.hold()
    assert await asyncio.wait_for(playing, GUARD_S) is False
    assert line.call.on_hold
    answer = line.far_end.responses("call-1@192.0.2.7")[-1]
    assert answer.status == 200 and b"a=recvonly" in answer.body
    assert await asyncio.wait_for(line.call.play(prompt()), GUARD_S) is False
    line.resume()
    assert not line.call.on_hold
    assert await asyncio.wait_for(line.call.play(prompt()), GUARD_S) is True


@pytest.mark.parametrize(("direction", "address"), [("inactive", FAR_END[0]),
                                                    ("sendrecv", "0.0.0.0")])
async def test_inactive_and_c_0000_are_holds(line: Line, direction: str, address: str) -> None:
    line.reoffer(direction, address=address)
    assert line.call.on_hold
    assert await asyncio.wait_for(line.call.play(prompt()), GUARD_S) is False


async def test_a_hold_past_the_limit_hangs_up_with_held_too_long(line: Line) -> None:
    line.call.limit_hold(0.05)
    line.hold()
    assert await line.call.wait_ended(GUARD_S)
    assert line.call.end_reason is EndReason.HELD_TOO_LONG
    assert len(line.far_end.requests("BYE")) == 1


async def test_a_limit_set_during_a_hold_counts_from_when_it_began(line: Line) -> None:
    line.hold()
    line.call.limit_hold(0.0)
    assert await line.call.wait_ended(GUARD_S)
    assert line.call.end_reason is EndReason.HELD_TOO_LONG


async def test_a_resume_in_time_keeps_the_call_up(line: Line) -> None:
    line.call.limit_hold(0.05)
    line.hold()
    line.resume()
    assert not await line.call.wait_ended(0.3)  # well past the limit: the resume disarmed it
    assert line.far_end.requests("BYE") == []


async def run_survey(line: Line, *, no_input_s: float, max_duration_s: float) -> str | None:
    session = survey_session("en", company="Acme", default_locale="en",
                             no_input_timeout_s=no_input_s)
    prompts = {prompt_id: prompt() for prompt_id in session.texts}
    runner = FlowRunner(line.call, session, prompts, lambda _: None)
    result = await asyncio.wait_for(runner.run(max_duration_s), GUARD_S)
    return None if result is None else result.outcome


async def test_the_flow_gives_up_on_a_caller_who_holds_and_never_resumes(line: Line) -> None:
    async def hold_during_the_greeting() -> None:
        await asyncio.wait_for(line.stream.playing.wait(), GUARD_S)
        line.hold()

    holding = asyncio.create_task(hold_during_the_greeting())
    outcome = await run_survey(line, no_input_s=0.05, max_duration_s=GUARD_S * 2)
    await holding
    assert outcome == FlowResult.NO_INPUT  # no-input timers ran: asked three times, then bye
    assert line.call.end_reason is EndReason.LOCAL_HANGUP
    assert line.call.on_hold


async def test_the_call_cap_ends_the_call_with_max_duration(line: Line) -> None:
    line.stream.prompt_s = GUARD_S * 10  # the greeting outlasts the cap
    outcome = await run_survey(line, no_input_s=5.0, max_duration_s=0.1)
    assert outcome is None
    assert line.call.end_reason is EndReason.MAX_DURATION
    assert len(line.far_end.requests("BYE")) == 1
