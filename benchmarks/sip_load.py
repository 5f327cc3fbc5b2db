"""SIP load benchmark: N concurrent outbound calls from one ringback process.

    .venv/bin/python -m benchmarks.sip_load --calls 100 300 500 1000 --hold 20

For each N, in turn: a fresh Kamailio (registrar + record-routing proxy) and a fresh sipp UAS
(``benchmarks/scenarios/uas_load.xml``: answers, sends one RFC 4733 digit 2 s after the ACK with
``play_pcap_audio``, echoes RTP with ``-rtp_echo``, waits for BYE). ringback runs in a child
process (``benchmarks.sip_load_worker``): it registers, ramps N calls at ``--rate`` calls/s,
every call plays a shared speech-like prompt and waits for the digit. Once every call is up the
hold window starts; during it this process measures, from outside:

- CPU (% of one core) of ringback's process, of sipp and of Kamailio (all its processes),
  from ``psutil`` CPU times at the start and the end of the window;
- ringback's RSS at 1/3 of the window and at its end, and its thread count;
- RTP pacing from a ``dumpcap`` capture of ``--capture-s`` seconds in the middle of the window,
  of the packets *from* ringback's RTP ports (an even spread of at most ``--capture-streams``
  streams, so that dumpcap stays cheap at 1,000 calls): packets/s per stream, inter-packet
  interval mean / p99 / max, and intervals over 40 ms.

Then the calls hang up, and the worker reports setup times (p50/p95 of ``CallResult.setup_s``)
and the digits received. The table goes to stdout and, with the raw JSON, to ``--out``
(``benchmarks/results/``, ignored by git). All traffic stays on 127.0.0.1; every process
started here is stopped in ``finally`` blocks.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import platform
import queue
import re
import resource
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from lab.kamailio import Kamailio, require_binary
from lab.process import PeerError, PeerProcess
from lab.sipp import Sipp

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = Path(__file__).resolve().parent / "scenarios" / "uas_load.xml"
RESULTS = Path(__file__).resolve().parent / "results"
GAP_MS = 40.0
SERVICE = "load"


# --- pcap reading --------------------------------------------------------------------------------

_LINK_HEADER = {1: 14, 113: 16, 276: 20, 0: 4}  # Ethernet (lo), Linux SLL, SLL2, BSD loopback


def read_rtp_times(path: Path) -> dict[tuple[int, int], list[tuple[float, int]]]:
    """(src port, ssrc) -> [(time, payload type)] of every IPv4/UDP/RTP packet in a pcap file.

    A plain reader for the classic pcap format dumpcap writes with ``-P`` (with a 64-byte
    snaplen only the headers are there): much faster than tshark at 500,000 packets.
    """
    data = path.read_bytes()
    if len(data) < 24:
        return {}
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise ValueError(f"{path}: not a classic pcap file")
    nanos = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack_from(endian + "I", data, 20)[0] & 0x0FFFFFFF
    if linktype not in _LINK_HEADER:
        raise ValueError(f"{path}: unsupported link type {linktype}")
    link = _LINK_HEADER[linktype]
    record = struct.Struct(endian + "IIII")
    rtp = struct.Struct("!BBHII")
    scale = 1e-9 if nanos else 1e-6
    streams: dict[tuple[int, int], list[tuple[float, int]]] = defaultdict(list)
    offset = 24
    size = len(data)
    while offset + 16 <= size:
        seconds, fraction, captured, _ = record.unpack_from(data, offset)
        offset += 16
        packet = offset
        offset += captured
        ip = packet + link
        if captured < link + 20 + 8 + 12 or data[ip] >> 4 != 4 or data[ip + 9] != 17:
            continue
        udp = ip + (data[ip] & 0x0F) * 4
        if udp + 8 + 12 > offset:
            continue
        src_port = (data[udp] << 8) | data[udp + 1]
        first, second, _seq, _stamp, ssrc = rtp.unpack_from(data, udp + 8)
        if first >> 6 != 2:
            continue
        streams[(src_port, ssrc)].append((seconds + fraction * scale, second & 0x7F))
    return dict(streams)


@dataclass
class PacingSummary:
    streams: int = 0
    packets: int = 0
    pps_mean: float = 0.0  # packets/s per stream, mean over streams
    pps_min: float = 0.0
    interval_mean_ms: float = 0.0
    interval_p99_ms: float = 0.0  # over every interval of every captured stream
    interval_max_ms: float = 0.0
    gaps_over_40ms: int = 0
    streams_with_gaps: int = 0


def summarise_pacing(
    streams: dict[tuple[int, int], list[tuple[float, int]]], payload_type: int = 0
) -> PacingSummary:
    intervals: list[float] = []
    rates: list[float] = []
    gaps = 0
    gapped = 0
    packets = 0
    for samples in streams.values():
        times = sorted(t for t, pt in samples if pt == payload_type)
        if len(times) < 2:
            continue
        packets += len(times)
        own = [(b - a) * 1000.0 for a, b in itertools.pairwise(times)]
        intervals += own
        rates.append((len(times) - 1) / (times[-1] - times[0]))
        over = sum(1 for i in own if i > GAP_MS)
        gaps += over
        gapped += over > 0
    if not intervals:
        return PacingSummary()
    intervals.sort()
    p99 = intervals[min(len(intervals) - 1, math.ceil(0.99 * len(intervals)) - 1)]
    return PacingSummary(
        streams=len(rates),
        packets=packets,
        pps_mean=sum(rates) / len(rates),
        pps_min=min(rates),
        interval_mean_ms=sum(intervals) / len(intervals),
        interval_p99_ms=p99,
        interval_max_ms=intervals[-1],
        gaps_over_40ms=gaps,
        streams_with_gaps=gapped,
    )


class PacketCapture:
    """dumpcap on lo, classic pcap (``-P``), 64-byte snaplen, big kernel buffer, own BPF."""

    def __init__(self, workdir: Path, bpf: str) -> None:
        self.dumpcap = require_binary("dumpcap")
        self.path = workdir / "rtp.pcap"
        self.log_path = workdir / "dumpcap.log"
        self.bpf = bpf
        self.process: PeerProcess | None = None

    def start(self) -> None:
        argv = [self.dumpcap, "-i", "lo", "-P", "-s", "64", "-B", "64", "-q",
                "-f", self.bpf, "-w", str(self.path)]
        self.process = PeerProcess("dumpcap", argv, self.log_path, cwd=self.path.parent)
        self.process.start()
        self.process.wait_log(r"Capturing on", 10.0)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(15.0, sig=signal.SIGINT)

    def dropped(self) -> int | None:
        """Packets the kernel or dumpcap dropped, from dumpcap's closing line."""
        if self.process is None:
            return None
        found = re.search(r"received/dropped on interface '[^']*': (\d+)/(\d+)",
                          self.process.log_text())
        return int(found.group(2)) if found else None


def capture_filter(ports: Sequence[int], limit: int) -> tuple[str, int]:
    """BPF for packets *from* ringback's RTP `ports` (at most `limit` of them, spread evenly
    over the list); the number of ports in the filter."""
    chosen = sorted(ports)
    if limit and len(chosen) > limit:
        step = len(chosen) / limit
        chosen = [chosen[int(i * step)] for i in range(limit)]
    if not chosen:
        raise PeerError("no RTP ports to capture")
    if chosen[-1] - chosen[0] == 2 * (len(chosen) - 1):  # contiguous even ports
        return f"ip and udp and udp src portrange {chosen[0]}-{chosen[-1]}", len(chosen)
    terms = " or ".join(f"udp src port {port}" for port in chosen)
    return f"ip and udp and ({terms})", len(chosen)


# --- processes ----------------------------------------------------------------------------------

class LoadSipp(Sipp):
    """The sipp UAS without the per-message trace (it would be sipp's biggest cost)."""

    def argv(self) -> list[str]:
        args = super().argv()
        out: list[str] = []
        skip = False
        for arg in args:
            if skip:
                skip = False
                continue
            if arg == "-trace_msg":
                continue
            if arg == "-message_file":
                skip = True
                continue
            out.append(arg)
        return out


class Worker:
    """The ringback child process; its stdout lines arrive on a queue from a reader thread."""

    def __init__(self, argv: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            cwd=ROOT, start_new_session=True,
        )
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                self.lines.put(json.loads(raw))
            except ValueError:
                continue
        self.lines.put(None)

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PeerError(f"worker: no {event!r} within {timeout:.0f} s; "
                                f"log {self.log_path}:\n{self.log_tail()}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise PeerError(f"worker exited ({self.proc.poll()}) before {event!r}; "
                                f"log {self.log_path}:\n{self.log_tail()}")
            if line.get("event") == event:
                return line

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.write(command.encode() + b"\n")
            self.proc.stdin.flush()

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


def cpu_seconds(processes: Sequence[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def process_tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


# --- one run --------------------------------------------------------------------------------------

@dataclass
class RunResult:
    calls: int
    hold_s: float
    rate: float
    answered: int = 0
    failed: int = 0
    ramp_s: float = 0.0
    cpu_ringback_pct: float = 0.0
    cpu_sipp_pct: float = 0.0
    cpu_kamailio_pct: float = 0.0
    machine_busy_pct: float = 0.0  # every process on the machine, % of one core (2 cores: 200)
    load_average: float = 0.0
    rss_idle_mb: float = 0.0
    rss_third_mb: float = 0.0
    rss_end_mb: float = 0.0
    threads_max: int = 0
    fds: int = 0
    setup_p50_ms: float | None = None
    setup_p95_ms: float | None = None
    setup_max_ms: float | None = None
    digits_received: int = 0
    digits_expected: int = 0
    capture_s: float = 0.0
    capture_ports: int = 0
    capture_dropped: int | None = None
    pacing: PacingSummary = field(default_factory=PacingSummary)
    worker: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def run_one(args: argparse.Namespace, calls: int, workdir: Path) -> RunResult:
    result = RunResult(calls=calls, hold_s=args.hold, rate=args.rate)
    workdir.mkdir(parents=True, exist_ok=True)
    kamailio: Kamailio | None = None
    sipp: Sipp | None = None
    worker: Worker | None = None
    try:
        kamailio = Kamailio(workdir / "kamailio", debug=1)
        kamailio.start()
        sipp = LoadSipp(SCENARIO, workdir / "sipp", service=SERVICE, rtp_echo=True,
                        extra_args=["-l", str(max(10 * calls, 1000)), "-timeout_error",
                                    "-max_socket", str(max(4 * calls, 1024))])
        sipp.start()
        kamailio.add_contact(SERVICE, sipp.contact)
        argv = [
            sys.executable, "-m", "benchmarks.sip_load_worker",
            "--registrar", kamailio.domain, "--target", kamailio.aor(SERVICE),
            "--calls", str(calls), "--rate", str(args.rate),
            "--rtp-low", str(args.rtp_ports[0]), "--rtp-high", str(args.rtp_ports[1]),
            "--prompt-seconds", str(args.prompt_seconds), "--loop", args.loop,
        ]
        worker = Worker(argv, workdir / "worker.log")
        registered = worker.expect("registered", 30)
        ringback = psutil.Process(int(registered["pid"]))
        result.rss_idle_mb = ringback.memory_info().rss / 2**20
        up = worker.expect("all_up", calls / args.rate + 90)
        t_up = time.monotonic()
        result.answered = int(up["answered"])
        result.failed = int(up["failed"])
        result.ramp_s = float(up["ramp_s"])
        result.digits_expected = result.answered
        measure(args, [int(p) for p in up["ports"]], workdir, result, ringback, sipp,
                kamailio, t_up)
        worker.send("hangup")
        done = worker.expect("done", 180)
        result.worker = done
        result.setup_p50_ms = _ms(done.get("setup_p50_s"))
        result.setup_p95_ms = _ms(done.get("setup_p95_s"))
        result.setup_max_ms = _ms(done.get("setup_max_s"))
        result.digits_received = int(done.get("digits", {}).get(args.digit, 0))
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        print(f"  N={calls}: {result.error}", file=sys.stderr)
    finally:
        if worker is not None:
            worker.stop()
        if sipp is not None:
            sipp.close()
        if kamailio is not None:
            kamailio.close()
    return result


def measure(
    args: argparse.Namespace,
    ports: Sequence[int],
    workdir: Path,
    result: RunResult,
    ringback: psutil.Process,
    sipp: Sipp,
    kamailio: Kamailio,
    t_up: float,
) -> None:
    """The hold window: CPU, RSS, threads, and the capture in its middle."""
    assert sipp.process is not None and kamailio.process is not None
    sipp_procs = process_tree(sipp.process.pid)
    kamailio_procs = process_tree(kamailio.process.pid)
    window = min(args.capture_s, max(1.0, args.hold - 4.0))
    capture_at = t_up + (args.hold - window) / 2
    third_at = t_up + args.hold / 3
    end_at = t_up + args.hold
    bpf, result.capture_ports = capture_filter(ports, args.capture_streams)
    capture = PacketCapture(workdir, bpf)
    cpu0 = (cpu_seconds([ringback]), cpu_seconds(sipp_procs), cpu_seconds(kamailio_procs))
    psutil.cpu_percent(percpu=False)  # starts the machine-wide measurement
    wall0 = time.monotonic()
    capture_started: float | None = None
    third_taken = False
    try:
        while True:
            now = time.monotonic()
            if now >= end_at:
                break
            with contextlib.suppress(psutil.Error):
                result.threads_max = max(result.threads_max, ringback.num_threads())
                result.fds = max(result.fds, ringback.num_fds())
            if not third_taken and now >= third_at:
                result.rss_third_mb = ringback.memory_info().rss / 2**20
                third_taken = True
            if capture_started is None and now >= capture_at:
                capture.start()
                capture_started = time.monotonic()
            elif capture_started is not None and capture.process is not None \
                    and capture.process.running() and now >= capture_started + window:
                capture.stop()
                result.capture_s = time.monotonic() - capture_started
            time.sleep(min(0.25, max(0.0, end_at - time.monotonic())))
        wall = time.monotonic() - wall0
        cpu1 = (cpu_seconds([ringback]), cpu_seconds(sipp_procs), cpu_seconds(kamailio_procs))
        result.cpu_ringback_pct = 100 * (cpu1[0] - cpu0[0]) / wall
        result.cpu_sipp_pct = 100 * (cpu1[1] - cpu0[1]) / wall
        result.cpu_kamailio_pct = 100 * (cpu1[2] - cpu0[2]) / wall
        result.machine_busy_pct = psutil.cpu_percent(percpu=False) * (os.cpu_count() or 1)
        result.load_average = os.getloadavg()[0]
        result.rss_end_mb = ringback.memory_info().rss / 2**20
        if not third_taken:
            result.rss_third_mb = result.rss_end_mb
    finally:
        if capture_started is not None and result.capture_s == 0.0:
            result.capture_s = time.monotonic() - capture_started
        capture.stop()
    result.capture_dropped = capture.dropped()
    if capture.path.exists():
        result.pacing = summarise_pacing(read_rtp_times(capture.path))
        if not args.keep_captures:
            capture.path.unlink()


def _ms(seconds: Any) -> float | None:
    return None if seconds is None else 1000.0 * float(seconds)


# --- report -------------------------------------------------------------------------------------

def _f(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def table(results: Sequence[RunResult]) -> str:
    head = ("| calls | answered | ringback CPU | sipp CPU | Kamailio CPU | machine CPU "
            "| RSS idle / ⅓ / end | threads | setup p50 / p95 | streams captured "
            "| packets/s per stream | interval mean / p99 / max | gaps > 40 ms | digits |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in results:
        if r.error and not r.answered:
            lines.append(f"| {r.calls} | failed: {r.error} |" + " |" * 12)
            continue
        p = r.pacing
        lines.append(
            f"| {r.calls} | {r.answered} | {_f(r.cpu_ringback_pct, 0)}% "
            f"| {_f(r.cpu_sipp_pct, 0)}% | {_f(r.cpu_kamailio_pct, 0)}% "
            f"| {_f(r.machine_busy_pct, 0)}% "
            f"| {_f(r.rss_idle_mb, 0)} / {_f(r.rss_third_mb, 0)} / {_f(r.rss_end_mb, 0)} MB "
            f"| {r.threads_max} | {_f(r.setup_p50_ms)} / {_f(r.setup_p95_ms)} ms "
            f"| {p.streams} of {r.answered} | {_f(p.pps_mean, 2)} "
            f"| {_f(p.interval_mean_ms, 2)} / {_f(p.interval_p99_ms)} / "
            f"{_f(p.interval_max_ms)} ms | {p.gaps_over_40ms:,} "
            f"| {r.digits_received} / {r.digits_expected} |"
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                info["os"] = line.split("=", 1)[1].strip('"')
    return info


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="N concurrent ringback calls through Kamailio to a sipp UAS with -rtp_echo.")
    parser.add_argument("--calls", type=int, nargs="+", default=[100, 300, 500, 1000])
    parser.add_argument("--hold", type=float, default=20.0,
                        help="seconds all N calls stay up together (the measured window)")
    parser.add_argument("--rate", type=float, default=50.0, help="new calls per second")
    parser.add_argument("--capture-s", type=float, default=10.0,
                        help="capture length, in the middle of the hold window")
    parser.add_argument("--capture-streams", type=int, default=200,
                        help="capture at most this many streams, spread evenly (0: all)")
    parser.add_argument("--rtp-ports", type=int, nargs=2, default=[16000, 19999],
                        metavar=("LOW", "HIGH"),
                        help="ringback's RTP range (keep it off the ephemeral 32768-60999)")
    parser.add_argument("--prompt-seconds", type=float, default=30.0)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                        help="the worker's event loop (uvloop must be installed separately)")
    parser.add_argument("--digit", default="1", help="the digit sipp's capture sends")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep-captures", action="store_true")
    args = parser.parse_args(argv)
    if args.hold < 5:
        parser.error("--hold must be at least 5 s")
    if any(n < 1 for n in args.calls):
        parser.error("--calls must be positive")
    if 2 * max(args.calls) > args.rtp_ports[1] - args.rtp_ports[0]:
        parser.error("--rtp-ports range too small for the largest N (2 ports per call)")
    return args


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextlib.contextmanager
def _interrupts_as_exceptions() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C, so the finally blocks stop every peer."""
    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raise_nofile()  # sipp and the worker inherit it
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    workroot = out_dir / f"run-{stamp}"
    results: list[RunResult] = []
    with _interrupts_as_exceptions():
        for calls in args.calls:
            print(f"N={calls}: ramp at {args.rate:g}/s, hold {args.hold:g} s ...", flush=True)
            result = run_one(args, calls, workroot / f"n{calls}")
            results.append(result)
            print(table([result]).splitlines()[-1], flush=True)
    report = table(results)
    print()
    print(report)
    info = machine()
    (out_dir / f"sip_load-{stamp}.md").write_text(
        f"# SIP load {stamp}\n\n`{' '.join(sys.argv)}`\n\n{json.dumps(info)}\n\n{report}\n")
    (out_dir / f"sip_load-{stamp}.json").write_text(json.dumps(
        {"machine": info, "args": {k: str(v) for k, v in vars(args).items()},
         "results": [asdict(r) for r in results]}, indent=2))
    print(f"\nwritten to {out_dir}/sip_load-{stamp}.md and .json")
    return 0 if all(r.error is None for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
