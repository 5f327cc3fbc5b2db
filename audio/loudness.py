"""Loudness normalisation, so uploaded recordings and rendered speech sound equally loud.

Target: integrated loudness of **-20 LUFS** (ITU-R BS.1770-4, measured with pyloudnorm at the
source's own rate, before resampling). Headroom rule: the gain is lowered when needed so that the
**sample peak** of the audio it is applied to stays at or below **-1 dBFS**; such a clip ends up
quieter than the target and says so (``peak_limited``). Clips shorter than BS.1770's 400 ms gating
block cannot be measured by pyloudnorm: their loudness is approximated by their mean square level
(exact for a 1 kHz tone, where K-weighting is flat). Silence has no loudness and gets no gain.

Samples are float64 with full scale at 1.0. Everything here is pure: numpy in, numpy out.
"""

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

TARGET_LUFS = -20.0  # what espeak-ng's speech reaches under the peak ceiling (docs/audio.md)
PEAK_CEILING_DBFS = -1.0
GATING_BLOCK_S = 0.4  # pyloudnorm's (BS.1770's) block: shorter audio cannot be gated


@dataclass(frozen=True)
class Normalisation:
    """What normalising a clip did: its loudness before, the gain applied, and why that gain."""

    loudness_lufs: float | None  # None: silent, nothing to measure
    gain_db: float
    peak_limited: bool  # the gain was lowered to keep the peak at PEAK_CEILING_DBFS


def loudness_lufs(samples: NDArray[np.float64], rate: int) -> float | None:
    """Integrated loudness of mono ``samples`` in LUFS (RMS approximation under 0.4 s)."""
    if len(samples) == 0:
        return None
    if len(samples) >= GATING_BLOCK_S * rate:
        import pyloudnorm  # loads scipy.signal (~2 s): only when something is measured

        measured = float(pyloudnorm.Meter(rate).integrated_loudness(samples))
    else:
        mean_square = float(np.mean(samples**2))
        measured = 10 * math.log10(mean_square) if mean_square > 0 else -math.inf
    return measured if math.isfinite(measured) else None


def plan(loudness: float | None, peak: float) -> Normalisation:
    """The gain that takes ``loudness`` to the target without lifting ``peak`` over the ceiling.

    ``peak`` is the largest absolute sample of the audio the gain will be applied to.
    """
    if loudness is None or peak <= 0:
        return Normalisation(loudness, 0.0, peak_limited=False)
    wanted = TARGET_LUFS - loudness
    ceiling = PEAK_CEILING_DBFS - 20 * math.log10(peak)
    if wanted > ceiling:
        return Normalisation(loudness, ceiling, peak_limited=True)
    return Normalisation(loudness, wanted, peak_limited=False)


def apply_gain(samples: NDArray[np.float64], gain_db: float) -> NDArray[np.float64]:
    """``samples`` scaled by ``gain_db``."""
    scaled: NDArray[np.float64] = samples * 10 ** (gain_db / 20)
    return scaled
