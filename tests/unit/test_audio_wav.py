import struct
from pathlib import Path

import numpy as np
import pytest

from audio.errors import AudioFormatError
from audio.wav import Pcm, load_wav, save_wav

PCM, FLOAT, EXTENSIBLE, ALAW = 0x0001, 0x0003, 0xFFFE, 0x0006
GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")


def fmt_chunk(channels: int, rate: int, bits: int, tag: int = PCM) -> bytes:
    block = channels * bits // 8
    return struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)


def extensible_fmt(channels: int, rate: int, bits: int, subformat: int = PCM) -> bytes:
    base = fmt_chunk(channels, rate, bits, tag=EXTENSIBLE)
    return base + struct.pack("<HHI", 22, bits, 0x3) + subformat.to_bytes(2, "little") + GUID_TAIL


def chunk(chunk_id: bytes, body: bytes, size: int | None = None) -> bytes:
    pad = b"\0" if len(body) % 2 else b""
    return struct.pack("<4sI", chunk_id, len(body) if size is None else size) + body + pad


def riff(*chunks: bytes) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return struct.pack("<4sI", b"RIFF", len(body)) + body


def wav(fmt: bytes, data: bytes) -> bytes:
    return riff(chunk(b"fmt ", fmt), chunk(b"data", data))


def int16le(*values: int) -> bytes:
    return np.array(values, dtype="<i2").tobytes()


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_16_bit_mono_round_trips(tmp_path: Path, rate: int) -> None:
    samples = np.random.default_rng(rate).integers(-32768, 32768, rate // 10, dtype=np.int16)
    path = tmp_path / "a.wav"
    save_wav(path, Pcm(samples, rate))
    pcm = load_wav(path)
    assert pcm.rate == rate
    assert np.array_equal(pcm.samples, samples)
    assert pcm.duration_s == pytest.approx(0.1, abs=1e-4)
    assert np.array_equal(load_wav(path.read_bytes()).samples, samples)
    assert np.array_equal(load_wav(str(path)).samples, samples)


def test_stereo_is_averaged_in_wider_integers_without_overflow() -> None:
    frames = [(1000, 3000), (32767, 32767), (-32768, -32768), (32767, -32768), (-3, 0)]
    data = int16le(*(value for frame in frames for value in frame))
    pcm = load_wav(wav(fmt_chunk(2, 44100, 16), data))
    assert pcm.samples.tolist() == [2000, 32767, -32768, -1, -2]


def test_wave_format_extensible_16_bit_is_read() -> None:
    pcm = load_wav(wav(extensible_fmt(2, 48000, 16), int16le(100, 300, -100, -300)))
    assert (pcm.rate, pcm.samples.tolist()) == (48000, [200, -200])


def test_24_bit_is_rounded_straight_to_16_bits() -> None:
    values = [0x123456, 0x1234C0, 0x7FFFFF, -0x800000, -0x000081, 0]
    data = b"".join((v & 0xFFFFFF).to_bytes(3, "little") for v in values)
    pcm = load_wav(wav(fmt_chunk(1, 16000, 24), data))
    assert pcm.samples.tolist() == [0x1234, 0x1235, 32767, -32768, -1, 0]


def test_32_bit_integer_is_rounded_straight_to_16_bits() -> None:
    data = np.array([0x12348000, 0x7FFFFFFF, -0x80000000, 0x00010000], dtype="<i4").tobytes()
    pcm = load_wav(wav(extensible_fmt(1, 8000, 32), data))
    assert pcm.samples.tolist() == [0x1235, 32767, -32768, 1]


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        (fmt_chunk(1, 8000, 8), "8-bit"),
        (fmt_chunk(1, 44100, 32, tag=FLOAT), "floating-point"),
        (extensible_fmt(1, 44100, 32, subformat=FLOAT), "floating-point"),
        (fmt_chunk(1, 8000, 8, tag=ALAW), "compressed"),
        (fmt_chunk(1, 44100, 12), "12-bit"),
        (fmt_chunk(3, 44100, 16), "3 channels"),
        (fmt_chunk(1, 0, 16), "sample rate"),
        (struct.pack("<HHIIHH", PCM, 2, 8000, 32000, 2, 16), "block align"),
        (fmt_chunk(1, 8000, 16)[:14], "too short"),
        (fmt_chunk(1, 8000, 16, tag=EXTENSIBLE), "too short"),
        (extensible_fmt(1, 8000, 16)[:-1] + b"x", "sub-format"),
    ],
)
def test_formats_we_do_not_take_are_refused(fmt: bytes, message: str) -> None:
    with pytest.raises(AudioFormatError, match=message):
        load_wav(wav(fmt, b"\x80" * 48))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a RIFF/WAVE"),
        (b"RIFX" + bytes(4) + b"WAVE", "not a RIFF/WAVE"),
        (riff(chunk(b"fmt ", fmt_chunk(1, 8000, 16))), "no data chunk"),
        (riff(chunk(b"data", int16le(1, 2)), chunk(b"fmt ", fmt_chunk(1, 8000, 16))), "before"),
        (riff(chunk(b"fmt ", fmt_chunk(1, 8000, 16)), chunk(b"data", b"", size=100)), "truncated"),
        (riff(chunk(b"fmt ", bytes(2000))), "implausible"),
        (riff(struct.pack("<4sI", b"fmt ", 16) + bytes(8)), "truncated inside its fmt"),
        (wav(fmt_chunk(1, 8000, 16), b""), "no audio"),
    ],
)
def test_damaged_files_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(AudioFormatError, match=message):
        load_wav(data)


def test_duration_limit_is_checked_from_the_header_before_reading() -> None:
    one_hour = 8000 * 2 * 3600
    fmt = chunk(b"fmt ", fmt_chunk(1, 8000, 16))
    header_only = riff(fmt) + struct.pack("<4sI", b"data", one_hour)
    with pytest.raises(AudioFormatError, match="600 s limit"):
        load_wav(header_only)
    one_second = wav(fmt_chunk(1, 8000, 16), bytes(16000))
    assert load_wav(one_second, max_seconds=1.0).duration_s == 1.0
    with pytest.raises(AudioFormatError, match=r"0\.5 s limit"):
        load_wav(one_second, max_seconds=0.5)


def test_unknown_data_size_from_a_streaming_writer_reads_to_the_end_within_the_limit() -> None:
    fmt = chunk(b"fmt ", fmt_chunk(1, 8000, 16))
    streamed = riff(fmt) + struct.pack("<4sI", b"data", 0xFFFFFFFF) + int16le(5, 6, 7) + b"\x01"
    assert load_wav(streamed).samples.tolist() == [5, 6, 7]
    with pytest.raises(AudioFormatError, match="limit"):
        too_long = riff(fmt) + struct.pack("<4sI", b"data", 0xFFFFFFFF) + bytes(8002)
        load_wav(too_long, max_seconds=0.5)


def test_other_chunks_are_skipped_with_their_padding() -> None:
    data = riff(
        chunk(b"LIST", b"odd"),
        chunk(b"fmt ", fmt_chunk(1, 8000, 16) + b"\0\0"),  # cbSize present
        chunk(b"fact", b"\1\2\3\4\5"),
        chunk(b"data", int16le(-7, 7)),
    )
    assert load_wav(data).samples.tolist() == [-7, 7]


def test_pcm_is_mono_int16_read_only() -> None:
    source = np.array([1, 2, 3], dtype=np.int16)
    pcm = Pcm(source, 8000)
    with pytest.raises(ValueError, match="read-only"):
        pcm.samples[0] = 9
    source[0] = 9  # the caller's own array stays writable
    with pytest.raises(TypeError):
        Pcm(np.zeros(3, dtype=np.float32), 8000)
    with pytest.raises(TypeError):
        Pcm(np.zeros((3, 2), dtype=np.int16), 8000)
    with pytest.raises(ValueError):
        Pcm(source, 0)
