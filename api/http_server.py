"""The HTTP server of `ringback serve`: uvicorn's h11 protocol behind our own accept loop.

uvicorn 0.54 alone lets a client that never finishes a request hold its connection forever (the
keep-alive timeout runs only between requests; there is no timeout for headers or a body),
accepts every connection (`limit_concurrency` answers 503 to a *complete* request, but never
refuses a connection), and out of descriptors asyncio's accept loop logs a traceback for every
retry (up to the backlog, 2048 a second). Here:

- at most `max_connections` connections are open at once: the rest wait in the kernel's listen
  queue, which takes no descriptor, so the HTTP side never takes the descriptors calls need;
- a request (its headers and its body) must arrive whole within `request_timeout_s` of its
  first byte, or of the connection's opening: else the connection is closed;
- a failing accept (EMFILE: the process is out of descriptors) is retried after a pause and
  logged once per `ACCEPT_LOG_INTERVAL_S`, with the number of failures.
"""

import asyncio
import logging
import resource
import socket
from functools import partial
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from infra.errors import InvalidSettings
from infra.settings import Settings
from telephony.sip.ua import RESERVED_DESCRIPTORS, call_capacity

log = logging.getLogger(__name__)

KEEP_ALIVE_S = 5  # an idle connection between two requests is closed after this
BACKLOG = 2048  # connections waiting in the kernel's listen queue beyond `max_connections`
ACCEPT_RETRY_S = 1.0
ACCEPT_LOG_INTERVAL_S = 60.0
# Their request is incomplete: the request line and headers, or the body, have not all arrived.
RECEIVING = (h11.IDLE, h11.SEND_BODY)


def max_connections(settings: Settings) -> int:
    """What `ulimit -n` leaves for HTTP connections after the reserve and the calls this process
    can have up at once (its channels and the inbound message calls, within the call capacity);
    `RINGBACK_HTTP_MAX_CONNECTIONS` may only lower it."""
    soft_limit, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    calls = min(call_capacity((settings.rtp_port_min, settings.rtp_port_max)),
                settings.channel_limit + settings.inbound_max_message_calls)
    room = soft_limit - RESERVED_DESCRIPTORS - calls
    if room < 1:
        raise InvalidSettings([
            f"`ulimit -n` {soft_limit} leaves no descriptor for HTTP connections after "
            f"{RESERVED_DESCRIPTORS} reserved and {calls} for calls (RINGBACK_CHANNEL_LIMIT + "
            "RINGBACK_INBOUND_MAX_MESSAGE_CALLS): raise the limit (LimitNOFILE)"])
    return min(room, settings.http_max_connections or room)


class Slot:
    """One of the `max_connections` places, given back once when its connection ends."""

    def __init__(self, places: asyncio.Semaphore) -> None:
        self._places: asyncio.Semaphore | None = places

    def release(self) -> None:
        if self._places is not None:
            self._places.release()
            self._places = None


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on every request; gives back its slot at the end."""

    def __init__(
        self, config: uvicorn.Config, server_state: ServerState, app_state: dict[str, Any],
        *, request_timeout_s: float, slot: Slot,
    ) -> None:
        super().__init__(config, server_state, app_state)
        self._request_timeout_s = request_timeout_s
        self._slot = slot
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline = self.loop.call_later(self._request_timeout_s, self._timed_out)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state not in RECEIVING:
            self._disarm()
        elif self._deadline is None:  # the first bytes of the next request on this connection
            self._deadline = self.loop.call_later(self._request_timeout_s, self._timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
        self._slot.release()

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        if self.conn.their_state in RECEIVING:
            log.debug("HTTP request from %s incomplete after %gs: connection closed",
                      self.client, self._request_timeout_s)
            self.transport.abort()  # nothing waits to be sent: the descriptor comes back now


class HttpServer(uvicorn.Server):
    """uvicorn's server on `listener`, accepting through `_accept` instead of asyncio's loop."""

    def __init__(
        self, config: uvicorn.Config, listener: socket.socket, *, max_connections: int,
        request_timeout_s: float,
    ) -> None:
        super().__init__(config)
        self.listener = listener
        self.max_connections = max_connections
        self.request_timeout_s = request_timeout_s
        self._accepting: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # the lifespan; uvicorn listens on nothing itself
        self.listener.listen(BACKLOG)
        self.listener.setblocking(False)
        self._accepting = asyncio.create_task(self._accept(), name="http-accept")

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
            await asyncio.wait([self._accepting])
        self.listener.close()
        await super().shutdown(sockets=None)

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        places = asyncio.Semaphore(self.max_connections)
        failures = 0
        logged_at = loop.time() - ACCEPT_LOG_INTERVAL_S
        while True:
            await places.acquire()
            slot = Slot(places)
            try:
                conn, _ = await loop.sock_accept(self.listener)
            except ConnectionAbortedError:  # the client gave up while queued
                slot.release()
                continue
            except OSError as exc:  # EMFILE, ENFILE, ENOBUFS, ENOMEM: retry later, quietly
                slot.release()
                failures += 1
                if loop.time() - logged_at >= ACCEPT_LOG_INTERVAL_S:
                    log.warning("cannot accept HTTP connections: %s (%d time(s) since the last "
                                "such line); retrying every %gs", exc.strerror or exc, failures,
                                ACCEPT_RETRY_S)
                    failures, logged_at = 0, loop.time()
                await asyncio.sleep(ACCEPT_RETRY_S)
                continue
            try:
                await loop.connect_accepted_socket(partial(self._protocol, slot), conn)
            except OSError:  # the client left before the connection was set up
                conn.close()
                slot.release()

    def _protocol(self, slot: Slot) -> GuardedH11Protocol:
        return GuardedH11Protocol(self.config, self.server_state, self.lifespan.state,
                                  request_timeout_s=self.request_timeout_s, slot=slot)
