"""Placing a call: INVITE with our offer, digest retry, ring timeout with CANCEL (only after a
provisional response; Timer B decides before one), early answers, ACK for 2xx."""

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

from telephony.line import EndReason
from telephony.outcomes import Outcome, outcome_for_status
from telephony.sip.call import Call
from telephony.sip.dialog import Dialog
from telephony.sip.dialog_state import DialogState
from telephony.sip.digest import AuthError, authorization, choose_challenge
from telephony.sip.endpoint import Address, Exchange, random_token
from telephony.sip.errors import CallError
from telephony.sip.media import MediaEngine, RtpStream
from telephony.sip.message import Request, Response
from telephony.sip.sdp import LocalMedia, SdpError
from telephony.sip.stack import ALLOW, Stack
from telephony.sip.uri import SipUri

log = logging.getLogger(__name__)

_HEADER_NAME = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_RESERVED_HEADERS = frozenset(
    name.lower()
    for name in ("Via", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Length",
                 "Content-Type", "Max-Forwards", "Route", "Record-Route", "Authorization",
                 "Proxy-Authorization")
)
Headers = Sequence[tuple[str, str]]
MAX_EARLY_DIALOGS = 16  # forks whose early SDP we keep for a 2xx without one
# How long the ACK of an answer we keep may wait for `on_answer` (storing the dialog). The far
# end retransmits its 2xx until it gets the ACK, for 64*T1 = 32 s; the client hears silence
# meanwhile, so the wait stays short, and the call goes on when it runs out.
ON_ANSWER_TIMEOUT_S = 2.0

# Called with the answered call's `DialogState.to_json()` before the ACK goes out.
AnswerHook = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class CallResult:
    """How one call attempt ended; `call` is set when it was answered."""

    outcome: Outcome
    sip_status: int | None
    reason: str
    call_id: str
    setup_s: float
    call: Call | None = None


def check_custom_headers(headers: Headers) -> None:
    """Refuse headers that would break or forge the request before anything is sent."""
    for name, value in headers:
        if not _HEADER_NAME.match(name) or name.lower() in _RESERVED_HEADERS:
            raise CallError(f"custom header {name!r} is not allowed")
        if "\r" in value or "\n" in value:
            raise CallError(f"custom header {name!r} has a line break in its value")


class _Stop(Enum):
    DEADLINE = "deadline"  # the ring timeout, or the wait after our CANCEL, ran out
    ABORTED = "aborted"  # we were asked to give up


@dataclass
class _Attempt:
    """The state of one INVITE transaction while it rings."""

    invite: Request
    destination: Address
    exchange: Exchange
    timer_b_at: float  # when the transaction gives up if nothing at all came back
    provisional_seen: bool = False
    cancel_reason: Outcome | None = None  # why we want out: NO_ANSWER (ring timeout), CANCELLED
    cancel_deadline: float | None = None  # set when our CANCEL went out: after a 1xx only
    authenticated: bool = False
    early_answers: dict[str, bytes] = field(default_factory=dict)  # To-tag → SDP of a 1xx

    @property
    def cancel_sent(self) -> bool:
        return self.cancel_deadline is not None

    @property
    def given_up_as(self) -> Outcome:
        """What an attempt we wanted out of reports: NO_ANSWER or CANCELLED."""
        return self.cancel_reason or Outcome.CANCELLED

    @property
    def listens_for_abort(self) -> bool:
        """Giving up counts until our CANCEL is out, even once the ring timeout passed."""
        return not self.cancel_sent and self.cancel_reason is not Outcome.CANCELLED

    def deadline(self, ring_deadline: float) -> float:
        """Until when to wait: the ring timeout; once we want out but may not CANCEL before a
        provisional response (RFC 3261 9.1), Timer B; after our CANCEL, its own wait."""
        if self.cancel_deadline is not None:
            return self.cancel_deadline
        return ring_deadline if self.cancel_reason is None else self.timer_b_at

    def note_provisional(self, response: Response) -> None:
        """A 1xx: CANCEL is allowed from now on; its SDP is the answer of its early dialog
        (RFC 3261 13.2.1, RFC 6337 3.1), kept for a 2xx of the same To-tag that has none."""
        self.provisional_seen = True
        tag = response.to_address.tag or ""
        if response.body and tag not in self.early_answers and (
            len(self.early_answers) < MAX_EARLY_DIALOGS
        ):
            self.early_answers[tag] = response.body

    def answer_in(self, response: Response) -> bytes:
        """The SDP answer a 2xx confirms: its own, else its early dialog's."""
        return response.body or self.early_answers.get(response.to_address.tag or "", b"")


class OutboundCall:
    """One outbound attempt; `run()` returns its result, `abort()` cancels it while ringing."""

    def __init__(
        self,
        stack: Stack,
        media: MediaEngine,
        target: SipUri,
        *,
        caller_id: str | None,
        ring_timeout: float,
        headers: Headers = (),
        on_answer: AnswerHook | None = None,
    ) -> None:
        check_custom_headers(headers)
        self._on_answer = on_answer
        self._stack = stack
        self._media = media
        self._target = target
        self._caller_id = caller_id
        self._ring_timeout = ring_timeout
        self._headers = list(headers)
        self._aborted = asyncio.Event()

    def abort(self) -> None:
        self._aborted.set()

    async def run(self) -> CallResult:
        loop = asyncio.get_running_loop()
        started = loop.time()
        stream = await self._media.open_stream()
        local = LocalMedia(self._stack.endpoint.host, stream.local_port)
        invite = self._build_invite(local.offer())
        call_id = invite.call_id
        self._stack.inviting.add(call_id)
        result: CallResult | None = None
        try:
            if self._aborted.is_set():  # given up before it began: nothing goes out
                result = CallResult(Outcome.CANCELLED, None, "aborted before the INVITE went out",
                                    call_id, loop.time() - started)
            else:
                result = await self._ring(invite, local, stream, started)
        finally:
            self._stack.inviting.discard(call_id)
            if result is None or result.call is None:  # the stream lives on with the call only
                stream.close()
        log.info("call %s: %s (%s) after %.2f s", call_id, result.outcome.value,
                 result.sip_status, result.setup_s)
        return result

    def _build_invite(self, offer: bytes) -> Request:
        stack = self._stack
        invite = stack.new_request(
            "INVITE",
            str(self._target),
            from_=f"{stack.local_address(self._caller_id)};tag={random_token(8)}",
            to=f"<{self._target}>",
            cseq=1,
        )
        invite.headers.add("Contact", stack.contact)
        invite.headers.add("Allow", ALLOW)
        for name, value in self._headers:
            invite.headers.add(name, value)
        invite.headers.add("Content-Type", "application/sdp")
        invite.body = offer
        return invite

    async def _ring(
        self, invite: Request, local: LocalMedia, stream: RtpStream, started: float
    ) -> CallResult:
        loop = asyncio.get_running_loop()
        destination = await self._stack.resolve(self._stack.outbound_hop(self._target))
        attempt = self._send(invite, destination)
        ring_deadline = started + self._ring_timeout

        def result(outcome: Outcome, status: int | None, reason: str) -> CallResult:
            return CallResult(outcome, status, reason, invite.call_id, loop.time() - started)

        while True:
            response = await self._next_response(attempt, attempt.deadline(ring_deadline))
            if response is _Stop.DEADLINE and attempt.cancel_reason is None:
                attempt.cancel_reason = Outcome.NO_ANSWER  # the ring timeout
            elif response is _Stop.DEADLINE or response is None:
                # None: Timer B, or our endpoint closed; the deadline: Timer B's time (its
                # event not in yet), or no final response within 64*T1 after our CANCEL.
                timed_out = response is _Stop.DEADLINE or attempt.exchange.transaction.terminated
                self._stack.endpoint.forget(attempt.exchange)
                return result(*self._unanswered(attempt, timed_out))
            elif response is _Stop.ABORTED:
                attempt.cancel_reason = Outcome.CANCELLED
            elif response.status < 200:
                attempt.note_provisional(response)
            elif response.status < 300:
                return await self._answered(attempt, response, local, stream, started)
            elif response.status in (401, 407) and not attempt.authenticated:
                attempt = self._authenticate(attempt, response)
                if attempt.authenticated:
                    continue
                return result(Outcome.FAILED, response.status, "authentication required")
            else:
                outcome = outcome_for_status(
                    response.status,
                    cancelled_by_ring_timeout=attempt.cancel_reason is Outcome.NO_ANSWER,
                    rang=attempt.provisional_seen,
                )
                return result(outcome, response.status, response.reason)
            if attempt.cancel_reason and attempt.provisional_seen and not attempt.cancel_sent:
                self._send_cancel(attempt)

    @staticmethod
    def _unanswered(attempt: _Attempt, timed_out: bool) -> tuple[Outcome, int | None, str]:
        """How an attempt that got no final response ended. Without a CANCEL out (none can go
        before a provisional), a timeout is Timer B's, whatever we wanted by then."""
        if attempt.cancel_sent:
            return attempt.given_up_as, None, "no final response after CANCEL"
        if timed_out:
            return Outcome.UNREACHABLE, 408, "no response (Timer B)"
        return attempt.given_up_as, None, "the user agent stopped"

    def _send(self, invite: Request, destination: Address, *, authenticated: bool = False,
              cancel_reason: Outcome | None = None) -> _Attempt:
        """A new INVITE transaction: it starts with no provisional response seen."""
        endpoint = self._stack.endpoint
        timer_b_at = endpoint.now + self._stack.config.timers.timeout
        return _Attempt(invite, destination, endpoint.send_request(invite, destination),
                        timer_b_at, cancel_reason=cancel_reason, authenticated=authenticated)

    async def _next_response(self, attempt: _Attempt, deadline: float) -> Response | _Stop | None:
        """A response, None when the INVITE transaction timed out, or why we stopped waiting."""
        loop = asyncio.get_running_loop()
        wait_s = max(0.0, deadline - loop.time())
        response = asyncio.ensure_future(attempt.exchange.next(wait_s + 1))
        aborted = asyncio.ensure_future(self._aborted.wait())
        waiters: set[asyncio.Future[Response | None] | asyncio.Future[Literal[True]]] = {
            response
        }
        if attempt.listens_for_abort:
            waiters.add(aborted)
        try:
            await asyncio.wait(waiters, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            aborted.cancel()
            if not response.done():
                response.cancel()
        if response.done() and not response.cancelled() and response.exception() is None:
            return response.result()
        if attempt.listens_for_abort and self._aborted.is_set():
            return _Stop.ABORTED
        return _Stop.DEADLINE

    def _authenticate(self, attempt: _Attempt, challenge_response: Response) -> _Attempt:
        account = self._stack.account
        if account.password is None:
            return attempt
        try:
            header, challenge = choose_challenge(challenge_response)
        except AuthError as exc:
            log.info("cannot answer the challenge on %s: %s", attempt.invite.call_id, exc)
            return attempt
        invite = attempt.invite
        retry = Request(invite.headers.copy(), invite.body, invite.method, invite.uri)
        retry.headers.set("Via", self._stack.endpoint.via())
        retry.headers.set("CSeq", f"{invite.cseq[0] + 1} INVITE")
        retry.headers.add(
            header,
            authorization(
                challenge,
                method="INVITE",
                uri=invite.uri,
                username=account.auth_user or account.user,
                password=account.password,
            ),
        )
        return self._send(retry, attempt.destination, authenticated=True,
                          cancel_reason=attempt.cancel_reason)

    def _send_cancel(self, attempt: _Attempt) -> None:
        """RFC 3261 9.1: same Request-URI, Call-ID, From, To, CSeq number, Via and Route."""
        invite = attempt.invite
        cancel = Request(invite.headers.copy(), b"", "CANCEL", invite.uri)
        for name in ("Contact", "Allow", "Content-Type", "Authorization", "Proxy-Authorization",
                     *(name for name, _ in self._headers)):
            cancel.headers.remove(name)
        cancel.headers.set("CSeq", f"{invite.cseq[0]} CANCEL")
        self._stack.endpoint.send_request(cancel, attempt.destination)
        attempt.cancel_deadline = self._stack.endpoint.now + self._stack.config.timers.timeout

    async def _answer_noted(self, dialog: Dialog) -> None:
        """Run `on_answer` (at most ON_ANSWER_TIMEOUT_S) before the ACK: a process that dies
        before it finished never ACKs, and the far end drops the call by itself (Timer H), so
        every call it ACKed can be hung up by a successor from what `on_answer` stored."""
        if self._on_answer is None:
            return
        try:
            await asyncio.wait_for(self._on_answer(DialogState.of(dialog).to_json()),
                                   ON_ANSWER_TIMEOUT_S)
        except TimeoutError:
            log.warning("call %s: the answer was not noted within %.0f s; ACK anyway",
                        dialog.call_id, ON_ANSWER_TIMEOUT_S)
        except Exception:  # a failing hook must not lose the call
            log.exception("call %s: noting the answer failed; ACK anyway", dialog.call_id)

    async def _answered(
        self,
        attempt: _Attempt,
        response: Response,
        local: LocalMedia,
        stream: RtpStream,
        started: float,
    ) -> CallResult:
        loop = asyncio.get_running_loop()
        stack = self._stack
        dialog = Dialog.from_uac(attempt.invite, response)
        given_up = attempt.cancel_sent or attempt.cancel_reason is Outcome.CANCELLED
        if not given_up:
            await self._answer_noted(dialog)
        ack = dialog.new_request("ACK", stack.endpoint.via(), cseq=attempt.invite.cseq[0])
        ack_destination = await stack.resolve(dialog.next_hop())
        stack.endpoint.send_stateless(ack.to_bytes(), ack_destination)
        call = Call(stack, dialog, local, stream, outbound=True)
        call.remember_ack(ack.to_bytes(), ack_destination)
        stack.dialogs[dialog.key] = call
        setup_s = loop.time() - started
        call_id = attempt.invite.call_id
        if given_up:  # answered too late for us
            await call.hangup()
            reason = "answered after CANCEL" if attempt.cancel_sent else "answered after we gave up"
            return CallResult(attempt.given_up_as, response.status, reason, call_id, setup_s)
        answer = attempt.answer_in(response)
        try:
            call.start_media(local.accept_answer(answer))
        except SdpError as exc:
            await call.hangup(EndReason.BAD_ANSWER)
            problem = exc if answer else "none in the 2xx nor in an early 1xx of its dialog"
            return CallResult(Outcome.FAILED, 200, f"unusable SDP answer: {problem}", call_id,
                              setup_s)
        return CallResult(Outcome.ANSWERED, response.status, response.reason, call_id, setup_s,
                          call)
