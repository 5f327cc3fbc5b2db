"""G.711 mu-law and A-law, straight from 16-bit linear PCM (never through 8-bit).

The quantisation follows the ITU-T reference implementation (G.191 software tools library):
a negative sample ``x`` takes the magnitude of ``~x`` (one's complement), so the decision levels
are mirror images on both sides of zero. Encoding and decoding are table lookups built once at
import: 65536 entries per law for encoding, 256 for decoding.
"""

from enum import Enum

import numpy as np
from numpy.typing import NDArray


class Law(Enum):
    ULAW = "ulaw"
    ALAW = "alaw"


_ULAW_SILENCE = 0xFF
_ALAW_SILENCE = 0xD5

_ULAW_BIAS = 33  # on the 14-bit scale (132 on the 16-bit scale)
_ULAW_MAX = 0x1FFF  # largest biased 14-bit magnitude
_ULAW_SEGMENT_STARTS = np.array([64, 128, 256, 512, 1024, 2048, 4096])
_ALAW_SEGMENT_STARTS = np.array([32, 64, 128, 256, 512, 1024, 2048])


def _all_samples() -> NDArray[np.int32]:
    """Every 16-bit value, ordered by its unsigned bit pattern (the encode table index)."""
    return np.arange(1 << 16, dtype=np.uint16).view(np.int16).astype(np.int32)


def _mirrored_magnitude(x: NDArray[np.int32]) -> NDArray[np.int32]:
    return np.where(x < 0, ~x, x)


def _build_ulaw_encode() -> NDArray[np.uint8]:
    x = _all_samples()
    magnitude = np.minimum((_mirrored_magnitude(x) >> 2) + _ULAW_BIAS, _ULAW_MAX)
    segment = np.searchsorted(_ULAW_SEGMENT_STARTS, magnitude, side="right")
    mantissa = (magnitude >> (segment + 1)) & 0x0F
    mask = np.where(x < 0, 0x7F, 0xFF)
    table: NDArray[np.uint8] = (((segment << 4) | mantissa) ^ mask).astype(np.uint8)
    return table


def _build_alaw_encode() -> NDArray[np.uint8]:
    x = _all_samples()
    magnitude = _mirrored_magnitude(x) >> 3  # 12-bit magnitude, 0..4095
    segment = np.searchsorted(_ALAW_SEGMENT_STARTS, magnitude, side="right")
    mantissa = (magnitude >> np.maximum(segment, 1)) & 0x0F
    mask = np.where(x < 0, 0x55, 0xD5)
    return (((segment << 4) | mantissa) ^ mask).astype(np.uint8)


def _build_ulaw_decode() -> NDArray[np.int16]:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    biased = (((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)
    return np.where(code & 0x80, 0x84 - biased, biased - 0x84).astype(np.int16)


def _build_alaw_decode() -> NDArray[np.int16]:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (code & 0x70) >> 4
    step = (code & 0x0F) << 4
    magnitude = np.where(segment == 0, step + 8, (step + 0x108) << np.maximum(segment - 1, 0))
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)


_ENCODE = {Law.ULAW: _build_ulaw_encode(), Law.ALAW: _build_alaw_encode()}
_DECODE = {Law.ULAW: _build_ulaw_decode(), Law.ALAW: _build_alaw_decode()}
_SILENCE = {Law.ULAW: _ULAW_SILENCE, Law.ALAW: _ALAW_SILENCE}


def encode(pcm: NDArray[np.int16], law: Law) -> bytes:
    """16-bit linear samples to G.711 bytes, one byte per sample."""
    if pcm.dtype != np.int16:
        raise TypeError(f"G.711 encodes 16-bit samples, got {pcm.dtype}")
    samples = np.ascontiguousarray(pcm)
    return _ENCODE[law][samples.view(np.uint16)].tobytes()


def decode(data: bytes, law: Law) -> NDArray[np.int16]:
    """G.711 bytes to 16-bit linear samples."""
    return _DECODE[law][np.frombuffer(data, dtype=np.uint8)]


def silence(law: Law) -> int:
    """The byte value of digital silence: 0xFF for mu-law, 0xD5 for A-law."""
    return _SILENCE[law]
