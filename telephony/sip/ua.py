"""ringback's SIP user agent: the one object the rest of ringback talks to.

It owns the signalling endpoint, the media engine and the registration, routes every incoming
request to the dialog or call it belongs to, and answers what belongs to no one.
"""

import asyncio
import logging
import resource
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Literal

from telephony.outcomes import Outcome
from telephony.sip.call import Call, send_bye
from telephony.sip.config import EngineConfig, SipAccount
from telephony.sip.dialog import Dialog
from telephony.sip.dialog_state import DialogState
from telephony.sip.endpoint import Address, SipEndpoint
from telephony.sip.errors import SipParseError
from telephony.sip.inbound import IncomingCall, IncomingQueue
from telephony.sip.media import MediaEngine
from telephony.sip.message import Request, Response
from telephony.sip.orphans import OrphanEnded, end_orphan
from telephony.sip.outbound import AnswerHook, CallResult, OutboundCall
from telephony.sip.registration import Registration
from telephony.sip.stack import ALLOW, Stack
from telephony.sip.transaction import ServerTransaction
from telephony.sip.uri import parse_address

log = logging.getLogger(__name__)

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset()  # no option tags supported yet
# Out of any dialog: in-dialog methods have no dialog to act on (481), nor does a NOTIFY for no
# subscription of ours (RFC 6665 4.1.3); methods we know but do not serve get 405; anything else
# is unknown (501).
REFUSED_OUTSIDE_DIALOG = {
    **dict.fromkeys(("BYE", "PRACK", "UPDATE", "INFO", "NOTIFY"), 481),
    **dict.fromkeys(("SUBSCRIBE", "REFER", "MESSAGE", "PUBLISH", "REGISTER"), 405),
}
SHUTDOWN_TIMEOUT_S = 5.0
RESERVED_DESCRIPTORS = 64  # logs, database, HTTP clients, the SIP socket itself
COMFORTABLE_CALLS = 300


def call_capacity(rtp_ports: tuple[int, int]) -> int:
    """How many calls can be up at once: one RTP socket per call, on an even port in range."""
    soft_limit, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    by_descriptors = max(0, soft_limit - RESERVED_DESCRIPTORS)
    by_ports = (rtp_ports[1] - rtp_ports[0] + 1) // 2
    return min(by_descriptors, by_ports)


class SipUserAgent:
    def __init__(
        self, account: SipAccount, config: EngineConfig, *, inband_dtmf: bool = False
    ) -> None:
        self.account = account
        self.config = config
        endpoint = SipEndpoint(
            config.local_host, config.sip_port, config.timers, self._on_request,
            self._on_stray_response, public_host=config.public_host,
        )
        self.stack = Stack(endpoint, account, config)
        self.media = MediaEngine(config.local_host, config.rtp_ports, inband_dtmf=inband_dtmf)
        self.incoming = IncomingQueue(self.stack, self.media, config.max_pending_incoming)
        self.registration: Registration | None = None
        self._attempts: set[OutboundCall] = set()
        self._calls: set[Call] = set()
        self._stopping = False
        self._background: set[asyncio.Future[None]] = set()

    async def __aenter__(self) -> "SipUserAgent":
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def endpoint(self) -> SipEndpoint:
        return self.stack.endpoint

    async def start(self, *, register_in_background: bool = False) -> None:
        """Open the sockets and, with a registrar configured, register: the first REGISTER must
        succeed (else `RegistrationError`), or with `register_in_background` start returns at
        once and registration keeps trying for as long as the agent runs (see `ready()`)."""
        await self.stack.endpoint.open()
        capacity = call_capacity(self.config.rtp_ports)
        level = logging.WARNING if capacity < COMFORTABLE_CALLS else logging.INFO
        log.log(level, "SIP on %s:%d; room for %d concurrent calls (ulimit -n and RTP ports "
                "%d-%d)", self.config.local_host, self.endpoint.port, capacity,
                *self.config.rtp_ports)
        if self.account.registrar_uri is not None:
            self.registration = Registration(self.stack)
            if register_in_background:
                self.registration.start_in_background()
                return
            try:
                await self.registration.start()
            except BaseException:
                await self.stop()
                raise

    def ready(self) -> bool:
        """Whether calls can go out now: not stopping, and registered if there is a registrar."""
        return not self._stopping and (self.registration is None or self.registration.current())

    async def stop(self) -> None:
        """Cancel ringing attempts, hang up live calls, unregister, close the sockets."""
        self._stopping = True
        self.incoming.reject_all()
        for attempt in list(self._attempts):
            attempt.abort()
        try:
            async with asyncio.timeout(SHUTDOWN_TIMEOUT_S):
                await asyncio.gather(*(call.hangup() for call in list(self._calls)),
                                     return_exceptions=True)
            if self.registration is not None:
                async with asyncio.timeout(SHUTDOWN_TIMEOUT_S):
                    await self.registration.stop()
        except TimeoutError:
            log.warning("SIP shutdown did not finish within %.0f s", SHUTDOWN_TIMEOUT_S)
        self.media.close()
        self.stack.endpoint.close()

    async def call(
        self,
        target: str,
        *,
        caller_id: str | None = None,
        ring_timeout: float = 30.0,
        headers: Sequence[tuple[str, str]] = (),
        abort: asyncio.Event | None = None,
        on_answer: AnswerHook | None = None,
    ) -> CallResult:
        """Place a call; an answered call comes back in `result.call`, ready to play.
        Setting `abort` before the answer gives the attempt up (CANCEL once it rings; outcome
        `cancelled`); set before the INVITE went out, none goes out; after the answer it
        changes nothing. `on_answer` gets the dialog's state (`Call.dialog_state()`) before
        the ACK goes out, to store it for a successor (see `OutboundCall`)."""
        attempt = OutboundCall(
            self.stack, self.media, self.stack.target_uri(target),
            caller_id=caller_id, ring_timeout=ring_timeout, headers=headers,
            on_answer=on_answer,
        )
        if self._stopping or (abort is not None and abort.is_set()):
            attempt.abort()
        watching: asyncio.Future[Literal[True]] | None = None
        if abort is not None and not abort.is_set():
            watching = asyncio.ensure_future(abort.wait())
            watching.add_done_callback(lambda done: None if done.cancelled() else attempt.abort())
        self._attempts.add(attempt)
        try:
            result = await attempt.run()
        finally:
            self._attempts.discard(attempt)
            if watching is not None:
                watching.cancel()
        if result.call is not None:
            self._track(result.call)
        return result

    async def next_incoming(self, timeout: float) -> IncomingCall | None:
        return await self.incoming.next(timeout)

    async def answer(self, incoming: IncomingCall) -> Call:
        call = await incoming.answer()
        self._track(call)
        return call

    async def end_orphan(self, state: Mapping[str, Any]) -> OrphanEnded:
        """BYE for a call a dead process left up, from the state its `Call.dialog_state()`
        gave; the result says how the far end took it. Network faults are results, not errors,
        and the wait is bounded by the transaction timeout; a state we did not write raises
        `InvalidDialogState` before anything is sent."""
        return await end_orphan(self.stack, DialogState.from_json(state))

    def _track(self, call: Call) -> None:
        self._calls.add(call)
        asyncio.ensure_future(call.ended.wait()).add_done_callback(
            lambda _: self._calls.discard(call)
        )

    # --- routing -------------------------------------------------------------------------------

    def _on_request(
        self, request: Request, source: Address, transaction: ServerTransaction | None
    ) -> None:
        try:
            self._route(request, transaction)
        except Exception:  # one bad request must never take the endpoint down
            log.exception("failed to handle %s from %s:%s", request.method, *source)
            if transaction is not None and transaction.last_response is None:
                self.stack.respond(transaction, 500)

    def _route(self, request: Request, transaction: ServerTransaction | None) -> None:
        to_tag = request.to_address.tag
        if to_tag is not None:
            key = (request.call_id, to_tag, request.from_address.tag or "")
            owner = self.stack.dialogs.get(key)
            if owner is not None:
                owner.handle_request(request, transaction)
            elif transaction is not None:
                self.stack.respond(transaction, 481)
            return
        if transaction is None:  # an ACK outside any dialog: nothing to do
            return
        method = request.method
        if method == "CANCEL":
            self.incoming.cancel(request, transaction)
        elif method not in ("INVITE", "OPTIONS"):
            status = REFUSED_OUTSIDE_DIALOG.get(method, 501)
            self.stack.respond(transaction, status, headers=[("Allow", ALLOW)])
        elif unsupported := _unsupported_extensions(request):
            self.stack.respond(transaction, 420, headers=[("Unsupported", ", ".join(unsupported))])
        elif method == "INVITE" and not _can_start_dialog(request):
            self.stack.respond(transaction, 400)
        elif method == "OPTIONS":
            self.stack.respond(
                transaction, 200,
                headers=[("Allow", ALLOW), ("Accept", "application/sdp"), ("Contact",
                                                                         self.stack.contact)],
            )
        elif self._stopping:
            self.stack.respond(transaction, 503, headers=[("Retry-After", "30")])
        else:
            self.incoming.offer(request, transaction)

    def _on_stray_response(self, response: Response) -> None:
        """A 2xx to an INVITE whose transaction is gone: our ACK was lost, or a late fork."""
        if response.cseq[1] != "INVITE" or not 200 <= response.status < 300:
            return
        key = (response.call_id, response.from_address.tag or "",
               response.to_address.tag or "")
        owner = self.stack.dialogs.get(key)
        if owner is not None:
            owner.handle_2xx_retransmission(response)
        elif response.call_id not in self.stack.inviting:
            task = asyncio.ensure_future(self._refuse_stray_2xx(response))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _refuse_stray_2xx(self, response: Response) -> None:
        """RFC 3261 13.2.2.4: ACK an unwanted 2xx, then BYE it."""
        try:
            dialog = Dialog.from_response(response, fallback_target=response.to_address.uri)
            endpoint = self.stack.endpoint
            destination = await self.stack.resolve(dialog.next_hop())
            ack = dialog.new_request("ACK", endpoint.via(), cseq=response.cseq[0])
            endpoint.send_stateless(ack.to_bytes(), destination)
            await send_bye(self.stack, dialog)
        except Exception:
            log.exception("could not refuse a stray 2xx on %s", response.call_id)


def _unsupported_extensions(request: Request) -> list[str]:
    required = [tag.strip() for value in request.headers.get_all("Require")
                for tag in value.split(",") if tag.strip()]
    return [tag for tag in required if tag not in SUPPORTED_EXTENSIONS]


def _can_start_dialog(request: Request) -> bool:
    """One SIP Contact and readable Record-Routes (RFC 3261 8.1.1.8, 12.1.1): else the call
    could be offered, but never answered or hung up (its dialog would not parse)."""
    contacts = request.headers.get_all("Contact")
    try:
        for value in [*contacts, *request.headers.get_all("Record-Route")]:
            parse_address(value)
    except SipParseError:
        return False
    return len(contacts) == 1


__all__ = ["Call", "CallResult", "IncomingCall", "OrphanEnded", "Outcome", "SipUserAgent"]
