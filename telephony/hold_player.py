"""Drives a hold session (`ivr.hold_session`) on a live line: events in from the line and the
clock, actions out to the line. The player owns the wait, not the call: it never hangs up; when
`run` returns the caller is connected (put through by whoever called `connect`), gone, or waited
too long and the line is the caller's owner's again."""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import StrEnum

from audio.prompts import EncodedPrompt
from ivr.actions import CancelTimer, StartTimer, StopPlayback
from ivr.hold_session import (
    Connected,
    GapFinished,
    HoldAction,
    HoldEvent,
    HoldSession,
    HungUp,
    HungUpDuringTip,
    PlayGap,
    PlayTip,
    TimerFired,
    TipFinished,
)
from telephony.line import Line
from telephony.line_events import LineEvents

log = logging.getLogger(__name__)


class HoldEnd(StrEnum):
    CONNECTED = "connected"  # `connect()` was called: an agent is free
    HUNG_UP = "hung_up"  # the caller hung up (or the line is gone)
    TIMED_OUT = "timed_out"  # `run`'s timeout passed first


class HoldPlayer:
    """Plays one caller's hold session on `line`.

    `tips` gives a tip's sound (rendered ahead: no caller waits for synthesis), `clips` the
    music bed clips by id, `local_now` the wall-clock time in the business's zone.
    `on_play(tip_id)` hears each tip the moment it starts on the line, `on_hangup_during(tip_id)`
    a hang-up while that tip played; a callback that raises is logged and the wait goes on. A tip
    without a sound is skipped (logged, not counted)."""

    def __init__(
        self,
        line: Line,
        session: HoldSession,
        tips: Mapping[int, EncodedPrompt],
        local_now: Callable[[], datetime],
        on_play: Callable[[int], None],
        on_hangup_during: Callable[[int], None],
        *,
        clips: Mapping[str, EncodedPrompt] | None = None,
    ) -> None:
        self._line = line
        self._session = session
        self._tips = tips
        self._clips = clips or {}
        self._local_now = local_now
        self._on_play = on_play
        self._on_hangup_during = on_hangup_during
        # None wakes `run` up to look at the session again (after `connect`).
        self._events: LineEvents[HoldEvent | None] = LineEvents(line.call_id)
        self._playing = False

    async def run(self, timeout_s: float) -> HoldEnd:
        """Hold the caller until `connect()`, a hang-up or `timeout_s`. Nothing plays and no
        timer runs when this returns."""
        self._events.spawn(self._watch_hangup())
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    self._execute(self._session.start())
                    while not self._session.finished:
                        event = await self._events.next()
                        if event is not None:
                            self._execute(self._session.handle(event))
        finally:
            if self._playing:
                self._line.stop_playback()
            self._events.close()
        if self._session.connected:  # also when `connect` came just as the time ran out
            return HoldEnd.CONNECTED
        if self._session.finished:
            return HoldEnd.HUNG_UP
        log.info("call %s: still on hold after %.0f s", self._line.call_id, timeout_s)
        return HoldEnd.TIMED_OUT

    def connect(self) -> None:
        """An agent is free: stop the tip (or clip) now playing at once and end the wait."""
        self._execute(self._session.handle(Connected(self._local_now())))
        self._events.put(None)

    def _execute(self, actions: list[HoldAction]) -> None:
        for action in actions:
            match action:
                case PlayTip():
                    self._events.spawn(self._play_tip(action.tip_id))
                case PlayGap():
                    self._events.spawn(self._play_gap(action.clip))
                case StopPlayback():
                    self._line.stop_playback()
                    self._playing = False
                case StartTimer():
                    self._events.start_timer(action.timer_id, action.seconds, self._fired)
                case CancelTimer():
                    self._events.cancel_timer(action.timer_id)
                case HungUpDuringTip():
                    self._count(self._on_hangup_during, action.tip_id)

    def _fired(self, timer_id: str) -> HoldEvent:
        return TimerFired(timer_id, self._local_now())

    async def _play_tip(self, tip_id: int) -> None:
        sound = self._tips.get(tip_id)
        if sound is None:
            log.warning("call %s: hold tip %d has no sound; skipped", self._line.call_id, tip_id)
        elif not self._session.finished:  # else connected before this play got its turn
            self._count(self._on_play, tip_id)
            await self._play(sound)
        if not self._line.ended.is_set():  # else the hang-up is reported, with this tip
            self._events.put(TipFinished(tip_id, self._local_now()))

    async def _play_gap(self, clip: str) -> None:
        sound = self._clips.get(clip)
        if sound is None:
            log.warning("call %s: music bed %r has no sound; silence", self._line.call_id, clip)
        elif not self._session.finished:
            await self._play(sound)
        self._events.put(GapFinished(self._local_now()))

    async def _play(self, sound: EncodedPrompt) -> None:
        self._playing = True
        try:
            await self._line.play(sound, barge_in=False)
        finally:
            self._playing = False

    def _count(self, callback: Callable[[int], None], tip_id: int) -> None:
        """A count that cannot be kept (its store is down) never stops the caller's wait."""
        try:
            callback(tip_id)
        except Exception:
            log.exception("call %s: hold tip %d not counted", self._line.call_id, tip_id)

    async def _watch_hangup(self) -> None:
        await self._line.ended.wait()
        self._events.put(HungUp(self._local_now()))
