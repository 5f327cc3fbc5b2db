"""A hold line as one endless raw audio stream (Asterisk's music on hold, `mode=custom`).

Two parts:
- `HoldStream.next_segments` decides what plays next: it reads the line afresh (`HoldProgram`),
  asks the stream's one `CallerRotation` for the next tip at the current wall time in the
  business's zone, and returns the tip followed by the line's gap (music bed cut to `gap_s`, or
  silence). No tip active: a gap, then it asks again. It blocks (database, speech), so it runs
  on a worker thread.
- `play` writes ~20 ms frames against a monotonic clock, about 0.2 s and never more than 0.5 s
  ahead of real time (a pipe buffer would otherwise run minutes ahead of the listener), asks the
  worker for the next segments when less than `PREFETCH_S` of audio is left, and writes silence
  while it waits: the stream never stops until `stop` is set or the reader goes away.

Decisions:
- The next tip is chosen about `PREFETCH_S` before it starts, so an edit (a tip disabled, a
  schedule closing) is heard from the next choice on, a second or so after it is saved.
- A play is counted when the tip's first frame is written (as `ivr.hold_session` counts a tip
  when it starts), on the worker, so the database never delays the audio.
- The database down: the last program read keeps playing (schedules still followed), or silence
  when there is none yet; every next choice tries the database again. Nothing here raises
  because of it; the outage is logged once per `LOG_EVERY_S`.
- `first_delay_s` is not used: the stream is shared by every caller Asterisk puts on the class,
  and each caller joins it wherever it is.
"""

import asyncio
import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from audio.raw_stream import (
    FRAME_BYTES,
    FRAME_S,
    Pacer,
    StreamFormat,
    encode,
    frames,
    gap_pcm16,
    silence_pcm16,
)
from campaigns.hold_program import HoldProgram, Program
from campaigns.hold_stats import HoldStats
from ivr.hold_rotation import CallerRotation, RotationMode

log = logging.getLogger(__name__)

PREFETCH_S = 1.0
IDLE_GAP_S = 1.0  # how long the stream waits before asking again when nothing can play
LOG_EVERY_S = 30.0
WAIT_SLICE_S = 0.05  # no single wait is longer: a stop is seen within this


@dataclass(frozen=True)
class Segment:
    pcm16: bytes
    tip_id: int | None = None  # None: a gap or silence


class HoldStream:
    """What the stream plays next on `line` (one rotation for the whole stream)."""

    def __init__(self, program: HoldProgram, stats: HoldStats, line: str,
                 rng: random.Random | None = None) -> None:
        self._program = program
        self._stats = stats
        self._line = line
        self._rng = rng or random.Random()
        self._rotation: CallerRotation | None = None
        self._mode: RotationMode | None = None
        self._last: Program | None = None
        self._loop = asyncio.new_event_loop()  # used by the worker thread only
        self._failing_since: float | None = None
        self._logged_at = 0.0

    def next_segments(self) -> list[Segment]:
        program = self._fresh_program()
        if program is None:
            return [Segment(silence_pcm16(IDLE_GAP_S))]
        if self._rotation is None or program.line.rotation is not self._mode:
            self._rotation = CallerRotation(program.line.rotation, self._rng)
            self._mode = program.line.rotation
        gap_s = program.line.timing.gap_s
        bed = None if program.gap is None else program.gap.pcm16
        tip_id = self._rotation.next_tip(program.rotation_tips, program.local)
        sound = None if tip_id is None else program.sound(tip_id)
        if tip_id is None or sound is None:
            return [Segment(gap_pcm16(bed, max(gap_s, IDLE_GAP_S)))]
        segments = [Segment(sound.pcm16, tip_id)]
        if gap_s > 0:
            segments.append(Segment(gap_pcm16(bed, gap_s)))
        return segments

    def count_play(self, tip_id: int) -> None:
        try:
            self._stats.played(tip_id, self._line)
        except Exception as exc:  # a count lost is better than a stream stopped
            log.warning("hold stream %s: play of tip %d not counted: %s", self._line, tip_id,
                        _reason(exc))

    def close(self) -> None:
        self._loop.close()

    def _fresh_program(self) -> Program | None:
        try:
            program = self._loop.run_until_complete(self._program.at_now(self._line))
        except Exception as exc:  # the database or a sound: keep playing, try again next time
            now = time.monotonic()
            if self._failing_since is None or now - self._logged_at >= LOG_EVERY_S:
                log.warning("hold stream %s: cannot read the line (%s); %s", self._line,
                            _reason(exc), "playing what was read before" if self._last
                            else "silence until it can")
                self._logged_at = now
            if self._failing_since is None:
                self._failing_since = now
            last = self._last
            if last is None:
                return None
            return Program(last.line, self._program.local_now(), last.tips, last.gap)
        if self._failing_since is not None:
            log.info("hold stream %s: the line can be read again", self._line)
            self._failing_since = None
        self._last = program
        return program


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


class _Worker:
    """One daemon thread running jobs in order; it never keeps the process from exiting."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[Callable[[], None]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="hold-stream", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job()
            except Exception:
                log.exception("hold stream worker job failed")


class Stop(Protocol):
    """When to stop: `threading.Event` has this shape, and so has the CLI's signal flag."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float) -> object: ...


Sink = Callable[[bytes], bool]
"""Writes one frame; False when it gave up because the stream is stopping."""


def play(stream: HoldStream, fmt: StreamFormat, sink: Sink, stop: Stop,
         clock: Callable[[], float] = time.monotonic, pacer: Pacer | None = None) -> None:
    """Write the line's audio to `sink` in real time until `stop` is set. The sink's errors
    (a closed pipe) end it by propagating."""
    pacer = pacer or Pacer()
    worker = _Worker()
    ready: queue.Queue[list[Segment]] = queue.Queue(maxsize=1)
    pending = False
    queued: deque[tuple[bytes, int | None]] = deque()  # (frame, tip id on a tip's first frame)
    silence = encode(bytes(FRAME_BYTES), fmt)

    def choose() -> None:
        try:
            segments = stream.next_segments()
        except Exception:  # a bug, not the database (next_segments keeps to what it has)
            log.exception("hold stream: choosing the next tip failed; a gap of silence instead")
            segments = [Segment(silence_pcm16(IDLE_GAP_S))]
        ready.put(segments)

    while not stop.is_set():
        if not pending and len(queued) * FRAME_S < PREFETCH_S:
            worker.submit(choose)
            pending = True
        if pending:
            try:
                segments = ready.get_nowait()
            except queue.Empty:
                pass
            else:
                pending = False
                for segment in segments:
                    for index, frame in enumerate(frames(segment.pcm16)):
                        queued.append((encode(frame, fmt), segment.tip_id if index == 0
                                       else None))
        wait = pacer.wait_s(clock())
        if wait > 0:
            stop.wait(min(wait, WAIT_SLICE_S))
            continue
        frame, starts_tip = queued.popleft() if queued else (silence, None)
        if starts_tip is not None:
            worker.submit(partial(stream.count_play, starts_tip))
        if not sink(frame):
            return
        pacer.wrote(FRAME_S)
