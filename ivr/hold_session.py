"""A caller waiting on hold, as a sans-IO state machine: events in, actions out, no clock.

The caller first waits `first_delay_s` in silence, then hears a tip, then a gap of `gap_s`
(silence, or the line's music bed clip), then the next tip, and so on, until an agent is free
(`Connected`: whatever plays is stopped at once and the session is over) or the caller hangs up
(`HungUp`: over, and the tip that was playing, if any, is reported). Which tip comes next is the
caller's `CallerRotation`'s choice at the event's `local` time (wall-clock time in the business's
zone).

Actions reuse `ivr.actions` where they fit (`StartTimer` for the first wait and a silent gap,
`CancelTimer`, `StopPlayback`); the hold-specific ones are `PlayTip`, `PlayGap` and
`HungUpDuringTip`. The contract with the backend is the one of `ivr.session`: one playback at a
time (the next play only after the current one's end is reported), timer ids unique within the
session, stale or unfitting events ignored.

Decisions:
- `PlayTip` is also the play to count: a tip counts as played when it starts, whether it ends,
  is cut by `Connected` or by a hang-up.
- With a music bed the gap is the clip *and* a `gap_s` timer: when the timer fires first the clip
  is stopped and the next tip follows the clip's reported end; a clip shorter than the gap leaves
  silence until the timer.
- When no tip is active (schedules), the session keeps to gaps and asks again after each.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import assert_never

from ivr.actions import CancelTimer, StartTimer, StopPlayback
from ivr.hold_rotation import CallerRotation, HoldTiming, RotationTip

# -- events --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimerFired:
    """A timer the session started ran out (a cancelled one that fires anyway is ignored)."""

    timer_id: str
    local: datetime


@dataclass(frozen=True)
class TipFinished:
    """A tip stopped playing (to its end, or cut short)."""

    tip_id: int
    local: datetime


@dataclass(frozen=True)
class GapFinished:
    """The music bed clip of a gap stopped playing (to its end, or cut short)."""

    local: datetime


@dataclass(frozen=True)
class Connected:
    """An agent is free: the wait is over."""

    local: datetime


@dataclass(frozen=True)
class HungUp:
    """The caller hung up, or the line is gone."""

    local: datetime


HoldEvent = TimerFired | TipFinished | GapFinished | Connected | HungUp

# -- actions -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlayTip:
    """Play this tip (and count one play of it); report `TipFinished` when it stops."""

    tip_id: int


@dataclass(frozen=True)
class PlayGap:
    """Play the music bed clip `clip` for a gap; report `GapFinished` when it stops."""

    clip: str


@dataclass(frozen=True)
class HungUpDuringTip:
    """The caller hung up while this tip played (count it against the tip)."""

    tip_id: int


HoldAction = StartTimer | CancelTimer | StopPlayback | PlayTip | PlayGap | HungUpDuringTip


class HoldSession:
    """One caller on hold on a line with `tips`, rotated by `rotation`, paced by `timing`; `bed`
    is the line's music bed clip for the gaps (None: silence)."""

    def __init__(self, tips: tuple[RotationTip, ...], rotation: CallerRotation,
                 timing: HoldTiming, *, bed: str | None = None) -> None:
        self._tips = tips
        self._rotation = rotation
        self._timing = timing
        self._bed = bed
        self._started = False
        self._finished = False
        self._connected = False
        self._tip: int | None = None  # the tip playing
        self._clip = False  # the bed clip is playing
        self._timer: str | None = None
        self._timers_started = 0
        self._hung_up_during: int | None = None

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def connected(self) -> bool:
        """The wait ended with an agent (not a hang-up)."""
        return self._connected

    @property
    def hung_up_during(self) -> int | None:
        """The tip that was playing when the caller hung up, if any."""
        return self._hung_up_during

    def start(self) -> list[HoldAction]:
        """The caller starts waiting: the first delay."""
        if self._started or self._finished:
            return []
        self._started = True
        return [self._start_timer("wait", self._timing.first_delay_s)]

    def handle(self, event: HoldEvent) -> list[HoldAction]:
        if self._finished:
            return []
        match event:
            case Connected():
                return self._connect()
            case HungUp():
                return self._hang_up()
            case _ if not self._started:
                return []
            case TimerFired():
                return self._timer_fired(event)
            case TipFinished():
                if event.tip_id != self._tip:
                    return []
                self._tip = None
                return self._gap()
            case GapFinished():
                if not self._clip:
                    return []
                self._clip = False
                return self._next_tip(event.local) if self._timer is None else []
            case _:
                assert_never(event)

    def _connect(self) -> list[HoldAction]:
        actions = self._stop()
        if self._tip is not None or self._clip:
            actions.append(StopPlayback())
        self._connected = True
        self._finish()
        return actions

    def _hang_up(self) -> list[HoldAction]:
        actions = self._stop()
        if self._tip is not None:
            self._hung_up_during = self._tip
            actions.append(HungUpDuringTip(self._tip))
        self._finish()
        return actions

    def _timer_fired(self, event: TimerFired) -> list[HoldAction]:
        if event.timer_id != self._timer:
            return []
        self._timer = None
        if self._clip:  # the gap is over but its clip still plays: the tip follows its end
            return [StopPlayback()]
        return self._next_tip(event.local)

    def _next_tip(self, local: datetime) -> list[HoldAction]:
        tip = self._rotation.next_tip(self._tips, local)
        if tip is None:
            return self._gap()
        self._tip = tip
        return [PlayTip(tip)]

    def _gap(self) -> list[HoldAction]:
        actions: list[HoldAction] = [self._start_timer("gap", self._timing.gap_s)]
        if self._bed is not None:
            self._clip = True
            actions.append(PlayGap(self._bed))
        return actions

    def _start_timer(self, kind: str, seconds: float) -> StartTimer:
        self._timers_started += 1
        self._timer = f"hold.{kind}.{self._timers_started}"
        return StartTimer(self._timer, seconds)

    def _stop(self) -> list[HoldAction]:
        return [] if self._timer is None else [CancelTimer(self._timer)]

    def _finish(self) -> None:
        self._finished = True
        self._timer = None
