"""Loudness normalisation: the target, the peak ceiling, short clips and silence."""

import numpy as np
import pytest
from numpy.typing import NDArray

from audio.loudness import (
    PEAK_CEILING_DBFS,
    TARGET_LUFS,
    apply_gain,
    loudness_lufs,
    plan,
)

RATE = 16000


def tone(seconds: float, dbfs: float, frequency: float = 1000.0) -> NDArray[np.float64]:
    t = np.arange(int(RATE * seconds)) / RATE
    return 10 ** (dbfs / 20) * np.sin(2 * np.pi * frequency * t)


def peak_dbfs(samples: NDArray[np.float64]) -> float:
    return float(20 * np.log10(np.abs(samples).max()))


def test_a_quiet_clip_is_raised_to_the_target() -> None:
    quiet = tone(2.0, dbfs=-30)
    measured = loudness_lufs(quiet, RATE)
    assert measured == pytest.approx(-33, abs=0.5)  # a sine's loudness is its RMS, -3 dB
    normalisation = plan(measured, float(np.abs(quiet).max()))
    assert not normalisation.peak_limited
    louder = apply_gain(quiet, normalisation.gain_db)
    assert loudness_lufs(louder, RATE) == pytest.approx(TARGET_LUFS, abs=0.01)
    assert peak_dbfs(louder) < PEAK_CEILING_DBFS


def test_a_loud_clip_is_lowered_to_the_target() -> None:
    loud = tone(2.0, dbfs=-3)
    normalisation = plan(loudness_lufs(loud, RATE), float(np.abs(loud).max()))
    assert normalisation.gain_db == pytest.approx(TARGET_LUFS + 6, abs=0.5)  # from -6 LUFS
    assert loudness_lufs(apply_gain(loud, normalisation.gain_db), RATE) == pytest.approx(
        TARGET_LUFS, abs=0.01
    )


def test_the_peak_ceiling_wins_over_the_target() -> None:
    peaky = tone(2.0, dbfs=-40)
    peaky[RATE] = 0.5  # one click at -6 dBFS in a quiet tone
    normalisation = plan(loudness_lufs(peaky, RATE), float(np.abs(peaky).max()))
    assert normalisation.peak_limited
    limited = apply_gain(peaky, normalisation.gain_db)
    assert peak_dbfs(limited) == pytest.approx(PEAK_CEILING_DBFS, abs=1e-9)
    measured = loudness_lufs(limited, RATE)
    assert measured is not None and measured < TARGET_LUFS - 1  # quieter than asked, and says so


def test_clips_too_short_to_gate_are_measured_by_their_rms() -> None:
    short = tone(0.2, dbfs=-20)
    long = tone(2.0, dbfs=-20)
    approximation = loudness_lufs(short, RATE)
    gated = loudness_lufs(long, RATE)
    assert approximation is not None and gated is not None
    assert approximation == pytest.approx(gated, abs=0.5)


def test_silence_has_no_loudness_and_gets_no_gain() -> None:
    for silent in (np.zeros(RATE), np.zeros(100), np.zeros(0)):
        assert loudness_lufs(silent, RATE) is None
    normalisation = plan(None, 0.0)
    assert (normalisation.gain_db, normalisation.peak_limited) == (0.0, False)
