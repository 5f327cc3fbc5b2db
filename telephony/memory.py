"""A telephony backend in memory, for tests of what sits above telephony (like httpx's
MockTransport): every call is answered by a script instead of a phone, and every call, render
and orphan hang-up is kept for the test to look at.
"""

import asyncio
import itertools
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ivr.results import FlowResult
from telephony.backend import CallProgress, CallReport, FlowCall
from telephony.outcomes import Outcome


@dataclass(frozen=True)
class Scripted:
    """What the far end does on one call.

    Not answered (`outcome` other than ANSWERED) -> that outcome with `sip_status`. Answered ->
    the flow "records" `result` / `value` and the call ends. `rings` keeps it ringing until the
    call is withdrawn (-> CANCELLED). `hangs` keeps an answered call up forever (a process that
    is about to die mid-call). `fails` makes the backend raise (a bug in a backend)."""

    outcome: Outcome = Outcome.ANSWERED
    sip_status: int | None = None
    result: FlowResult | None = None
    value: int | None = None
    rings: bool = False
    hangs: bool = False
    fails: bool = False


ANSWERED_SILENTLY = Scripted(result=FlowResult.NO_INPUT)


class MemoryBackend:
    """Calls to a phone follow the scripts given for it, in order (the last one repeats); other
    phones follow `default`. Calls happen only after `dial_slot`, like real ones, and a call
    withdrawn by then never goes out (CANCELLED, like a SIP attempt aborted before its INVITE)."""

    def __init__(self, default: Scripted = ANSWERED_SILENTLY,
                 scripts: Mapping[str, Iterable[Scripted]] | None = None,
                 *, orphans_end: bool = True) -> None:
        self.default = default
        self._scripts: dict[str, deque[Scripted]] = defaultdict(deque)
        for phone, steps in (scripts or {}).items():
            self._scripts[phone].extend(steps)
        self._orphans_end = orphans_end
        self._ids = itertools.count(1)
        self.calls: list[FlowCall] = []  # every call placed, in order
        self.prepared: list[FlowCall] = []  # every call rendered ahead
        self.withdrawn: list[FlowCall] = []  # calls cancelled before going out or ringing
        self.ended: list[Mapping[str, Any]] = []  # orphans hung up

    def script(self, phone: str, *steps: Scripted) -> None:
        self._scripts[phone].extend(steps)

    def _next(self, phone: str) -> Scripted:
        queue = self._scripts.get(phone)
        if not queue:
            return self.default
        return queue.popleft() if len(queue) > 1 else queue[0]

    async def prepare(self, call: FlowCall) -> None:
        self.prepared.append(call)

    async def run(self, call: FlowCall, progress: CallProgress) -> CallReport:
        await progress.dial_slot()
        if progress.withdrawn.is_set():  # given up before it began: nothing goes out
            self.withdrawn.append(call)
            return CallReport(Outcome.CANCELLED, None, None, detail="withdrawn before dialing")
        script = self._next(call.phone)
        self.calls.append(call)
        call_id = f"memory-{next(self._ids)}"
        if script.fails:
            raise RuntimeError(f"scripted backend failure for {call.job_id}")
        if script.rings:
            await progress.withdrawn.wait()
            self.withdrawn.append(call)
            return CallReport(Outcome.CANCELLED, 487, call_id, detail="withdrawn while ringing")
        if script.outcome is not Outcome.ANSWERED:
            return CallReport(script.outcome, script.sip_status, call_id)
        await progress.answered({"call_id": call_id, "job_id": call.job_id})
        if script.result is not None:
            progress.recorded(script.result, script.value)
        if script.hangs:
            await asyncio.Event().wait()
        return CallReport(Outcome.ANSWERED, 200, call_id, result=script.result,
                          value=script.value)

    async def end_orphan(self, dialog: Mapping[str, Any]) -> bool:
        self.ended.append(dialog)
        return self._orphans_end
