"""How a call attempt ended, in words the rest of ringback understands (pure logic)."""

from enum import Enum


class Outcome(Enum):
    ANSWERED = "answered"
    BUSY = "busy"
    DECLINED = "declined"
    NO_ANSWER = "no_answer"
    UNREACHABLE = "unreachable"
    FAILED = "failed"
    CANCELLED = "cancelled"


_BY_STATUS = {
    486: Outcome.BUSY,
    600: Outcome.BUSY,
    603: Outcome.DECLINED,
    480: Outcome.NO_ANSWER,
    404: Outcome.UNREACHABLE,
    410: Outcome.UNREACHABLE,
    484: Outcome.UNREACHABLE,
    604: Outcome.UNREACHABLE,
}


def outcome_for_status(
    status: int, *, cancelled_by_ring_timeout: bool = False, rang: bool = False
) -> Outcome:
    """The outcome of an INVITE that got this final status.

    A 487 after our own CANCEL for the ring timeout is a no-answer: nobody picked up in time.
    A 408 (a proxy's timer ran out) is a no-answer when the phone rang (a provisional came),
    and unreachable when nothing answered at all, like our own Timer B.
    Anything unmapped (503, 488, 500, ...) is a failure; the caller keeps the status for details.
    """
    if 200 <= status < 300:
        return Outcome.ANSWERED
    if status == 408:
        return Outcome.NO_ANSWER if rang else Outcome.UNREACHABLE
    if status == 487:
        return Outcome.NO_ANSWER if cancelled_by_ring_timeout else Outcome.CANCELLED
    return _BY_STATUS.get(status, Outcome.FAILED)
