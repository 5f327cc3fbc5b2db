"""The hold player on an in-memory line: tips and gaps in turn, a free agent stops the tip at once
(the stop is on the line before `connect` returns), plays are counted, a hang-up reports the tip it
cut. Every wait is bounded by GUARD_S; nothing is asserted about time."""

import asyncio
import contextlib
import random
from datetime import datetime

from audio.prompts import EncodedPrompt
from ivr.hold_rotation import CallerRotation, HoldTiming, RotationMode, RotationTip
from ivr.hold_session import HoldSession
from telephony.hold_player import HoldEnd, HoldPlayer
from telephony.line import EndReason, TransferOutcome

GUARD_S = 10.0
SHORT_S = 0.002  # a tip or a clip that ends on its own
LONG_S = GUARD_S * 2  # a tip that only ends when stopped
NOON = datetime(2026, 6, 15, 12, 0)
TIMING = HoldTiming(first_delay_s=0.001, gap_s=0.001)
TIPS = tuple(RotationTip(tip_id=tip_id, position=tip_id) for tip_id in (1, 2, 3))


class HoldLine:
    """A live call as the player sees it: `log` keeps "play <key>", "stop" and "hangup" in the
    order they happen; a prompt plays for its `duration_s` unless stopped or the call ends."""

    call_id = "hold-call"

    def __init__(self) -> None:
        self.ended = asyncio.Event()
        self.log: list[str] = []
        self._stop = asyncio.Event()
        self._played = asyncio.Condition()

    async def until_played(self, count: int) -> None:
        """Wait until `count` prompts have started."""
        async with self._played:
            await asyncio.wait_for(self._played.wait_for(lambda: len(self.plays) >= count),
                                   GUARD_S)

    async def play(self, prompt: EncodedPrompt, *, barge_in: bool = True) -> bool:
        if self.ended.is_set():
            return False
        self.log.append(f"play {prompt.key}")
        async with self._played:
            self._played.notify_all()
        self._stop = stop = asyncio.Event()
        waits = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.ended.wait())}
        done, pending = await asyncio.wait(waits, timeout=prompt.duration_s,
                                           return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return not done

    def stop_playback(self) -> None:
        self.log.append("stop")
        self._stop.set()

    async def receive_digit(self, timeout: float) -> str | None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ended.wait(), timeout)
        return None

    async def transfer(self, target: str) -> TransferOutcome:
        raise AssertionError("the hold player never transfers")

    async def hangup(self, reason: EndReason = EndReason.LOCAL_HANGUP) -> None:
        self.log.append("hangup")
        self.ended.set()

    @property
    def plays(self) -> list[str]:
        return [entry.removeprefix("play ") for entry in self.log if entry.startswith("play ")]


def sound(key: str, seconds: float) -> EncodedPrompt:
    return EncodedPrompt(key=key, ulaw=b"\xff" * 16, alaw=b"\xd5" * 16, duration_s=seconds)


class Counts:
    def __init__(self) -> None:
        self.plays: list[int] = []
        self.hangups_during: list[int] = []


def player(line: HoldLine, counts: Counts, seconds: float, *, missing: frozenset[int] = frozenset(),
           bed: EncodedPrompt | None = None) -> HoldPlayer:
    tips = {tip.tip_id: sound(f"tip{tip.tip_id}", seconds) for tip in TIPS
            if tip.tip_id not in missing}
    session = HoldSession(TIPS, CallerRotation(RotationMode.ORDER, random.Random(0)), TIMING,
                          bed=None if bed is None else bed.key)
    return HoldPlayer(line, session, tips, lambda: NOON, counts.plays.append,
                      counts.hangups_during.append,
                      clips={} if bed is None else {bed.key: bed})


async def test_connect_stops_the_tip_at_once() -> None:
    line, counts = HoldLine(), Counts()
    hold = player(line, counts, LONG_S)
    run = asyncio.ensure_future(hold.run(GUARD_S))
    await line.until_played(1)
    hold.connect()
    assert line.log == ["play tip1", "stop"]  # stopped inside connect, before anything else
    assert await asyncio.wait_for(run, GUARD_S) is HoldEnd.CONNECTED
    assert line.log == ["play tip1", "stop"]  # the player never hangs up: the call goes on
    assert counts.plays == [1]
    assert counts.hangups_during == []


async def test_tips_and_gaps_follow_each_other_and_plays_are_counted() -> None:
    line, counts = HoldLine(), Counts()
    hold = player(line, counts, SHORT_S, bed=sound("bed", SHORT_S))
    run = asyncio.ensure_future(hold.run(GUARD_S))
    await line.until_played(7)
    hold.connect()
    assert await asyncio.wait_for(run, GUARD_S) is HoldEnd.CONNECTED
    assert counts.plays[:4] == [1, 2, 3, 1]
    assert line.plays[:7] == ["tip1", "bed", "tip2", "bed", "tip3", "bed", "tip1"]


async def test_hang_up_during_a_tip_is_reported_with_the_tip() -> None:
    line, counts = HoldLine(), Counts()
    hold = player(line, counts, LONG_S)
    run = asyncio.ensure_future(hold.run(GUARD_S))
    await line.until_played(1)
    line.ended.set()  # the caller hangs up
    assert await asyncio.wait_for(run, GUARD_S) is HoldEnd.HUNG_UP
    assert counts.plays == [1]
    assert counts.hangups_during == [1]


async def test_waiting_too_long_stops_the_tip_and_returns() -> None:
    line, counts = HoldLine(), Counts()
    hold = player(line, counts, LONG_S)
    run = asyncio.ensure_future(hold.run(1.0))
    await line.until_played(1)
    assert await asyncio.wait_for(run, GUARD_S) is HoldEnd.TIMED_OUT
    assert line.log == ["play tip1", "stop"]
    assert counts.hangups_during == []


async def test_a_tip_without_a_sound_is_skipped_and_not_counted() -> None:
    line, counts = HoldLine(), Counts()
    hold = player(line, counts, SHORT_S, missing=frozenset({1}))
    run = asyncio.ensure_future(hold.run(GUARD_S))
    await line.until_played(2)
    hold.connect()
    assert await asyncio.wait_for(run, GUARD_S) is HoldEnd.CONNECTED
    assert counts.plays[:2] == [2, 3]
    assert line.plays[:2] == ["tip2", "tip3"]


async def test_a_count_that_fails_does_not_stop_the_wait() -> None:
    line = HoldLine()
    session = HoldSession(TIPS, CallerRotation(RotationMode.ORDER, random.Random(0)), TIMING)
    tips = {tip.tip_id: sound(f"tip{tip.tip_id}", SHORT_S) for tip in TIPS}

    def store_down(tip_id: int) -> None:
        raise ConnectionError("the database is down")

    hold = HoldPlayer(line, session, tips, lambda: NOON, store_down, store_down)
    run = asyncio.ensure_future(hold.run(GUARD_S))
    await line.until_played(2)
    hold.connect()
    assert await asyncio.wait_for(run, GUARD_S) is HoldEnd.CONNECTED
    assert line.plays[:2] == ["tip1", "tip2"]
