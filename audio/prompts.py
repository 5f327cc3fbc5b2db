"""Prompts ready for the line: G.711 in both laws, cached on disk under a content address.

Pipelines, all ending in 8 kHz 16-bit samples encoded to G.711 mu-law and A-law straight from
16 bits (never through 8-bit: that costs ~11 dB of SNR):

- text: the speech engine's ``Pcm`` -> loudness-normalised like uploads (``audio.loudness``,
  via ``audio.upload.to_line``) -> soxr to 8 kHz, so tips and recordings sound equally loud;
- an upload already converted by ``audio.upload.decode_upload``: its 8 kHz bytes as they are;
- a WAV file (``from_wav``, the operator's own file): soxr to 8 kHz, its level kept.

Cache layout: ``<directory>/<key>.sln`` (8 kHz signed 16-bit little-endian, what both laws were
encoded from), ``<key>.ulaw`` and ``<key>.alaw`` (headerless G.711 at 8000 Hz, one byte per
sample). ``key`` is the SHA-256 of the pipeline version and the source: for text, the text,
language and the engine's fingerprint (engine, version, voice, rate); for a WAV or an upload, the
SHA-256 of its bytes. Each file is written to a temporary name, synced and renamed into place, so
a crash never leaves a half file; a prompt is served only when all three files are present and
agree in length (two bytes of ``.sln`` per G.711 byte), otherwise it is made again. A small LRU in
memory sits on top of the disk.
"""

import asyncio
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from audio import g711
from audio.errors import AudioFormatError
from audio.g711 import Law
from audio.resample import FULL_SCALE, TARGET_RATE, to_8k
from audio.speech import SpeechEngine
from audio.upload import to_line
from audio.wav import DEFAULT_MAX_SECONDS, load_wav

_log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # bump whenever the pipeline changes what a key's files hold
DEFAULT_MEMORY_ENTRIES = 64
_KEY = re.compile(r"[0-9a-f]{64}")
_SUFFIX = {Law.ULAW: ".ulaw", Law.ALAW: ".alaw"}
_PCM_SUFFIX = ".sln"


@dataclass(frozen=True)
class EncodedPrompt:
    """A prompt as G.711 at 8000 Hz in both laws (one byte per sample).

    ``pcm16`` is the 8 kHz signed 16-bit little-endian audio both laws were encoded from (for
    previews and the music-on-hold export). Prompts the cache makes always have it; prompts built
    by hand for the line alone (tests, benchmarks) may leave it empty.
    """

    key: str
    ulaw: bytes
    alaw: bytes
    duration_s: float
    pcm16: bytes = b""

    def for_law(self, law: Law) -> bytes:
        return self.ulaw if law is Law.ULAW else self.alaw


class PromptCache:
    """Content-addressed prompts on disk with an LRU in memory. Safe to share between threads."""

    def __init__(
        self,
        directory: Path,
        speech: SpeechEngine | None = None,
        *,
        memory_entries: int = DEFAULT_MEMORY_ENTRIES,
        max_wav_seconds: float = DEFAULT_MAX_SECONDS,
    ) -> None:
        self._directory = directory
        self._speech = speech
        self._memory_entries = memory_entries
        self._max_wav_seconds = max_wav_seconds
        self._memory: OrderedDict[str, EncodedPrompt] = OrderedDict()
        self._memory_lock = threading.Lock()
        self._make_lock = threading.Lock()  # one maker per cache: a key is never made twice at once

    def get(self, key: str) -> EncodedPrompt | None:
        """The prompt stored under ``key``, from memory or disk; None when it is not (all) there."""
        if not _KEY.fullmatch(key):
            raise ValueError(f"not a prompt key: {key!r}")
        with self._memory_lock:
            prompt = self._memory.get(key)
            if prompt is not None:
                self._memory.move_to_end(key)
                return prompt
        prompt = self._load(key)
        if prompt is not None:
            self._remember(prompt)
        return prompt

    def from_wav(self, source: Path | str | bytes) -> EncodedPrompt:
        """The prompt for a 16-bit PCM WAV (a path or the file's bytes), converted on a miss.

        Raises ``AudioFormatError`` for a WAV we do not accept (see ``audio.wav.load_wav``).
        """
        if isinstance(source, bytes):
            digest = hashlib.sha256(source).hexdigest()
        else:
            with open(source, "rb") as stream:
                digest = hashlib.file_digest(stream, "sha256").hexdigest()
        key = _key("wav", digest)
        return self._get_or_make(
            key, lambda: to_8k(load_wav(source, max_seconds=self._max_wav_seconds))
        )

    def from_clip(self, pcm16: bytes) -> EncodedPrompt:
        """The prompt for 8 kHz s16le audio already normalised (``audio.upload.Clip.pcm16``)."""
        if len(pcm16) % 2:
            raise AudioFormatError(f"16-bit audio has an even length, got {len(pcm16)} bytes")
        key = _key("clip", hashlib.sha256(pcm16).hexdigest())
        return self._get_or_make(key, lambda: np.frombuffer(pcm16, dtype="<i2").astype(np.int16))

    async def from_text(self, text: str, language: str) -> EncodedPrompt:
        """The prompt for ``text`` spoken in ``language``, rendered in a worker thread on a miss.

        Raises ``SpeechError`` when it cannot be rendered (no voice for the language, ...).
        """
        speech = self._speech
        if speech is None:
            raise RuntimeError("this prompt cache was built without a speech engine")

        def render() -> NDArray[np.int16]:
            pcm = speech.render(text, language)
            samples, _ = to_line(pcm.samples.astype(np.float64) / FULL_SCALE, pcm.rate)
            return samples

        def make() -> EncodedPrompt:
            key = _key("text", speech.fingerprint(language), language, text)
            return self._get_or_make(key, render)

        return await asyncio.to_thread(make)

    def _get_or_make(self, key: str, make_8k: Callable[[], NDArray[np.int16]]) -> EncodedPrompt:
        found = self.get(key)
        if found is not None:
            return found
        with self._make_lock:
            found = self.get(key)  # made by another thread while we waited
            if found is not None:
                return found
            prompt = _encode(key, make_8k())
            self._store(prompt)
        self._remember(prompt)
        return prompt

    def _load(self, key: str) -> EncodedPrompt | None:
        try:
            pcm16 = self._pcm_path(key).read_bytes()
            ulaw = self._path(key, Law.ULAW).read_bytes()
            alaw = self._path(key, Law.ALAW).read_bytes()
        except FileNotFoundError:
            return None
        if not ulaw or len(ulaw) != len(alaw) or len(pcm16) != 2 * len(ulaw):
            _log.warning(
                "prompt %s is incomplete on disk (%d/%d/%d bytes); making it again",
                key,
                len(pcm16),
                len(ulaw),
                len(alaw),
            )
            return None
        return EncodedPrompt(key, ulaw, alaw, len(ulaw) / TARGET_RATE, pcm16)

    def _store(self, prompt: EncodedPrompt) -> None:
        self._directory.mkdir(parents=True, exist_ok=True)
        _write_atomically(self._pcm_path(prompt.key), prompt.pcm16)
        for law in Law:
            _write_atomically(self._path(prompt.key, law), prompt.for_law(law))

    def _remember(self, prompt: EncodedPrompt) -> None:
        with self._memory_lock:
            self._memory[prompt.key] = prompt
            self._memory.move_to_end(prompt.key)
            while len(self._memory) > self._memory_entries:
                self._memory.popitem(last=False)

    def _path(self, key: str, law: Law) -> Path:
        return self._directory / (key + _SUFFIX[law])

    def _pcm_path(self, key: str) -> Path:
        return self._directory / (key + _PCM_SUFFIX)


def _key(*source: str) -> str:
    encoded = json.dumps([FORMAT_VERSION, *source], ensure_ascii=False).encode()
    return hashlib.sha256(encoded).hexdigest()


def _encode(key: str, samples: NDArray[np.int16]) -> EncodedPrompt:
    if len(samples) == 0:
        raise AudioFormatError("audio is too short to make a prompt")
    return EncodedPrompt(
        key=key,
        ulaw=g711.encode(samples, Law.ULAW),
        alaw=g711.encode(samples, Law.ALAW),
        duration_s=len(samples) / TARGET_RATE,
        pcm16=samples.astype("<i2").tobytes(),
    )


def _write_atomically(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with open(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
