"""What campaigns ask of a telephony backend (SIP or Twilio), and what they get back."""

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ivr.results import FlowResult
from telephony.outcomes import Outcome


@dataclass(frozen=True)
class FlowCall:
    """Call `phone` and run the ivr catalog's flow `flow` in `locale` once someone answers,
    with the call's own `values` (what its prompts speak: an amount, a campaign, a date ...)."""

    job_id: str
    phone: str  # E.164
    flow: str  # a name in the ivr catalog
    locale: str
    values: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CallReport:
    outcome: Outcome
    sip_status: int | None
    call_id: str | None
    result: FlowResult | None = None  # what the flow recorded last
    value: int | None = None  # e.g. the score
    detail: str = ""


class CallProgress(Protocol):
    """The call's pacing, and what a backend reports while the call is still up, for
    campaigns to store at once (`recorded` returns immediately: storing happens in the
    background, the call goes on; `answered` waits, briefly, for the dialog to be stored).

    `withdrawn` is set when the call is no longer wanted (the client paid meanwhile): a backend
    cancels a call not yet answered (outcome `CANCELLED`) and lets an answered one finish."""

    @property
    def withdrawn(self) -> asyncio.Event: ...

    async def dial_slot(self) -> None:
        """Wait for this call's place in the shared calls-per-second budget; the backend calls
        it right before the call goes out (after any preparation), so lateness stays small."""

    async def answered(self, dialog: Mapping[str, Any]) -> None:
        """The call was answered; `dialog` (JSON) is what `end_orphan` needs to hang it up.
        A backend awaits it before it confirms the answer (SIP: before the ACK), so a call
        the far end sees as up has its dialog stored; it returns once the dialog is stored or,
        when the database is slow, after a short bound (storing goes on in the background)."""

    def recorded(self, result: FlowResult, value: int | None) -> None:
        """The flow recorded a result (a score, a menu choice, no input ...)."""


class TelephonyBackend(Protocol):
    async def prepare(self, call: FlowCall) -> None:
        """Render every prompt the call may speak, so no client waits for synthesis; raises
        `ivr.errors.FlowError` when the call's values do not fit its flow."""

    async def run(self, call: FlowCall, progress: CallProgress) -> CallReport:
        """Place the call and run the flow; never raises for call failures (see outcome)."""

    async def end_orphan(self, dialog: Mapping[str, Any]) -> bool:
        """Hang up a call a dead process left up, from its stored `dialog`; True when the far
        end confirmed the call is over. Never raises for network faults."""
