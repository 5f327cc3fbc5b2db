import warnings

import numpy as np
import pytest
from numpy.typing import NDArray

from audio.g711 import Law, decode, encode, silence

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop
    except ImportError:  # removed in Python 3.13
        audioop = None  # type: ignore[assignment]

needs_audioop = pytest.mark.skipif(audioop is None, reason="audioop removed in this Python")

EVERY_SAMPLE = np.arange(-32768, 32768, dtype=np.int16)
EVERY_CODE = bytes(range(256))


def snr_db(reference: NDArray[np.int16], degraded: NDArray[np.int16]) -> float:
    ref = reference.astype(np.float64)
    noise = ref - degraded.astype(np.float64)
    return float(10 * np.log10(np.sum(ref**2) / np.sum(noise**2)))


def sine(
    frequency: float, dbfs: float, rate: int = 8000, seconds: float = 1.0
) -> NDArray[np.int16]:
    t = np.arange(int(rate * seconds)) / rate
    amplitude = 32767 * 10 ** (dbfs / 20)
    return np.round(amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


@pytest.mark.parametrize(
    ("law", "byte", "level"),
    [(Law.ULAW, 0xFF, 0), (Law.ALAW, 0xD5, 8)],  # A-law has no zero
)
def test_silence_is_the_code_of_zero(law: Law, byte: int, level: int) -> None:
    assert silence(law) == byte
    assert encode(np.zeros(3, dtype=np.int16), law) == bytes([byte] * 3)
    assert decode(bytes([byte]), law).tolist() == [level]


@pytest.mark.parametrize(
    ("law", "samples", "codes"),
    [
        (Law.ULAW, [32767, -32768, 8031 * 4, -8031 * 4], [0x80, 0x00, 0x80, 0x00]),
        (Law.ULAW, [-1, -4, 4, 7], [0x7F, 0x7F, 0xFE, 0xFE]),
        (Law.ALAW, [32767, -32768, -1, 15, 16], [0xAA, 0x2A, 0x55, 0xD5, 0xD4]),
    ],
)
def test_known_codes(law: Law, samples: list[int], codes: list[int]) -> None:
    assert encode(np.array(samples, dtype=np.int16), law) == bytes(codes)


@pytest.mark.parametrize(
    ("law", "extremes"), [(Law.ULAW, (-32124, 32124)), (Law.ALAW, (-32256, 32256))]
)
def test_decode_range(law: Law, extremes: tuple[int, int]) -> None:
    decoded = decode(EVERY_CODE, law)
    assert decoded.dtype == np.int16
    assert (int(decoded.min()), int(decoded.max())) == extremes
    assert len(set(decoded.tolist())) == (255 if law is Law.ULAW else 256)  # mu-law has +0 and -0


@pytest.mark.parametrize("law", list(Law))
def test_decoding_then_encoding_gives_back_every_code(law: Law) -> None:
    roundtrip = encode(decode(EVERY_CODE, law), law)
    expected = bytearray(EVERY_CODE)
    if law is Law.ULAW:
        expected[0x7F] = 0xFF  # -0 decodes to 0, which encodes as +0
    assert roundtrip == bytes(expected)


@pytest.mark.parametrize("law", list(Law))
def test_error_is_at_most_half_a_step_of_the_segment(law: Law) -> None:
    x = EVERY_SAMPLE.astype(np.int32)
    decoded = decode(encode(EVERY_SAMPLE, law), law).astype(np.int32)
    error = np.abs(decoded - x)
    magnitude = np.where(x < 0, -x - 1, x)  # a sample stands for [x, x + 1): mirror about -0.5
    if law is Law.ULAW:
        step = np.full(x.shape, 8)
        for segment, start in enumerate([124, 380, 892, 1916, 3964, 8060, 16252], start=1):
            step[magnitude >= start] = 8 << segment
        clipped = magnitude > 32635
        assert np.all(np.abs(decoded[clipped]) == 32124)
    else:
        step = np.full(x.shape, 16)
        for segment, start in enumerate([512, 1024, 2048, 4096, 8192, 16384], start=2):
            step[magnitude >= start] = 8 << segment
        clipped = np.zeros(x.shape, dtype=bool)
    assert np.all(error[~clipped] <= step[~clipped] // 2)


@pytest.mark.parametrize("law", list(Law))
def test_quantisation_is_symmetric(law: Law) -> None:
    positive = EVERY_SAMPLE[EVERY_SAMPLE >= 0]
    mirrored = (~positive).astype(np.int16)  # -x - 1, the mirror image of x about -0.5
    up = decode(encode(positive, law), law).astype(np.int32)
    down = decode(encode(mirrored, law), law).astype(np.int32)
    assert np.array_equal(up, -down)


@pytest.mark.parametrize("law", list(Law))
def test_sine_at_minus_6_dbfs_keeps_35_db_snr(law: Law) -> None:
    tone = sine(1000 * np.sqrt(2), -6.0)  # irrational ratio: visits many codes
    assert snr_db(tone, decode(encode(tone, law), law)) >= 35.0


@pytest.mark.parametrize("law", list(Law))
def test_quiet_sine_keeps_its_snr(law: Law) -> None:
    """Companding: -30 dBFS still gets well over what 8-bit linear would give."""
    tone = sine(441.0, -30.0)
    assert snr_db(tone, decode(encode(tone, law), law)) >= 30.0


def test_encode_accepts_strided_views() -> None:
    stereo = np.array([[100, -100], [2000, -2000], [-30000, 30000]], dtype=np.int16)
    left = np.array([100, 2000, -30000], dtype=np.int16)
    assert encode(stereo[:, 0], Law.ULAW) == encode(left, Law.ULAW)


def test_encode_rejects_wider_samples() -> None:
    with pytest.raises(TypeError):
        encode(np.array([70000], dtype=np.int32), Law.ULAW)


def test_empty_input() -> None:
    assert encode(np.zeros(0, dtype=np.int16), Law.ALAW) == b""
    assert decode(b"", Law.ULAW).shape == (0,)


@needs_audioop
@pytest.mark.parametrize("law", list(Law))
def test_decode_matches_audioop_for_every_code(law: Law) -> None:
    to_linear = audioop.ulaw2lin if law is Law.ULAW else audioop.alaw2lin
    expected = np.frombuffer(to_linear(EVERY_CODE, 2), dtype=np.int16)
    assert np.array_equal(decode(EVERY_CODE, law), expected)


@needs_audioop
def test_alaw_encode_matches_audioop_for_every_sample() -> None:
    assert encode(EVERY_SAMPLE, Law.ALAW) == audioop.lin2alaw(EVERY_SAMPLE.tobytes(), 2)


@needs_audioop
def test_ulaw_encode_matches_audioop_for_every_sample_up_to_its_negative_offset() -> None:
    """audioop negates ``x >> 2`` where the ITU reference complements it (``~x >> 2``).

    Non-negative samples agree exactly. For a negative sample the ITU code of ``x`` is audioop's
    code of ``x + 4``, except that -4..-1 encode as -0 (0x7F) rather than +0.
    """
    x = EVERY_SAMPLE.astype(np.int32)
    shifted = np.where(x <= -5, x + 4, x).astype(np.int16)
    expected = bytearray(audioop.lin2ulaw(shifted.tobytes(), 2))
    for index in np.nonzero((x >= -4) & (x <= -1))[0]:
        expected[index] = 0x7F
    assert encode(EVERY_SAMPLE, Law.ULAW) == bytes(expected)
