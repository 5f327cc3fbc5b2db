"""`ringback hold export DIR --line L` and `ringback hold stream --line L`: the hold tips as music
on hold for an existing Asterisk / FreePBX (docs/music-on-hold.md).

`export` writes a `mode=files` class folder (audio.moh_export) and prints the musiconhold.conf
stanza and a summary. `stream` writes the line as an endless raw stream on stdout for
`mode=custom` (campaigns.hold_stream): audio only on stdout, logs on stderr; it ends with status
0 within a second of SIGTERM, SIGHUP or SIGINT, or when the reader closes the pipe.
"""

import argparse
import asyncio
import errno
import json
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType
from zoneinfo import ZoneInfo

from sqlalchemy.exc import OperationalError

from api.app import HoldParts, build_hold_parts
from audio.moh_export import TipAudio, plan_items, write_folder
from audio.raw_stream import StreamFormat, gap_pcm16
from campaigns.hold_errors import NotFound
from campaigns.hold_program import HoldProgram
from campaigns.hold_stream import WAIT_SLICE_S, HoldStream, play
from infra.db import make_engine, make_sessions, utcnow
from infra.migrate import check_up_to_date
from infra.settings import Settings

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def add_hold_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    hold = commands.add_parser("hold", help="hold tips as music on hold for Asterisk/FreePBX")
    hold_commands = hold.add_subparsers(dest="hold_command", required=True)
    export = hold_commands.add_parser(
        "export", help="write one rotation round as a mode=files class folder; prints the "
        "musiconhold.conf stanza")
    export.add_argument("directory", type=Path, help="the class folder (created if missing)")
    export.add_argument("--line", default="main", help="the hold line (default: main)")
    stream = hold_commands.add_parser(
        "stream", help="the line as an endless raw 8 kHz stream on stdout (mode=custom)")
    stream.add_argument("--line", default="main", help="the hold line (default: main)")
    stream.add_argument("--format", choices=[fmt.value for fmt in StreamFormat],
                        default=StreamFormat.SLIN.value,
                        help="slin: signed 16-bit little-endian (default); ulaw: raw G.711 mu-law")


class HoldRefused(Exception):
    """The command cannot do what was asked; `ringback` prints it as its one JSON error line."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def hold(args: argparse.Namespace, settings: Settings) -> int:
    streaming = args.hold_command == "stream"
    try:
        with _hold_parts(settings, streaming) as parts:
            program = HoldProgram(parts.tips, parts.sounds, ZoneInfo(settings.calendar_timezone),
                                  utcnow)
            if streaming:
                return _stream(program, parts, args.line, StreamFormat(args.format))
            return _export(program, args.line, args.directory)
    except NotFound as exc:
        raise HoldRefused(exc.code, exc.message) from None


@contextmanager
def _hold_parts(settings: Settings, streaming: bool) -> Iterator[HoldParts]:
    """The hold services on the database. A stream starts even when the database cannot be
    reached (it plays silence and keeps trying); an export, or a database of the wrong schema,
    is refused at once."""
    url = settings.database
    try:
        check_up_to_date(url)
    except OperationalError as exc:
        if not streaming:
            raise
        log.warning("the database cannot be reached (%s): streaming silence until it can",
                    type(exc.orig or exc).__name__)
    engine = make_engine(url)
    try:
        yield build_hold_parts(settings, make_sessions(engine), utcnow)
    finally:
        engine.dispose()


# -- export -------------------------------------------------------------------------------------

def _export(program: HoldProgram, line: str, directory: Path) -> int:
    now = asyncio.run(program.at_now(line))
    timing = now.line.timing
    tips = [TipAudio(entry.tip.id, entry.tip.title, entry.sound.pcm16) for entry in now.round()]
    gap = gap_pcm16(None if now.gap is None else now.gap.pcm16, timing.gap_s)
    directory = directory.absolute()
    if directory.exists() and not directory.is_dir():
        raise HoldRefused("export-failed", f"{directory} is a file, not a folder")
    try:
        report = write_folder(directory, plan_items(tips, gap))
    except OSError as exc:
        raise HoldRefused("export-failed", f"{directory}: {exc.strerror or exc}") from None
    print(f"; music on hold for ringback line {line!r}: add to musiconhold.conf "
          "(FreePBX: musiconhold_custom.conf), then: asterisk -rx 'moh reload'")
    print(f"[ringback-{line}]")
    print("mode=files")
    print(f"directory={directory}")
    print("sort=alpha")
    print()
    print(json.dumps({"line": line, "directory": str(directory),
                      "tips": [tip.tip_id for tip in tips],
                      "written": len(report.written), "renamed": len(report.renamed),
                      "unchanged": len(report.unchanged),
                      "removed": len(report.removed),
                      "changed": bool(report.written or report.renamed or report.removed)},
                     ensure_ascii=False))
    return 0


# -- stream -------------------------------------------------------------------------------------

def _stream(program: HoldProgram, parts: HoldParts, line: str, fmt: StreamFormat) -> int:
    with suppress(OperationalError):  # unreachable: said above; the stream keeps trying
        parts.tips.line(line)  # an unknown line is an operator's mistake: say so, do not stream
    stop = SignalStop()
    audio_fd = _take_stdout()
    previous = {number: signal.signal(number, stop.handle) for number in STOP_SIGNALS}
    stream = HoldStream(program, parts.stats, line)
    log.info("hold stream %s: %s on stdout", line, fmt.value)
    try:
        play(stream, fmt, _fd_sink(audio_fd, stop), stop)
    except BrokenPipeError:
        log.info("hold stream %s: the reader closed the pipe", line)
        _to_devnull(audio_fd)
    except OSError as exc:
        if exc.errno not in (errno.EPIPE, errno.EBADF):
            raise
        _to_devnull(audio_fd)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    log.info("hold stream %s: stopped%s", line, stop.since())
    _exit_now()
    return 0  # not reached


def _exit_now() -> None:
    """Status 0 at once. The interpreter's teardown (numpy, scipy, the speech engine, the
    worker thread) takes ~0.6 s, most of the second in which a stopped stream must be gone; a
    stream has nothing left to save (a play count in flight is lost, which is acceptable)."""
    logging.shutdown()
    os._exit(0)


class SignalStop:
    """Set by a signal handler. Not a `threading.Event`: its `set` takes a lock, which a handler
    running in the main thread while that thread holds the lock (inside `Event.wait`) would
    wait for forever. A plain attribute write is safe anywhere; waits are short sleeps."""

    def __init__(self) -> None:
        self._at: float | None = None

    def handle(self, _number: int, _frame: FrameType | None) -> None:
        if self._at is None:
            self._at = time.monotonic()

    def is_set(self) -> bool:
        return self._at is not None

    def wait(self, timeout: float) -> bool:
        if self._at is None:
            time.sleep(timeout)
        return self._at is not None

    def since(self) -> str:
        return "" if self._at is None else \
            f" {1000 * (time.monotonic() - self._at):.0f} ms after the signal"


def _take_stdout() -> int:
    """A descriptor of our own for the audio; descriptor 1 then points at stderr, so nothing
    printed by accident (a library, a warning) can ever corrupt the stream."""
    sys.stdout.flush()
    audio_fd = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return audio_fd


def _to_devnull(fd: int) -> None:
    """Per the Python docs on SIGPIPE: point the closed pipe's descriptor at devnull, so nothing
    at exit tries to write to it again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def _fd_sink(fd: int, stop: SignalStop) -> Callable[[bytes], bool]:
    """Writes a frame whole, waiting for room in slices so a stop is seen while the reader is
    slow; raises BrokenPipeError when the reader is gone."""
    def write(frame: bytes) -> bool:
        view = memoryview(frame)
        while view:
            if stop.is_set():
                return False
            _, writable, _ = select.select([], [fd], [], WAIT_SLICE_S)
            if writable:
                view = view[os.write(fd, view):]
        return True
    return write
