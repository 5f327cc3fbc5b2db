"""Answering calls: an INVITE rings here until the application answers or rejects it, the
caller cancels, or it rings out (`MAX_RING_S`)."""

import asyncio
import logging
from collections.abc import Callable, Sequence
from enum import Enum

from telephony.sip.call import Call
from telephony.sip.dialog import Dialog
from telephony.sip.endpoint import random_token
from telephony.sip.errors import CallError
from telephony.sip.media import MediaEngine
from telephony.sip.message import Request
from telephony.sip.sdp import LocalMedia, SdpError
from telephony.sip.stack import ALLOW, Stack
from telephony.sip.transaction import ServerTransaction
from telephony.sip.uri import Address

log = logging.getLogger(__name__)

MAX_RING_S = 120.0  # an incoming call nobody answered or rejected by then gets 480


class IncomingState(Enum):
    RINGING = "ringing"
    ANSWERED = "answered"
    REJECTED = "rejected"
    CANCELLED = "cancelled"  # the caller gave up before we answered


class IncomingCall:
    def __init__(
        self,
        stack: Stack,
        media: MediaEngine,
        request: Request,
        transaction: ServerTransaction,
        settled: Callable[["IncomingCall"], None],
    ) -> None:
        self._stack = stack
        self._settled = settled
        self._media = media
        self.request = request
        self.transaction = transaction
        self.local_tag = random_token(8)
        self.state = IncomingState.RINGING
        self._ring_out: asyncio.TimerHandle | None = None

    @property
    def call_id(self) -> str:
        return self.request.call_id

    @property
    def caller(self) -> Address:
        return self.request.from_address

    @property
    def callee(self) -> Address:
        return self.request.to_address

    def ring(self, max_ring_s: float) -> None:
        """180 now; 480 if nobody answered or rejected the call within `max_ring_s`."""
        self._stack.respond(self.transaction, 180, to_tag=self.local_tag,
                            headers=[("Contact", self._stack.contact)])
        self._ring_out = asyncio.get_running_loop().call_later(max_ring_s, self._rang_out)

    def _rang_out(self) -> None:
        log.info("incoming call %s was not answered in time: 480", self.call_id)
        self.reject(480)

    def reject(self, status: int = 486, headers: Sequence[tuple[str, str]] = ()) -> None:
        if self.state is IncomingState.RINGING:
            self._settle(IncomingState.REJECTED)
            self._stack.respond(self.transaction, status, to_tag=self.local_tag,
                                headers=list(headers))

    def caller_cancelled(self, cancel: ServerTransaction) -> None:
        """CANCEL: 200 for the CANCEL, 487 for the INVITE (RFC 3261 9.2)."""
        self._stack.respond(cancel, 200)
        if self.state is IncomingState.RINGING:
            self._settle(IncomingState.CANCELLED)
            self._stack.respond(self.transaction, 487, to_tag=self.local_tag)

    def _settle(self, state: IncomingState) -> None:
        self.state = state
        if self._ring_out is not None:
            self._ring_out.cancel()
        self._settled(self)

    async def answer(self) -> Call:
        """200 with our answer (or our offer, for an offerless INVITE); returns once ACKed."""
        if self.state is not IncomingState.RINGING:
            raise CallError(f"cannot answer call {self.call_id}: it is {self.state.value}")
        stream = await self._media.open_stream()
        if self.state is not IncomingState.RINGING:  # cancelled while the port was bound
            stream.close()
            raise CallError(f"cannot answer call {self.call_id}: it is {self.state.value}")
        local = LocalMedia(self._stack.endpoint.host, stream.local_port)
        dialog = Dialog.from_uas(self.request, self.local_tag)
        call = Call(self._stack, dialog, local, stream, outbound=False)
        try:
            if self.request.body:
                body, params = local.answer(self.request.body)
                call.start_media(params)
            else:
                body = local.offer()
                call.expect_answer_in_ack()
        except SdpError as exc:
            stream.close()
            self.reject(488)
            raise CallError(f"cannot answer call {self.call_id}: {exc}") from exc
        self._settle(IncomingState.ANSWERED)
        self._stack.dialogs[dialog.key] = call
        response = self._stack.respond(
            self.transaction, 200, to_tag=self.local_tag,
            headers=[("Contact", self._stack.contact), ("Allow", ALLOW)], body=body,
        )
        call.retransmit_until_ack(response, self.transaction.reply_to)
        if not await call.wait_acked():
            raise CallError(f"call {self.call_id} was never confirmed (no ACK for our 200)")
        return call


class IncomingQueue:
    """Calls ringing for the application, oldest first. Bounded: while `limit` calls ring, a
    new one gets 486. A call leaves the moment it is answered, rejected, cancelled or rang out,
    whether or not the application has taken it yet."""

    def __init__(
        self, stack: Stack, media: MediaEngine, limit: int, *, max_ring_s: float = MAX_RING_S
    ) -> None:
        self._stack = stack
        self._media = media
        self._limit = limit
        self._max_ring_s = max_ring_s
        # Keyed by the INVITE's server transaction, which is what a CANCEL matches (RFC 3261 9.2)
        self._ringing: dict[ServerTransaction, IncomingCall] = {}
        self._waiting: dict[ServerTransaction, IncomingCall] = {}  # not taken by `next` yet
        self._arrived = asyncio.Event()

    def __len__(self) -> int:
        """Calls ringing now, taken by the application or not."""
        return len(self._ringing)

    def offer(self, request: Request, transaction: ServerTransaction) -> None:
        if len(self._ringing) >= self._limit:
            log.warning("incoming call refused: %d calls already ring", len(self._ringing))
            self._stack.respond(transaction, 486, to_tag=random_token(8))
            return
        self._stack.respond(transaction, 100)
        incoming = IncomingCall(self._stack, self._media, request, transaction, self._forget)
        self._ringing[transaction] = incoming
        self._waiting[transaction] = incoming
        incoming.ring(self._max_ring_s)
        self._arrived.set()

    def cancel(self, cancel: Request, transaction: ServerTransaction) -> None:
        """CANCEL: 200 + 487 for a call still ringing; only 200 when the INVITE already has its
        final response (the CANCEL changes nothing); 481 when there is no such INVITE."""
        invite = self._stack.endpoint.layer.find_server(cancel)
        incoming = None if invite is None else self._ringing.get(invite)
        if incoming is not None:
            incoming.caller_cancelled(transaction)
        else:
            self._stack.respond(transaction, 481 if invite is None else 200)

    async def next(self, timeout: float) -> IncomingCall | None:
        """The oldest call still ringing that no one took yet, or None after `timeout` s."""
        try:
            async with asyncio.timeout(timeout):
                while not self._waiting:
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            return None
        return self._waiting.pop(next(iter(self._waiting)))

    def _forget(self, incoming: IncomingCall) -> None:
        self._ringing.pop(incoming.transaction, None)
        self._waiting.pop(incoming.transaction, None)

    def reject_all(self, status: int = 480) -> None:
        for incoming in list(self._ringing.values()):
            incoming.reject(status)
