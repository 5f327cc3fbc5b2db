"""Free port blocks on 127.0.0.1 for peer processes, safe across parallel test processes.

A block is ``size`` consecutive ports that were free for both UDP and TCP when handed out.
Blocks are also claimed with an ``flock`` on per-slot lock files (slots of ten ports), so two
pytest workers (xdist) never receive overlapping blocks; the locks are released by
:meth:`PortBlock.release` or when the process dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
# Below the Linux ephemeral range (32768-60999) so outgoing sockets never collide.
RANGE_START = 20000
RANGE_END = 32000
_LOCK_DIR = Path(tempfile.gettempdir()) / "ringback-test-ports"
_SLOT = 10


@dataclass
class PortBlock:
    """``size`` consecutive ports starting at ``base``."""

    base: int
    size: int
    _fds: list[int] = field(default_factory=list, repr=False)

    def __getitem__(self, index: int) -> int:
        if not 0 <= index < self.size:
            raise IndexError(index)
        return self.base + index

    @property
    def last(self) -> int:
        return self.base + self.size - 1

    def release(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()


def port_is_free(port: int, host: str = HOST) -> bool:
    """True if both a UDP and a TCP socket can bind ``host:port`` right now."""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        sock = socket.socket(socket.AF_INET, kind)
        try:
            if kind == socket.SOCK_STREAM:
                # Mirror what servers do, so TIME_WAIT leftovers do not count as busy.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        except OSError:
            return False
        finally:
            sock.close()
    return True


def udp_port_bound(port: int, host: str = HOST) -> bool:
    """True if some process has bound UDP ``host:port`` (a bind attempt fails)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError:
        return True
    finally:
        sock.close()
    return False


def tcp_port_open(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """True if a TCP connect to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _lock_slot(slot_base: int) -> int | None:
    fd = os.open(_LOCK_DIR / f"slot-{slot_base}.lock", os.O_CREAT | os.O_RDWR, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def allocate_ports(size: int = 10, attempts: int = 200) -> PortBlock:
    """Claim ``size`` consecutive ports, free for UDP and TCP on 127.0.0.1.

    Ports are claimed in slots of ten (one lock file per slot, held until
    :meth:`PortBlock.release` or process exit), so blocks never overlap across processes.
    """
    if size < 1:
        raise ValueError("size must be >= 1")
    nslots = -(-size // _SLOT)
    _LOCK_DIR.mkdir(parents=True, exist_ok=True)
    total_slots = (RANGE_END - RANGE_START) // _SLOT
    rng = random.Random(os.getpid() ^ int.from_bytes(os.urandom(4), "big"))
    for _ in range(attempts):
        first = rng.randrange(total_slots - nslots + 1)
        base = RANGE_START + first * _SLOT
        fds: list[int] = []
        for i in range(nslots):
            fd = _lock_slot(base + i * _SLOT)
            if fd is None:
                break
            fds.append(fd)
        if len(fds) == nslots and all(port_is_free(base + i) for i in range(size)):
            return PortBlock(base=base, size=size, _fds=fds)
        for fd in fds:
            os.close(fd)
    raise RuntimeError(f"no block of {size} free UDP+TCP ports on {HOST} after {attempts} tries")
