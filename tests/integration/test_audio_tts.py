"""Speech from the real espeak-ng through pyttsx3, and the prompt cache on top of it."""

import asyncio
from pathlib import Path

import numpy as np
import pytest

from audio.errors import SpeechError
from audio.g711 import Law
from audio.prompts import PromptCache
from audio.speech import EspeakEngine, pick_voice
from audio.wav import Pcm

RUSSIAN = "Здравствуйте! На вашем счёте осталось мало денег, пожалуйста, пополните баланс."  # noqa: RUF001
ENGLISH = "Hello, your balance is low, please top up your account today."


class CountingSynthesizer(EspeakEngine):
    def __init__(self) -> None:
        super().__init__()
        self.renders = 0

    def render(self, text: str, language: str) -> Pcm:
        self.renders += 1
        return super().render(text, language)


def assert_speech(pcm: Pcm) -> None:
    assert pcm.rate == 22050
    assert 1.0 < pcm.duration_s < 15.0
    samples = pcm.samples.astype(np.float64)
    assert np.abs(samples).max() > 3000
    assert np.sqrt(np.mean(samples**2)) > 300
    # Speech: most energy in the voice band, not a click or a hum.
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    frequencies = np.fft.rfftfreq(len(samples), 1 / pcm.rate)
    voice_band = spectrum[(frequencies > 100) & (frequencies < 4000)].sum()
    assert voice_band / spectrum.sum() > 0.5


@pytest.mark.parametrize(
    ("language", "text", "voice"), [("ru", RUSSIAN, "zle/ru"), ("en", ENGLISH, "gmw/en")]
)
def test_renders_speech_and_keeps_stdout_clean(
    capfd: pytest.CaptureFixture[str], language: str, text: str, voice: str
) -> None:
    synthesizer = EspeakEngine()
    assert f"voice {voice};" in synthesizer.fingerprint(language)
    assert_speech(synthesizer.render(text, language))
    assert capfd.readouterr().out == ""


def test_rate_changes_the_length() -> None:
    slow = EspeakEngine(rate_wpm=120).render(ENGLISH, "en")
    fast = EspeakEngine(rate_wpm=240).render(ENGLISH, "en")
    assert slow.duration_s > 1.5 * fast.duration_s


async def test_concurrent_renders_are_serialised_and_all_complete() -> None:
    synthesizer = EspeakEngine()
    jobs = [(RUSSIAN, "ru"), (ENGLISH, "en")] * 4
    results = await asyncio.gather(
        *(asyncio.to_thread(synthesizer.render, t, lang) for t, lang in jobs)
    )
    for pcm in results:
        assert_speech(pcm)


@pytest.mark.parametrize(
    ("text", "language", "message"),
    [
        (ENGLISH, "xx", "no espeak-ng voice"),
        ("   ", "en", "no text"),
        ("a" * 2001, "en", "2000 limit"),
    ],
)
def test_what_cannot_be_spoken_is_refused(text: str, language: str, message: str) -> None:
    with pytest.raises(SpeechError, match=message):
        EspeakEngine().render(text, language)


def test_a_rate_espeak_does_not_take_is_refused() -> None:
    with pytest.raises(ValueError, match=r"80\.\.450"):
        EspeakEngine(rate_wpm=20)


def test_voice_choice() -> None:
    voices = [
        ("gmw/en-029", "en-029"),
        ("gmw/en", "en-gb"),
        ("gmw/en-us", "en-us"),
        ("zle/ru", "ru"),
    ]
    assert pick_voice(voices, "ru") == "zle/ru"
    assert pick_voice(voices, "RU") == "zle/ru"
    assert pick_voice(voices, "en") == "gmw/en"
    assert pick_voice(voices, "en_US") == "gmw/en-us"
    assert pick_voice(voices[:1], "en") == "gmw/en-029"
    for missing in ("de", "e", ""):
        with pytest.raises(SpeechError):
            pick_voice(voices, missing)


async def test_prompt_cache_renders_once_and_serves_the_same_bytes(tmp_path: Path) -> None:
    synthesizer = CountingSynthesizer()
    cache = PromptCache(tmp_path, synthesizer)
    first = await cache.from_text(RUSSIAN, "ru")
    assert synthesizer.renders == 1
    assert first.duration_s > 1.0
    assert first.for_law(Law.ULAW) != first.for_law(Law.ALAW)
    assert set(files(tmp_path)) == {f"{first.key}.{ext}" for ext in ("ulaw", "alaw", "sln")}

    second = await cache.from_text(RUSSIAN, "ru")
    from_disk = await PromptCache(tmp_path, synthesizer).from_text(RUSSIAN, "ru")
    assert synthesizer.renders == 1
    assert second.ulaw == from_disk.ulaw == first.ulaw
    assert second.alaw == from_disk.alaw == first.alaw

    english = await cache.from_text(ENGLISH, "en")
    assert synthesizer.renders == 2
    assert english.key != first.key


async def test_a_half_prompt_on_disk_is_rendered_again(tmp_path: Path) -> None:
    synthesizer = CountingSynthesizer()
    made = await PromptCache(tmp_path, synthesizer).from_text(ENGLISH, "en")
    remove(tmp_path / f"{made.key}.alaw")  # as if the process died between the two files

    fresh = PromptCache(tmp_path, synthesizer)
    assert fresh.get(made.key) is None
    again = await fresh.from_text(ENGLISH, "en")
    assert synthesizer.renders == 2
    assert again.key == made.key
    assert len(again.ulaw) == len(again.alaw) > 8000
    assert set(files(tmp_path)) == {f"{made.key}.{ext}" for ext in ("ulaw", "alaw", "sln")}


def files(directory: Path) -> list[str]:
    return [path.name for path in directory.iterdir()]


def remove(path: Path) -> None:
    path.unlink()
