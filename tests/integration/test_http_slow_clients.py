"""Clients that never finish a request cannot starve `ringback serve` (issue #8).

A real `ringback serve` under `ulimit -n 256` gets 300 connections that each send half a request
line and then nothing. The service must keep answering `/healthz` on a fresh connection, close
every slow connection itself once the request timeout has run out, and keep its log small (no
error per failed accept). Nothing here asserts a duration: each step waits for its outcome
within a generous deadline.
"""

from __future__ import annotations

import selectors
import socket
import time
import urllib.request
from pathlib import Path

import pytest

from tests.peers.ringback import RingbackService

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
