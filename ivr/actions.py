"""What a session asks the line to do, in the order given."""

from dataclasses import dataclass

from ivr.results import FlowResult


@dataclass(frozen=True)
class Result:
    """What the call achieved: an outcome, an optional value (a score) and when it was decided."""

    outcome: FlowResult
    value: int | None
    at: float


@dataclass(frozen=True)
class Play:
    """Play one prompt. With `barge_in` a key press cuts it short. The next `Play` only comes
    after this one's `PlaybackFinished`, so a backend never has to queue prompts."""

    prompt_id: str
    text: str
    barge_in: bool


@dataclass(frozen=True)
class StopPlayback:
    """Stop the prompt now playing (and still report its `PlaybackFinished`)."""


@dataclass(frozen=True)
class StartTimer:
    """Start a one-shot timer; report `TimerFired(timer_id)` after `seconds`. Ids are unique
    within a session, so a late fire of a cancelled timer can never be mistaken for a new one."""

    timer_id: str
    seconds: float


@dataclass(frozen=True)
class CancelTimer:
    timer_id: str


@dataclass(frozen=True)
class Transfer:
    """Put the caller through to `target` (a phone number or a SIP URI) and leave the call;
    report `TransferEnded`. On success the line is ours no more."""

    target: str


@dataclass(frozen=True)
class Hangup:
    """End the call. The session is finished; it ignores every later event."""


@dataclass(frozen=True)
class RecordResult:
    """Keep this result of the call (report it to the CRM). The latest one recorded stands."""

    result: Result


Action = Play | StopPlayback | StartTimer | CancelTimer | Transfer | Hangup | RecordResult
