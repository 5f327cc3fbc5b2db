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


def to_8k(pcm: Pcm) -> NDArray[np.int16]:
    """``pcm`` at 8000 Hz, mono 16-bit."""
    if pcm.rate == TARGET_RATE:
        return pcm.samples.copy()
    resampled: NDArray[np.float64] = soxr.resample(
        pcm.samples.astype(np.float64), pcm.rate, TARGET_RATE, quality="HQ"
    )
    result: NDArray[np.int16] = np.clip(np.round(resampled), -32768, 32767).astype(np.int16)
    return result
