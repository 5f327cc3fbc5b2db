"""Recordings that people upload, checked and converted for the line.

``decode_upload`` takes a WAV (any subtype), FLAC, Ogg (Vorbis, Opus) or MP3 file as bytes, decodes
it with libsndfile (python-soundfile) and returns a ``Clip``: mono, loudness-normalised (see
``audio.loudness``), 8000 Hz, signed 16-bit little-endian. The pipeline is float64 from the
decoder to the final rounding, so nothing passes through 8 bits.

Anything we will not use is refused with ``UploadRefused``: a stable ``code`` and a message for
the person who uploaded it (what is wrong, what to do). Size is checked before anything is parsed,
the duration from the header before samples are decoded, and at most ``max_seconds`` of samples
are ever decoded, in blocks, mixed to mono as they come.

What libsndfile 1.2.2 does with a cut-short file, and what we do about it:

- WAV: it shortens the length silently to what is there, so we compare the data chunk's declared
  size with the bytes that follow it.
- FLAC: the header keeps the full length and decoding fails part way ("flac decoder lost sync").
- Ogg: it reports a length of 0 frames (it finds no final page), so we check that the file ends
  with a complete Ogg page flagged end-of-stream.
- MP3 (with a Xing/LAME header): the header keeps the full length and fewer samples decode.

So any decoding error part way, and fewer samples than the header promised, mean truncated.
"""

import io
import math
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np
import soundfile
from numpy.typing import NDArray

from audio.errors import UploadRefused
from audio.loudness import Normalisation, apply_gain, loudness_lufs, plan
from audio.resample import FULL_SCALE, TARGET_RATE, resample_to_8k, to_int16
from audio.wav import data_chunk_size

# Extension -> the libsndfile major formats a file with that name may hold.
ACCEPTED = {
    ".wav": ("WAV", "WAVEX", "RF64"),
    ".flac": ("FLAC",),
    ".ogg": ("OGG",),
    ".oga": ("OGG",),
    ".mp3": ("MP3",),
}
SILENCE_DBFS = -50.0  # a recording whose peak stays below this has nothing to hear in it

_BLOCK_FRAMES = 1 << 16
_LENGTH_TOLERANCE_S = 0.1  # an MP3 decoder may drop the encoder's padding frames
_UNKNOWN_SIZE = 0xFFFFFFFF
# An Ogg page header: "OggS", version, header type (at 5), ..., number of segments (at 26);
# then the segment table, one length byte per segment; then the segments.
_OGG_HEADER_SIZE = 27
_OGG_HEADER_TYPE, _OGG_SEGMENTS = 5, 26
_OGG_END_OF_STREAM = 0x04
_FORMAT_NAMES = {"WAV": "WAV", "WAVEX": "WAV", "RF64": "WAV", "FLAC": "FLAC", "OGG": "Ogg",
                 "MP3": "MP3"}
_ACCEPTED_NAMES = "WAV, FLAC, OGG or MP3"


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = 40 * 1024 * 1024
    max_seconds: float = 180.0
    min_seconds: float = 0.3


@dataclass(frozen=True)
class SourceInfo:
    """The uploaded file as libsndfile sees it: ``format`` like "WAV", ``subtype`` like "FLOAT"."""

    format: str
    subtype: str
    rate: int
    channels: int
    duration_s: float


@dataclass(frozen=True)
class Clip:
    """An upload ready for the line."""

    pcm16: bytes  # 8000 Hz mono signed 16-bit little-endian, normalised
    duration_s: float
    source: SourceInfo
    loudness_lufs: float | None  # of the source; None when it could not be measured
    gain_db: float  # applied by the normalisation


def decode_upload(data: bytes, filename: str, limits: UploadLimits = UploadLimits()) -> Clip:
    """``data``, the file named ``filename``, decoded, checked and converted for the line.

    Raises ``UploadRefused`` for anything we will not use (see the module docstring).
    """
    if not data:
        raise UploadRefused(
            "audio-empty", "The file is empty (0 bytes). Choose the recording again and upload it."
        )
    if len(data) > limits.max_bytes:
        raise UploadRefused(
            "audio-too-large",
            f"The file is {_megabytes(len(data))} and the limit is "
            f"{_megabytes(limits.max_bytes)}. Upload a shorter recording, or export it as MP3 "
            "or OGG, which are much smaller.",
        )
    extension = PurePath(filename).suffix.lower()
    if extension not in ACCEPTED:
        shown = f'"{extension}" files' if extension else "Files without an extension"
        raise UploadRefused(
            "audio-unsupported-type",
            f"{shown} are not accepted. Upload the recording as {_ACCEPTED_NAMES}.",
        )
    try:
        sound = soundfile.SoundFile(io.BytesIO(data))
    except soundfile.SoundFileError:
        raise UploadRefused(
            "audio-unreadable",
            "This file is not audio we can read (is it a document or a picture named "
            f"{extension}?). Export the recording again as {_ACCEPTED_NAMES} and upload that file.",
        ) from None
    with sound:
        _check_format(sound, extension)
        _check_complete(data, sound.format)
        _check_length(sound.frames, sound.samplerate, limits)
        mono = _decode_mono(sound, limits)
        source = SourceInfo(
            format=sound.format,
            subtype=sound.subtype,
            rate=sound.samplerate,
            channels=sound.channels,
            duration_s=len(mono) / sound.samplerate,
        )
    if len(mono) < sound.frames - _LENGTH_TOLERANCE_S * sound.samplerate:
        raise _truncated()
    _check_length(len(mono), source.rate, limits)
    if len(mono) < limits.min_seconds * source.rate:
        raise UploadRefused(
            "audio-too-short",
            f"The recording is only {source.duration_s:.2f} s long; it must last at least "
            f"{limits.min_seconds:g} s. Check that the whole recording was exported.",
        )
    peak = float(np.abs(mono).max(initial=0.0))
    if peak < 10 ** (SILENCE_DBFS / 20):
        raise UploadRefused(
            "audio-silent",
            f"The recording is silent (nothing louder than {SILENCE_DBFS:g} dBFS). Check the "
            "microphone and the export, then upload it again.",
        )
    samples, normalisation = to_line(mono, source.rate)
    return Clip(
        pcm16=samples.astype("<i2").tobytes(),
        duration_s=len(samples) / TARGET_RATE,
        source=source,
        loudness_lufs=normalisation.loudness_lufs,
        gain_db=normalisation.gain_db,
    )


def to_line(mono: NDArray[np.float64], rate: int) -> tuple[NDArray[np.int16], Normalisation]:
    """Mono samples (full scale 1.0) at ``rate`` Hz to normalised 8000 Hz int16 samples.

    Loudness is measured at the source rate; the peak ceiling is applied to the resampled signal,
    which is what the line carries (resampling is linear, so the order of gain and resampling
    does not change the result).
    """
    at_8k = resample_to_8k(mono, rate)
    normalisation = plan(loudness_lufs(mono, rate), float(np.abs(at_8k).max(initial=0.0)))
    return to_int16(apply_gain(at_8k, normalisation.gain_db) * FULL_SCALE), normalisation


def _check_format(sound: soundfile.SoundFile, extension: str) -> None:
    if sound.format in ACCEPTED[extension]:
        return
    actual = _FORMAT_NAMES.get(sound.format, sound.format_info)
    expected = _FORMAT_NAMES[ACCEPTED[extension][0]]
    fix = next(
        (f"rename it to end in {ext}" for ext, formats in ACCEPTED.items()
         if sound.format in formats),
        f"export it again as {expected}",
    )
    raise UploadRefused(
        "audio-format-mismatch",
        f"The file is named {extension} but holds {actual} audio, not {expected}: {fix}, "
        "then upload it again.",
    )


def _check_complete(data: bytes, major_format: str) -> None:
    """Refuse files cut short where libsndfile would not notice (see the module docstring)."""
    if major_format in ("WAV", "WAVEX"):
        sizes = data_chunk_size(data)
        if sizes is not None and sizes[0] != _UNKNOWN_SIZE and sizes[1] < sizes[0]:
            raise _truncated()
    elif major_format == "OGG" and not _ends_with_last_ogg_page(data):
        raise _truncated()


def _ends_with_last_ogg_page(data: bytes) -> bool:
    """Whether ``data`` is whole Ogg pages, page after page, the last one flagged end-of-stream."""
    position, header_type = 0, 0
    while position < len(data):
        if len(data) - position < _OGG_HEADER_SIZE or data[position : position + 4] != b"OggS":
            return False
        header_type = data[position + _OGG_HEADER_TYPE]
        table_start = position + _OGG_HEADER_SIZE
        table_end = table_start + data[position + _OGG_SEGMENTS]
        if table_end > len(data):
            return False
        position = table_end + sum(data[table_start:table_end])
    return position == len(data) and bool(header_type & _OGG_END_OF_STREAM)


def _check_length(frames: int, rate: int, limits: UploadLimits) -> None:
    if frames > limits.max_seconds * rate:
        raise UploadRefused(
            "audio-too-long",
            f"The recording lasts {_duration(frames / rate)} and the limit is "
            f"{_duration(limits.max_seconds)}. Trim it and upload it again.",
        )


def _decode_mono(sound: soundfile.SoundFile, limits: UploadLimits) -> NDArray[np.float64]:
    """At most ``max_seconds`` (and one block) of samples, channels averaged, as they come."""
    max_frames = math.floor(limits.max_seconds * sound.samplerate) + 1
    blocks: list[NDArray[np.float64]] = []
    decoded = 0
    try:
        while decoded < max_frames:
            block = sound.read(min(_BLOCK_FRAMES, max_frames - decoded), dtype="float64",
                               always_2d=True)
            if len(block) == 0:
                break
            blocks.append(block.mean(axis=1))
            decoded += len(block)
    except soundfile.SoundFileError:
        raise _truncated() from None
    return np.concatenate(blocks) if blocks else np.zeros(0)


def _truncated() -> UploadRefused:
    return UploadRefused(
        "audio-truncated",
        "The file is cut short: it ends before its audio does (an interrupted download or copy?)."
        " Upload the complete file again.",
    )


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"
