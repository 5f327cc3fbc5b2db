"""What `ringback serve` does with inbound calls until the inbound line exists.

Every inbound call gets its final answer the moment it arrives: a configured refusal (by
default 480 Temporarily Unavailable with a Retry-After), or, with a message configured, the
call is answered, hears the message and is hung up. Nothing waits in the engine's queue.
"""

import asyncio
import logging
from dataclasses import dataclass

from audio.prompts import EncodedPrompt
from telephony.sip.errors import CallError
from telephony.sip.inbound import IncomingCall
from telephony.sip.ua import SipUserAgent

log = logging.getLogger(__name__)

# Final responses that tell a caller "not now" or "not here" and need no more headers than
# Retry-After (401/407 need a challenge, 3xx a Contact, 405 an Allow ...).
REFUSALS = frozenset({403, 404, 410, 480, 486, 503, 600, 603})
IDLE_WAIT_S = 60.0  # how long one wait for the next call lasts; the loop waits again


@dataclass(frozen=True)
class InboundAnswer:
    """How inbound calls are answered.

    Without `message`: refused with `status`, with `Retry-After: retry_after_s` unless that is
    None. With `message`: answered, the message played once, hung up; at most
    `max_message_calls` at a time (each holds an RTP port), the calls beyond are refused.
    """

    status: int = 480
    retry_after_s: int | None = 300
    message: EncodedPrompt | None = None
    max_message_calls: int = 10

    def __post_init__(self) -> None:
        if self.status not in REFUSALS:
            raise ValueError(f"inbound status {self.status} is not one of {sorted(REFUSALS)}")
        if self.retry_after_s is not None and self.retry_after_s < 0:
            raise ValueError("inbound Retry-After must be 0 or more seconds")
        if self.max_message_calls < 1:
            raise ValueError("at least one inbound message call must be allowed at a time")

    @property
    def refusal_headers(self) -> list[tuple[str, str]]:
        return [] if self.retry_after_s is None else [("Retry-After", str(self.retry_after_s))]


class InboundPolicy:
    """Takes every inbound call off `ua` as it arrives and answers it as `answer` says.
    `run()` goes on until cancelled; cancelling it hangs up the message calls in progress."""

    def __init__(self, ua: SipUserAgent, answer: InboundAnswer) -> None:
        self._ua = ua
        self._answer = answer
        self._message_calls: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        try:
            while True:
                incoming = await self._ua.next_incoming(IDLE_WAIT_S)
                if incoming is not None:
                    self._handle(incoming)
        finally:
            for task in self._message_calls:
                task.cancel()
            await asyncio.gather(*self._message_calls, return_exceptions=True)

    def _handle(self, incoming: IncomingCall) -> None:
        message = self._answer.message
        if message is None or len(self._message_calls) >= self._answer.max_message_calls:
            log.info("inbound call %s refused with %d", incoming.call_id, self._answer.status)
            incoming.reject(self._answer.status, self._answer.refusal_headers)
            return
        task = asyncio.ensure_future(self._play_message(incoming, message))
        self._message_calls.add(task)
        task.add_done_callback(self._message_calls.discard)

    async def _play_message(self, incoming: IncomingCall, message: EncodedPrompt) -> None:
        try:
            call = await self._ua.answer(incoming)
        except CallError as exc:  # the caller cancelled, our 200 was never ACKed ...
            log.info("inbound call %s not answered: %s", incoming.call_id, exc)
            return
        log.info("inbound call %s answered with the message", incoming.call_id)
        try:
            await call.play(message, barge_in=False)  # bounded: a hold cuts it, so does BYE
        finally:
            await call.hangup()
