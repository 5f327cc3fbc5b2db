"""Pure helpers for writing hold audio as a raw 8 kHz stream (Asterisk's `mode=custom`) and as
music-on-hold files: the gap between two tips, frames, encodings, and real-time pacing.

Everything here is pure: samples in, bytes out; the pacer is told the time, it never reads a
clock. Audio is 8 kHz mono signed 16-bit little-endian (`pcm16`) until it is encoded for the
wire: `slin` keeps it as it is, `ulaw` is G.711 mu-law (one byte per sample).
"""

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from audio import g711
from audio.g711 import Law

RATE = 8000
SAMPLE_BYTES = 2
FRAME_S = 0.02
FRAME_SAMPLES = int(RATE * FRAME_S)  # 160
FRAME_BYTES = FRAME_SAMPLES * SAMPLE_BYTES  # 320 bytes of pcm16


class StreamFormat(StrEnum):
    SLIN = "slin"  # signed linear 16-bit, 8 kHz, mono, little-endian (Asterisk's format=slin)
    ULAW = "ulaw"  # raw G.711 mu-law (format=ulaw)


def samples_for(seconds: float) -> int:
    return max(0, round(seconds * RATE))


def silence_pcm16(seconds: float) -> bytes:
    return bytes(samples_for(seconds) * SAMPLE_BYTES)


def gap_pcm16(bed: bytes | None, seconds: float) -> bytes:
    """The gap between two tips, exactly `seconds` long: the music bed cut to length, or padded
    with silence when shorter (as a live caller hears it, ivr.hold_session), else silence."""
    length = samples_for(seconds) * SAMPLE_BYTES
    if not bed:
        return bytes(length)
    cut = bed[: length - length % SAMPLE_BYTES]
    return cut + bytes(length - len(cut))


def encode(pcm16: bytes, fmt: StreamFormat) -> bytes:
    """`pcm16` as the stream's format writes it."""
    if len(pcm16) % SAMPLE_BYTES:
        raise ValueError(f"16-bit samples come in pairs of bytes, got {len(pcm16)} bytes")
    if fmt is StreamFormat.SLIN:
        return pcm16
    return g711.encode(np.frombuffer(pcm16, dtype="<i2").astype(np.int16), Law.ULAW)


def encode_law(pcm16: bytes, law: Law) -> bytes:
    """Raw G.711 in `law` (Asterisk's .ulaw / .alaw files: headerless, one byte per sample)."""
    return g711.encode(np.frombuffer(pcm16, dtype="<i2").astype(np.int16), law)


def frames(pcm16: bytes, frame_bytes: int = FRAME_BYTES) -> Iterator[bytes]:
    """`pcm16` in frames of `frame_bytes`; the last one padded with silence to a whole frame."""
    for start in range(0, len(pcm16), frame_bytes):
        frame = pcm16[start:start + frame_bytes]
        yield frame + bytes(frame_bytes - len(frame))


@dataclass
class Pacer:
    """Keeps a writer about `lead_s` ahead of real time and never more than `max_lead_s`.

    Tell it `now` (a monotonic clock, seconds) and how many seconds of audio went out; it says
    how long to wait before the next frame. A writer that fell behind by more than `max_lag_s`
    (the reader stopped reading for a while) is re-based rather than allowed to burst."""

    lead_s: float = 0.2
    max_lead_s: float = 0.5
    max_lag_s: float = 1.0
    _start: float | None = None
    _written_s: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.lead_s <= self.max_lead_s:
            raise ValueError("the lead must be between 0 and the maximum lead")

    def wait_s(self, now: float) -> float:
        """Seconds to wait before writing the next frame (0: write now)."""
        if self._start is None:
            self._start = now
        ahead = self._written_s - (now - self._start)
        if ahead < -self.max_lag_s:
            self._start = now - self._written_s  # re-base: do not burst to catch up
            ahead = 0.0
        return max(0.0, ahead - self.lead_s)

    def ahead_s(self, now: float) -> float:
        return 0.0 if self._start is None else self._written_s - (now - self._start)

    def wrote(self, seconds: float) -> None:
        self._written_s += seconds
