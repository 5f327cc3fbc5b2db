"""Text to speech with pyttsx3 2.99 over espeak-ng, rendered to 16-bit PCM (22050 Hz mono).

What this module is built around (measured here with pyttsx3 2.99 and espeak-ng 1.51):

- espeak-ng is initialised once per process and has a single synthesis callback. Each new pyttsx3
  engine replaces it and each engine garbage-collected sets it to NULL: one engine per render hung
  (callback gone) or crashed the process (segfault, a callback still in flight on espeak's thread).
  Re-using one engine for repeated ``runAndWait`` works and costs the same (~11 ms for a 10-word
  phrase either way), so the process holds exactly one engine, behind one lock, since pyttsx3
  engines are not thread-safe.
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
"""

import asyncio
import ctypes
import logging
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyttsx3

from audio.errors import AudioFormatError, SpeechError
from audio.wav import Pcm, load_wav

_log = logging.getLogger(__name__)

DEFAULT_RATE_WPM = 160
MIN_RATE_WPM, MAX_RATE_WPM = 80, 450  # espeak-ng's own range
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_CHARS = 2000
_SILENCE_PEAK = 328  # -40 dBFS: a render that never gets louder than this has no speech in it
_IDLE_POLL_S = 0.001
_MBROLA_PREFIX = "mb/"  # mbrola voices are 16 kHz; the driver labels every WAV 22050 Hz


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


class SpeechSynthesizer:
    """Renders text to speech. Safe to share between threads; renders run one at a time."""

    def __init__(
        self,
        *,
        default_rate_wpm: int = DEFAULT_RATE_WPM,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> None:
        self._default_rate_wpm = _checked_rate(default_rate_wpm)
        self._timeout_s = timeout_s
        self._max_chars = max_chars

    def fingerprint(self, language: str, *, rate_wpm: int | None = None) -> str:
        """Everything besides the text that decides the sound: engine version, voice, rate."""
        voice_id = pick_voice(_ENGINE.voices(), language)
        rate = self._rate(rate_wpm)
        return f"espeak-ng {_ENGINE.version()}; voice {voice_id}; rate {rate}"

    def render(self, text: str, language: str, *, rate_wpm: int | None = None) -> Pcm:
        """``text`` spoken in ``language``; blocks the calling thread (see ``render_async``)."""
        if not text.strip():
            raise SpeechError("there is no text to speak")
        if len(text) > self._max_chars:
            raise SpeechError(f"text of {len(text)} characters is over the {self._max_chars} limit")
        voice_id = pick_voice(_ENGINE.voices(), language)
        rate = self._rate(rate_wpm)
        with tempfile.TemporaryDirectory(prefix="ringback-tts-") as tmp:
            path = Path(tmp) / "speech.wav"
            _ENGINE.synthesize(text, voice_id, rate, path, self._timeout_s)
            try:
                pcm = load_wav(path)
            except (AudioFormatError, OSError) as exc:
                raise SpeechError(f"espeak-ng wrote no usable audio: {exc}") from exc
        if int(np.abs(pcm.samples.astype(np.int32)).max()) < _SILENCE_PEAK:
            raise SpeechError(f"espeak-ng rendered silence for {text[:40]!r} ({voice_id})")
        return pcm

    async def render_async(self, text: str, language: str, *, rate_wpm: int | None = None) -> Pcm:
        """``render`` in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(self.render, text, language, rate_wpm=rate_wpm)

    def _rate(self, rate_wpm: int | None) -> int:
        return self._default_rate_wpm if rate_wpm is None else _checked_rate(rate_wpm)


def _checked_rate(rate_wpm: int) -> int:
    if not MIN_RATE_WPM <= rate_wpm <= MAX_RATE_WPM:
        raise SpeechError(f"speech rate {rate_wpm} wpm is outside {MIN_RATE_WPM}..{MAX_RATE_WPM}")
    return rate_wpm
