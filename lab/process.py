"""Run a peer process in its own process group, logging to a file, with bounded waits."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


class PeerError(RuntimeError):
    """A peer process failed to start, died, or did not become ready in time."""


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a text file ('' if it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_until(
    predicate: Callable[[], bool], timeout: float, interval: float = 0.05, what: str = "condition"
) -> None:
    """Poll ``predicate`` until true; raise :class:`TimeoutError` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


class PeerProcess:
    """One peer process.

    ``argv`` runs with ``cwd`` as working directory, stdout+stderr appended to ``log_path``,
    stdin from /dev/null, in a new session (its own process group), so :meth:`stop` can
    signal it and all its children without touching anything else.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.cwd = cwd
        self.env = dict(os.environ if env is None else env)
        self.proc: subprocess.Popen[bytes] | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> PeerProcess:
        if self.proc is not None and self.proc.poll() is None:
            raise PeerError(f"{self.name} already running (pid {self.proc.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"--- start: {' '.join(self.argv)}\n".encode())
            log.flush()
            try:
                self.proc = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.cwd,
                    env=self.env,
                    start_new_session=True,
                )
            except OSError as exc:
                raise PeerError(f"cannot start {self.name}: {exc}") from exc
        return self

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise PeerError(f"{self.name} was never started")
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    def fail(self, message: str) -> PeerError:
        """An exception carrying ``message``, the exit status and the log tail."""
        status = self.returncode
        state = "running" if status is None else f"exited with {status}"
        return PeerError(
            f"{self.name}: {message} ({state}; log {self.log_path})\n"
            f"--- last lines of the log ---\n{self.log_tail()}"
        )

    def wait_ready(
        self, predicate: Callable[[], bool], timeout: float = 10.0, what: str = "readiness"
    ) -> None:
        """Wait for ``predicate``; fail early if the process exits, with the log tail."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                ready = predicate()
            except Exception:  # a probe error means "not ready yet"
                ready = False
            if ready:
                return
            if not self.running():
                raise self.fail(f"exited before {what}")
            if time.monotonic() >= deadline:
                raise self.fail(f"not ready after {timeout:.1f}s waiting for {what}")
            time.sleep(0.05)

    def wait_log(self, pattern: str, timeout: float = 10.0, start: int = 0) -> re.Match[str]:
        """Wait until ``pattern`` (regex) appears in the log at/after offset ``start``."""
        rx = re.compile(pattern)
        found: list[re.Match[str]] = []

        def probe() -> bool:
            m = rx.search(self.log_text(), start)
            if m:
                found.append(m)
            return m is not None

        self.wait_ready(probe, timeout, what=f"log line /{pattern}/")
        return found[0]

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to exit on its own; raise with the log tail on timeout."""
        if self.proc is None:
            raise PeerError(f"{self.name} was never started")
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise self.fail(f"did not exit within {timeout:.1f}s") from None

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the process group (the process and its children)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 5.0, sig: int = signal.SIGTERM) -> int | None:
        """``sig`` (SIGTERM) to the group, wait ``timeout``, then SIGKILL. Idempotent."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.send_signal(signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(5.0)
        # Children of the leader may outlive it; the kernel keeps the group id reserved
        # while any member lives, so signalling the group here cannot hit a stranger.
        deadline = time.monotonic() + 2.0
        while self._group_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._group_alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.poll()

    def _group_alive(self) -> bool:
        if self.proc is None:
            return False
        try:
            os.killpg(self.proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True


async def eventually(predicate: Callable[[], bool], timeout: float) -> bool:
    """Wait up to ``timeout`` for ``predicate`` without blocking the event loop; whether it
    came true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def wait_true(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Like :func:`eventually`, failing the test with ``what`` when time runs out."""
    assert await eventually(predicate, timeout), f"timed out waiting for {what}"
