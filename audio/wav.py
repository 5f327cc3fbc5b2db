"""WAV files in and out, as mono 16-bit linear PCM at the file's own rate.

We read RIFF/WAVE ourselves (Python 3.11's ``wave`` does not know WAVE_FORMAT_EXTENSIBLE):
16-bit PCM is taken as it is, 24- and 32-bit integer PCM is rounded straight to 16 bits, stereo is
averaged to mono. 8-bit, floating-point and compressed files are refused rather than guessed at;
nothing here ever passes through 8 bits. The duration is checked from the header before the
samples are read, so an oversized upload costs no memory.
"""

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.typing import NDArray

from audio.errors import AudioFormatError

DEFAULT_MAX_SECONDS = 600.0

_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_IEEE_FLOAT = 0x0003
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# An EXTENSIBLE sub-format GUID is the classic format tag (2 bytes) followed by this fixed tail.
_SUBFORMAT_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")
_UNKNOWN_DATA_SIZE = 0xFFFFFFFF  # written by streaming encoders that cannot seek back
_MAX_FMT_SIZE = 1024
_MAX_CHANNELS = 2
_MAX_RATE = 768_000
_INT16_MIN, _INT16_MAX = -32768, 32767


@dataclass(frozen=True, eq=False)
class Pcm:
    """Mono 16-bit linear samples at ``rate`` Hz. ``samples`` is a read-only view."""

    samples: NDArray[np.int16]
    rate: int

    def __post_init__(self) -> None:
        if self.samples.dtype != np.int16 or self.samples.ndim != 1:
            raise TypeError(
                f"Pcm holds mono int16 samples, got {self.samples.dtype} {self.samples.shape}"
            )
        if self.rate <= 0:
            raise ValueError(f"sample rate must be positive, got {self.rate}")
        view = self.samples.view()
        view.flags.writeable = False
        object.__setattr__(self, "samples", view)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate


@dataclass(frozen=True)
class _Format:
    channels: int
    rate: int
    width: int  # bytes per sample: 2, 3 or 4

    @property
    def frame_size(self) -> int:
        return self.channels * self.width


def load_wav(source: Path | str | bytes, *, max_seconds: float = DEFAULT_MAX_SECONDS) -> Pcm:
    """Read a 16-bit (or 24/32-bit integer) PCM WAV, mono or stereo, from a path or bytes.

    Raises ``AudioFormatError`` for anything else, for damaged files and for audio longer than
    ``max_seconds``.
    """
    if isinstance(source, bytes):
        return _read(io.BytesIO(source), max_seconds)
    with open(source, "rb") as stream:
        return _read(stream, max_seconds)


def save_wav(path: Path | str, pcm: Pcm) -> None:
    """Write ``pcm`` as a mono 16-bit PCM WAV."""
    Path(path).write_bytes(wav_bytes(pcm.samples.astype("<i2").tobytes(), pcm.rate))


def wav_bytes(pcm16: bytes, rate: int = 8000) -> bytes:
    """A canonical WAV (44-byte header, PCM 16-bit mono) around little-endian 16-bit samples."""
    if len(pcm16) % 2:
        raise ValueError(f"16-bit samples come in pairs of bytes, got {len(pcm16)} bytes")
    fmt = struct.pack("<HHIIHH", _WAVE_FORMAT_PCM, 1, rate, rate * 2, 2, 16)
    header = struct.pack(
        "<4sI4s4sI16s4sI", b"RIFF", 36 + len(pcm16), b"WAVE", b"fmt ", 16, fmt, b"data", len(pcm16)
    )
    return header + pcm16


def data_chunk_size(data: bytes) -> tuple[int, int] | None:
    """(declared, present) bytes of a RIFF/WAVE file's data chunk; None without one.

    ``declared`` is what the chunk header says (0xFFFFFFFF from streaming encoders),
    ``present`` is what the file really holds after the header: less means it was cut short.
    """
    stream = io.BytesIO(data)
    if not _is_riff_wave(stream):
        return None
    for chunk_id, size in _chunks(stream):
        if chunk_id == b"data":
            return size, len(data) - stream.tell()
    return None


def _is_riff_wave(stream: BinaryIO) -> bool:
    header = stream.read(12)
    return len(header) == 12 and header[:4] == b"RIFF" and header[8:] == b"WAVE"


def _chunks(stream: BinaryIO) -> Iterator[tuple[bytes, int]]:
    """(id, size) of each chunk, with ``stream`` at the chunk's body; then on to the next one."""
    while True:
        chunk_header = stream.read(8)
        if len(chunk_header) < 8:
            return
        chunk_id, size = struct.unpack("<4sI", chunk_header)
        body = stream.tell()
        yield chunk_id, size
        stream.seek(body + size + (size & 1))  # chunks are padded to even sizes


def _read(stream: BinaryIO, max_seconds: float) -> Pcm:
    if not _is_riff_wave(stream):
        raise AudioFormatError("not a RIFF/WAVE file")
    fmt: _Format | None = None
    for chunk_id, size in _chunks(stream):
        if chunk_id == b"data":
            if fmt is None:
                raise AudioFormatError("WAV data chunk comes before its fmt chunk")
            return _read_data(stream, size, fmt, max_seconds)
        if chunk_id == b"fmt ":
            if size > _MAX_FMT_SIZE:
                raise AudioFormatError(f"WAV fmt chunk of {size} bytes is implausible")
            body = stream.read(size)
            if len(body) < size:
                raise AudioFormatError("WAV is truncated inside its fmt chunk")
            fmt = _parse_fmt(body)
    raise AudioFormatError("WAV has no data chunk")


def _parse_fmt(body: bytes) -> _Format:
    if len(body) < 16:
        raise AudioFormatError("WAV fmt chunk is too short")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == _WAVE_FORMAT_EXTENSIBLE:
        if len(body) < 40:
            raise AudioFormatError("WAVE_FORMAT_EXTENSIBLE fmt chunk is too short")
        subformat = body[24:40]
        if subformat[2:] != _SUBFORMAT_GUID_TAIL:
            raise AudioFormatError("WAV has an unknown WAVE_FORMAT_EXTENSIBLE sub-format")
        tag = int.from_bytes(subformat[:2], "little")
    if tag == _WAVE_FORMAT_IEEE_FLOAT:
        raise AudioFormatError("floating-point WAV is not supported: export 16-bit PCM")
    if tag != _WAVE_FORMAT_PCM:
        raise AudioFormatError(
            f"compressed WAV (format 0x{tag:04x}) is not supported: export 16-bit PCM"
        )
    if bits == 8:
        raise AudioFormatError(
            "8-bit WAV is refused (too little resolution for G.711): export 16-bit PCM"
        )
    if bits not in (16, 24, 32):
        raise AudioFormatError(f"{bits}-bit WAV is not supported: export 16-bit PCM")
    if not 1 <= channels <= _MAX_CHANNELS:
        raise AudioFormatError(f"WAV with {channels} channels: only mono or stereo is accepted")
    if not 1 <= rate <= _MAX_RATE:
        raise AudioFormatError(f"WAV sample rate {rate} Hz is out of range")
    fmt = _Format(channels=channels, rate=rate, width=bits // 8)
    if block_align != fmt.frame_size:
        raise AudioFormatError(
            f"WAV block align {block_align} does not match {channels} x {bits}-bit samples"
        )
    return fmt


def _read_data(stream: BinaryIO, size: int, fmt: _Format, max_seconds: float) -> Pcm:
    max_frames = int(max_seconds * fmt.rate)
    too_long = AudioFormatError(f"WAV is longer than the {max_seconds:g} s limit")
    if size == _UNKNOWN_DATA_SIZE:
        data = stream.read((max_frames + 1) * fmt.frame_size)
        frames = len(data) // fmt.frame_size
    else:
        frames = size // fmt.frame_size
        if frames > max_frames:
            raise too_long
        data = stream.read(frames * fmt.frame_size)
        if len(data) < frames * fmt.frame_size:
            raise AudioFormatError("WAV is truncated inside its data chunk")
    if frames > max_frames:
        raise too_long
    if frames == 0:
        raise AudioFormatError("WAV holds no audio")
    return Pcm(_to_mono_int16(data[: frames * fmt.frame_size], fmt), fmt.rate)


def _to_mono_int16(data: bytes, fmt: _Format) -> NDArray[np.int16]:
    """Average the channels at the file's own resolution, then round straight to 16 bits."""
    if fmt.width == 3:
        raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        values = (raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)) << 8 >> 8  # sign-extend
    else:
        values = np.frombuffer(data, dtype=f"<i{fmt.width}").astype(
            np.int64 if fmt.width == 4 else np.int32
        )
    frames = values.reshape(-1, fmt.channels)
    mono = frames[:, 0] if fmt.channels == 1 else frames.sum(axis=1) // fmt.channels
    shift = 8 * (fmt.width - 2)
    if shift:
        mono = (mono.astype(np.int64) + (1 << (shift - 1))) >> shift
    result: NDArray[np.int16] = np.clip(mono, _INT16_MIN, _INT16_MAX).astype(np.int16)
    return result
