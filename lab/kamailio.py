"""Kamailio 5.6 as a registrar + record-routing stateful proxy for tests.

The config is generated from ``kamailio.cfg.tmpl`` next to this file: in-memory usrloc,
digest auth for REGISTER (``www_challenge``) against a static htable of users, optional 407
on INVITE (``invite_auth=True`` → ``-A WITH_INVITE_AUTH``), ``loose_route`` for in-dialog
requests, ``record_route`` + ``lookup`` + ``t_relay`` for initial requests, 404 for users
that are not registered. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lab.ports import HOST, PortBlock, allocate_ports, tcp_port_open, udp_port_bound
from lab.process import PeerError, PeerProcess

TEMPLATE = Path(__file__).with_name("kamailio.cfg.tmpl")
DEFAULT_USERS: dict[str, str] = {"ringback": "secret", "client": "clientpw"}


def require_binary(name: str) -> str:
    """Path of ``name`` on PATH (or /usr/sbin); fail loudly if missing."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
    if not found:
        raise PeerError(
            f"required peer binary {name!r} not found: run scripts/setup.sh "
            "(apt-get install kamailio sip-tester baresip tshark)"
        )
    return found


def _cfg_string(value: str) -> str:
    if any(c in value for c in '"\\\n\r$'):
        raise ValueError(f"unsupported character in Kamailio config value: {value!r}")
    return f'"{value}"'


class Kamailio:
    """A running Kamailio. ``port`` serves UDP and TCP on 127.0.0.1.

    ``domain`` (``127.0.0.1:PORT``) is what user agents put in their AOR / Request-URI:
    ``sip:client@127.0.0.1:PORT``. Users and passwords come from ``users``.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        users: Mapping[str, str] | None = None,
        invite_auth: bool = False,
        ports: PortBlock | None = None,
        debug: int = 2,
        extra_defines: tuple[str, ...] = (),
    ) -> None:
        self.kamailio_bin = require_binary("kamailio")
        self.kamcmd_bin = require_binary("kamcmd")
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="kamailio-")) if workdir is None else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.users = dict(DEFAULT_USERS if users is None else users)
        self.invite_auth = invite_auth
        self._own_ports = ports is None
        self.ports = allocate_ports(1) if ports is None else ports
        self.port = self.ports[0]
        self.host = HOST
        self.debug = debug
        # Short path of its own: the ctl unix socket path must stay under 108 bytes,
        # which a pytest tmp_path with a long test name can exceed.
        self.rundir = Path(tempfile.mkdtemp(prefix="kam-"))
        self.ctl_socket = self.rundir / "kamailio_ctl"
        self.pidfile = self.rundir / "kamailio.pid"
        self.cfg_path = self.workdir / "kamailio.cfg"
        self.log_path = self.workdir / "kamailio.log"
        self.defines = (("WITH_INVITE_AUTH",) if invite_auth else ()) + tuple(extra_defines)
        self.process: PeerProcess | None = None
        self._write_config()

    # -- addresses ------------------------------------------------------------------------
    @property
    def domain(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def uri(self) -> str:
        """The proxy itself, usable as an outbound proxy / Route: ``sip:127.0.0.1:PORT;lr``."""
        return f"sip:{self.domain};lr"

    def aor(self, user: str) -> str:
        return f"sip:{user}@{self.domain}"

    # -- config ---------------------------------------------------------------------------
    def _write_config(self) -> None:
        users = "\n".join(
            f"\t$sht(users=>{user}) = {_cfg_string(password)};"
            for user, password in self.users.items()
        )
        if not all(re.fullmatch(r"[A-Za-z0-9_.\-]+", u) for u in self.users):
            raise ValueError(f"user names must be plain tokens: {list(self.users)}")
        text = TEMPLATE.read_text()
        text = text.replace("@@PORT@@", str(self.port))
        text = text.replace("@@CTL_SOCKET@@", str(self.ctl_socket))
        text = text.replace("@@DEBUG@@", str(self.debug))
        text = text.replace("@@USERS@@", users or "\t;")
        leftover = re.findall(r"@@[A-Z_]+@@", text)
        if leftover:
            raise ValueError(f"unfilled template placeholders: {leftover}")
        self.cfg_path.write_text(text)

    def _define_args(self) -> list[str]:
        args: list[str] = []
        for name in self.defines:
            args += ["-A", name]
        return args

    def check_config(self) -> None:
        """``kamailio -c -f CFG``; raise with its output if the config is refused."""
        result = subprocess.run(
            [self.kamailio_bin, "-c", "-f", str(self.cfg_path), *self._define_args()],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if result.returncode != 0:
            raise PeerError(
                f"kamailio -c refused {self.cfg_path} (exit {result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> Kamailio:
        self.check_config()
        argv = [
            self.kamailio_bin,
            "-f", str(self.cfg_path),
            "-DD", "-E",
            "-Y", str(self.rundir),
            "-P", str(self.pidfile),
            "-m", "64", "-M", "8",
            *self._define_args(),
        ]  # fmt: skip
        self.process = PeerProcess("kamailio", argv, self.log_path, cwd=self.workdir)
        self.process.start()
        self.process.wait_ready(self._ready, timeout, what="UDP/TCP port and ctl socket")
        return self

    def _ready(self) -> bool:
        if not (udp_port_bound(self.port) and tcp_port_open(self.port)):
            return False
        return self.rpc_ok("core.uptime")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            self.process.stop(timeout)

    def restart(self, timeout: float = 15.0) -> Kamailio:
        """Stop and start again on the same port; registrations are lost (usrloc in memory)."""
        self.stop()
        return self.start(timeout)

    def close(self) -> None:
        """Stop and release the port block (the fixture finaliser)."""
        self.stop()
        if self._own_ports:
            self.ports.release()
        shutil.rmtree(self.rundir, ignore_errors=True)

    def __enter__(self) -> Kamailio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def running(self) -> bool:
        return self.process is not None and self.process.running()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # -- RPC ------------------------------------------------------------------------------
    def kamcmd(self, *args: str, timeout: float = 10.0, check: bool = True) -> str:
        """Run ``kamcmd -s unix:SOCK ARGS``; return stdout (raise on failure if ``check``)."""
        result = subprocess.run(
            [self.kamcmd_bin, "-s", f"unix:{self.ctl_socket}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        output = result.stdout + result.stderr
        if check and (result.returncode != 0 or output.lstrip().startswith("error:")):
            raise PeerError(f"kamcmd {' '.join(args)} failed ({result.returncode}): {output}")
        return result.stdout

    def rpc_ok(self, *args: str) -> bool:
        try:
            self.kamcmd(*args, timeout=3.0)
        except (PeerError, subprocess.TimeoutExpired):
            return False
        return True

    def registrations(self) -> list[dict[str, Any]]:
        """Contacts in usrloc: one dict per contact with ``aor``, ``user``, ``contact``,
        ``expires`` (int), ``received``, ``user_agent``, ``call_id`` and the other fields
        ``ul.dump`` prints (keys lower-cased, dashes → underscores)."""
        return parse_ul_dump(self.kamcmd("ul.dump"))

    def contacts_of(self, user: str) -> list[str]:
        return [r["contact"] for r in self.registrations() if r["user"] == user]

    def add_contact(self, user: str, contact_uri: str, expires: int = 3600) -> None:
        """Register ``contact_uri`` for ``user`` directly in usrloc (``ul.add``): makes a
        non-registering peer such as a sipp UAS reachable as ``sip:USER@DOMAIN``."""
        # ul.add table AOR contact expires q path flags cflags methods
        self.kamcmd(
            "ul.add", "location", f"s:{user}", contact_uri, str(expires), "1.0", "s:0",
            "0", "0", "0",
        )

    def remove_user(self, user: str) -> None:
        self.kamcmd("ul.rm", "location", user)


_KV = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_-]*):\s*(.*?)\s*$")


def parse_ul_dump(text: str) -> list[dict[str, Any]]:
    """Parse ``kamcmd ul.dump`` output into one dict per contact.

    The output is an indented tree (``Domains:`` / ``AoRs:`` / ``AoR: user`` /
    ``Contacts:`` / ``Contact: {`` ``Address: sip:...`` ``Expires: 3599`` ...).
    """
    rows: list[dict[str, Any]] = []
    aor: str | None = None
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        m = _KV.match(line)
        if not m:
            continue
        key, value = m.group(1).lower().replace("-", "_"), m.group(2)
        if key in ("aor", "stats", "domain", "info", "contacts", "contact"):
            aor = value if key == "aor" else aor
            current = None
        elif key == "address" and aor is not None:
            current = {"aor": aor, "user": aor.split("@", 1)[0], "contact": value}
            rows.append(current)
        elif current is not None and value not in ("{", "}"):
            if key == "expires":
                current[key] = int(value) if value.lstrip("-").isdigit() else value
            else:
                current[key] = value
    return rows
