"""Resampling to the 8 kHz of G.711, band-limited by libsoxr (python-soxr, "HQ" quality).

soxr's HQ filter passes up to about 91% of the new Nyquist frequency (3.65 kHz here) and
attenuates everything above 4 kHz by more than 100 dB, so nothing aliases into the band.
The filter works in floating point; the result is rounded and clipped to 16 bits (a filter can
overshoot near full scale, and clipping is a far smaller harm than wrapping round).
"""

import numpy as np
import soxr
from numpy.typing import NDArray

from audio.wav import Pcm

TARGET_RATE = 8000
FULL_SCALE = 32768.0  # float samples of magnitude 1.0 are this on the 16-bit scale


def to_8k(pcm: Pcm) -> NDArray[np.int16]:
    """``pcm`` at 8000 Hz, mono 16-bit."""
    if pcm.rate == TARGET_RATE:
        return pcm.samples.copy()
    return to_int16(resample_to_8k(pcm.samples.astype(np.float64), pcm.rate))


def resample_to_8k(samples: NDArray[np.float64], rate: int) -> NDArray[np.float64]:
    """Mono ``samples`` at ``rate`` Hz resampled to 8000 Hz, still in floating point."""
    if rate == TARGET_RATE:
        return samples.copy()
    resampled: NDArray[np.float64] = soxr.resample(samples, rate, TARGET_RATE, quality="HQ")
    return resampled


def to_int16(samples: NDArray[np.float64]) -> NDArray[np.int16]:
    """Samples on the 16-bit scale rounded and clipped (never wrapped) to int16."""
    result: NDArray[np.int16] = np.clip(np.round(samples), -32768, 32767).astype(np.int16)
    return result
