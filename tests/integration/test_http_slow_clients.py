"""Clients that never finish a request cannot starve `ringback serve` (issue #8).

A real `ringback serve` under `ulimit -n 256` gets 300 connections that each send half a request
line and then nothing. The service must keep answering `/healthz` on a fresh connection, close
every slow connection itself once the request timeout has run out, and keep its log small (no
error per failed accept). In process, on a real socket: a body that never ends is cut off too,
and an accept that fails for want of descriptors is retried and logged once, not per attempt.
Nothing here asserts a duration: each step waits for its outcome within a generous deadline.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import selectors
import socket
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from api import http_server
from api.http_server import HttpServer
from lab.ringback import RingbackService

pytestmark = pytest.mark.peers

OPEN_FILES = 256
SLOW_CLIENTS = 300
REQUEST_TIMEOUT_S = 3
HALF_A_REQUEST = b"GET /healthz HT"
# Slow clients ahead of a fresh one in the accept queue are closed after the request timeout.
ANSWER_WITHIN_S = 60.0
CLOSED_WITHIN_S = 90.0
MAX_LOG_BYTES = 200_000


def test_slow_clients_neither_starve_the_service_nor_flood_its_log(tmp_path: Path) -> None:
    service = RingbackService(
        tmp_path,
        {"RINGBACK_HTTP_REQUEST_TIMEOUT_S": str(REQUEST_TIMEOUT_S), "RINGBACK_CHANNEL_LIMIT": "2"},
        open_files=OPEN_FILES,
    )
    try:
        service.start()
        slow = [_half_request(service.http_port) for _ in range(SLOW_CLIENTS)]
        try:
            assert _healthz(service.url, ANSWER_WITHIN_S) == 200
            still_open = _not_closed_by_server(slow, CLOSED_WITHIN_S)
            assert not still_open, f"{len(still_open)} slow connections left open by the server"
        finally:
            for sock in slow:
                sock.close()
        assert _healthz(service.url, ANSWER_WITHIN_S) == 200
        assert service.process.running()
        log_size = service.process.log_path.stat().st_size
        assert log_size < MAX_LOG_BYTES, f"the log grew to {log_size} bytes"
    except BaseException:
        print(f"\n===== ringback log =====\n{service.log_text()[-6000:]}")
        raise
    finally:
        service.close()


def _half_request(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(HALF_A_REQUEST)
    return sock


def _healthz(url: str, timeout: float) -> int:
    """One request on a fresh connection, waiting up to `timeout` to be accepted and answered."""
    with urllib.request.urlopen(f"{url}/healthz", timeout=timeout) as response:
        return int(response.status)


def _not_closed_by_server(socks: list[socket.socket], timeout: float) -> list[socket.socket]:
    """Wait for the server to close each connection (an orderly end of stream, with nothing sent
    back); the ones it has not closed within `timeout`."""
    open_socks = set(socks)
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while open_socks and (left := deadline - time.monotonic()) > 0:
            for key, _ in selector.select(left):
                closed = key.fileobj
                assert isinstance(closed, socket.socket)
                assert closed.recv(1024) == b"", "the server answered half a request line"
                selector.unregister(closed)
                open_socks.discard(closed)
    return list(open_socks)


# -- in process ------------------------------------------------------------------------------

FAILED_ACCEPTS = 200


async def _echo_length(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with the length of the request's body, once it has all arrived."""
    if scope["type"] != "http":
        return
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@asynccontextmanager
async def _serving() -> AsyncIterator[tuple[int, HttpServer]]:
    listener = socket.create_server(("127.0.0.1", 0))
    config = uvicorn.Config(_echo_length, http="h11", ws="none", lifespan="off",
                            log_config=None, access_log=False)
    server = HttpServer(config, listener, max_connections=8, request_timeout_s=REQUEST_TIMEOUT_S)
    serving = asyncio.create_task(server.serve())
    try:
        assert await _eventually(lambda: server.started, ANSWER_WITHIN_S), "server not started"
        yield listener.getsockname()[1], server
    finally:
        server.should_exit = True
        await serving


async def _eventually(predicate: object, timeout: float) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def _request(port: int, data: bytes) -> bytes:
    """Send `data`, then read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        return await asyncio.wait_for(reader.read(), CLOSED_WITHIN_S)
    finally:
        writer.close()


async def test_a_body_that_never_ends_is_cut_off_and_a_whole_one_answered() -> None:
    async with _serving() as (port, _):
        head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n"
        assert await _request(port, head + b"12345") == b""
        answer = await _request(port, head + b"1234567890")
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\n10")


async def test_an_accept_out_of_descriptors_is_retried_and_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(http_server, "ACCEPT_RETRY_S", 0.001)
    loop = asyncio.get_running_loop()
    accept = loop.sock_accept
    failures = 0

    async def out_of_descriptors(sock: socket.socket) -> tuple[socket.socket, object]:
        nonlocal failures
        if failures < FAILED_ACCEPTS:
            failures += 1
            raise OSError(errno.EMFILE, "Too many open files")
        return await accept(sock)

    monkeypatch.setattr(loop, "sock_accept", out_of_descriptors)
    with caplog.at_level(logging.WARNING, logger=http_server.__name__):
        async with _serving() as (port, _):
            request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            assert (await _request(port, request)).endswith(b"\r\n\r\n0")
    assert failures == FAILED_ACCEPTS
    lines = [r.getMessage() for r in caplog.records if r.name == http_server.__name__]
    assert len(lines) == 1 and "Too many open files" in lines[0], lines
