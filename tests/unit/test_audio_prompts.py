import hashlib
import wave
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from audio import g711, loudness
from audio.errors import AudioFormatError
from audio.g711 import Law
from audio.prompts import EncodedPrompt, PromptCache
from audio.resample import to_8k
from audio.wav import Pcm, save_wav

SPEECH_DBFS = -20.0  # a typical speech level


def sine(frequency: float, rate: int, dbfs: float = -6.0, seconds: float = 1.0) -> Pcm:
    t = np.arange(int(rate * seconds)) / rate
    amplitude = 32767 * 10 ** (dbfs / 20)
    return Pcm(np.round(amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.int16), rate)


def rms(samples: NDArray[np.int16]) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def snr_db(reference: NDArray[np.int16], degraded: NDArray[np.int16]) -> float:
    ref = reference.astype(np.float64)
    noise = ref - degraded.astype(np.float64)
    return float(10 * np.log10(np.sum(ref**2) / np.sum(noise**2)))


def steady(samples: NDArray[np.int16]) -> NDArray[np.int16]:
    """Without the filter's edge transients."""
    return samples[200:-200]


def remove_all(directory: Path) -> None:
    for path in directory.iterdir():
        path.unlink()


class FakeSynthesizer:
    """A tone per text, counting renders; no espeak involved."""

    def __init__(self) -> None:
        self.renders = 0
        self.voice = "plain"

    def fingerprint(self, language: str) -> str:
        return f"fake; {language}; {self.voice}"

    def render(self, text: str, language: str) -> Pcm:
        self.renders += 1
        return sine(300 + 10 * len(text), 22050, seconds=0.5)


# --- resampling ---


@pytest.mark.parametrize("rate", [44100, 22050, 16000, 48000, 11025])
def test_resampling_to_8k_keeps_frequency_and_amplitude(rate: int) -> None:
    source = sine(1000, rate)
    out = to_8k(source)
    assert out.dtype == np.int16
    assert len(out) == 8000
    window = steady(out).astype(np.float64) * np.hanning(len(steady(out)))
    spectrum = np.abs(np.fft.rfft(window))
    peak_hz = np.fft.rfftfreq(len(window), 1 / 8000)[np.argmax(spectrum)]
    assert peak_hz == pytest.approx(1000, abs=2)
    level_change_db = 20 * np.log10(rms(steady(out)) / rms(source.samples))
    assert abs(level_change_db) < 0.05


def test_resampling_removes_what_would_alias() -> None:
    out = to_8k(sine(6000, 44100))  # would fold to 2 kHz without the anti-alias filter
    attenuation_db = 20 * np.log10(max(rms(steady(out)), 1e-3) / rms(sine(6000, 44100).samples))
    assert attenuation_db < -40


def test_8k_input_is_copied_as_is() -> None:
    source = sine(1000, 8000)
    out = to_8k(source)
    assert np.array_equal(out, source.samples)
    out[0] = 1  # a copy, writable, not the read-only Pcm samples


def test_overshoot_is_clipped_not_wrapped() -> None:
    rate, frequency = 44100, 100
    t = np.arange(rate) / rate
    square = np.where(np.sin(2 * np.pi * frequency * t) >= 0, 32767, -32768).astype(np.int16)
    out = to_8k(Pcm(square, rate))
    assert (out.max(), out.min()) == (32767, -32768)
    phase = (np.arange(len(out)) * frequency / 8000) % 1.0
    expected = np.where(phase < 0.5, 1, -1)
    away_from_edges = np.minimum(np.abs(phase - 0.5), np.minimum(phase, 1 - phase)) > 0.04
    assert np.all(np.sign(out[away_from_edges]) == expected[away_from_edges])


# --- G.711 from 16 bits ---


@pytest.mark.parametrize("law", list(Law))
def test_16_bit_to_g711_keeps_35_db_snr_and_8_bit_would_not(law: Law) -> None:
    at_8k = to_8k(sine(1000, 22050, dbfs=SPEECH_DBFS))
    direct = snr_db(at_8k, g711.decode(g711.encode(at_8k, law), law))
    through_8_bit = ((at_8k.astype(np.int32) >> 8) << 8).astype(np.int16)
    worse = snr_db(at_8k, g711.decode(g711.encode(through_8_bit, law), law))
    assert direct >= 35
    assert direct - worse >= 8


# --- the cache ---


def test_prompt_from_wav_is_encoded_in_both_laws_and_stored(tmp_path: Path) -> None:
    source = sine(1000, 44100, dbfs=SPEECH_DBFS, seconds=0.5)
    wav_path = tmp_path / "tip.wav"
    save_wav(wav_path, source)
    cache = PromptCache(tmp_path / "cache")
    prompt = cache.from_wav(wav_path)
    assert len(prompt.key) == 64
    assert prompt.duration_s == pytest.approx(0.5)
    assert len(prompt.ulaw) == len(prompt.alaw) == 4000
    expected = to_8k(source)
    for law in Law:
        assert snr_db(expected, g711.decode(prompt.for_law(law), law)) >= 35
        stored = tmp_path / "cache" / f"{prompt.key}.{law.value}"
        assert stored.read_bytes() == prompt.for_law(law)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        f"{prompt.key}.alaw",
        f"{prompt.key}.sln",
        f"{prompt.key}.ulaw",
    ]
    assert (tmp_path / "cache" / f"{prompt.key}.sln").read_bytes() == prompt.pcm16
    assert np.array_equal(np.frombuffer(prompt.pcm16, dtype="<i2"), expected)


def test_wav_key_is_the_content_not_the_name(tmp_path: Path) -> None:
    save_wav(tmp_path / "a.wav", sine(1000, 16000, seconds=0.2))
    save_wav(tmp_path / "b.wav", sine(1000, 16000, seconds=0.2))
    save_wav(tmp_path / "c.wav", sine(1200, 16000, seconds=0.2))
    cache = PromptCache(tmp_path / "cache")
    a = cache.from_wav(tmp_path / "a.wav")
    assert cache.from_wav(tmp_path / "b.wav") is a
    assert cache.from_wav((tmp_path / "a.wav").read_bytes()) is a
    assert cache.from_wav(tmp_path / "c.wav").key != a.key


def test_a_new_cache_loads_from_disk(tmp_path: Path) -> None:
    save_wav(tmp_path / "a.wav", sine(1000, 16000, seconds=0.2))
    first = PromptCache(tmp_path / "cache").from_wav(tmp_path / "a.wav")
    again = PromptCache(tmp_path / "cache").get(first.key)
    assert again == first


def test_refused_wav_leaves_nothing_behind(tmp_path: Path) -> None:
    eight_bit = tmp_path / "old.wav"
    with wave.open(str(eight_bit), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(8000)
        out.writeframes(bytes(range(256)))
    cache = PromptCache(tmp_path / "cache")
    with pytest.raises(AudioFormatError, match="8-bit"):
        cache.from_wav(eight_bit)
    assert not (tmp_path / "cache").exists()


def test_get_unknown_and_malformed_keys(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path)
    assert cache.get("0" * 64) is None
    for bad in ("../../etc/passwd", "A" * 64, "0" * 63):
        with pytest.raises(ValueError):
            cache.get(bad)


async def test_text_is_rendered_once_then_served_from_memory_and_disk(tmp_path: Path) -> None:
    synthesizer = FakeSynthesizer()
    cache = PromptCache(tmp_path, synthesizer)
    first = await cache.from_text("hello", "en")
    assert await cache.from_text("hello", "en") is first
    assert synthesizer.renders == 1
    assert await PromptCache(tmp_path, synthesizer).from_text("hello", "en") == first
    assert synthesizer.renders == 1
    ru = await cache.from_text("hello", "ru")
    exclaimed = await cache.from_text("hello!", "en")
    synthesizer.voice = "other"
    others = [ru, exclaimed, await cache.from_text("hello", "en")]
    assert synthesizer.renders == 4
    assert len({first.key, *(prompt.key for prompt in others)}) == 4


@pytest.mark.parametrize(
    "damage", ["no alaw", "no ulaw", "no sln", "short alaw", "short sln", "empty"]
)
async def test_half_written_prompt_is_made_again(tmp_path: Path, damage: str) -> None:
    synthesizer = FakeSynthesizer()
    made = await PromptCache(tmp_path, synthesizer).from_text("hello", "en")
    damage_files(tmp_path, made, damage)
    fresh = PromptCache(tmp_path, synthesizer)
    assert fresh.get(made.key) is None
    again = await fresh.from_text("hello", "en")
    assert synthesizer.renders == 2
    assert again == made
    for law in Law:
        assert read(tmp_path / f"{made.key}.{law.value}") == made.for_law(law)


def damage_files(directory: Path, prompt: EncodedPrompt, damage: str) -> None:
    ulaw, alaw = directory / f"{prompt.key}.ulaw", directory / f"{prompt.key}.alaw"
    sln = directory / f"{prompt.key}.sln"
    if damage == "no sln":
        sln.unlink()
    elif damage == "short sln":
        sln.write_bytes(prompt.pcm16[:-2])
    elif damage == "no alaw":
        alaw.unlink()
    elif damage == "no ulaw":
        ulaw.unlink()
    elif damage == "short alaw":
        alaw.write_bytes(prompt.alaw[:-1])
    else:
        ulaw.write_bytes(b"")
        alaw.write_bytes(b"")


def read(path: Path) -> bytes:
    return path.read_bytes()


def test_failed_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_wav(tmp_path / "a.wav", sine(1000, 16000, seconds=0.2))

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("audio.prompts.os.replace", crash)
    with pytest.raises(OSError, match="disk full"):
        PromptCache(tmp_path / "cache").from_wav(tmp_path / "a.wav")
    assert list((tmp_path / "cache").iterdir()) == []


async def test_memory_holds_a_bounded_number_of_prompts(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path, FakeSynthesizer(), memory_entries=2)
    made = [await cache.from_text(text, "en") for text in ("one", "two", "three")]
    remove_all(tmp_path)
    assert cache.get(made[0].key) is None  # evicted, and gone from disk
    assert cache.get(made[1].key) == made[1]
    assert cache.get(made[2].key) == made[2]


async def test_text_needs_a_synthesizer(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        await PromptCache(tmp_path).from_text("hello", "en")


async def test_text_renders_are_normalised_to_the_target_loudness(tmp_path: Path) -> None:
    prompt = await PromptCache(tmp_path, FakeSynthesizer()).from_text("hello", "en")
    samples = np.frombuffer(prompt.pcm16, dtype="<i2").astype(np.float64) / 32768
    assert loudness.loudness_lufs(samples, 8000) == pytest.approx(loudness.TARGET_LUFS, abs=1.0)
    assert g711.encode(np.frombuffer(prompt.pcm16, dtype="<i2").astype(np.int16), Law.ULAW) == (
        prompt.ulaw
    )


def test_clip_is_encoded_as_is_and_keyed_by_its_bytes(tmp_path: Path) -> None:
    samples = to_8k(sine(440, 8000, dbfs=-16, seconds=0.5))
    pcm16 = samples.astype("<i2").tobytes()
    cache = PromptCache(tmp_path)
    prompt = cache.from_clip(pcm16)
    assert prompt.pcm16 == pcm16
    assert prompt.ulaw == g711.encode(samples, Law.ULAW)
    assert prompt.alaw == g711.encode(samples, Law.ALAW)
    assert prompt.duration_s == pytest.approx(0.5)
    assert cache.from_clip(bytes(pcm16)) is prompt
    assert PromptCache(tmp_path).get(prompt.key) == prompt
    assert cache.from_clip(pcm16[:-2]).key != prompt.key
    with pytest.raises(AudioFormatError):
        cache.from_clip(b"\x00" * 3)


def test_encoded_prompt_picks_the_law() -> None:
    prompt = EncodedPrompt(hashlib.sha256(b"").hexdigest(), b"\xff", b"\xd5", 1 / 8000)
    assert prompt.for_law(Law.ULAW) == b"\xff"
    assert prompt.for_law(Law.ALAW) == b"\xd5"
