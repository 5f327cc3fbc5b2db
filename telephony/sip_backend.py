"""The SIP backend: places a call with ringback's own user agent and runs an ivr flow on it."""

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from audio.prompts import EncodedPrompt, PromptCache
from ivr.actions import Result
from ivr.catalog import FlowCatalog
from ivr.session import Session
from telephony.backend import CallProgress, CallReport, FlowCall
from telephony.flow_runner import FlowRunner
from telephony.outcomes import Outcome
from telephony.sip.call import MAX_HOLD_S
from telephony.sip.dialog_state import InvalidDialogState
from telephony.sip.stack import dial_target
from telephony.sip.ua import SipUserAgent

log = logging.getLogger(__name__)

MAX_CALL_S = 600.0

# locale -> prompt id -> the recording a call in that locale plays instead of the prompt's speech
Recordings = Callable[[str], Awaitable[Mapping[str, EncodedPrompt]]]


def language_of(locale: str) -> str:
    return locale.replace("_", "-").split("-", 1)[0].lower()


class SipBackend:
    def __init__(
        self,
        ua: SipUserAgent,
        prompts: PromptCache,
        flows: FlowCatalog,
        *,
        dial_template: str = "{phone}",
        ring_timeout_s: float = 30.0,
        max_hold_s: float = MAX_HOLD_S,
        recordings: Recordings | None = None,
    ) -> None:
        """`max_hold_s`: a call the far end keeps on hold longer is hung up (`held_too_long`);
        the flow's own timers run on during a hold, and every call ends by `MAX_CALL_S`."""
        self._ua = ua
        self._prompts = prompts
        self._flows = flows
        self._dial_template = dial_template
        self._ring_timeout_s = ring_timeout_s
        self._max_hold_s = max_hold_s
        self._recordings = recordings

    def ready(self) -> bool:
        """Whether a call placed now can get through (the SIP registration is current)."""
        return self._ua.ready()

    def target(self, phone: str) -> str:
        return dial_target(self._dial_template, phone)

    async def prepare(self, call: FlowCall) -> None:
        await self._render(self._session(call))

    def _session(self, call: FlowCall) -> Session:
        return self._flows.session(call.flow, call.locale, call.values)

    async def run(self, call: FlowCall, progress: CallProgress) -> CallReport:
        session = self._session(call)
        prompts = await self._render(session)  # rendered ahead: found in the cache
        await progress.dial_slot()
        result = await self._ua.call(self.target(call.phone), ring_timeout=self._ring_timeout_s,
                                     abort=progress.withdrawn, on_answer=progress.answered)
        if result.call is None:
            return CallReport(result.outcome, result.sip_status, result.call_id,
                              detail=result.reason)
        result.call.limit_hold(self._max_hold_s)

        def store(answer: Result) -> None:
            progress.recorded(answer.outcome, answer.value)

        runner = FlowRunner(result.call, session, prompts, store, route=self.target)
        recorded = await runner.run(MAX_CALL_S)
        return CallReport(
            Outcome.ANSWERED, result.sip_status, result.call_id,
            result=recorded.outcome if recorded else None,
            value=recorded.value if recorded else None,
            detail=result.call.end_reason.value if result.call.end_reason else "",
        )

    async def end_orphan(self, dialog: Mapping[str, Any]) -> bool:
        try:
            return (await self._ua.end_orphan(dialog)).ended
        except InvalidDialogState as exc:
            log.error("a stored dialog cannot be used to hang up its call: %s", exc)
            return False

    async def _render(self, session: Session) -> dict[str, EncodedPrompt]:
        """Each prompt of the call: its recording where marketing uploaded one, else speech."""
        language = language_of(session.locale)
        recorded = {} if self._recordings is None else await self._recordings(session.locale)
        return {
            prompt_id: recorded.get(prompt_id) or await self._prompts.from_text(text, language)
            for prompt_id, text in session.texts.items()
        }
