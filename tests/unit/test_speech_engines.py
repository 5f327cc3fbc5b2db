"""Speech engines: espeak-ng in process with a configured voice and rate, an offline TTS program
(espeak-ng's own CLI), routing by language, and the settings value that configures them."""

import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from api.config_check import check_settings
from audio.errors import SpeechError
from audio.speech import (
    CommandEngine,
    EspeakEngine,
    LocaleVoices,
    voices_from_config,
)
from audio.wav import Pcm

RUSSIAN = "Здравствуйте! Ваш баланс почти исчерпан."
ENGLISH = "Hello, your balance is low."
ESPEAK_CLI = ["espeak-ng", "-v", "ru", "--stdout"]


def assert_speech(pcm: Pcm) -> None:
    assert 0.5 < pcm.duration_s < 15.0
    assert np.abs(pcm.samples.astype(np.int32)).max() > 3000


# --- espeak-ng in process ---


def test_a_configured_voice_and_rate_decide_fingerprint_and_sound() -> None:
    ru_150 = EspeakEngine(voice="ru", rate_wpm=150)
    ru_300 = EspeakEngine(voice="zle/ru", rate_wpm=300)
    us = EspeakEngine(voice="en-us", rate_wpm=150)
    assert "voice zle/ru; rate 150" in ru_150.fingerprint("ru")
    assert "voice zle/ru; rate 300" in ru_300.fingerprint("ru")
    assert "voice gmw/en-us; rate 150" in us.fingerprint("en")
    assert len({ru_150.fingerprint("ru"), ru_300.fingerprint("ru"), us.fingerprint("ru")}) == 3

    slow, fast = ru_150.render(RUSSIAN, "ru"), ru_300.render(RUSSIAN, "ru")
    assert_speech(slow)
    assert_speech(fast)
    assert slow.duration_s > 1.4 * fast.duration_s
    american = us.render(ENGLISH, "en")
    british = EspeakEngine(rate_wpm=150).render(ENGLISH, "en")
    assert not np.array_equal(american.samples, british.samples)


def test_an_unknown_espeak_voice_is_a_speech_error() -> None:
    with pytest.raises(SpeechError, match="no voice 'klingon'"):
        EspeakEngine(voice="klingon").render(ENGLISH, "en")


# --- an offline program ---


def test_espeak_ngs_own_cli_as_a_command_engine() -> None:
    engine = CommandEngine(ESPEAK_CLI)
    assert str(ESPEAK_CLI) in engine.fingerprint("ru")
    assert engine.fingerprint("ru") != CommandEngine(["espeak-ng", "--stdout"]).fingerprint("ru")
    pcm = engine.render(RUSSIAN, "ru")
    assert pcm.rate == 22050
    assert_speech(pcm)


def test_a_program_that_hangs_is_killed_at_the_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(SpeechError, match=r"did not finish within 0\.5 s"):
        CommandEngine(["sleep", "5"], timeout_s=0.5).render(ENGLISH, "en")
    assert time.monotonic() - started < 2.0


def test_a_program_writing_too_much_is_stopped() -> None:
    with pytest.raises(SpeechError, match="more than 1000 bytes"):
        CommandEngine(ESPEAK_CLI, max_output_bytes=1000).render(RUSSIAN, "ru")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sh", "-c", "echo 'no such voice' >&2; exit 3"], "exit status 3: no such voice"),
        (["ringback-no-such-program"], "cannot run"),
        (["echo", "not a wav"], "no audio we can read"),
        (["sh", "-c", "cat >/dev/null; espeak-ng -v ru --stdout ''"], "silence|no audio"),
    ],
)
def test_a_failing_program_is_a_clear_speech_error(argv: list[str], message: str) -> None:
    with pytest.raises(SpeechError, match=message):
        CommandEngine(argv, timeout_s=5).render(ENGLISH, "en")


# --- routing and configuration ---


class Named:
    def __init__(self, name: str) -> None:
        self.name = name

    def fingerprint(self, language: str) -> str:
        return f"{self.name} {language}"

    def render(self, text: str, language: str) -> Pcm:
        raise AssertionError("not rendered here")


def test_a_language_goes_to_its_engine_else_to_the_default() -> None:
    voices = LocaleVoices(Named("default"), {"ru": Named("ru"), "pt-BR": Named("brazil")})
    assert voices.fingerprint("ru") == "ru ru"
    assert voices.fingerprint("ru_RU") == "ru ru_RU"
    assert voices.fingerprint("pt_br") == "brazil pt_br"
    assert voices.fingerprint("pt") == "default pt"
    assert voices.fingerprint("en") == "default en"


def test_voices_from_the_documented_example() -> None:
    voices = voices_from_config(
        {
            "ru": {"voice": "ru", "rate_wpm": 150},
            "en": {"engine": "command", "command": ["espeak-ng", "-v", "en-us", "--stdout"]},
        },
        default_rate_wpm=170,
    )
    assert isinstance(voices.engine_for("ru"), EspeakEngine)
    assert "rate 150" in voices.fingerprint("ru")
    assert voices.fingerprint("en-GB").startswith("command ")
    assert "voice gmw/de; rate 170" in voices.fingerprint("de")
    assert "rate 160" in voices_from_config({}).fingerprint("en")


BAD_CONFIGS: list[tuple[Mapping[str, object], str]] = [
    ({"ru": "zle/ru"}, "object of options"),
    ({"": {"voice": "ru"}}, "not a language"),
    ({"ru": {"engine": "festival"}}, '"espeak" or "command"'),
    ({"ru": {"voice": ""}}, "voice"),
    ({"ru": {"voice": "ru", "speed": 2}}, "unknown option"),
    ({"ru": {"rate_wpm": 1000}}, "80..450"),
    ({"ru": {"rate_wpm": "fast"}}, "80..450"),
    ({"ru": {"rate_wpm": True}}, "80..450"),
    ({"en": {"engine": "command"}}, "list of program and arguments"),
    ({"en": {"engine": "command", "command": "espeak-ng --stdout"}}, "list of program"),
    ({"en": {"engine": "command", "command": []}}, "list of program"),
    ({"en": {"engine": "command", "command": ["espeak-ng", ""]}}, "list of program"),
    ({"en": {"engine": "command", "command": ["x"], "timeout_s": 0}}, "timeout_s"),
    ({"en": {"engine": "command", "command": ["x"], "max_output_bytes": -1}}, "max_output"),
    ({"en": {"engine": "command", "command": ["x"], "voice": "en"}}, "unknown option"),
    ({"ru": {}, "RU": {}}, "configured twice"),
]


@pytest.mark.parametrize(("config", "message"), BAD_CONFIGS)
def test_bad_voice_config_is_a_value_error_saying_what_is_wrong(
    config: Mapping[str, Mapping[str, object]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        voices_from_config(config)


def test_a_bad_default_rate_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="default speech rate"):
        voices_from_config({}, default_rate_wpm=20)


def test_the_setting_is_json_checked_by_config_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RINGBACK_TTS_VOICES", '{"ru": {"voice": "ru", "rate_wpm": 150}}')
    assert check_settings().problems == []
    monkeypatch.setenv("RINGBACK_TTS_VOICES", '{"ru": {"engine": "festival"}}')
    assert [str(problem) for problem in check_settings().problems] == [
        "RINGBACK_TTS_VOICES, RINGBACK_TTS_RATE_WPM: speech voice for 'ru': "
        "\"engine\" must be \"espeak\" or \"command\", not 'festival'"
    ]
    monkeypatch.setenv("RINGBACK_TTS_VOICES", "{ru: 1}")
    (problem,) = check_settings().problems
    assert "RINGBACK_TTS_VOICES" in str(problem) and "not valid JSON" in str(problem)


def test_a_timeout_kills_the_programs_children_too(tmp_path: Path) -> None:
    marker = tmp_path / "survivor"
    script = f"(sleep 1.5; touch {marker}) & sleep 5"
    with pytest.raises(SpeechError, match="did not finish"):
        CommandEngine(["sh", "-c", script], timeout_s=0.3).render(ENGLISH, "en")
    time.sleep(2.0)
    assert not marker.exists()
