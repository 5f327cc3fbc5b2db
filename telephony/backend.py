"""What campaigns ask of a telephony backend (SIP or Twilio), and what they get back."""

from dataclasses import dataclass
from typing import Protocol

from telephony.outcomes import Outcome


@dataclass(frozen=True)
class FlowCall:
    """Call `phone` and run the named ivr flow in `locale` once someone answers."""

    job_id: str
    phone: str  # E.164
    flow: str  # e.g. "survey"
    locale: str
    params: dict[str, str]  # placeholders of the flow's texts (company name, ...)


@dataclass(frozen=True)
class CallReport:
    outcome: Outcome
    sip_status: int | None
    call_id: str | None
    result: str | None = None  # what the flow recorded: "score", "no_input", "hung_up", ...
    value: int | None = None  # e.g. the score
    detail: str = ""


class TelephonyBackend(Protocol):
    async def prepare(self, flow: str, locale: str, params: dict[str, str]) -> None:
        """Render every prompt the flow may speak, so no client waits for synthesis."""

    async def run(self, call: FlowCall) -> CallReport:
        """Place the call and run the flow; never raises for call failures (see outcome)."""
