"""An established call: a confirmed dialog plus its RTP stream.

The rest of ringback plays prompts, waits for digits and hangs up here. In-dialog requests from
the far end (BYE, re-INVITE, UPDATE, INFO, OPTIONS, ACK, NOTIFY of our REFER) arrive through
`handle_request`.
"""

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from audio.prompts import EncodedPrompt
from telephony.line import EndReason
from telephony.sip.codecs import MediaParams
from telephony.sip.dialog import Dialog
from telephony.sip.dialog_state import DialogState
from telephony.sip.endpoint import Address
from telephony.sip.errors import SipParseError
from telephony.sip.info_dtmf import digit_from_info
from telephony.sip.media import RtpStream
from telephony.sip.message import Request, Response
from telephony.sip.sdp import LocalMedia, SdpError
from telephony.sip.stack import ALLOW, Stack
from telephony.sip.transaction import ServerTransaction
from telephony.sip.transfer import Referral, TransferResult, await_referral, build_refer
from telephony.sip.uri import parse_address

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_HOLD_S = 60.0  # a call the far end keeps on hold longer than this is hung up
DIGIT_SEND_LIMIT_S = 1.0  # longer than any digit takes to go out; a hold pauses a digit


async def send_bye(stack: Stack, dialog: Dialog, *, cseq: int | None = None) -> Response | None:
    """BYE in `dialog` along its route set: the final response, or None when none came before
    the transaction timed out. `cseq` overrides the dialog's next number. Raises `CallError`
    when the next hop's name cannot be resolved."""
    bye = dialog.new_request("BYE", stack.endpoint.via(), cseq=cseq)
    destination = await stack.resolve(dialog.next_hop())
    exchange = stack.endpoint.send_request(bye, destination)
    return await exchange.final(stack.config.timers.timeout + 1)


class Call:
    def __init__(
        self,
        stack: Stack,
        dialog: Dialog,
        local_media: LocalMedia,
        stream: RtpStream,
        *,
        outbound: bool,
    ) -> None:
        self._stack = stack
        self.dialog = dialog
        self.local_media = local_media
        self.stream = stream
        self.outbound = outbound
        self.media: MediaParams | None = None
        loop = asyncio.get_running_loop()
        self.answered_at = loop.time()
        self.ended_at: float | None = None
        self.end_reason: EndReason | None = None
        self.ended = asyncio.Event()
        self._acked = asyncio.Event()
        self._ack_wire: tuple[bytes, Address] | None = None
        self._awaiting_answer_in_ack = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._hangup_started = False
        self.held_since: float | None = None  # loop time the current hold began
        self._hold_limit_s = MAX_HOLD_S
        self._hold_timer: asyncio.TimerHandle | None = None
        self._referral: Referral | None = None  # the last REFER we sent, while it matters

    @property
    def call_id(self) -> str:
        return self.dialog.call_id

    @property
    def duration_s(self) -> float:
        end = self.ended_at if self.ended_at is not None else asyncio.get_running_loop().time()
        return end - self.answered_at

    @property
    def on_hold(self) -> bool:
        """The far end takes no audio from us now: its SDP said sendonly or inactive, or
        c=0.0.0.0 (RFC 3264 8.4; RFC 2543 hold)."""
        return self.held_since is not None

    # --- what the rest of ringback uses -------------------------------------------------------

    async def play(self, prompt: EncodedPrompt, *, barge_in: bool = True) -> bool:
        """Play a prompt; False when a digit (barge-in), a hang-up, `stop_playback` or a hold
        cut it. On hold nothing plays (False at once): no prompt waits for the far end."""
        if self.ended.is_set() or self.media is None or self.on_hold:
            return False
        return await self.stream.play(prompt.for_law(self.media.codec.law), barge_in=barge_in)

    def limit_hold(self, seconds: float) -> None:
        """Hang up (end reason `held_too_long`) when a hold lasts longer than `seconds`
        (default `MAX_HOLD_S`); a hold already going on counts from when it began."""
        self._hold_limit_s = seconds
        self._arm_hold_timer()

    def stop_playback(self) -> None:
        self.stream.stop_playback()

    async def receive_digit(self, timeout: float) -> str | None:
        """The next key the caller pressed, or None after `timeout` or when the call ends."""
        return await self._unless_ended(self.stream.receive_digit(timeout), timeout)

    async def collect_digits(self, count: int, timeout: float, terminator: str = "#") -> str:
        """Up to `count` keys, each within `timeout` of the previous; `terminator` ends early."""
        digits = ""
        while len(digits) < count:
            digit = await self.receive_digit(timeout)
            if digit is None or digit == terminator:
                break
            digits += digit
        return digits

    async def send_digit(self, digit: str) -> None:
        """Send one key; nothing on hold. A hold that begins while the key goes out pauses it
        (the rest goes out when the hold ends): the wait for it is bounded all the same."""
        if not self.ended.is_set() and not self.on_hold:
            await self._unless_ended(self.stream.send_digit(digit), DIGIT_SEND_LIMIT_S)

    async def wait_ended(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self.ended.wait()
        except TimeoutError:
            return False
        return True

    async def transfer(self, target: str, *, timeout: float = 30.0) -> TransferResult:
        """Blind transfer (RFC 3515): REFER the far end to `target` (a SIP URI, or a number /
        user resolved like a dial target) and wait at most `timeout` s for the outcome. On
        success we hang up (end reason `transferred`); on failure the call goes on. Raises
        `CallError` only for a target that cannot be called (e.g. `tel:`)."""
        if self.ended.is_set() or self._hangup_started:
            return TransferResult(False, None, "the call has ended")
        if self._referral is not None and self._referral.waiting:
            return TransferResult(False, None, "a transfer is already in progress")
        refer = build_refer(self._stack, self.dialog, target)
        referral = self._referral = Referral(refer.cseq[0])  # NOTIFYs may overtake the 202
        try:
            result = await await_referral(self._stack, self.dialog, refer, referral, timeout)
        finally:
            if self.ended.is_set():  # the dialog stayed routed for the subscription only
                self._stack.dialogs.pop(self.dialog.key, None)
        if result.succeeded:
            await self.hangup(EndReason.TRANSFERRED)
        return result

    def dialog_state(self) -> dict[str, Any]:
        """What a successor process needs to send our BYE if this one dies: a JSON object
        (`DialogState.to_json`), read back by `SipUserAgent.end_orphan`."""
        return DialogState.of(self.dialog).to_json()

    async def hangup(self, reason: EndReason = EndReason.LOCAL_HANGUP) -> None:
        """Send BYE and wait for its answer (bounded by the transaction's own timeout); the
        call ends with `reason`, unless it was already ending."""
        if self.ended.is_set() or self._hangup_started:
            await self.ended.wait()
            return
        self._hangup_started = True
        self.stream.close()
        try:
            if await send_bye(self._stack, self.dialog) is None:
                log.info("BYE for %s was never answered", self.call_id)
        except Exception:
            log.exception("BYE for %s failed", self.call_id)
        finally:
            self._end(reason)

    # --- set-up, called by outbound / inbound -------------------------------------------------

    def start_media(self, params: MediaParams) -> None:
        self._set_media(params)
        self.stream.start(params)

    def _apply(self, params: MediaParams) -> None:
        if self.media is None:
            self.start_media(params)
        else:
            self._set_media(params)
            self.stream.update(params)

    def _set_media(self, params: MediaParams) -> None:
        """Keep what offer/answer agreed; a hold (we may not send) cuts the prompt playing and
        starts the hold limit, a resume stops it."""
        self.media = params
        if params.sending == (self.held_since is None):
            return  # no change
        now = asyncio.get_running_loop().time()
        if self.held_since is None:
            log.info("call %s: the far end put us on hold", self.call_id)
            self.held_since = now
            self.stream.stop_playback()
        else:
            log.info("call %s: the hold ended after %.1f s", self.call_id, now - self.held_since)
            self.held_since = None
        self._arm_hold_timer()

    def remember_ack(self, wire: bytes, destination: Address) -> None:
        """The ACK we sent for the 2xx to our INVITE: resent on every retransmitted 2xx."""
        self._ack_wire = (wire, destination)

    def retransmit_until_ack(self, response: Response, destination: Address) -> None:
        """RFC 3261 13.3.1.4: the UAS core resends its 2xx until the ACK, then gives up."""
        self._acked.clear()
        self._spawn(self._retransmit_2xx(response.to_bytes(), destination))

    def expect_answer_in_ack(self) -> None:
        self._awaiting_answer_in_ack = True

    async def wait_acked(self) -> bool:
        timers = self._stack.config.timers
        try:
            async with asyncio.timeout(timers.timeout + 1):
                await self._acked.wait()
        except TimeoutError:
            return False
        return not self.ended.is_set()

    # --- what the far end sends --------------------------------------------------------------

    def handle_request(self, request: Request, transaction: ServerTransaction | None) -> None:
        if request.method == "ACK":
            self._on_ack(request)
            return
        if transaction is None:
            return
        method = request.method
        if self.ended.is_set() and method != "NOTIFY":  # the dialog lives on for a REFER only
            self._stack.respond(transaction, 481)
            return
        if not self.dialog.accepts_remote_seq(request.cseq[0]):
            self._stack.respond(transaction, 500, headers=[("Retry-After", "1")])
            return
        if method == "BYE":
            self._stack.respond(transaction, 200)
            self.stream.close()
            self._end(EndReason.TRANSFERRED if self._transferred else EndReason.REMOTE_HANGUP)
        elif method in ("INVITE", "UPDATE"):
            self._on_offer(request, transaction)
        elif method == "INFO":
            self._on_info(request, transaction)
        elif method == "OPTIONS":
            self._stack.respond(transaction, 200, headers=[("Allow", ALLOW)])
        elif method == "NOTIFY":
            referral = self._referral
            self._stack.respond(transaction, 481 if referral is None else
                                referral.on_notify(request))
        elif method in ("CANCEL", "PRACK"):
            self._stack.respond(transaction, 481)
        else:
            self._stack.respond(transaction, 405, headers=[("Allow", ALLOW)])

    def handle_2xx_retransmission(self, response: Response) -> None:
        if self._ack_wire is not None and response.cseq[1] == "INVITE":
            self._stack.endpoint.send_stateless(*self._ack_wire)

    def _on_ack(self, request: Request) -> None:
        if self._awaiting_answer_in_ack and request.body:
            self._awaiting_answer_in_ack = False
            try:
                self.start_media(self.local_media.accept_answer(request.body))
            except SdpError as exc:
                log.info("unusable answer in ACK on %s: %s", self.call_id, exc)
                self._spawn(self.hangup())
        self._acked.set()

    def _on_offer(self, request: Request, transaction: ServerTransaction) -> None:
        """re-INVITE or UPDATE: answer keeping the media; an offerless re-INVITE gets ours."""
        contact = request.headers.get("Contact")
        try:
            if contact:
                parse_address(contact)  # a target refresh we could not follow: refuse it whole
        except SipParseError:
            self._stack.respond(transaction, 400)
            return
        headers = [("Contact", self._stack.contact), ("Allow", ALLOW)]
        if request.body:
            try:
                if self.media is None:
                    body, params = self.local_media.answer(request.body)
                else:
                    body, params = self.local_media.reanswer(request.body, self.media)
            except SdpError as exc:
                log.info("re-offer on %s refused: %s", self.call_id, exc)
                self._stack.respond(transaction, 488)
                return
            self._awaiting_answer_in_ack = False
            self._apply(params)
        else:
            body = self.local_media.current_sdp()
            if request.method == "INVITE":
                self.expect_answer_in_ack()
        self.dialog.update_target(request)  # a target refresh takes effect only when it succeeds
        response = self._stack.respond(transaction, 200, headers=headers, body=body)
        if request.method == "INVITE":
            self.retransmit_until_ack(response, transaction.reply_to)

    def _on_info(self, request: Request, transaction: ServerTransaction) -> None:
        digit = digit_from_info(request.headers.get("Content-Type"), request.body)
        if digit is None:
            self._stack.respond(transaction, 415, headers=[("Accept", "application/dtmf-relay")])
            return
        self._stack.respond(transaction, 200)
        self.stream.push_digit(digit)

    # --- internals ---------------------------------------------------------------------------

    @property
    def _transferred(self) -> bool:
        """A transfer succeeded: the BYE that follows (ours or the far end's) ends it."""
        result = None if self._referral is None else self._referral.result
        return result is not None and result.succeeded

    async def _retransmit_2xx(self, wire: bytes, destination: Address) -> None:
        timers = self._stack.config.timers
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + timers.timeout
        interval = timers.t1
        while not self._acked.is_set() and not self.ended.is_set():
            remaining = give_up_at - loop.time()
            if remaining <= 0:
                log.info("no ACK for our 2xx on %s: hanging up", self.call_id)
                self._acked.set()
                await self.hangup(EndReason.NO_ACK)
                return
            try:
                async with asyncio.timeout(min(interval, remaining)):
                    await self._acked.wait()
            except TimeoutError:
                self._stack.endpoint.send_stateless(wire, destination)
                interval = min(interval * 2, timers.t2)

    async def _unless_ended(self, awaitable: Awaitable[T | None], timeout: float) -> T | None:
        waiting = asyncio.ensure_future(awaitable)
        ended = asyncio.ensure_future(self.ended.wait())
        try:
            await asyncio.wait({waiting, ended}, timeout=timeout + 1,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
        if waiting.done():
            return waiting.result()
        waiting.cancel()
        return None

    def _arm_hold_timer(self) -> None:
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        if self.held_since is not None and not self.ended.is_set():
            self._hold_timer = asyncio.get_running_loop().call_at(
                self.held_since + self._hold_limit_s, self._held_too_long
            )

    def _held_too_long(self) -> None:
        self._hold_timer = None
        log.info("call %s on hold for more than %.0f s: hanging up", self.call_id,
                 self._hold_limit_s)
        self._spawn(self.hangup(EndReason.HELD_TOO_LONG))

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _end(self, reason: EndReason) -> None:
        if self.ended.is_set():
            return
        self.stream.close()
        if self._hold_timer is not None:
            self._hold_timer.cancel()
        self.end_reason = reason
        self.ended_at = asyncio.get_running_loop().time()
        if self._referral is None or not self._referral.waiting:  # else its NOTIFYs still come
            self._stack.dialogs.pop(self.dialog.key, None)
        self.ended.set()
        log.info("call %s ended: %s after %.1f s", self.call_id, reason.value, self.duration_s)
