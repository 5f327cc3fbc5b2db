"""Fixtures for database fault tests: a private PostgreSQL server to stop and start, and
files made immutable (`chattr +i`) to make a SQLite database unwritable.

Both undo themselves at teardown, after a failure or Ctrl-C too.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.postgres import PrivatePostgres
from lab.process import PeerError

CHATTR_TIMEOUT_S = 10


@pytest.fixture
def private_postgres(request: pytest.FixtureRequest) -> Iterator[PrivatePostgres]:
    """A running PostgreSQL server of this test's own; `.url` names its empty database."""
    try:
        server = PrivatePostgres()
    except PeerError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        server.start()
        yield server
    finally:
        report = getattr(request.node, "rep_call", None)  # set by tests/conftest.py
        if report is None or report.failed:
            print(f"\n===== private postgres log {server.log_path} =====\n{server.log_text()}")
        server.close()


class ImmutableFiles:
    """`chattr +i` / `chattr -i` on files; whatever is still immutable is released by
    :meth:`release_all` (the fixture's teardown)."""

    def __init__(self) -> None:
        self._held: set[Path] = set()

    @contextlib.contextmanager
    def held(self, paths: list[Path]) -> Iterator[None]:
        """The files are immutable inside the block and writable again after it."""
        self._held.update(paths)
        self._chattr("+i", paths)
        try:
            yield
        finally:
            self._chattr("-i", paths)
            self._held.difference_update(paths)

    def release_all(self) -> None:
        if self._held:
            self._chattr("-i", sorted(self._held))
            self._held.clear()

    @staticmethod
    def _chattr(flag: str, paths: list[Path]) -> None:
        subprocess.run(["chattr", flag, *map(str, paths)], check=True, timeout=CHATTR_TIMEOUT_S)


@pytest.fixture
def immutable_files() -> Iterator[ImmutableFiles]:
    files = ImmutableFiles()
    try:
        yield files
    finally:
        files.release_all()
