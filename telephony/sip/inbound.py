"""Answering calls: an INVITE rings here until the application answers or rejects it."""

import asyncio
import logging
from collections.abc import Callable
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
        self.cancelled = asyncio.Event()

    @property
    def call_id(self) -> str:
        return self.request.call_id

    @property
    def caller(self) -> Address:
        return self.request.from_address

    @property
    def callee(self) -> Address:
        return self.request.to_address

    def ring(self) -> None:
        self._stack.respond(self.transaction, 180, to_tag=self.local_tag,
                            headers=[("Contact", self._stack.contact)])

    def reject(self, status: int = 486) -> None:
        if self.state is IncomingState.RINGING:
            self._settle(IncomingState.REJECTED)
            self._stack.respond(self.transaction, status, to_tag=self.local_tag)

    def caller_cancelled(self, cancel: ServerTransaction) -> None:
        """CANCEL: 200 for the CANCEL, 487 for the INVITE (RFC 3261 9.2)."""
        self._stack.respond(cancel, 200)
        if self.state is IncomingState.RINGING:
            self._settle(IncomingState.CANCELLED)
            self._stack.respond(self.transaction, 487, to_tag=self.local_tag)
            self.cancelled.set()

    def _settle(self, state: IncomingState) -> None:
        self.state = state
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
    """Calls ringing for the application; bounded, so a flood gets 486 instead of memory."""

    def __init__(self, stack: Stack, media: MediaEngine, limit: int) -> None:
        self._stack = stack
        self._media = media
        self._waiting: asyncio.Queue[IncomingCall] = asyncio.Queue(limit)
        self._ringing: dict[str, IncomingCall] = {}  # by the INVITE's branch

    def offer(self, request: Request, transaction: ServerTransaction) -> None:
        if self._waiting.full():
            log.warning("incoming call refused: %d calls already wait", self._waiting.qsize())
            self._stack.respond(transaction, 486, to_tag=random_token(8))
            return
        self._stack.respond(transaction, 100)
        incoming = IncomingCall(self._stack, self._media, request, transaction, self._forget)
        incoming.ring()
        branch = request.top_via.branch or ""
        self._ringing[branch] = incoming
        self._waiting.put_nowait(incoming)

    def cancel(self, cancel: Request, transaction: ServerTransaction) -> None:
        incoming = self._ringing.get(cancel.top_via.branch or "")
        if incoming is None:
            self._stack.respond(transaction, 481)
            return
        incoming.caller_cancelled(transaction)

    async def next(self, timeout: float) -> IncomingCall | None:
        """The next call still ringing, or None after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                async with asyncio.timeout(max(0.0, deadline - loop.time())):
                    incoming = await self._waiting.get()
            except TimeoutError:
                return None
            if incoming.state is IncomingState.RINGING:
                return incoming

    def _forget(self, incoming: IncomingCall) -> None:
        self._ringing.pop(incoming.request.top_via.branch or "", None)

    def reject_all(self, status: int = 480) -> None:
        while not self._waiting.empty():
            self._waiting.get_nowait().reject(status)
        self._ringing.clear()
