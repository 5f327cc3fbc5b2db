"""sipp 3.6.1 as a test peer: a UAS in the background or a UAC run to completion.

Scenarios live in ``scenarios/``; each run renders its scenario into its own temp dir
(``@@DTMF_PCAP@@``, ``@@DTMF_PCAP_AGAIN@@`` (the same key as a new event), ``@@INBAND_PCAP@@``
and any ``template`` values are filled in there, because ``play_pcap_audio`` paths are read when
sipp parses the scenario, not through ``-key``).
sipp runs with ``-trace_msg -trace_err`` so every SIP message it sent or received is in
:meth:`Sipp.messages`.
"""

from __future__ import annotations

import re
import socket
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lab.kamailio import require_binary
from lab.make_inband_pcap import write_inband_pcap
from lab.pcap_retime import retimed_pcap
from lab.ports import HOST, PortBlock, allocate_ports, udp_port_bound
from lab.process import PeerError, PeerProcess

SCENARIOS = Path(__file__).with_name("scenarios")
DTMF_PCAP_DIR = Path("/usr/share/sip-tester")
DEFAULT_DTMF_PCAP = DTMF_PCAP_DIR / "dtmf_2833_1.pcap"
AGAIN_TIMESTAMP_SHIFT = 8000 * 60  # a minute of 8 kHz RTP time after the first press

# sipp exit codes (sipp -h / docs).
EXIT_ALL_OK = 0
EXIT_SOME_FAILED = 1
EXIT_INTERNAL_COMMAND = 97
EXIT_NO_CALLS = 99
EXIT_FATAL = 255
EXIT_BIND_FAILED = 254


REASONS: dict[int, str] = {
    403: "Forbidden",
    404: "Not Found",
    480: "Temporarily Unavailable",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    500: "Server Internal Error",
    503: "Service Unavailable",
    603: "Decline",
}


def dtmf_pcap(digit: str) -> Path:
    """The Debian RFC 2833 capture for ``digit`` (0-9, ``*``, ``#``)."""
    name = {"*": "star", "#": "pound"}.get(digit, digit)
    path = DTMF_PCAP_DIR / f"dtmf_2833_{name}.pcap"
    if not path.exists():
        raise PeerError(f"no RFC 2833 capture {path} (package sip-tester)")
    return path


@dataclass(frozen=True)
class SipMessage:
    """One SIP message from sipp's message log."""

    direction: str  # "sent" or "received"
    text: str

    @property
    def first_line(self) -> str:
        return self.text.split("\n", 1)[0].strip()

    @property
    def is_response(self) -> bool:
        return self.first_line.startswith("SIP/2.0 ")

    @property
    def status(self) -> int | None:
        if not self.is_response:
            return None
        return int(self.first_line.split()[1])

    @property
    def method(self) -> str:
        """Request method, or the CSeq method for a response."""
        if not self.is_response:
            return self.first_line.split()[0]
        cseq = self.header("CSeq")
        return cseq.split()[-1] if cseq else ""

    def header(self, name: str) -> str | None:
        rx = re.compile(rf"^{re.escape(name)}\s*:\s*(.*?)\s*$", re.IGNORECASE | re.MULTILINE)
        head = self.text.split("\n\n", 1)[0]
        m = rx.search(head)
        return m.group(1) if m else None

    @property
    def body(self) -> str:
        parts = self.text.split("\n\n", 1)
        return parts[1] if len(parts) == 2 else ""


_LOG_SPLIT = re.compile(
    r"^-{10,} [^\n]*\n(?:UDP|TCP|TLS|SCTP) message (sent|received)[^\n]*\n\n?", re.MULTILINE
)


def parse_message_log(text: str) -> list[SipMessage]:
    """Split a sipp ``-trace_msg`` log into messages (line endings normalised to ``\\n``)."""
    text = text.replace("\r\n", "\n")
    parts = _LOG_SPLIT.split(text)
    out: list[SipMessage] = []
    # parts = [preamble, dir1, msg1, dir2, msg2, ...]
    for i in range(1, len(parts) - 1, 2):
        out.append(SipMessage(parts[i], parts[i + 1].strip("\n") + "\n"))
    return out


class Sipp:
    """One sipp process.

    ``scenario`` is a file name in ``scenarios/`` or a path. ``remote`` (``host:port``) is the
    UAC target (normally ``kamailio.domain``); ``service`` sets ``[service]`` (the user part of
    the Request-URI) with ``-s``. ``keys`` become ``-key NAME VALUE`` (``[NAME]`` in messages).
    ``calls`` → ``-m``; ``duration_ms`` → ``-d`` (plain ``<pause/>``); ``rtp_echo`` → ``-rtp_echo``.
    ``from_user`` is the user part of the UAC scenarios' From (``@@FROM_USER@@``, default
    ``sipp``, unknown to Kamailio, so no INVITE challenge). ``status``/``reason`` fill
    ``@@STATUS@@``/``@@REASON@@`` (``uas_status.xml``); ``dtmf_digit`` picks the RFC 2833
    capture, ``inband_digit`` the generated in-band one. ``transport`` is sipp's ``-t``
    (``u1``: UDP, ``t1``: one TCP connection; ``[transport]`` in messages follows it).
    """

    def __init__(
        self,
        scenario: str | Path,
        workdir: Path | None = None,
        *,
        remote: str | None = None,
        service: str | None = None,
        calls: int | None = None,
        keys: Mapping[str, str] | None = None,
        rtp_echo: bool = False,
        duration_ms: int | None = None,
        rate: float | None = None,
        dtmf_digit: str = "1",
        inband_digit: str = "5",
        template: Mapping[str, str] | None = None,
        from_user: str = "sipp",
        status: int | None = None,
        reason: str | None = None,
        extra_args: Sequence[str] = (),
        ports: PortBlock | None = None,
        transport: str = "u1",
    ) -> None:
        self.sipp_bin = require_binary("sipp")
        source = Path(scenario)
        if not source.is_absolute() and not source.exists():
            source = SCENARIOS / source
        if source.suffix != ".xml":
            source = source.with_suffix(".xml")
        if not source.exists():
            raise PeerError(f"sipp scenario not found: {source}")
        self.source = source
        self.name = source.stem
        self.workdir = Path(tempfile.mkdtemp(prefix=f"sipp-{self.name}-")) if workdir is None \
            else workdir  # fmt: skip
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._own_ports = ports is None
        # Port block: [0] SIP, [1..] RTP (sipp uses -mp, -mp+2 for echo, and more for pcap play).
        self.ports = allocate_ports(10) if ports is None else ports
        self.port = self.ports[0]
        self.rtp_port = self.ports[2]
        self.host = HOST
        self.remote = remote
        self.service = service
        self.calls = calls
        self.keys = dict(keys or {})
        self.rtp_echo = rtp_echo
        self.duration_ms = duration_ms
        self.rate = rate
        self.extra_args = list(extra_args)
        self.transport = transport
        self.message_file = self.workdir / "messages.log"
        self.error_file = self.workdir / "errors.log"
        self.log_path = self.workdir / "sipp.log"
        values = {"DTMF_PCAP": str(dtmf_pcap(dtmf_digit)), "FROM_USER": from_user}
        text = source.read_text()
        if "@@DTMF_PCAP_AGAIN@@" in text:  # the same key pressed once more: a new event
            again = retimed_pcap(dtmf_pcap(dtmf_digit), self.workdir / "dtmf_again.pcap",
                                 timestamp_shift=AGAIN_TIMESTAMP_SHIFT)
            values["DTMF_PCAP_AGAIN"] = str(again)
        if "@@INBAND_PCAP@@" in text:
            pcap = write_inband_pcap(self.workdir / f"inband_{inband_digit}.pcap", inband_digit)
            values["INBAND_PCAP"] = str(pcap)
        if status is not None:
            values["STATUS"] = str(status)
            values["REASON"] = reason or REASONS.get(status, "Failure")
        values.update(template or {})
        for key, value in values.items():
            text = text.replace(f"@@{key}@@", value)
        leftover = re.findall(r"@@[A-Z_]+@@", text)
        if leftover:
            raise PeerError(f"{source}: unfilled placeholders {leftover}")
        self.scenario_path = self.workdir / source.name
        self.scenario_path.write_text(text)
        self.process: PeerProcess | None = None

    @property
    def contact(self) -> str:
        """Where this sipp listens, as a SIP URI (for ``Kamailio.add_contact``)."""
        return f"sip:{self.service or 'service'}@{self.host}:{self.port}"

    def argv(self) -> list[str]:
        args = [
            self.sipp_bin,
            "-sf", str(self.scenario_path),
            "-i", self.host, "-p", str(self.port),
            "-mi", self.host, "-mp", str(self.rtp_port),
            "-trace_msg", "-message_file", str(self.message_file),
            "-trace_err", "-error_file", str(self.error_file),
            "-nostdin",
            "-t", self.transport,
        ]  # fmt: skip
        if self.service is not None:
            args += ["-s", self.service]
        if self.calls is not None:
            args += ["-m", str(self.calls)]
        if self.rate is not None:
            args += ["-r", str(self.rate)]
        if self.duration_ms is not None:
            args += ["-d", str(self.duration_ms)]
        if self.rtp_echo:
            args.append("-rtp_echo")
        for key, value in self.keys.items():
            args += ["-key", key, value]
        args += self.extra_args
        if self.remote is not None:
            args.append(self.remote)
        return args

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, timeout: float = 10.0, allow_exit: bool = False) -> Sipp:
        """Start in the background; return once the SIP port is bound.

        ``allow_exit``: a sipp that already finished also counts as started (a UAC whose
        call fails fast can exit before its port is ever seen bound).
        """
        process = PeerProcess(f"sipp {self.name}", self.argv(), self.log_path, self.workdir)
        self.process = process
        process.start()
        over_tcp = self.transport.startswith("t")
        bound = _tcp_port_bound if over_tcp else udp_port_bound
        process.wait_ready(
            lambda: bound(self.port) or (allow_exit and not process.running()),
            timeout,
            what=f"{'TCP' if over_tcp else 'UDP'} port {self.port}",
        )
        return self

    def wait(self, timeout: float = 60.0) -> int:
        """Wait for sipp to exit on its own (``-m`` reached); return its exit code."""
        if self.process is None:
            raise PeerError("sipp was never started")
        return self.process.wait_exit(timeout)

    def run(self, timeout: float = 60.0) -> int:
        """Start and wait for completion (UAC); return the exit code."""
        self.start(allow_exit=True)
        try:
            return self.wait(timeout)
        except PeerError:
            self.stop()
            raise

    def stop(self, timeout: float = 5.0) -> None:
        if self.process is not None:
            self.process.stop(timeout)

    def close(self) -> None:
        self.stop()
        if self._own_ports:
            self.ports.release()

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.returncode

    def running(self) -> bool:
        return self.process is not None and self.process.running()

    # -- results --------------------------------------------------------------------------
    def message_log(self) -> str:
        try:
            return self.message_file.read_text(errors="replace")
        except OSError:
            return ""

    def error_log(self) -> str:
        try:
            return self.error_file.read_text(errors="replace")
        except OSError:
            return ""

    def log_text(self) -> str:
        return "" if self.process is None else self.process.log_text()

    def messages(self) -> list[SipMessage]:
        return parse_message_log(self.message_log())

    def received(self, method: str | None = None, status: int | None = None) -> list[SipMessage]:
        """Received messages: requests of ``method`` and/or responses with ``status``
        (a status with a method matches the CSeq method). Retransmissions count separately."""
        return self._select("received", method, status)

    def sent(self, method: str | None = None, status: int | None = None) -> list[SipMessage]:
        """Sent messages, selected as in :meth:`received`."""
        return self._select("sent", method, status)

    def _select(self, direction: str, method: str | None, status: int | None) -> list[SipMessage]:
        def wanted(m: SipMessage) -> bool:
            if status is not None:
                return m.status == status and (method is None or m.method == method)
            return method is None or (not m.is_response and m.method == method)

        return [m for m in self.messages() if m.direction == direction and wanted(m)]

    def received_statuses(self) -> list[int]:
        return [m.status for m in self.messages() if m.direction == "received" and m.status]

    def describe(self) -> str:
        """Exit code and the tails of the logs, for assertion messages."""
        return (
            f"sipp {self.name} exit={self.returncode}\n--- sipp output ---\n"
            f"{self.log_text()[-3000:]}\n--- errors ---\n{self.error_log()[-3000:]}\n"
            f"--- messages ---\n{self.message_log()[-6000:]}"
        )


def _tcp_port_bound(port: int) -> bool:
    """True if some process listens on TCP ``HOST:port`` (a bind attempt fails); no connection
    is made, so sipp never sees one."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
    except OSError:
        return True
    finally:
        sock.close()
    return False
