"""What the line reports to a session. Times are seconds on the caller's monotonic clock: the
session never reads a clock, it only compares what comes in."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Answered:
    """The call was answered; the flow starts."""

    at: float


@dataclass(frozen=True)
class Digit:
    """The caller pressed a key (one DTMF character)."""

    key: str
    at: float


@dataclass(frozen=True)
class PlaybackFinished:
    """A prompt stopped playing: to its end, or cut short (`interrupted`) by a barge-in digit,
    a `StopPlayback` or the backend. Every `Play` gets exactly one of these, stopped ones too."""

    prompt_id: str
    at: float
    interrupted: bool = False


@dataclass(frozen=True)
class TimerFired:
    """A timer the session started ran out (a cancelled timer that fires anyway is ignored)."""

    timer_id: str
    at: float


@dataclass(frozen=True)
class HungUp:
    """The far end hung up, or the line is gone."""

    at: float


@dataclass(frozen=True)
class TransferEnded:
    """A `Transfer` ended: the caller was put through (`succeeded`), or the line is still ours."""

    succeeded: bool
    at: float


Event = Answered | Digit | PlaybackFinished | TimerFired | TransferEnded | HungUp
