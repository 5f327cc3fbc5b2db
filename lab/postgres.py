"""A private PostgreSQL server for fault tests: stopped, frozen and restarted at will, without
touching the shared cluster other tests use.

`initdb` runs into a fresh directory under /tmp owned by the `postgres` OS user (PostgreSQL
refuses to run as root, and pytest's own temporary directories are private to root). The server
trusts local connections, listens on 127.0.0.1 only, on a port from :mod:`lab.ports`,
and keeps its unix socket in its own directory. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from lab.ports import HOST, PortBlock, allocate_ports
from lab.process import PeerError, tail

OS_USER = "postgres"
SUPERUSER = "postgres"
DATABASE = "ringback"
WAIT_S = 30  # pg_ctl -t, and the bound on every command we run
_SETTINGS = {
    "listen_addresses": f"'{HOST}'",
    "fsync": "off",  # a throw-away server: speed over durability
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "50",
    "shared_buffers": "'16MB'",
}


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)),
        None,
    )
    if found is None:
        raise PeerError(f"PostgreSQL's {name} is not installed: run scripts/setup.sh")
    return found


class PrivatePostgres:
    """One PostgreSQL server of our own. :meth:`close` always stops it and removes its files."""

    def __init__(self) -> None:
        try:
            self._owner = pwd.getpwnam(OS_USER)
        except KeyError:
            raise PeerError(f"no {OS_USER!r} OS user: run scripts/setup.sh") from None
        self._pg_ctl, self._initdb = _pg_bin("pg_ctl"), _pg_bin("initdb")
        self.root = Path(tempfile.mkdtemp(prefix="ringback-pg-", dir="/tmp"))
        os.chown(self.root, self._owner.pw_uid, self._owner.pw_gid)
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log_path = self.root / "postgres.log"
        self._ports: PortBlock = allocate_ports(1)
        self.port = self._ports[0]
        self._initialised = False

    @property
    def url(self) -> str:
        """The test database, over TCP (so a stopped server refuses connections)."""
        return self._url(DATABASE)

    def start(self) -> PrivatePostgres:
        """Start the server (initialising it and creating the test database the first time);
        returns once it accepts connections."""
        first = not self._initialised
        if first:
            self._init()
        self._pg_ctl_run("start", "-l", str(self.log_path))
        if first:
            self._create_database()
        return self

    def stop(self) -> None:
        """Fast shutdown: open sessions are terminated, the server is down on return."""
        self._pg_ctl_run("stop", "-m", "fast")

    def running(self) -> bool:
        if not self._initialised:
            return False
        status = self._run([self._pg_ctl, "status", "-D", str(self.data_dir)], check=False)
        return status.returncode == 0

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """The postmaster stopped with SIGSTOP: new connections are accepted by the kernel but
        never answered, like a hung server (sessions already open keep working). Resumed
        (SIGCONT) when the block ends."""
        pid = self._postmaster_pid()
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(pid, signal.SIGCONT)

    def log_text(self) -> str:
        return tail(self.log_path, 60)

    def close(self) -> None:
        """Stop the server (fast, then immediate, then SIGKILL) and remove its directory."""
        try:
            if self.running():
                self._shut_down()
        finally:
            self._ports.release()
            shutil.rmtree(self.root, ignore_errors=True)

    def _shut_down(self) -> None:
        pid = self._postmaster_pid()
        os.kill(pid, signal.SIGCONT)  # in case a test left it frozen
        for mode in ("fast", "immediate"):
            if self._run(self._pg_ctl_argv("stop", "-m", mode), check=False).returncode == 0:
                return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def _init(self) -> None:
        self._run([
            self._initdb, "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync",
        ])
        self.socket_dir.mkdir(mode=0o700)
        os.chown(self.socket_dir, self._owner.pw_uid, self._owner.pw_gid)
        settings = {**_SETTINGS, "port": str(self.port),
                    "unix_socket_directories": f"'{self.socket_dir}'"}
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())
        self._initialised = True

    def _create_database(self) -> None:
        admin = create_engine(self._url("postgres"), isolation_level="AUTOCOMMIT",
                              poolclass=NullPool, connect_args={"connect_timeout": 5})
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{DATABASE}"'))
        finally:
            admin.dispose()

    def _url(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def _postmaster_pid(self) -> int:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError) as exc:
            raise PeerError(f"postgres is not running in {self.data_dir}: {exc}") from exc

    def _pg_ctl_argv(self, action: str, *args: str) -> list[str]:
        return [self._pg_ctl, action, "-D", str(self.data_dir), "-w", "-t", str(WAIT_S), *args]

    def _pg_ctl_run(self, action: str, *args: str) -> None:
        self._run(self._pg_ctl_argv(action, *args))

    def _run(self, argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`argv` as the postgres OS user, in our directory, bounded by WAIT_S (+ a margin)."""
        try:
            done = subprocess.run(
                ["runuser", "-u", OS_USER, "--", *argv], cwd=self.root, capture_output=True,
                text=True, timeout=WAIT_S + 10, stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise PeerError(f"{' '.join(argv)} did not finish in {WAIT_S + 10} s") from exc
        if check and done.returncode != 0:
            raise PeerError(
                f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}{done.stderr}\n"
                f"--- server log ---\n{self.log_text()}"
            )
        return done
