"""Drives a sans-IO ivr session on a live line: events in from the line, actions out to it."""

import asyncio
import logging
from collections.abc import Callable, Mapping

from audio.prompts import EncodedPrompt
from ivr.actions import (
    Action,
    CancelTimer,
    Hangup,
    Play,
    RecordResult,
    Result,
    StartTimer,
    StopPlayback,
    Transfer,
)
from ivr.events import Digit, Event, HungUp, PlaybackFinished, TimerFired, TransferEnded
from ivr.session import Session
from telephony.line import EndReason, Line
from telephony.line_events import LineEvents

log = logging.getLogger(__name__)

class FlowRunner:
    """One call, one session; `run()` returns what the session recorded. `on_result` hears
    each result the moment it is recorded, so it can be stored before the call ends."""

    def __init__(
        self,
        call: Line,
        session: Session,
        prompts: Mapping[str, EncodedPrompt],
        on_result: Callable[[Result], None],
        *,
        route: Callable[[str], str] = str,
    ) -> None:
        """`route` turns a transfer's target (a phone number) into what the line dials."""
        self._call = call
        self._route = route
        self._session = session
        self._prompts = prompts
        self._on_result = on_result
        self._loop = asyncio.get_running_loop()
        self._events: LineEvents[Event] = LineEvents(call.call_id)
        self._transferring: asyncio.Task[None] | None = None
        self._result: Result | None = None
        self._hangup = False

    async def run(self, max_duration_s: float) -> Result | None:
        """Run the flow until it hangs up, the far end does, or `max_duration_s` passes (end
        reason `max_duration`); the call is over when this returns."""
        self._events.spawn(self._read_digits())
        self._events.spawn(self._watch_hangup())
        reason = EndReason.LOCAL_HANGUP
        try:
            async with asyncio.timeout(max_duration_s):
                self._execute(self._session.start(self._now()))
                while not self._session.finished and not self._hangup:
                    self._execute(self._session.handle(await self._events.next()))
        except TimeoutError:
            log.warning("call %s ran past %.0f s: hanging up", self._call.call_id, max_duration_s)
            reason = EndReason.MAX_DURATION
        finally:
            self._events.close()
            await self._call.hangup(reason)
        return self._result

    def _now(self) -> float:
        return self._loop.time()

    def _execute(self, actions: list[Action]) -> None:
        for action in actions:
            match action:
                case Play():
                    self._events.spawn(self._play(action))
                case StopPlayback():
                    self._call.stop_playback()
                case StartTimer():
                    self._events.start_timer(action.timer_id, action.seconds, self._fired)
                case CancelTimer():
                    self._events.cancel_timer(action.timer_id)
                case Transfer():
                    self._transferring = self._events.spawn(self._transfer(action.target))
                case RecordResult():
                    self._result = action.result
                    self._on_result(action.result)
                case Hangup():
                    self._hangup = True

    def _fired(self, timer_id: str) -> Event:
        return TimerFired(timer_id, self._now())

    async def _play(self, play: Play) -> None:
        prompt = self._prompts[play.prompt_id]
        completed = await self._call.play(prompt, barge_in=play.barge_in)
        self._events.put(PlaybackFinished(play.prompt_id, self._now(), interrupted=not completed))

    async def _transfer(self, target: str) -> None:
        try:
            outcome = await self._call.transfer(self._route(target))
        except Exception as exc:  # a target the line cannot call: failed, the flow goes on
            log.warning("call %s: transfer not placed: %s", self._call.call_id, exc)
            self._events.put(TransferEnded(False, self._now()))
            return
        if not outcome.succeeded:
            log.info("call %s: transfer failed: %s", self._call.call_id, outcome.detail)
        self._events.put(TransferEnded(outcome.succeeded, self._now()))

    async def _read_digits(self) -> None:
        while not self._call.ended.is_set():
            digit = await self._call.receive_digit(timeout=3600)
            if digit is not None:
                self._events.put(Digit(digit, self._now()))

    async def _watch_hangup(self) -> None:
        await self._call.ended.wait()
        if self._transferring is not None:
            # The far end may hang up before the transfer's report (its BYE before the last
            # NOTIFY): the caller may have been put through all the same, so hear that first.
            await asyncio.wait({self._transferring})
        self._events.put(HungUp(self._now()))
