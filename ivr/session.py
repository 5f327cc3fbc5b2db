"""The sans-IO interpreter of a flow: events in, actions out. No sockets, no threads, no clock.

A backend feeds what happens on the line (`ivr.events`) to `Session.handle` and carries out the
actions it gets back (`ivr.actions`), in order. The contract with the backend:

- Prompts play one at a time: the next `Play` only comes after the current one's
  `PlaybackFinished`. Every `Play` gets exactly one `PlaybackFinished`, also when it was stopped.
- A prompt with `barge_in` may be cut by a key on the backend's own initiative; the session also
  sends `StopPlayback` when it sees the key first. Either order of the key and the interrupted
  playback's end works.
- Timers are one-shot and their ids unique within the session; a stale `TimerFired` (of a timer
  already cancelled) is ignored, as is any event that does not fit the session's state.

Decisions:
- Only keys pressed once a menu's question has started count: they cut the menu's prompts (the
  question and its apologies). Keys pressed during a message (greeting, thanks, goodbye) are
  ignored, neither an answer nor a wrong key: the caller has not heard the question yet (or has
  already answered it). Messages always play to the end.
- A menu asks at most `1 + max_repeats` times. On the last failure the apology is skipped and the
  flow goes straight to `exhausted`, recording `invalid` if any wrong key was pressed in this menu,
  else `no_input`.
- A result is recorded as soon as it is known (a score before the thanks), so a hang-up during the
  thanks keeps it. A hang-up records `hung_up` only when nothing was recorded yet, and reaching
  the end of the flow records `completed` under the same condition: a finished session always
  has a result.
- A `Transfer` step asks the line to put the caller through and waits for `TransferEnded`;
  keys meanwhile are ignored. Success records `transferred` (the latest result stands) and
  finishes; failure goes on at the step's `failed`.
- After `Hangup` (ours) or `HungUp` (theirs) the session is finished and answers nothing. On
  `HungUp` it only cancels its running timer and records; nothing is played or hung up.
"""

from collections import Counter
from collections.abc import Mapping
from typing import assert_never

from ivr.actions import (
    Action,
    CancelTimer,
    Hangup,
    Play,
    RecordResult,
    Result,
    StartTimer,
    StopPlayback,
)
from ivr.actions import Transfer as TransferCall
from ivr.errors import FlowError
from ivr.events import (
    Answered,
    Digit,
    Event,
    HungUp,
    PlaybackFinished,
    TimerFired,
    TransferEnded,
)
from ivr.flow import Choice, Flow, Menu, Message, Step, Transfer
from ivr.results import FlowResult


class Session:
    """One call through `flow`, speaking `texts` (prompt id -> text, see `Flow.texts`), with
    the call's `values` for its steps (a transfer's target)."""

    def __init__(self, flow: Flow, locale: str, texts: Mapping[str, str],
                 values: Mapping[str, str] | None = None) -> None:
        if locale not in flow.locales:
            raise FlowError(f"flow {flow.name!r} has no locale {locale!r}")
        missing = sorted(flow.prompt_ids - texts.keys())
        if missing:
            raise FlowError(f"flow {flow.name!r}: no texts for prompts {missing}")
        values = dict(values or {})
        unset = sorted(name for name in flow.value_names if not values.get(name, "").strip())
        if unset:
            raise FlowError(f"flow {flow.name!r}: no values for {unset}")
        self.flow = flow
        self.locale = locale
        self._values = {name: values[name] for name in flow.value_names}
        self._texts = {prompt: texts[prompt] for prompt in flow.prompt_ids}
        self._step: Step = flow.step(flow.start)
        self._started = False
        self._finished = False
        self._result: Result | None = None
        self._playing: str | None = None
        self._queue: list[str] = []  # prompts of the current step still to play
        self._owed: Counter[str] = Counter()  # finishes still to come for prompts we stopped
        self._timer: str | None = None
        self._timers_started = 0
        self._failures = 0  # of the current menu
        self._wrong_key = False  # a key not among the current menu's choices was pressed

    @property
    def texts(self) -> dict[str, str]:
        """Every text this session may speak, to render before the call."""
        return dict(self._texts)

    @property
    def result(self) -> Result | None:
        return self._result

    @property
    def finished(self) -> bool:
        return self._finished

    def start(self, at: float) -> list[Action]:
        """The call was answered: the same as `handle(Answered(at))`."""
        return self.handle(Answered(at))

    def handle(self, event: Event) -> list[Action]:
        if self._finished:
            return []
        match event:
            case HungUp():
                return self._hung_up(event.at)
            case Answered():
                if self._started:
                    return []
                self._started = True
                return self._enter(self.flow.start, event.at)
            case _ if not self._started:
                return []
            case Digit():
                return self._digit(event.key, event.at)
            case PlaybackFinished():
                return self._playback_finished(event)
            case TimerFired():
                return self._timer_fired(event.timer_id, event.at)
            case TransferEnded():
                return self._transfer_ended(event)
            case _:
                assert_never(event)

    # -- events -----------------------------------------------------------------------------

    def _digit(self, key: str, at: float) -> list[Action]:
        step = self._step
        if not isinstance(step, Menu):  # no question is open: the key does not count
            return []
        actions = self._stop_listening()
        choice = step.choices.get(key)
        if choice is None:
            self._wrong_key = True
            return actions + self._ask_again(step, at, wrong_key=True)
        return actions + self._choose(choice, at)

    def _playback_finished(self, event: PlaybackFinished) -> list[Action]:
        prompt = event.prompt_id
        if self._owed[prompt]:
            self._owed[prompt] -= 1
            return []
        if prompt != self._playing:
            return []
        self._playing = None
        step = self._step
        if isinstance(step, Message):
            return self._enter(step.next, event.at)
        if not isinstance(step, Menu):
            return []
        if self._queue and not event.interrupted:
            return [self._play(self._queue.pop(0))]
        # The question was heard (or a key cut it and is on its way): listen.
        self._queue = []
        self._timers_started += 1
        self._timer = f"{step.id}.no_input.{self._timers_started}"
        return [StartTimer(self._timer, step.no_input_timeout_s)]

    def _timer_fired(self, timer_id: str, at: float) -> list[Action]:
        step = self._step
        if timer_id != self._timer or not isinstance(step, Menu):
            return []
        self._timer = None
        return self._ask_again(step, at, wrong_key=False)

    def _transfer_ended(self, event: TransferEnded) -> list[Action]:
        step = self._step
        if not isinstance(step, Transfer):
            return []
        if not event.succeeded:
            return self._enter(step.failed, event.at)
        record = self._record(FlowResult.TRANSFERRED, None, event.at)
        self._finish()
        return [record, Hangup()]

    def _hung_up(self, at: float) -> list[Action]:
        actions: list[Action] = []
        if self._timer is not None:
            actions.append(CancelTimer(self._timer))
        if self._result is None:
            actions.append(self._record(FlowResult.HUNG_UP, None, at))
        self._finish()
        return actions

    # -- moves ------------------------------------------------------------------------------

    def _enter(self, step_id: str | None, at: float) -> list[Action]:
        if step_id is None:
            actions: list[Action] = []
            if self._result is None:
                actions.append(self._record(FlowResult.COMPLETED, None, at))
            self._finish()
            return [*actions, Hangup()]
        step = self._step = self.flow.step(step_id)
        if isinstance(step, Transfer):
            return [TransferCall(self._values[step.target])]
        if isinstance(step, Menu):
            self._failures = 0
            self._wrong_key = False
        return [self._play(step.prompt)]

    def _choose(self, choice: Choice, at: float) -> list[Action]:
        actions: list[Action] = []
        if choice.outcome is not None:
            actions.append(self._record(choice.outcome, choice.value, at))
        return actions + self._enter(choice.next, at)

    def _ask_again(self, menu: Menu, at: float, *, wrong_key: bool) -> list[Action]:
        self._failures += 1
        if self._failures > menu.max_repeats:
            outcome = FlowResult.INVALID if self._wrong_key else FlowResult.NO_INPUT
            return [self._record(outcome, None, at), *self._enter(menu.exhausted, at)]
        apology = menu.invalid_prompt if wrong_key else menu.no_input_prompt
        if apology is None:
            return [self._play(menu.prompt)]
        self._queue = [menu.prompt]
        return [self._play(apology)]

    def _stop_listening(self) -> list[Action]:
        """A key came in a menu: cut its prompt, forget the rest of it, stop the no-input timer."""
        actions: list[Action] = []
        if self._playing is not None:
            self._owed[self._playing] += 1
            self._playing = None
            actions.append(StopPlayback())
        self._queue = []
        if self._timer is not None:
            actions.append(CancelTimer(self._timer))
            self._timer = None
        return actions

    def _play(self, prompt: str) -> Play:
        self._playing = prompt
        return Play(prompt, self._texts[prompt], barge_in=isinstance(self._step, Menu))

    def _record(self, outcome: FlowResult, value: int | None, at: float) -> RecordResult:
        self._result = Result(outcome, value, at)
        return RecordResult(self._result)

    def _finish(self) -> None:
        self._finished = True
        self._playing = None
        self._queue = []
        self._timer = None
