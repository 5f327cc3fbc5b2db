"""How long an upload takes to decode, normalise and convert (audio.upload.decode_upload).

    .venv/bin/python -m benchmarks.upload [--repeat 5]

Generates speech-band noise with a syllable envelope in memory for each case (3 minutes, the
longest upload accepted) and prints the median and worst time per case. Figures:
docs/performance.md ("Uploads").
"""

import argparse
import io
import statistics
import time

import numpy as np
import soundfile

from audio.upload import UploadLimits, decode_upload

CASES = [  # (name, rate, channels, format, subtype, extension)
    ("WAV 16-bit 48 kHz stereo", 48_000, 2, "WAV", "PCM_16", "wav"),
    ("WAV 24-bit 48 kHz stereo", 48_000, 2, "WAV", "PCM_24", "wav"),
    ("WAV float 44.1 kHz mono", 44_100, 1, "WAV", "FLOAT", "wav"),
    ("FLAC 16-bit 48 kHz stereo", 48_000, 2, "FLAC", "PCM_16", "flac"),
    ("OGG Vorbis 44.1 kHz stereo", 44_100, 2, "OGG", "VORBIS", "ogg"),
]
SECONDS = 180.0


def encoded(rate: int, channels: int, fmt: str, subtype: str) -> bytes:
    rng = np.random.default_rng(1)
    t = np.arange(int(rate * SECONDS)) / rate
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2
    samples = np.stack([rng.normal(0, 0.1, len(t)) * envelope for _ in range(channels)], axis=1)
    out = io.BytesIO()
    # In blocks: libsndfile 1.2.2's Vorbis encoder crashes (SIGSEGV) on one 3-minute write.
    with soundfile.SoundFile(out, "w", rate, channels, subtype, format=fmt) as sound:
        for start in range(0, len(samples), 65_536):
            sound.write(samples[start:start + 65_536])
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"| {SECONDS:.0f} s upload | size | median | worst |\n|---|---|---|---|")
    for name, rate, channels, fmt, subtype, extension in CASES:
        data = encoded(rate, channels, fmt, subtype)
        limits = UploadLimits(max_bytes=len(data))
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            decode_upload(data, f"upload.{extension}", limits)
            times.append(time.perf_counter() - started)
        print(f"| {name} | {len(data) / 1e6:.1f} MB | {statistics.median(times):.2f} s "
              f"| {max(times):.2f} s |")


if __name__ == "__main__":
    main()
