"""Packet capture on loopback with dumpcap, RTP extraction with tshark, pacing statistics."""

from __future__ import annotations

import itertools
import math
import signal
import statistics
import subprocess
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lab.kamailio import require_binary
from lab.process import PeerError, PeerProcess


@dataclass(frozen=True)
class RtpPacket:
    time: float  # frame.time_epoch
    src: str
    src_port: int
    dst_port: int
    payload_type: int
    seq: int
    timestamp: int
    ssrc: int
    marker: bool
    payload: bytes

    @property
    def stream(self) -> tuple[str, int, int, int]:
        """Key of the stream this packet belongs to: (src ip, src port, dst port, ssrc)."""
        return (self.src, self.src_port, self.dst_port, self.ssrc)


@dataclass(frozen=True)
class Pacing:
    packets: int
    duration: float
    pps: float
    interval_mean_ms: float
    interval_p99_ms: float
    interval_max_ms: float
    gaps_over_40ms: int


def _int(value: str) -> int:
    value = value.strip()
    if not value:
        return 0
    return int(value, 16) if value.lower().startswith("0x") else int(value)


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes")


def pacing(packets: Sequence[RtpPacket], gap_ms: float = 40.0) -> Pacing:
    """Inter-packet interval statistics of one stream (packets in capture order).

    RFC 4733 event packets (several with the same timestamp, sent back to back) skew the
    intervals: filter by payload type first if that matters.
    """
    times = sorted(p.time for p in packets)
    if len(times) < 2:
        return Pacing(len(times), 0.0, 0.0, 0.0, 0.0, 0.0, 0)
    intervals = [(b - a) * 1000.0 for a, b in itertools.pairwise(times)]
    ordered = sorted(intervals)
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
    duration = times[-1] - times[0]
    return Pacing(
        packets=len(times),
        duration=duration,
        pps=(len(times) - 1) / duration if duration > 0 else 0.0,
        interval_mean_ms=statistics.fmean(intervals),
        interval_p99_ms=p99,
        interval_max_ms=ordered[-1],
        gaps_over_40ms=sum(1 for i in intervals if i > gap_ms),
    )


class Capture:
    """``dumpcap -i lo -f "udp portrange A-B" -w FILE.pcapng`` around a test.

    :meth:`start` returns once dumpcap reports it is capturing; :meth:`stop` sends SIGINT
    and waits for dumpcap to flush and exit. RTP is decoded with ``-d udp.port==X,rtp``
    for every port in ``rtp_ports`` (or the whole range if none are given) plus the RTP
    heuristic.
    """

    def __init__(
        self,
        port_range: tuple[int, int],
        workdir: Path | None = None,
        *,
        interface: str = "lo",
        extra_filter: str | None = None,
    ) -> None:
        self.dumpcap_bin = require_binary("dumpcap")
        self.tshark_bin = require_binary("tshark")
        self.port_range = port_range
        self.workdir = Path(tempfile.mkdtemp(prefix="capture-")) if workdir is None else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.path = self.workdir / "capture.pcapng"
        self.log_path = self.workdir / "dumpcap.log"
        low, high = port_range
        bpf = f"udp portrange {low}-{high}"
        if extra_filter:
            bpf = f"({bpf}) and ({extra_filter})"
        self.bpf = bpf
        self.interface = interface
        self.process: PeerProcess | None = None

    def start(self, timeout: float = 10.0) -> Capture:
        argv = [self.dumpcap_bin, "-i", self.interface, "-f", self.bpf, "-w", str(self.path)]
        self.process = PeerProcess("dumpcap", argv, self.log_path, cwd=self.workdir)
        self.process.start()
        self.process.wait_log(r"Capturing on", timeout)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGINT, wait for dumpcap to flush the file and exit (SIGKILL after ``timeout``)."""
        if self.process is not None:
            self.process.stop(timeout, sig=signal.SIGINT)

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _require_file(self) -> None:
        if self.process is not None and self.process.running():
            raise PeerError("stop the capture before reading it")
        if not self.path.exists():
            tail = self.process.log_tail() if self.process else ""
            raise PeerError(f"no capture file {self.path}: {tail}")

    def rtp_packets(self, rtp_ports: Iterable[int] = ()) -> list[RtpPacket]:
        """Every RTP packet in the capture (call after :meth:`stop`)."""
        self._require_file()
        decode: list[str] = []
        ports = list(rtp_ports)
        if ports:
            for port in ports:
                decode += ["-d", f"udp.port=={port},rtp"]
        else:
            low, high = self.port_range
            decode += ["-d", f"udp.port=={low}-{high},rtp"]
        fields = [
            "frame.time_epoch", "ip.src", "udp.srcport", "udp.dstport", "rtp.p_type",
            "rtp.seq", "rtp.timestamp", "rtp.ssrc", "rtp.marker", "rtp.payload",
        ]  # fmt: skip
        argv = [
            self.tshark_bin, "-n", "-r", str(self.path),
            "-o", "rtp.heuristic_rtp:TRUE", *decode,
            "-Y", "rtp", "-T", "fields", "-E", "separator=\t",
        ]  # fmt: skip
        for field in fields:
            argv += ["-e", field]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise PeerError(f"tshark failed ({result.returncode}): {result.stderr[-2000:]}")
        packets: list[RtpPacket] = []
        for line in result.stdout.splitlines():
            cols = line.split("\t")
            if len(cols) < len(fields) or not cols[5]:
                continue
            packets.append(
                RtpPacket(
                    time=float(cols[0]),
                    src=cols[1],
                    src_port=_int(cols[2]),
                    dst_port=_int(cols[3]),
                    payload_type=_int(cols[4]),
                    seq=_int(cols[5]),
                    timestamp=_int(cols[6]),
                    ssrc=_int(cols[7]),
                    marker=_flag(cols[8]),
                    payload=bytes.fromhex(cols[9].replace(":", "")),
                )
            )
        return packets

    def sip_request_times(self, method: str, sip_ports: Iterable[int]) -> dict[str, float]:
        """When each `method` request (by Call-ID and CSeq) was first seen on the given SIP
        ports: retransmissions do not count twice (call after :meth:`stop`)."""
        self._require_file()
        decode: list[str] = []
        for port in sip_ports:
            decode += ["-d", f"udp.port=={port},sip"]
        argv = [
            self.tshark_bin, "-n", "-r", str(self.path), *decode,
            "-Y", f'sip.Method == "{method}" && sip.CSeq.method == "{method}"',
            "-T", "fields", "-E", "separator=\t",
            "-e", "frame.time_epoch", "-e", "sip.Call-ID", "-e", "sip.CSeq.seq",
        ]  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise PeerError(f"tshark failed ({result.returncode}): {result.stderr[-2000:]}")
        first: dict[str, float] = {}
        for line in result.stdout.splitlines():
            at, call_id, cseq = line.split("\t")[:3]
            first.setdefault(f"{call_id} {cseq}", float(at))
        return first

    @staticmethod
    def streams(packets: Iterable[RtpPacket]) -> dict[tuple[str, int, int, int], list[RtpPacket]]:
        """Packets grouped by (src ip, src port, dst port, ssrc)."""
        out: dict[tuple[str, int, int, int], list[RtpPacket]] = defaultdict(list)
        for packet in packets:
            out[packet.stream].append(packet)
        return dict(out)

    @staticmethod
    def pacing(stream: Sequence[RtpPacket], gap_ms: float = 40.0) -> Pacing:
        return pacing(stream, gap_ms)
