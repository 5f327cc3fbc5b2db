"""Text to speech behind one small interface, so a language can use another offline engine.

``SpeechEngine`` turns text in a language into ``Pcm``; ``fingerprint`` names everything besides
the text that decides the sound (it goes into prompt cache keys). Engines:

- ``EspeakEngine``: pyttsx3 2.99 over libespeak-ng, in process, 16-bit PCM at 22050 Hz mono;
- ``CommandEngine``: any offline TTS program that reads text on stdin and writes a WAV on stdout
  (espeak-ng's own CLI, piper, RHVoice-test, ...), run with a timeout and bounded output;
- ``LocaleVoices``: routes each language to its engine, with a default; itself an engine.

``voices_from_config`` builds ``LocaleVoices`` from a settings value (pure, no engine loaded).

What ``EspeakEngine`` is built around (measured here with pyttsx3 2.99 and espeak-ng 1.51):

- espeak-ng is initialised once per process and has a single synthesis callback. Each new pyttsx3
  engine replaces it and each engine garbage-collected sets it to NULL: one engine per render hung
  (callback gone) or crashed the process (segfault, a callback still in flight on espeak's thread).
  Re-using one engine for repeated ``runAndWait`` works and costs the same (~11 ms for a 10-word
  phrase either way), so the process holds exactly one engine, behind one lock, since pyttsx3
  engines are not thread-safe. Every ``EspeakEngine`` (one per configured voice) shares it.
- espeak synthesises on its own thread and ``runAndWait`` returns after a fixed 10 ms sleep, not
  when the WAV is written: under load it returned before the file existed. We wait for the
  "finished-utterance" notification, which the driver sends after closing the file.
- ``engine.setProperty`` is queued and runs at the start of ``runAndWait``; espeak then still has
  the parameter change pending when pyttsx3 ends its loop, pyttsx3 cancels "the speech in progress",
  and the cancellation's late end-of-message closed the *next* render with an empty WAV (1 render
  in a few hundred). So voice, rate and volume go straight to the driver's ``setProperty`` and we
  wait until espeak is idle before each synthesis: no failure in 4,200 renders, 8 threads included.
- The driver prints "Audio saved to ..." from espeak's thread. ``contextlib.redirect_stdout``
  would swap ``sys.stdout`` for every thread of the process, so the driver module's own ``print``
  is pointed at our debug log instead; nothing is written at the C level.
- espeak-ng's CLI with ``--stdout`` cannot seek back, so its WAV header claims 0x7ffff000 data
  bytes; ``CommandEngine`` reads program output with libsndfile, which takes the bytes present.
"""

import ctypes
import io
import logging
import math
import os
import selectors
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyttsx3
import soundfile

from audio.errors import AudioFormatError, SpeechError
from audio.resample import FULL_SCALE, to_int16
from audio.wav import Pcm, load_wav

_log = logging.getLogger(__name__)

DEFAULT_RATE_WPM = 160
MIN_RATE_WPM, MAX_RATE_WPM = 80, 450  # espeak-ng's own range
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_CHARS = 2000
DEFAULT_MAX_OUTPUT_BYTES = 32 * 1024 * 1024  # ~12 min of 22050 Hz 16-bit mono
_SILENCE_PEAK = 328  # -40 dBFS: a render that never gets louder than this has no speech in it
_IDLE_POLL_S = 0.001
_MBROLA_PREFIX = "mb/"  # mbrola voices are 16 kHz; the driver labels every WAV 22050 Hz
_STDERR_KEPT = 2000  # characters of a failed program's stderr quoted in the error
_READ_SIZE = 65536


class SpeechEngine(Protocol):
    """Turns text into speech. Implementations are safe to share between threads."""

    def fingerprint(self, language: str) -> str:
        """Everything besides the text that decides the sound of ``render(..., language)``."""
        ...

    def render(self, text: str, language: str) -> Pcm:
        """``text`` spoken in ``language``; blocks the calling thread. Raises ``SpeechError``."""
        ...


def _driver_print(*args: object, **_kwargs: object) -> None:
    _log.debug("pyttsx3: %s", " ".join(str(arg) for arg in args))


@dataclass(frozen=True)
class _Espeak:
    engine: Any  # pyttsx3.Engine
    driver: Any  # pyttsx3.drivers.espeak.EspeakDriver, whose setProperty acts at once
    lib: Any  # pyttsx3.drivers._espeak, the ctypes binding of libespeak-ng
    version: str
    voices: list[tuple[str, str]]  # (voice id, language), in espeak's order


class _EspeakEngine:
    """The process's one pyttsx3 espeak engine, loaded on first use. Every method takes the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: _Espeak | None = None

    def voices(self) -> list[tuple[str, str]]:
        """(voice id, language) of every espeak-ng voice we can use, in espeak's order."""
        with self._lock:
            return self._load().voices

    def version(self) -> str:
        with self._lock:
            return self._load().version

    def synthesize(
        self, text: str, voice_id: str, rate_wpm: int, path: Path, timeout_s: float
    ) -> None:
        """Write ``text`` spoken by ``voice_id`` to ``path`` as a WAV, waiting until it is done."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            espeak = self._load()
            self._wait_idle(espeak, deadline)
            espeak.driver.setProperty("voice", voice_id)
            espeak.driver.setProperty("rate", rate_wpm)
            espeak.driver.setProperty("volume", 1.0)
            self._wait_idle(espeak, deadline)
            finished = threading.Event()
            token = espeak.engine.connect("finished-utterance", lambda **_: finished.set())
            try:
                espeak.engine.save_to_file(text, str(path))
                espeak.engine.runAndWait()
                if not finished.wait(max(0.0, deadline - time.monotonic())):
                    raise SpeechError(f"espeak-ng did not finish within {timeout_s:g} s")
            finally:
                espeak.engine.disconnect(token)

    @staticmethod
    def _wait_idle(espeak: _Espeak, deadline: float) -> None:
        while espeak.lib.IsPlaying():
            if time.monotonic() >= deadline:
                raise SpeechError("espeak-ng is still busy with an earlier text")
            time.sleep(_IDLE_POLL_S)

    def _load(self) -> _Espeak:
        if self._loaded is None:
            try:
                engine = pyttsx3.init("espeak")
            except (ImportError, OSError, RuntimeError) as exc:
                raise SpeechError(f"espeak-ng is not available: {exc}") from exc
            from pyttsx3.drivers import _espeak, espeak  # imported by init() above

            espeak.print = _driver_print
            info = ctypes.CFUNCTYPE(ctypes.c_char_p, ctypes.c_void_p)(("espeak_Info", _espeak.dll))
            self._loaded = _Espeak(
                engine=engine,
                driver=espeak.EspeakDriver,
                lib=_espeak,
                version=(info(None) or b"unknown").decode(),
                voices=[
                    (voice.id, voice.languages[0].lower() if voice.languages else "")
                    for voice in engine.getProperty("voices")
                    if not voice.id.startswith(_MBROLA_PREFIX)
                ],
            )
        return self._loaded


_ENGINE = _EspeakEngine()


def pick_voice(voices: Sequence[tuple[str, str]], language: str) -> str:
    """The voice for ``language`` ("ru", "en", "en-us", "pt_BR", ...) among (id, language) pairs.

    An exact language match wins; otherwise a regional variant, preferring the voice named after
    the language itself (espeak's "gmw/en" for "en"), then espeak's order.
    """
    wanted = language.strip().lower().replace("_", "-")
    candidates = [
        (lang != wanted, voice_id.rsplit("/", 1)[-1] != wanted, index, voice_id)
        for index, (voice_id, lang) in enumerate(voices)
        if wanted and (lang == wanted or lang.startswith(wanted + "-"))
    ]
    if not candidates:
        raise SpeechError(f"no espeak-ng voice for language {language!r}")
    return min(candidates)[3]


def find_voice(voices: Sequence[tuple[str, str]], voice: str) -> str:
    """The id of the configured ``voice``: an id ("zle/ru") or its last part ("ru")."""
    wanted = voice.strip().lower()
    for voice_id, _language in voices:
        if wanted in (voice_id.lower(), voice_id.rsplit("/", 1)[-1].lower()):
            return voice_id
    raise SpeechError(f"espeak-ng has no voice {voice!r}")


class EspeakEngine:
    """espeak-ng in process: ``voice`` (an espeak voice id or name like "zle/ru" or "ru"; default:
    picked by the language) at ``rate_wpm``. Renders run one at a time, process-wide."""

    def __init__(
        self,
        *,
        voice: str | None = None,
        rate_wpm: int = DEFAULT_RATE_WPM,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> None:
        self._voice = voice
        self._rate_wpm = _check_rate_option(rate_wpm, "espeak-ng")
        self._timeout_s = timeout_s
        self._max_chars = max_chars

    def fingerprint(self, language: str) -> str:
        voice_id = self._voice_id(language)
        return f"espeak-ng {_ENGINE.version()}; voice {voice_id}; rate {self._rate_wpm}"

    def render(self, text: str, language: str) -> Pcm:
        _check_text(text, self._max_chars)
        voice_id = self._voice_id(language)
        with tempfile.TemporaryDirectory(prefix="ringback-tts-") as tmp:
            path = Path(tmp) / "speech.wav"
            _ENGINE.synthesize(text, voice_id, self._rate_wpm, path, self._timeout_s)
            try:
                pcm = load_wav(path)
            except (AudioFormatError, OSError) as exc:
                raise SpeechError(f"espeak-ng wrote no usable audio: {exc}") from exc
        return _checked_speech(pcm, text, voice_id)

    def _voice_id(self, language: str) -> str:
        voices = _ENGINE.voices()
        return pick_voice(voices, language) if self._voice is None else find_voice(
            voices, self._voice
        )


class CommandEngine:
    """An offline TTS program: text on stdin, a WAV on stdout (any rate and sample format).

    The program gets ``timeout_s`` to finish and may write at most ``max_output_bytes``; past
    either it is killed. It is run without a shell, ``argv`` as given.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> None:
        if not argv or not all(argv):
            raise ValueError("a speech command needs a program and no empty arguments")
        self._argv = list(argv)
        self._timeout_s = timeout_s
        self._max_output_bytes = max_output_bytes
        self._max_chars = max_chars

    def fingerprint(self, language: str) -> str:
        return f"command {self._argv!r}"

    def render(self, text: str, language: str) -> Pcm:
        _check_text(text, self._max_chars)
        output = self._run(text)
        try:
            samples, rate = soundfile.read(io.BytesIO(output), dtype="float64", always_2d=True)
        except soundfile.SoundFileError as exc:
            raise SpeechError(f"{self._name} wrote no audio we can read: {exc}") from None
        if len(samples) == 0:
            raise SpeechError(f"{self._name} wrote no audio for {text[:40]!r}")
        pcm = Pcm(to_int16(samples.mean(axis=1) * FULL_SCALE), int(rate))
        return _checked_speech(pcm, text, self._name)

    @property
    def _name(self) -> str:
        return os.path.basename(self._argv[0])

    def _run(self, text: str) -> bytes:
        """The program's stdout for ``text``. It runs in a session of its own, so that on a
        timeout or too much output the whole group (a wrapper script's children too) is killed."""
        deadline = time.monotonic() + self._timeout_s
        try:
            process = subprocess.Popen(
                self._argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                bufsize=0,
                start_new_session=True,
            )
        except OSError as exc:
            raise SpeechError(f"cannot run speech command {self._argv[0]!r}: {exc}") from None
        with process:
            try:
                output, errors = self._exchange(process, text.encode(), deadline)
                returncode = process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise SpeechError(
                    f"{self._name} did not finish within {self._timeout_s:g} s and was stopped"
                ) from None
            finally:
                if process.poll() is None:  # not reaped yet: its group id is still its own
                    os.killpg(process.pid, signal.SIGKILL)
        if returncode != 0:
            detail = errors.decode(errors="replace").strip()
            raise SpeechError(f"{self._name} failed with exit status {returncode}: {detail}")
        return output

    def _exchange(
        self, process: "subprocess.Popen[bytes]", text: bytes, deadline: float
    ) -> tuple[bytes, bytes]:
        """Write ``text``, read stdout (bounded) and stderr (last bytes kept) until both end."""
        assert process.stdin is not None and process.stdout is not None
        assert process.stderr is not None
        try:
            process.stdin.write(text)  # unbuffered, and a few KB at most: fits the pipe
        except BrokenPipeError:
            pass  # the program exited without reading; its status tells
        finally:
            process.stdin.close()
        output, errors = bytearray(), bytearray()
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ, output)
            selector.register(process.stderr, selectors.EVENT_READ, errors)
            while selector.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise subprocess.TimeoutExpired(self._argv, self._timeout_s)
                for key, _ in selector.select(remaining):
                    chunk = os.read(key.fd, _READ_SIZE)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        continue
                    key.data.extend(chunk)
                if len(output) > self._max_output_bytes:
                    raise SpeechError(
                        f"{self._name} wrote more than {self._max_output_bytes} bytes of audio"
                    )
                del errors[:-_STDERR_KEPT]
        return bytes(output), bytes(errors)


class LocaleVoices:
    """Routes a language to its engine: an exact match ("pt-br"), then the base language ("pt"),
    then ``default``. Languages are matched case-blind, "_" and "-" alike."""

    def __init__(
        self, default: SpeechEngine, by_language: Mapping[str, SpeechEngine] | None = None
    ) -> None:
        self._default = default
        self._by_language = {_language_key(lang): engine for lang, engine in
                             (by_language or {}).items()}

    def engine_for(self, language: str) -> SpeechEngine:
        wanted = _language_key(language)
        for candidate in (wanted, wanted.split("-", 1)[0]):
            if candidate in self._by_language:
                return self._by_language[candidate]
        return self._default

    def fingerprint(self, language: str) -> str:
        return self.engine_for(language).fingerprint(language)

    def render(self, text: str, language: str) -> Pcm:
        return self.engine_for(language).render(text, language)


_ESPEAK_KEYS = frozenset({"engine", "voice", "rate_wpm"})
_COMMAND_KEYS = frozenset({"engine", "command", "timeout_s", "max_output_bytes"})


def voices_from_config(
    config: Mapping[str, Mapping[str, object]], *, default_rate_wpm: int | None = None
) -> LocaleVoices:
    """``LocaleVoices`` from a settings value: language -> engine options. Pure: nothing is loaded.

    ``{"ru": {"voice": "ru", "rate_wpm": 150},
    "en": {"engine": "command", "command": ["espeak-ng", "-v", "en-us", "--stdout"]}}``.
    An espeak entry takes ``voice`` and ``rate_wpm`` (default ``default_rate_wpm``); a command
    entry takes ``command`` (argv), ``timeout_s`` and ``max_output_bytes``. Languages not named
    use espeak's voice for the language at ``default_rate_wpm``. Raises ``ValueError``.
    """
    rate = DEFAULT_RATE_WPM if default_rate_wpm is None else default_rate_wpm
    _check_rate_option(rate, "the default speech rate")
    by_language: dict[str, SpeechEngine] = {}
    for language, options in config.items():
        if not isinstance(language, str) or not _language_key(language):
            raise ValueError(f"speech voices: {language!r} is not a language like \"ru\"")
        if not isinstance(options, Mapping):
            raise ValueError(f"speech voices: {language!r} must map to an object of options")
        by_language[language] = _engine_from_options(language, options, rate)
    if len({_language_key(lang) for lang in by_language}) < len(by_language):
        raise ValueError("speech voices: a language is configured twice")
    return LocaleVoices(EspeakEngine(rate_wpm=rate), by_language)


def _engine_from_options(
    language: str, options: Mapping[str, object], default_rate_wpm: int
) -> SpeechEngine:
    where = f"speech voice for {language!r}"
    kind = options.get("engine", "espeak")
    if kind == "espeak":
        _check_keys(options, _ESPEAK_KEYS, where)
        voice = options.get("voice")
        if voice is not None and (not isinstance(voice, str) or not voice.strip()):
            raise ValueError(f"{where}: \"voice\" must be an espeak-ng voice like \"ru\"")
        rate = options.get("rate_wpm", default_rate_wpm)
        return EspeakEngine(voice=voice, rate_wpm=_check_rate_option(rate, where))
    if kind == "command":
        _check_keys(options, _COMMAND_KEYS, where)
        argv = options.get("command")
        if (
            not isinstance(argv, list)
            or not argv
            or not all(isinstance(arg, str) and arg for arg in argv)
        ):
            raise ValueError(
                f"{where}: \"command\" must be a list of program and arguments, like "
                '["espeak-ng", "-v", "en-us", "--stdout"]'
            )
        timeout_s = options.get("timeout_s", DEFAULT_TIMEOUT_S)
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not (
            0 < timeout_s <= 600 and math.isfinite(timeout_s)
        ):
            raise ValueError(f"{where}: \"timeout_s\" must be a number of seconds, 0 < s <= 600")
        max_output = options.get("max_output_bytes", DEFAULT_MAX_OUTPUT_BYTES)
        if isinstance(max_output, bool) or not isinstance(max_output, int) or max_output <= 0:
            raise ValueError(f"{where}: \"max_output_bytes\" must be a positive whole number")
        return CommandEngine(argv, timeout_s=float(timeout_s), max_output_bytes=max_output)
    raise ValueError(f'{where}: "engine" must be "espeak" or "command", not {kind!r}')


def _check_keys(options: Mapping[str, object], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown option(s) {unknown}; allowed: {sorted(allowed)}")


def _check_rate_option(rate: object, where: str) -> int:
    """``rate`` if it is a speech rate espeak-ng takes; ValueError otherwise."""
    if isinstance(rate, bool) or not isinstance(rate, int) or not (
        MIN_RATE_WPM <= rate <= MAX_RATE_WPM
    ):
        raise ValueError(
            f"{where}: rate must be whole words per minute, {MIN_RATE_WPM}..{MAX_RATE_WPM}"
        )
    return rate


def _language_key(language: str) -> str:
    return language.strip().lower().replace("_", "-")


def _check_text(text: str, max_chars: int) -> None:
    if not text.strip():
        raise SpeechError("there is no text to speak")
    if len(text) > max_chars:
        raise SpeechError(f"text of {len(text)} characters is over the {max_chars} limit")


def _checked_speech(pcm: Pcm, text: str, voice: str) -> Pcm:
    if int(np.abs(pcm.samples.astype(np.int32)).max()) < _SILENCE_PEAK:
        raise SpeechError(f"{voice} rendered silence for {text[:40]!r}")
    return pcm
