"""Ending a call that a dead process left up: one BYE from a fresh user agent, a typed result.

The BYE is built from the stored `DialogState` as the dead process would have built it (same
Call-ID, tags, From/To, route set, Request-URI) but carries our own Via (a new branch), and its
CSeq is the stored number plus `SUCCESSOR_CSEQ_MARGIN` (`DialogState.successor_cseq`).
"""

import logging
from dataclasses import dataclass
from enum import Enum

from telephony.sip.call import send_bye
from telephony.sip.dialog_state import DialogState
from telephony.sip.errors import CallError
from telephony.sip.message import Response
from telephony.sip.stack import Stack

log = logging.getLogger(__name__)


class OrphanOutcome(Enum):
    ANSWERED = "answered"  # a 2xx: the far end ended the call
    GONE = "gone"  # 481: the far end no longer has the dialog (it ended already)
    REFUSED = "refused"  # any other final response; its status is in `sip_status`
    TIMEOUT = "timeout"  # no final response within the transaction timeout, or a proxy's 408
    UNREACHABLE = "unreachable"  # the next hop's name could not be resolved


@dataclass(frozen=True)
class OrphanEnded:
    call_id: str
    outcome: OrphanOutcome
    sip_status: int | None
    reason: str

    @property
    def ended(self) -> bool:
        """The far end confirmed the call is over (it took our BYE, or had ended it already)."""
        return self.outcome in (OrphanOutcome.ANSWERED, OrphanOutcome.GONE)


def orphan_result(call_id: str, response: Response | None) -> OrphanEnded:
    """What the final response to our BYE (None: the transaction timed out) says."""
    if response is None:
        return OrphanEnded(call_id, OrphanOutcome.TIMEOUT, None, "no response (Timer F)")
    status = response.status
    if 200 <= status < 300:
        outcome = OrphanOutcome.ANSWERED
    elif status == 481:
        outcome = OrphanOutcome.GONE
    elif status == 408:
        outcome = OrphanOutcome.TIMEOUT
    else:
        outcome = OrphanOutcome.REFUSED
    return OrphanEnded(call_id, outcome, status, response.reason)


async def end_orphan(stack: Stack, state: DialogState) -> OrphanEnded:
    """Send BYE for `state`'s dialog and wait for its answer, at most the transaction timeout."""
    try:
        response = await send_bye(stack, state.to_dialog(), cseq=state.successor_cseq)
    except CallError as exc:
        result = OrphanEnded(state.call_id, OrphanOutcome.UNREACHABLE, None, str(exc))
    else:
        result = orphan_result(state.call_id, response)
    log.info("orphaned call %s: BYE %s (%s)", state.call_id, result.outcome.value,
             result.sip_status)
    return result
