"""SIP over TCP, the asyncio side: one listening socket, one connection per remote address.

Connections are made on demand (bounded by a connect timeout), reused by everyone sending to
that address, and closed once idle. Every buffer is bounded: what waits for a connection being
made, what the kernel has not taken yet, and what the framer holds.
"""

import asyncio
import logging
import socket
from collections.abc import Callable

from telephony.sip.stream import FramingError, StreamFramer

log = logging.getLogger(__name__)

Address = tuple[str, int]
MessageHandler = Callable[[bytes, Address], None]
FailureHandler = Callable[[Address], None]
InUse = Callable[[Address], bool]

CONNECT_TIMEOUT_S = 5.0
IDLE_TIMEOUT_S = 120.0  # no byte either way for this long, and no transaction on it: closed
MAX_CONNECTIONS = 1024
MAX_PENDING_BYTES = 256 * 1024  # written while the connection is being made
MAX_WRITE_BUFFER = 1024 * 1024  # not yet taken by the kernel: beyond it the peer is stuck


class Connection(asyncio.Protocol):
    """One TCP connection carrying SIP; made by us (`remote` known) or accepted."""

    def __init__(self, owner: "TcpTransport", remote: Address | None = None) -> None:
        self._owner = owner
        self.remote = remote
        self._transport: asyncio.Transport | None = None
        self._framer = StreamFramer()
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._idle: asyncio.TimerHandle | None = None
        self._last_used = 0.0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if self.remote is None:
            peer = transport.get_extra_info("peername")
            self.remote = (str(peer[0]), int(peer[1]))
            if not self._owner.adopt(self):
                transport.abort()
                return
        self._touch()
        self._arm_idle()
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        for data in pending:
            self._write(data)

    def data_received(self, data: bytes) -> None:
        self._touch()
        try:
            messages = self._framer.feed(data)
        except FramingError as exc:
            log.info("closing SIP connection from %s:%s: %s", *(self.remote or ("?", 0)), exc)
            self.close()
            return
        for message in messages:
            if self.closed:
                return
            assert self.remote is not None
            self._owner.on_message(message, self.remote)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._idle is not None:
            self._idle.cancel()
        if self._owner.forget(self):
            self._owner.lost(self)

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        if self._transport is None:  # still connecting
            if self._pending_bytes + len(data) > MAX_PENDING_BYTES:
                log.info("SIP connection to %s:%s not made yet; a message dropped",
                         *(self.remote or ("?", 0)))
                return
            self._pending.append(data)
            self._pending_bytes += len(data)
            return
        self._touch()
        self._write(data)

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.abort()
        self._pending, self._pending_bytes = [], 0

    def _write(self, data: bytes) -> None:
        assert self._transport is not None
        self._transport.write(data)
        if self._transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            log.info("SIP connection to %s:%s does not read; closed", *(self.remote or ("?", 0)))
            self.close()

    def _touch(self) -> None:
        self._last_used = asyncio.get_running_loop().time()

    def _arm_idle(self) -> None:
        loop = asyncio.get_running_loop()
        self._idle = loop.call_at(self._last_used + self._owner.idle_timeout_s, self._check_idle)

    def _check_idle(self) -> None:
        if self.closed:
            return
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_used < self._owner.idle_timeout_s:
            self._arm_idle()
        elif self.remote is not None and self._owner.in_use(self.remote):
            self._touch()  # a transaction still waits on it: another idle period
            self._arm_idle()
        else:
            self.close()


class TcpTransport:
    """The listening socket and the connections, keyed by remote address."""

    def __init__(
        self,
        on_message: MessageHandler,
        on_connect_failed: FailureHandler,
        in_use: InUse,
        on_lost: FailureHandler,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
    ) -> None:
        self._on_message = on_message
        self._on_connect_failed = on_connect_failed
        self.in_use = in_use
        self._on_lost = on_lost
        self.idle_timeout_s = idle_timeout_s
        self._connections: dict[Address, Connection] = {}
        self._server: asyncio.Server | None = None
        self._connecting: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._connections)

    def connected_to(self, remote: Address) -> bool:
        return remote in self._connections

    async def listen(self, sock: socket.socket) -> None:
        """Accept connections on a bound socket (the port of the UDP one)."""
        sock.listen(128)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: Connection(self), sock=sock)

    def send(self, data: bytes, remote: Address) -> None:
        """On the connection to `remote`, made now when there is none."""
        connection = self._connections.get(remote)
        if connection is None:
            if len(self._connections) >= MAX_CONNECTIONS:
                log.warning("SIP: %d connections open; none made to %s:%s", MAX_CONNECTIONS,
                            *remote)
                self._on_connect_failed(remote)
                return
            connection = Connection(self, remote)
            self._connections[remote] = connection
            task = asyncio.ensure_future(self._connect(connection, remote))
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)
        connection.send(data)

    async def _connect(self, connection: Connection, remote: Address) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await loop.create_connection(lambda: connection, remote[0], remote[1])
        except (OSError, TimeoutError) as exc:
            log.info("SIP connection to %s:%s failed: %s", *remote, exc or "timed out")
            connection.close()
            self.forget(connection)
            self._on_connect_failed(remote)

    def adopt(self, connection: Connection) -> bool:
        """An accepted connection joins the others, when there is room."""
        assert connection.remote is not None
        if len(self._connections) >= MAX_CONNECTIONS:
            log.warning("SIP: %d connections open; one from %s:%s refused", MAX_CONNECTIONS,
                        *connection.remote)
            return False
        self._connections[connection.remote] = connection
        return True

    def forget(self, connection: Connection) -> bool:
        """Drop a connection from the table; False when it was not (or no longer) in it."""
        if connection.remote is not None and self._connections.get(connection.remote) is connection:
            del self._connections[connection.remote]
            return True
        return False

    def lost(self, connection: Connection) -> None:
        assert connection.remote is not None
        self._on_lost(connection.remote)

    def on_message(self, data: bytes, remote: Address) -> None:
        self._on_message(data, remote)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in self._connecting:
            task.cancel()
        for connection in list(self._connections.values()):
            connection.close()
        self._connections.clear()
