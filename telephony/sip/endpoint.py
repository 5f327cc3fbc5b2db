"""The asyncio side of signalling: one UDP socket, TCP on the same port, the transaction
layer, its timers.

Everything protocol-shaped happens in the sans-IO layer; this module only moves messages, reads
the loop's clock, and hands requests and responses to whoever waits for them.

Which transport a message takes (RFC 3261 18): TCP to an address we hold a connection to (a
response goes back on the connection its request came on), to an address a `;transport=tcp`
URI named (`mark_tcp`), and for a request larger than `UDP_SIZE_LIMIT` (retried over UDP when
no connection can be made); UDP otherwise.
"""

import asyncio
import errno
import ipaddress
import logging
import secrets
import socket
from collections.abc import Callable
from typing import Any

from telephony.sip.errors import SipParseError
from telephony.sip.message import Request, Response, parse_message
from telephony.sip.stream import for_tcp
from telephony.sip.tcp import TcpTransport
from telephony.sip.transaction import (
    AckNeverCame,
    ClientTransaction,
    Event,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    TimerConfig,
    TransactionLayer,
    TransactionTimedOut,
)
from telephony.sip.uri import Via

log = logging.getLogger(__name__)

Address = tuple[str, int]
RequestHandler = Callable[[Request, Address, ServerTransaction | None], None]
StrayResponseHandler = Callable[[Response], None]
Tracer = Callable[[str, bytes, Address], None]  # ("in" | "out", datagram, peer address)
MAX_QUEUED_RESPONSES = 32
MAX_DATAGRAM = 65535
# Datagrams read per wake-up of the socket. asyncio's datagram transport reads one per loop
# iteration: with a thousand RTP streams an iteration takes tens of milliseconds, and SIP
# backed up in the kernel until it overflowed (lost 200 OKs, retransmissions, 30 s setups).
MAX_DATAGRAMS_PER_WAKEUP = 64
# RFC 3261 18.1.1: a request within 200 bytes of a 1500-byte MTU goes over TCP.
UDP_SIZE_LIMIT = 1300
MAX_REMEMBERED_ADDRESSES = 1024  # addresses marked for TCP, and those that refused it
PORT_ATTEMPTS = 20  # tries to find a free port for UDP and TCP alike (sip_port 0)


def random_token(nbytes: int = 12) -> str:
    return secrets.token_hex(nbytes)


def new_branch() -> str:
    return "z9hG4bK" + random_token()


class Exchange:
    """Responses to one request we sent; `None` from `next()`: the transaction timed out."""

    def __init__(self, transaction: ClientTransaction) -> None:
        self.transaction = transaction
        self._responses: asyncio.Queue[Response | None] = asyncio.Queue(MAX_QUEUED_RESPONSES)

    def deliver(self, response: Response | None) -> None:
        if not self._responses.full():
            self._responses.put_nowait(response)

    async def next(self, timeout: float) -> Response | None:
        """The next response; raises TimeoutError after `timeout` seconds of nothing."""
        async with asyncio.timeout(timeout):
            return await self._responses.get()

    async def final(self, timeout: float) -> Response | None:
        """Skip provisional responses; the final one, or None when the transaction timed out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            response = await self.next(max(0.0, deadline - loop.time()))
            if response is None or response.status >= 200:
                return response


def _remember(addresses: dict[Address, None], address: Address) -> None:
    """An ordered set with a bound: the oldest address goes first."""
    addresses.pop(address, None)
    addresses[address] = None
    if len(addresses) > MAX_REMEMBERED_ADDRESSES:
        del addresses[next(iter(addresses))]


class SipEndpoint:
    """Binds `host`; advertises `public_host` (Via sent-by, Contact, SDP) when given: `host`
    is the advertised address, `bind_host` the bound one."""

    def __init__(
        self,
        host: str,
        port: int,
        timers: TimerConfig,
        on_request: RequestHandler,
        on_stray_response: StrayResponseHandler,
        *,
        public_host: str | None = None,
    ) -> None:
        self.bind_host = host
        self.host = public_host or host
        self.port = port
        self.layer = TransactionLayer(timers)
        self._on_request = on_request
        self._on_stray_response = on_stray_response
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exchanges: dict[ClientTransaction, Exchange] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.dropped_datagrams = 0
        self.send_errors = 0
        self.tracer: Tracer | None = None  # sees every message in and out (sip trace, tests)
        self.tcp = TcpTransport(
            self._stream_message, self._connect_failed, self.layer.uses, self._connection_lost
        )
        self._tcp_targets: dict[Address, None] = {}  # named by a `;transport=tcp` URI
        self._udp_only: dict[Address, None] = {}  # refused a connection for a large request
        self._reported_host: str | None = None

    async def open(self) -> None:
        """Bind UDP and TCP on one port and start reading (several datagrams per wake-up)."""
        loop = asyncio.get_running_loop()
        try:  # a literal address needs no resolver (and no executor thread)
            family = socket.AF_INET6 if ipaddress.ip_address(self.bind_host).version == 6 \
                else socket.AF_INET  # fmt: skip
            address: tuple[Any, ...] = (self.bind_host, self.port)
        except ValueError:
            infos = await loop.getaddrinfo(
                self.bind_host, self.port, type=socket.SOCK_DGRAM, proto=socket.IPPROTO_UDP
            )
            family, _, _, _, address = infos[0]
        sock, listener = _bind_pair(family, address)
        try:
            loop.add_reader(sock.fileno(), self._on_readable)
            await self.tcp.listen(listener)
        except BaseException:
            loop.remove_reader(sock.fileno())
            sock.close()
            listener.close()
            raise
        self._sock = sock
        self._loop = loop
        self.port = sock.getsockname()[1]

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        self.tcp.close()
        for exchange in self._exchanges.values():
            exchange.deliver(None)
        self._exchanges.clear()

    @property
    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def via(self, branch: str | None = None) -> str:
        return str(
            Via("UDP", self.host, self.port, {"branch": branch or new_branch(), "rport": None})
        )

    def mark_tcp(self, destination: Address) -> None:
        """Reach `destination` over TCP from now on (a `;transport=tcp` URI named it)."""
        _remember(self._tcp_targets, destination)

    def send_request(self, request: Request, destination: Address) -> Exchange:
        reliable = self._over_tcp(request.to_bytes(), destination)
        transaction = self.layer.send_request(
            request, destination, self.now, reliable=reliable,
            udp_fallback=reliable and not self._tcp_named(destination),
        )
        exchange = Exchange(transaction)
        self._exchanges[transaction] = exchange
        self._flush()
        return exchange

    def forget(self, exchange: Exchange) -> None:
        """Stop routing responses to an exchange whose owner has stopped listening."""
        self._exchanges.pop(exchange.transaction, None)
        if not exchange.transaction.terminated and exchange.transaction.is_invite:
            self.layer.abandon(exchange.transaction)

    def respond(self, transaction: ServerTransaction, response: Response) -> None:
        self.layer.respond(transaction, response, self.now)
        self._flush()

    def send_stateless(self, data: bytes, destination: Address) -> None:
        self.layer.send_stateless(data, destination)
        self._flush()

    def _on_readable(self) -> None:
        for _ in range(MAX_DATAGRAMS_PER_WAKEUP):
            sock = self._sock
            if sock is None:
                return
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # an ICMP error for something we sent earlier
                log.debug("SIP socket error: %s", exc)
                continue
            try:
                self.datagram_received(data, (str(addr[0]), int(addr[1])))
            except Exception:  # one datagram must never stop the endpoint
                log.exception("SIP datagram from %s:%s not handled", addr[0], addr[1])

    def datagram_received(self, data: bytes, source: Address) -> None:
        self._message_received(data, source, reliable=False)

    def _stream_message(self, data: bytes, source: Address) -> None:
        try:
            self._message_received(data, source, reliable=True)
        except Exception:  # one message must never stop the connection
            log.exception("SIP message from %s:%s not handled", *source)

    def _message_received(self, data: bytes, source: Address, *, reliable: bool) -> None:
        if self.tracer is not None:
            self.tracer("in", data, source)
        if not data.strip():
            return  # CRLF keep-alive
        try:
            message = parse_message(data)
        except SipParseError as exc:
            self.dropped_datagrams += 1
            log.info("malformed SIP message from %s:%s: %s", *source, exc)
            self.layer.reject_malformed(data, exc, source)  # a 400 when it has a usable Via
            self._flush()
            return
        if isinstance(message, Response):
            self._notice_public_address(message)
        self._dispatch(self.layer.receive(message, source, self.now, reliable=reliable))
        self._flush()

    def _connect_failed(self, destination: Address) -> None:
        if not self._tcp_named(destination):
            _remember(self._udp_only, destination)
        self._dispatch(self.layer.transport_failed(destination, self.now))
        self._flush()

    def _connection_lost(self, remote: Address) -> None:
        """RFC 3261 18.2.2: answers still due on a closed connection go to a new one, made to
        the sent-by of the request's Via."""
        for address in self.layer.connection_lost(remote):
            self.mark_tcp(address)

    def _notice_public_address(self, response: Response) -> None:
        """RFC 3581: the `received` a server puts in our Via is the address it sees us at. We
        do not re-advertise it (a NAT's mapping is no configuration); we say so, once."""
        received = response.top_via.params.get("received")
        if received and received != self.host and received != self._reported_host:
            self._reported_host = received
            log.warning("SIP peers see us at %s but we advertise %s: behind NAT, set "
                        "RINGBACK_SIP_PUBLIC_HOST", received, self.host)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._dispatch(self.layer.tick(self.now))
        self._flush()

    def _dispatch(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, RequestReceived):
                self._on_request(event.request, event.source, event.transaction)
            elif isinstance(event, ResponseReceived):
                self._deliver(event)
            elif isinstance(event, TransactionTimedOut):
                exchange = self._exchanges.pop(event.transaction, None)
                if exchange is not None:
                    exchange.deliver(None)
            elif isinstance(event, AckNeverCame):
                log.info("no ACK for our final response on %s", event.transaction.request.call_id)

    def _deliver(self, event: ResponseReceived) -> None:
        exchange = None if event.transaction is None else self._exchanges.get(event.transaction)
        if exchange is None:
            self._on_stray_response(event.response)  # e.g. a 2xx retransmitted: ACK it again
            return
        exchange.deliver(event.response)
        if event.response.status >= 200:
            self._exchanges.pop(exchange.transaction, None)

    def _tcp_named(self, destination: Address) -> bool:
        return destination in self._tcp_targets

    def _over_tcp(self, data: bytes, destination: Address) -> bool:
        if self.tcp.connected_to(destination) or self._tcp_named(destination):
            return True
        large_request = len(data) > UDP_SIZE_LIMIT and not data.startswith(b"SIP/2.0 ")
        return large_request and destination not in self._udp_only

    def _flush(self) -> None:
        for datagram in self.layer.datagrams_to_send():
            if self._sock is not None and self._over_tcp(datagram.data, datagram.address):
                data = for_tcp(datagram.data)
                if self.tracer is not None:
                    self.tracer("out", data, datagram.address)
                self.tcp.send(data, datagram.address)
                continue
            if self.tracer is not None:
                self.tracer("out", datagram.data, datagram.address)
            if self._sock is not None:
                try:
                    self._sock.sendto(datagram.data, datagram.address)
                except OSError as exc:  # a full send buffer, or an ICMP error: UDP retransmits
                    self.send_errors += 1
                    log.debug("SIP send to %s:%s failed: %s", *datagram.address, exc)
        self._rearm()

    def _rearm(self) -> None:
        deadline = self.layer.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        loop = asyncio.get_running_loop()
        self._timer = None if deadline is None else loop.call_at(deadline, self._on_timer)


def _bind_pair(family: int, address: tuple[Any, ...]) -> tuple[socket.socket, socket.socket]:
    """A UDP socket and a TCP one bound to the same port (with port 0: the first free port
    both can have)."""
    for _ in range(PORT_ATTEMPTS):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        tcp = socket.socket(family, socket.SOCK_STREAM)
        try:
            udp.setblocking(False)
            tcp.setblocking(False)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            udp.bind(address)
            tcp.bind((address[0], udp.getsockname()[1], *address[2:]))
        except OSError as exc:
            udp.close()
            tcp.close()
            if address[1] != 0 or exc.errno != errno.EADDRINUSE:
                raise
            continue
        except BaseException:
            udp.close()
            tcp.close()
            raise
        return udp, tcp
    raise OSError(errno.EADDRINUSE, f"no port free for both UDP and TCP on {address[0]}")
