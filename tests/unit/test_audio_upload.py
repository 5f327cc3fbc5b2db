"""Uploaded recordings through the real libsndfile: what is accepted, how it is converted, what
is refused and with which code. Every file is generated here; no binary fixtures."""

import io

import numpy as np
import pytest
import soundfile
from numpy.typing import NDArray

from audio.errors import AudioError, UploadRefused
from audio.loudness import PEAK_CEILING_DBFS, TARGET_LUFS, loudness_lufs
from audio.upload import Clip, UploadLimits, decode_upload
from audio.wav import wav_bytes

FREQUENCY = 440.0
DEFAULT_LIMITS = UploadLimits()


def tone(seconds: float, rate: int, channels: int = 1, dbfs: float = -20.0) -> NDArray[np.float64]:
    t = np.arange(int(rate * seconds)) / rate
    wave = 10 ** (dbfs / 20) * np.sin(2 * np.pi * FREQUENCY * t)
    return np.repeat(wave[:, None], channels, axis=1)


def encoded(samples: NDArray[np.float64], rate: int, fmt: str, subtype: str) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, samples, rate, format=fmt, subtype=subtype)
    return out.getvalue()


def samples_of(clip: Clip) -> NDArray[np.float64]:
    return np.frombuffer(clip.pcm16, dtype="<i2").astype(np.float64) / 32768


def refusal(data: bytes, filename: str, limits: UploadLimits = DEFAULT_LIMITS) -> UploadRefused:
    with pytest.raises(UploadRefused) as caught:
        decode_upload(data, filename, limits)
    assert caught.value.message  # a sentence for people, not empty
    return caught.value


def mp3_or_skip(samples: NDArray[np.float64], rate: int) -> bytes:
    try:
        return encoded(samples, rate, "MP3", "MPEG_LAYER_III")
    except (soundfile.SoundFileError, TypeError, ValueError) as exc:
        pytest.skip(f"this libsndfile cannot write MP3: {exc}")


# --- accepted and converted ---

ACCEPTED = [
    ("tip.wav", "WAV", "FLOAT", 44100, 1),
    ("tip.wav", "WAV", "PCM_24", 48000, 2),
    ("tip.flac", "FLAC", "PCM_16", 44100, 1),
    ("tip.ogg", "OGG", "VORBIS", 48000, 2),
    ("tip.oga", "OGG", "VORBIS", 22050, 1),
    ("tip.mp3", "MP3", "MPEG_LAYER_III", 44100, 1),
]


@pytest.mark.parametrize(("filename", "fmt", "subtype", "rate", "channels"), ACCEPTED)
def test_accepted_and_converted(
    filename: str, fmt: str, subtype: str, rate: int, channels: int
) -> None:
    source = tone(2.0, rate, channels)
    data = (
        mp3_or_skip(source, rate) if fmt == "MP3" else encoded(source, rate, fmt, subtype)
    )
    clip = decode_upload(data, filename)

    assert (clip.source.format, clip.source.subtype) == (fmt, subtype)
    assert (clip.source.rate, clip.source.channels) == (rate, channels)
    tolerance = 0.1 if fmt == "MP3" else 0.001  # an MP3 decoder may keep or drop padding
    assert clip.source.duration_s == pytest.approx(2.0, abs=tolerance)
    assert clip.duration_s == pytest.approx(2.0, abs=tolerance)
    assert len(clip.pcm16) == 2 * round(clip.duration_s * 8000)  # 8 kHz, one 16-bit channel

    out = samples_of(clip)
    assert clip.loudness_lufs == pytest.approx(-23.8, abs=0.5)  # -20 dBFS peak, 440 Hz sine
    assert clip.loudness_lufs is not None
    assert clip.gain_db == pytest.approx(TARGET_LUFS - clip.loudness_lufs)  # not peak-limited
    assert loudness_lufs(out, 8000) == pytest.approx(TARGET_LUFS, abs=1.0)
    assert 20 * np.log10(np.abs(out).max()) <= PEAK_CEILING_DBFS
    assert correlation_with_sine(out, 8000) > 0.99


def correlation_with_sine(samples: NDArray[np.float64], rate: int) -> float:
    """How well the steady middle fits a FREQUENCY sine of any phase (least squares)."""
    middle = samples[len(samples) // 4 : 3 * len(samples) // 4]
    t = np.arange(len(middle)) / rate
    basis = np.stack([np.sin(2 * np.pi * FREQUENCY * t), np.cos(2 * np.pi * FREQUENCY * t)], 1)
    fit = basis @ np.linalg.lstsq(basis, middle, rcond=None)[0]
    return float(np.corrcoef(fit, middle)[0, 1])


def test_a_peaky_recording_is_limited_by_its_peak_not_raised_to_the_target() -> None:
    source = tone(2.0, 16000, dbfs=-40)
    source[8000:8040, 0] = 0.5  # a loud click in a quiet recording
    clip = decode_upload(encoded(source, 16000, "WAV", "PCM_16"), "click.wav")
    out = samples_of(clip)
    assert 20 * np.log10(np.abs(out).max()) == pytest.approx(PEAK_CEILING_DBFS, abs=0.05)
    assert clip.loudness_lufs is not None
    assert clip.gain_db < TARGET_LUFS - clip.loudness_lufs
    out_loudness = loudness_lufs(out, 8000)
    assert out_loudness is not None and out_loudness < TARGET_LUFS - 1


def test_three_minutes_of_48k_stereo_wav_fit_the_default_limits() -> None:
    data = encoded(tone(180.0, 48000, channels=2), 48000, "WAV", "PCM_16")
    clip = decode_upload(data, "long.wav")  # how long it takes: benchmarks/upload.py
    assert clip.duration_s == pytest.approx(180.0)


# --- refused, each with its code ---


@pytest.mark.parametrize(
    ("filename", "fmt", "subtype"),
    [("tip.wav", "WAV", "PCM_16"), ("tip.wav", "WAV", "FLOAT"), ("tip.flac", "FLAC", "PCM_16"),
     ("tip.ogg", "OGG", "VORBIS")],
)
def test_a_file_cut_short_is_refused_as_truncated(filename: str, fmt: str, subtype: str) -> None:
    data = encoded(tone(2.0, 44100), 44100, fmt, subtype)
    assert decode_upload(data, filename).duration_s == pytest.approx(2.0)
    assert refusal(data[: int(len(data) * 0.6)], filename).code == "audio-truncated"


def test_an_ogg_cut_between_two_pages_is_refused_as_truncated() -> None:
    data = encoded(tone(2.0, 44100), 44100, "OGG", "VORBIS")
    page_boundary = data.index(b"OggS", len(data) // 2)
    assert refusal(data[:page_boundary], "tip.ogg").code == "audio-truncated"


def test_an_mp3_cut_short_is_refused_as_truncated() -> None:
    data = mp3_or_skip(tone(2.0, 44100), 44100)
    assert refusal(data[: len(data) // 2], "tip.mp3").code == "audio-truncated"


def test_a_wav_whose_header_cannot_say_its_size_is_taken_as_it_is() -> None:
    data = bytearray(wav_bytes(np.round(tone(1.0, 8000)[:, 0] * 32767).astype("<i2").tobytes()))
    data[40:44] = b"\xff\xff\xff\xff"  # a streaming encoder's "unknown" data size
    assert decode_upload(bytes(data), "stream.wav").duration_s == pytest.approx(1.0)


@pytest.mark.parametrize(
    "content",
    [b"Dear customer,\nthis is not a recording.\n" * 20, b"\x89PNG\r\n\x1a\n" + bytes(200)],
)
def test_something_else_named_wav_is_unreadable(content: bytes) -> None:
    refused = refusal(content, "tip.wav")
    assert refused.code == "audio-unreadable"
    assert "WAV, FLAC, OGG or MP3" in refused.message


def test_a_flac_named_wav_is_a_format_mismatch_naming_both() -> None:
    refused = refusal(encoded(tone(1.0, 44100), 44100, "FLAC", "PCM_16"), "tip.wav")
    assert refused.code == "audio-format-mismatch"
    assert ".wav" in refused.message
    assert "FLAC" in refused.message
    assert ".flac" in refused.message  # what to do: rename it


@pytest.mark.parametrize("filename", ["tip.m4a", "tip.WMA", "tip", "tip.wav.exe"])
def test_other_file_types_are_refused(filename: str) -> None:
    refused = refusal(encoded(tone(1.0, 8000), 8000, "WAV", "PCM_16"), filename)
    assert refused.code == "audio-unsupported-type"


def test_the_extension_is_matched_case_blind() -> None:
    assert decode_upload(encoded(tone(1.0, 8000), 8000, "WAV", "PCM_16"), "TIP.WAV").duration_s


def test_a_ten_minute_wav_is_refused_from_its_header(monkeypatch: pytest.MonkeyPatch) -> None:
    ten_minutes = wav_bytes(bytes(600 * 8000 * 2), 8000)  # 9.6 MB of zeros, made at once

    def no_decoding(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("samples were decoded")

    monkeypatch.setattr(soundfile.SoundFile, "read", no_decoding)
    refused = refusal(ten_minutes, "long.wav")
    assert refused.code == "audio-too-long"
    assert "10 min 00 s" in refused.message and "3 min 00 s" in refused.message


def test_fifty_megabytes_are_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_opening(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the file was opened")

    monkeypatch.setattr(soundfile, "SoundFile", no_opening)
    refused = refusal(bytes(50 * 1024 * 1024), "big.wav")
    assert refused.code == "audio-too-large"
    assert "50.0 MB" in refused.message and "40.0 MB" in refused.message


def test_an_empty_file_is_refused() -> None:
    assert refusal(b"", "tip.wav").code == "audio-empty"


def test_silence_is_refused() -> None:
    near_silence = np.random.default_rng(1).normal(0, 10 ** (-70 / 20), (16000, 1))
    assert refusal(encoded(near_silence, 16000, "WAV", "PCM_24"), "tip.wav").code == "audio-silent"
    assert refusal(encoded(np.zeros((16000, 2)), 16000, "FLAC", "PCM_16"), "tip.flac").code == (
        "audio-silent"
    )


def test_a_too_short_recording_is_refused() -> None:
    refused = refusal(encoded(tone(0.1, 44100), 44100, "WAV", "PCM_16"), "tip.wav")
    assert refused.code == "audio-too-short"


def test_only_max_seconds_are_ever_decoded() -> None:
    limits = UploadLimits(max_seconds=2.0)
    data = encoded(tone(3.0, 8000), 8000, "OGG", "VORBIS")
    assert refusal(data, "tip.ogg", limits).code == "audio-too-long"
    assert decode_upload(data, "tip.ogg", UploadLimits(max_seconds=3.0)).duration_s == (
        pytest.approx(3.0)
    )


def test_refusals_are_audio_errors() -> None:
    assert isinstance(refusal(b"", "a.wav"), AudioError)
