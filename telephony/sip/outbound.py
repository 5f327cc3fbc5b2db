"""Placing a call: INVITE with our offer, digest retry, ring timeout with CANCEL, ACK for 2xx."""

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from telephony.outcomes import Outcome, outcome_for_status
from telephony.sip.call import Call, EndReason
from telephony.sip.dialog import Dialog
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
    """The state of one INVITE while it rings."""

    invite: Request
    destination: Address
    exchange: Exchange
    provisional_seen: bool = False
    cancel_reason: Outcome | None = None  # NO_ANSWER (ring timeout) or CANCELLED (we gave up)
    cancel_sent: bool = False
    authenticated: bool = False


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
    ) -> None:
        check_custom_headers(headers)
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
        attempt = _Attempt(invite, destination, self._stack.endpoint.send_request(invite,
                                                                               destination))
        ring_deadline = started + self._ring_timeout
        cancel_deadline: float | None = None

        def result(outcome: Outcome, status: int | None, reason: str) -> CallResult:
            return CallResult(outcome, status, reason, invite.call_id, loop.time() - started)

        while True:
            deadline = cancel_deadline if attempt.cancel_reason else ring_deadline
            response = await self._next_response(attempt, deadline)
            if response is _Stop.DEADLINE:
                if attempt.cancel_reason is not None:  # CANCEL sent, still no final: give up
                    self._stack.endpoint.forget(attempt.exchange)
                    return result(attempt.cancel_reason, None, "no final response after CANCEL")
                attempt.cancel_reason = Outcome.NO_ANSWER
            elif response is _Stop.ABORTED:
                attempt.cancel_reason = Outcome.CANCELLED
            elif response is None:
                if attempt.cancel_reason is not None:
                    return result(attempt.cancel_reason, None, "cancelled")
                return result(Outcome.UNREACHABLE, 408, "no response (Timer B)")
            elif response.status < 200:
                attempt.provisional_seen = True
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
                )
                return result(outcome, response.status, response.reason)
            if attempt.cancel_reason and attempt.provisional_seen and not attempt.cancel_sent:
                self._send_cancel(attempt)
                cancel_deadline = loop.time() + self._stack.config.timers.timeout

    async def _next_response(
        self, attempt: _Attempt, deadline: float | None
    ) -> Response | _Stop | None:
        """A response, None when the INVITE transaction timed out, or why we stopped waiting."""
        loop = asyncio.get_running_loop()
        if deadline is None:  # CANCEL wanted but no provisional yet: only Timer B can end it
            deadline = loop.time() + self._stack.config.timers.timeout
        wait_s = max(0.0, deadline - loop.time())
        response = asyncio.ensure_future(attempt.exchange.next(wait_s + 1))
        aborted = asyncio.ensure_future(self._aborted.wait())
        waiters: set[asyncio.Future[Response | None] | asyncio.Future[Literal[True]]] = {
            response
        }
        if attempt.cancel_reason is None:
            waiters.add(aborted)
        try:
            await asyncio.wait(waiters, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            aborted.cancel()
            if not response.done():
                response.cancel()
        if response.done() and not response.cancelled() and response.exception() is None:
            return response.result()
        if attempt.cancel_reason is None and self._aborted.is_set():
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
        exchange = self._stack.endpoint.send_request(retry, attempt.destination)
        return _Attempt(retry, attempt.destination, exchange, attempt.provisional_seen,
                        attempt.cancel_reason, authenticated=True)

    def _send_cancel(self, attempt: _Attempt) -> None:
        """RFC 3261 9.1: same Request-URI, Call-ID, From, To, CSeq number, Via and Route."""
        invite = attempt.invite
        cancel = Request(invite.headers.copy(), b"", "CANCEL", invite.uri)
        for name in ("Contact", "Allow", "Content-Type", "Authorization", "Proxy-Authorization",
                     *(name for name, _ in self._headers)):
            cancel.headers.remove(name)
        cancel.headers.set("CSeq", f"{invite.cseq[0]} CANCEL")
        self._stack.endpoint.send_request(cancel, attempt.destination)
        attempt.cancel_sent = True

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
        ack = dialog.new_request("ACK", stack.endpoint.via(), cseq=attempt.invite.cseq[0])
        ack_destination = await stack.resolve(dialog.next_hop())
        stack.endpoint.send_stateless(ack.to_bytes(), ack_destination)
        call = Call(stack, dialog, local, stream, outbound=True)
        call.remember_ack(ack.to_bytes(), ack_destination)
        stack.dialogs[dialog.key] = call
        setup_s = loop.time() - started
        call_id = attempt.invite.call_id
        if attempt.cancel_reason is not None:  # answered as we cancelled: too late for us
            await call.hangup()
            return CallResult(attempt.cancel_reason, 200, "answered after CANCEL", call_id,
                              setup_s)
        try:
            call.start_media(local.accept_answer(response.body))
        except SdpError as exc:
            await call.hangup()
            call.end_reason = EndReason.BAD_ANSWER
            return CallResult(Outcome.FAILED, 200, f"unusable SDP answer: {exc}", call_id,
                              setup_s)
        return CallResult(Outcome.ANSWERED, response.status, response.reason, call_id, setup_s,
                          call)
