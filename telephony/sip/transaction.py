"""RFC 3261 §17 transactions (with the RFC 6026 Accepted state), sans-IO.

Over a reliable transport (TCP) nothing is retransmitted: Timers A, E and G never start, and
D, I, J and K are zero (§17.1.1.2, 17.1.2.2, 17.2.1, 17.2.2).

The layer never reads a clock, never touches a socket: the caller passes `now` into every call,
takes the datagrams to send with `datagrams_to_send()`, and calls `tick(now)` at `next_deadline()`.
Events for the transaction user (the UA core) come back from `receive()` and `tick()`.
"""

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from telephony.sip.errors import LocalProtocolError, SipParseError
from telephony.sip.headers import Headers
from telephony.sip.message import Datagram, Message, Request, Response, reply_to_malformed
from telephony.sip.uri import Via

Address = tuple[str, int]


@dataclass(frozen=True)
class TimerConfig:
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    @property
    def timeout(self) -> float:
        """64*T1: Timers B, F, H, J, L and M."""
        return 64 * self.t1


class State(Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(frozen=True)
class RequestReceived:
    request: Request
    source: Address
    transaction: "ServerTransaction | None"  # None for an ACK to a 2xx: it has no transaction


@dataclass(frozen=True)
class ResponseReceived:
    response: Response
    transaction: "ClientTransaction | None"  # None for a 2xx that outlived its transaction


@dataclass(frozen=True)
class TransactionTimedOut:
    """Timer B or F: no final response (the TU treats it as 408)."""

    transaction: "ClientTransaction"


@dataclass(frozen=True)
class AckNeverCame:
    """Timer H: our non-2xx final response to an INVITE was never acknowledged."""

    transaction: "ServerTransaction"


Event = RequestReceived | ResponseReceived | TransactionTimedOut | AckNeverCame
Sink = Callable[[Datagram], None]
Emit = Callable[[Event], None]


class _Transaction:
    def __init__(self, timers: TimerConfig, send: Sink, emit: Emit, reliable: bool) -> None:
        self.state = State.TRYING
        self.reliable = reliable
        self._config = timers
        self._send = send
        self._emit = emit
        self._timers: dict[str, float] = {}
        self._intervals: dict[str, float] = {}

    @property
    def next_deadline(self) -> float | None:
        return min(self._timers.values(), default=None)

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def _start_timer(self, name: str, now: float, interval: float) -> None:
        self._timers[name] = now + interval
        self._intervals[name] = interval

    def _terminate(self) -> None:
        self.state = State.TERMINATED
        self._timers.clear()

    def fire_timers(self, now: float) -> None:
        for name, deadline in sorted(self._timers.items(), key=lambda item: item[1]):
            if deadline <= now and name in self._timers and not self.terminated:
                del self._timers[name]
                self._on_timer(name, now)

    def _on_timer(self, name: str, now: float) -> None:
        raise NotImplementedError

    def _linger(self, interval: float) -> float:
        """How long to absorb retransmissions: nothing comes again over a reliable transport."""
        return 0.0 if self.reliable else interval


class ClientTransaction(_Transaction):
    """Sends a request, retransmits it, matches responses; ACKs non-2xx finals to INVITE."""

    def __init__(
        self,
        request: Request,
        destination: Address,
        now: float,
        timers: TimerConfig,
        send: Sink,
        emit: Emit,
        reliable: bool = False,
        udp_fallback: bool = False,
    ) -> None:
        super().__init__(timers, send, emit, reliable)
        self.request = request
        self.destination = destination
        self.udp_fallback = udp_fallback  # sent over TCP only for its size (RFC 3261 18.1.1)
        self.branch = request.top_via.branch or ""
        self.is_invite = request.method == "INVITE"
        self.final_response: Response | None = None
        self._wire = request.to_bytes()
        self.state = State.CALLING if self.is_invite else State.TRYING
        self._transmit()
        if not reliable:
            self._start_timer("A" if self.is_invite else "E", now, timers.t1)
        self._start_timer("B" if self.is_invite else "F", now, timers.timeout)

    @property
    def key(self) -> tuple[str, str]:
        return self.branch, self.request.method

    def _transmit(self) -> None:
        self._send(Datagram(self._wire, self.destination))

    def receive(self, response: Response, now: float) -> None:
        if self.is_invite:
            self._receive_invite(response, now)
        else:
            self._receive_non_invite(response, now)

    def _receive_invite(self, response: Response, now: float) -> None:
        status = response.status
        if self.state in (State.CALLING, State.PROCEEDING):
            self._timers.pop("A", None)
            if status < 200:
                self._timers.pop("B", None)  # Timer B only runs in Calling; the TU may CANCEL
                self.state = State.PROCEEDING
            elif status < 300:
                self.state = State.ACCEPTED
                self._timers.clear()
                self._start_timer("M", now, self._config.timeout)
            else:
                self.state = State.COMPLETED
                self._timers.clear()
                self.final_response = response
                self._send_ack(response)
                self._start_timer("D", now, self._linger(32.0))
            self._emit(ResponseReceived(response, self))
        elif self.state is State.ACCEPTED and 200 <= status < 300:
            self._emit(ResponseReceived(response, self))  # the TU acknowledges 2xx itself
        elif self.state is State.COMPLETED and status >= 300:
            self._send_ack(response)

    def _send_ack(self, response: Response) -> None:
        """RFC 3261 17.1.1.3: the ACK for a non-2xx final is part of the INVITE transaction."""
        headers = Headers()
        headers.add("Via", self.request.headers.get("Via") or "")
        for route in self.request.headers.get_all("Route"):
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        headers.add("From", self.request.headers.get("From") or "")
        headers.add("To", response.headers.get("To") or "")
        headers.add("Call-ID", self.request.call_id)
        headers.add("CSeq", f"{self.request.cseq[0]} ACK")
        ack = Request(headers=headers, body=b"", method="ACK", uri=self.request.uri)
        self._send(Datagram(ack.to_bytes(), self.destination))

    def _receive_non_invite(self, response: Response, now: float) -> None:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return
        if response.status < 200:
            self.state = State.PROCEEDING
        else:
            self.state = State.COMPLETED
            self.final_response = response
            self._timers.clear()
            self._start_timer("K", now, self._linger(self._config.t4))
        self._emit(ResponseReceived(response, self))

    def _on_timer(self, name: str, now: float) -> None:
        config = self._config
        if name == "A":
            self._transmit()
            self._start_timer("A", now, self._intervals["A"] * 2)
        elif name == "E":
            self._transmit()
            interval = config.t2 if self.state is State.PROCEEDING else self._intervals["E"] * 2
            self._start_timer("E", now, min(interval, config.t2))
        elif name in ("B", "F"):
            self._terminate()
            self._emit(TransactionTimedOut(self))
        else:  # D, K, M: linger for retransmissions, then go
            self._terminate()

    def fall_back_to_unreliable(self, now: float) -> None:
        """The reliable transport failed before anything came back (RFC 3261 18.1.1: a request
        sent over TCP only for its size is retried over UDP): send again, retransmitting."""
        self.reliable = False
        self._transmit()
        if self.state in (State.CALLING, State.TRYING):
            self._start_timer("A" if self.is_invite else "E", now, self._config.t1)


class ServerTransaction(_Transaction):
    """Absorbs request retransmissions, retransmits our responses, waits for the ACK."""

    def __init__(
        self,
        request: Request,
        source: Address,
        timers: TimerConfig,
        send: Sink,
        emit: Emit,
        reliable: bool = False,
    ) -> None:
        super().__init__(timers, send, emit, reliable)
        self.request = request
        # RFC 3261 18.2.2: over a connection, the answer goes back on it (to its source).
        self.reply_to = source if reliable else _response_address(request.top_via, source)
        self.is_invite = request.method == "INVITE"
        self.state = State.PROCEEDING if self.is_invite else State.TRYING
        self.last_response: Response | None = None
        self._wire = b""

    def respond(self, response: Response, now: float) -> None:
        if self.state is State.ACCEPTED and 200 <= response.status < 300:
            # RFC 6026 8.5: the TU retransmits its 2xx through the Accepted transaction.
            self._send(Datagram(response.to_bytes(), self.reply_to))
            return
        if self.state not in (State.TRYING, State.PROCEEDING):
            raise LocalProtocolError(f"cannot respond in state {self.state.value}")
        self.last_response = response
        self._wire = response.to_bytes()
        self._send(Datagram(self._wire, self.reply_to))
        status = response.status
        if status < 200:
            self.state = State.PROCEEDING
        elif self.is_invite and status < 300:
            self.state = State.ACCEPTED
            self._start_timer("L", now, self._config.timeout)
        elif self.is_invite:
            self.state = State.COMPLETED
            if not self.reliable:
                self._start_timer("G", now, self._config.t1)
            self._start_timer("H", now, self._config.timeout)
        else:
            self.state = State.COMPLETED
            self._start_timer("J", now, self._linger(self._config.timeout))

    def receive_retransmission(self, request: Request, now: float) -> None:
        if request.method == "ACK":
            if self.state is State.COMPLETED:
                self.state = State.CONFIRMED
                self._timers.clear()
                self._start_timer("I", now, self._linger(self._config.t4))
            return
        if self._wire and self.state in (State.PROCEEDING, State.COMPLETED):
            self._send(Datagram(self._wire, self.reply_to))

    def _on_timer(self, name: str, now: float) -> None:
        if name == "G":
            self._send(Datagram(self._wire, self.reply_to))
            self._start_timer("G", now, min(self._intervals["G"] * 2, self._config.t2))
        elif name == "H":
            self._terminate()
            self._emit(AckNeverCame(self))
        else:  # I, J, L
            self._terminate()


def _response_address(via: Via, source: Address) -> Address:
    """RFC 3261 18.2.2 with RFC 3581: answer where the request came from when rport asks."""
    if "rport" in via.params:
        return source
    # The host is always the packet's source (what we would write as `received`); a `received`
    # the sender put in its own Via is not trusted, so nobody can point our answers elsewhere.
    return source[0], via.port or 5060


def note_source(request: Request, source: Address) -> None:
    """RFC 3261 18.2.1 with RFC 3581 4: mark the top Via with where the request really came
    from (`received` when the host differs, `received` and `rport` when the sender asked for
    rport), so that our responses tell a client behind NAT its public address."""
    via = request.top_via
    params = dict(via.params)
    if "rport" in params:
        params["rport"] = str(source[1])
    elif via.host.strip("[]") == source[0]:
        return
    params["received"] = source[0]
    vias = request.headers.get_all("Via")
    request.headers.set("Via", ", ".join([str(Via(via.transport, via.host, via.port, params)),
                                          *vias[1:]]))


def server_key(request: Request) -> tuple[str, str, str]:
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    return via.branch or "", f"{via.host}:{via.port}", method


class TransactionLayer:
    """Every live transaction of one UA, with one timer heap for all of them."""

    def __init__(self, timers: TimerConfig | None = None) -> None:
        self.timers = timers or TimerConfig()
        self._clients: dict[tuple[str, str], ClientTransaction] = {}
        self._servers: dict[tuple[str, str, str], ServerTransaction] = {}
        self._heap: list[tuple[float, int, _Transaction]] = []
        self._counter = itertools.count()
        self._outgoing: list[Datagram] = []
        self._events: list[Event] = []

    def __len__(self) -> int:
        return len(self._clients) + len(self._servers)

    def datagrams_to_send(self) -> list[Datagram]:
        # Emptied in place: every transaction holds this very list's `append`.
        out = list(self._outgoing)
        self._outgoing.clear()
        return out

    def send_stateless(self, data: bytes, destination: Address) -> None:
        """An ACK to a 2xx or a 2xx retransmission: no transaction of its own."""
        self._outgoing.append(Datagram(data, destination))

    def next_deadline(self) -> float | None:
        while self._heap:
            deadline, _, transaction = self._heap[0]
            if transaction.next_deadline == deadline:
                return deadline
            heapq.heappop(self._heap)
        return None

    def send_request(
        self,
        request: Request,
        destination: Address,
        now: float,
        *,
        reliable: bool = False,
        udp_fallback: bool = False,
    ) -> ClientTransaction:
        if request.method == "ACK":
            raise LocalProtocolError("an ACK has no client transaction; use send_stateless")
        branch = request.top_via.branch or ""
        if (branch, request.method) in self._clients:  # before anything is sent
            raise LocalProtocolError(f"branch {branch} is already in use")
        transaction = ClientTransaction(
            request, destination, now, self.timers, self._outgoing.append, self._events.append,
            reliable, udp_fallback,
        )
        self._clients[transaction.key] = transaction
        self._schedule(transaction)
        return transaction

    def respond(self, transaction: ServerTransaction, response: Response, now: float) -> None:
        transaction.respond(response, now)
        self._schedule(transaction)

    def abandon(self, transaction: ClientTransaction) -> None:
        """Forget an INVITE whose CANCEL was never answered (RFC 3261 9.1: after 64*T1)."""
        transaction._terminate()  # its timers go too: next_deadline() must not wake for it
        self._forget(transaction)

    def uses(self, address: Address) -> bool:
        """Whether a live transaction sends to `address` (its connection is still wanted)."""
        return any(t.destination == address for t in self._clients.values()) or any(
            t.reply_to == address for t in self._servers.values()
        )

    def connection_lost(self, remote: Address) -> list[Address]:
        """The connection to `remote` closed: server transactions that answered on it answer
        at their Via's sent-by (with `received`) from now on (RFC 3261 18.2.2); the addresses
        that now need a connection come back."""
        moved: list[Address] = []
        for transaction in self._servers.values():
            if transaction.reliable and transaction.reply_to == remote:
                # The received host (the connection's), the port of sent-by: not rport, which
                # was the closed connection's own.
                transaction.reply_to = remote[0], transaction.request.top_via.port or 5060
                moved.append(transaction.reply_to)
        return moved

    def transport_failed(self, destination: Address, now: float) -> list[Event]:
        """No connection could be made to `destination`: client transactions sent there only
        for their size are retried over UDP; the others time out at once (RFC 3261 8.1.3.1,
        17.1.4)."""
        for transaction in list(self._clients.values()):
            if transaction.destination != destination or not transaction.reliable:
                continue
            if transaction.udp_fallback:
                transaction.fall_back_to_unreliable(now)
                self._schedule(transaction)
            else:
                transaction._terminate()
                self._forget(transaction)
                self._events.append(TransactionTimedOut(transaction))
        return self._take_events()

    def reject_malformed(self, data: bytes, error: SipParseError, source: Address) -> None:
        """Answer a datagram `parse_message` refused, statelessly, with a 400 naming the problem
        when it was a request with a usable Via; anything else is dropped, as RFC 3261 says of
        malformed responses."""
        response = reply_to_malformed(data, error)
        if response is not None:
            self.send_stateless(response.to_bytes(), _response_address(response.top_via, source))

    def find_server(self, request: Request) -> ServerTransaction | None:
        """The server transaction a request belongs to; for a CANCEL, the INVITE it cancels.

        RFC 3261 9.2: the transaction to cancel is matched as if the CANCEL had the method of
        the request it cancels (17.2.3); the CANCEL's own transaction comes with its event.
        """
        branch, sent_by, method = server_key(request)
        if method == "CANCEL":
            method = "INVITE"
        return self._servers.get((branch, sent_by, method))

    def receive(
        self, message: Message, source: Address, now: float, *, reliable: bool = False
    ) -> list[Event]:
        if isinstance(message, Response):
            self._receive_response(message, now)
        else:
            self._receive_request(message, source, now, reliable)
        return self._take_events()

    def tick(self, now: float) -> list[Event]:
        while self._heap and self._heap[0][0] <= now:
            deadline, _, transaction = heapq.heappop(self._heap)
            if transaction.next_deadline != deadline:
                continue
            transaction.fire_timers(now)
            self._schedule(transaction)
        return self._take_events()

    def _receive_response(self, response: Response, now: float) -> None:
        _, method = response.cseq
        transaction = self._clients.get((response.top_via.branch or "", method))
        if transaction is None:
            if method == "INVITE" and 200 <= response.status < 300:
                self._events.append(ResponseReceived(response, None))
            return
        transaction.receive(response, now)
        self._schedule(transaction)

    def _receive_request(
        self, request: Request, source: Address, now: float, reliable: bool
    ) -> None:
        note_source(request, source)
        key = server_key(request)
        existing = self._servers.get(key)
        ack_to_2xx = request.method == "ACK" and existing is not None and (
            existing.state is State.ACCEPTED
        )
        if existing is not None and not existing.terminated and not ack_to_2xx:
            existing.receive_retransmission(request, now)
            self._schedule(existing)
            return
        if request.method == "ACK":
            self._events.append(RequestReceived(request, source, None))
            return
        transaction = ServerTransaction(
            request, source, self.timers, self._outgoing.append, self._events.append, reliable
        )
        self._servers[key] = transaction
        self._events.append(RequestReceived(request, source, transaction))

    def _schedule(self, transaction: _Transaction) -> None:
        if transaction.terminated:
            self._forget(transaction)
            return
        deadline = transaction.next_deadline
        if deadline is not None:
            heapq.heappush(self._heap, (deadline, next(self._counter), transaction))

    def _forget(self, transaction: _Transaction) -> None:
        if isinstance(transaction, ClientTransaction):
            if self._clients.get(transaction.key) is transaction:
                del self._clients[transaction.key]
        elif isinstance(transaction, ServerTransaction):
            key = server_key(transaction.request)
            if self._servers.get(key) is transaction:
                del self._servers[key]

    def _take_events(self) -> list[Event]:
        events = list(self._events)  # emptied in place, like datagrams_to_send()
        self._events.clear()
        return events
