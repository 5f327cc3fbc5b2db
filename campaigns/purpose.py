"""The seam every kind of call plugs into (survey, warnings, and what comes next).

The generic life of a job - leases, attempts, the contact rules, retries inside the calling
window, giving up - lives in campaigns/job_life.py and the dispatcher, which never name a kind.
A kind brings only what is its own: its policy, the call to place for one of its jobs (a flow
in the ivr catalog and the job's own values), a last check that the call is still wanted, what
an answered call means, and what to tell the CRM when the job gives up.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session

from campaigns.calling_window import CallingWindow
from campaigns.contact_rules import ContactCap
from campaigns.models import CallAttempt, Job
from telephony.backend import CallReport, FlowCall

NEXT_WINDOW = None  # a retry delay meaning: at the start of the client's next calling window


@dataclass(frozen=True)
class KindPolicy:
    """When and how often a kind of call may be placed."""

    window: CallingWindow  # in the client's zone
    cap: ContactCap  # at most one job of the kind per client within the cap's period
    max_attempts: int
    retry_delays: tuple[timedelta | None, ...]  # after attempt 1, 2, ...; the last repeats
    crm_check: bool = False  # ask the CRM just before dialing (campaigns/crm_check.py)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if not self.retry_delays:
            raise ValueError("at least one retry delay is needed")

    def retry_delay(self, attempts: int) -> timedelta | None:
        """The wait after the `attempts`-th attempt (NEXT_WINDOW: the next window's start)."""
        return self.retry_delays[min(attempts, len(self.retry_delays)) - 1]


class CallPurpose(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def policy(self) -> KindPolicy: ...

    def call_for(self, job: Job) -> FlowCall:
        """The call to place for `job`: a flow of the ivr catalog and the job's own values."""

    def unwanted(self, session: Session, job: Job, now: datetime) -> str | None:
        """Just before dialing, under the client's lock: why the call is no longer wanted
        (the job is cancelled with that reason), or None to call."""

    def settle_answered(self, session: Session, job: Job, attempt: CallAttempt,
                        report: CallReport, now: datetime) -> None:
        """An answered call's report (its result is stored on `attempt` already): finish the
        job, tell the CRM. Also used for a call cut by a crash after the client answered."""

    def give_up(self, session: Session, job: Job, reason: str, now: datetime) -> None:
        """The job ends without a result (attempts spent, window missed ...): tell the CRM.
        The job is already in its final state."""


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_retry_delays(text: str) -> tuple[timedelta | None, ...]:
    """Parse "15m, 1h, next-window" -> (15 minutes, 1 hour, NEXT_WINDOW); units s, m, h, d.
    Raises ValueError naming the bad part."""
    delays: list[timedelta | None] = []
    for part in (piece.strip().lower() for piece in text.split(",")):
        if part == "next-window":
            delays.append(NEXT_WINDOW)
            continue
        number, unit = part[:-1], part[-1:]
        if unit not in _UNITS or not number.isdigit() or int(number) == 0:
            raise ValueError(f"retry delay {part!r}: use a positive whole number with s, m, h or "
                             f"d (like 15m), or next-window")
        delays.append(timedelta(seconds=int(number) * _UNITS[unit]))
    return tuple(delays)
