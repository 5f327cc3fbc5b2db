"""Uploads are decoded in a worker process: a file that crashes, stalls or bloats the decoder
is refused as `audio-unreadable`, the worker is replaced, and the service's process goes on."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import numpy as np
import pytest

from audio.errors import UploadRefused
from audio.isolated import IsolatedDecoder
from audio.upload import Clip, UploadLimits, decode_upload
from audio.wav import wav_bytes

LIMITS = UploadLimits()


def tone() -> bytes:
    t = np.arange(8000) / 8000
    return wav_bytes((np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes())


def crashing(data: bytes, filename: str, limits: UploadLimits) -> Clip:
    if data == b"crash":
        os.kill(os.getpid(), signal.SIGSEGV)  # what a decoder bug does to its process
    return decode_upload(data, filename, limits)


def stalling(data: bytes, filename: str, limits: UploadLimits) -> Clip:
    if data == b"stall":
        time.sleep(60)
    return decode_upload(data, filename, limits)


def bloating(data: bytes, filename: str, limits: UploadLimits) -> Clip:
    if data == b"bloat":
        bytearray(4 * 1024**3)  # over the worker's address-space limit
    return decode_upload(data, filename, limits)


def refusal(decoder: IsolatedDecoder, data: bytes) -> UploadRefused:
    with pytest.raises(UploadRefused) as refused:
        asyncio.run(decoder.decode(data, "x.wav", LIMITS))
    return refused.value


def test_a_worker_decodes_as_the_service_would() -> None:
    decoder = IsolatedDecoder()
    try:
        clip = asyncio.run(decoder.decode(tone(), "tone.wav", LIMITS))
        assert clip == decode_upload(tone(), "tone.wav", LIMITS)
        refused = refusal(decoder, b"not audio")  # the worker's own refusals come back whole
        assert refused.code == "audio-unreadable" and "WAV" in refused.message
    finally:
        decoder.close()


@pytest.mark.parametrize(("decode", "data", "says"), [
    (crashing, b"crash", "decoder failed"),
    (stalling, b"stall", "took over"),
    (bloating, b"bloat", "more memory"),
])
def test_a_file_that_breaks_the_decoder_is_refused_and_the_next_one_decodes(
    decode: object, data: bytes, says: str,
) -> None:
    decoder = IsolatedDecoder(timeout_s=3, decode=decode)  # type: ignore[arg-type]
    try:
        refused = refusal(decoder, data)
        assert refused.code == "audio-unreadable" and says in refused.message
        assert asyncio.run(decoder.decode(tone(), "tone.wav", LIMITS)).duration_s == 1.0
    finally:
        decoder.close()
