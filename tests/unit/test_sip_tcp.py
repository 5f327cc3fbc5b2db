"""The TCP side of the endpoint on loopback: connections reused, garbage and idleness closing
them, a refused connection reported."""

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from telephony.sip.tcp import TcpTransport

Address = tuple[str, int]
OPTIONS = (b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKa\r\n"
           b"Content-Length: 0\r\n\r\n")
WAIT_S = 5.0


class Recorder:
    def __init__(self) -> None:
        self.messages: asyncio.Queue[tuple[bytes, Address]] = asyncio.Queue()
        self.failed: asyncio.Queue[Address] = asyncio.Queue()
        self.busy_checks = 1  # how many idle checks hear "a transaction still uses it"
        self.asked: list[Address] = []
        self.lost: list[Address] = []

    def in_use(self, address: Address) -> bool:
        self.asked.append(address)
        self.busy_checks -= 1
        return self.busy_checks >= 0


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
async def transport() -> AsyncIterator[tuple[TcpTransport, Recorder, Address]]:
    recorder = Recorder()
    tcp = TcpTransport(lambda data, peer: recorder.messages.put_nowait((data, peer)),
                       recorder.failed.put_nowait, recorder.in_use, recorder.lost.append,
                       idle_timeout_s=0.2)
    sock = listening_socket()
    address = sock.getsockname()
    await tcp.listen(sock)
    try:
        yield tcp, recorder, (address[0], address[1])
    finally:
        tcp.close()


async def test_messages_to_one_address_share_one_connection() -> None:
    recorder = Recorder()
    accepted: asyncio.Queue[asyncio.StreamReader] = asyncio.Queue()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.put_nowait(reader)

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    tcp = TcpTransport(lambda data, peer: None, recorder.failed.put_nowait, recorder.in_use,
                       recorder.lost.append)
    try:
        tcp.send(OPTIONS, ("127.0.0.1", port))
        tcp.send(OPTIONS, ("127.0.0.1", port))  # while the connection is being made
        async with asyncio.timeout(WAIT_S):
            connection = await accepted.get()
            assert await connection.readexactly(2 * len(OPTIONS)) == OPTIONS * 2
        tcp.send(OPTIONS, ("127.0.0.1", port))
        async with asyncio.timeout(WAIT_S):
            assert await connection.readexactly(len(OPTIONS)) == OPTIONS
        assert accepted.empty() and len(tcp) == 1
    finally:
        tcp.close()
        server.close()


async def test_accepted_connection_frames_messages_and_is_known_by_its_source(
    transport: tuple[TcpTransport, Recorder, Address],
) -> None:
    tcp, recorder, address = transport
    _, writer = await asyncio.open_connection(*address)
    writer.write(OPTIONS[:30])
    await writer.drain()
    writer.write(OPTIONS[30:] + OPTIONS)
    async with asyncio.timeout(WAIT_S):
        first = await recorder.messages.get()
        second = await recorder.messages.get()
    source = writer.get_extra_info("sockname")
    assert first == second == (OPTIONS, (source[0], source[1]))
    assert tcp.connected_to((source[0], source[1]))
    writer.close()


async def test_garbage_closes_the_connection(
    transport: tuple[TcpTransport, Recorder, Address],
) -> None:
    _, recorder, address = transport
    reader, writer = await asyncio.open_connection(*address)
    writer.write(b"GET / HTTP/1.1\r\n\r\n")
    async with asyncio.timeout(WAIT_S):
        assert await reader.read() == b""  # closed by us
    assert recorder.messages.empty()
    writer.close()


async def test_an_idle_connection_is_closed_once_no_transaction_uses_it(
    transport: tuple[TcpTransport, Recorder, Address],
) -> None:
    tcp, recorder, address = transport
    reader, writer = await asyncio.open_connection(*address)
    writer.write(OPTIONS)
    async with asyncio.timeout(WAIT_S):
        assert await reader.read() == b""  # nothing said for idle_timeout_s
    source = writer.get_extra_info("sockname")
    assert recorder.asked == [(source[0], source[1])] * 2  # kept the first time it was idle
    assert len(tcp) == 0
    assert recorder.lost == [(source[0], source[1])]
    writer.close()


async def test_a_refused_connection_is_reported() -> None:
    recorder = Recorder()
    sock = listening_socket()  # bound, never listening: connections are refused
    port = sock.getsockname()[1]
    tcp = TcpTransport(lambda data, peer: None, recorder.failed.put_nowait, recorder.in_use,
                       recorder.lost.append)
    try:
        tcp.send(OPTIONS, ("127.0.0.1", port))
        async with asyncio.timeout(WAIT_S):
            assert await recorder.failed.get() == ("127.0.0.1", port)
        assert len(tcp) == 0 and recorder.lost == []
    finally:
        tcp.close()
        sock.close()
