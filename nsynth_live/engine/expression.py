"""Brightness and gain amounts on the mix: what the mod wheel or aftertouch drive when a preset
assigns them (``[controls]``, ``docs/midi.md``).

* **Brightness** ``b`` in [0, 1]: a first-order high shelf above ``SHELF_HZ``, ``y = x + k (x - lp(x))``
  with ``lp`` a one-pole low-pass and ``k = 10 ** (b * BRIGHTNESS_MAX_DB / 20) - 1``: 0 dB at rest, up
  to +12 dB in the treble at full.
* **Gain** ``g`` in [0, 1]: ``10 ** (g * GAIN_MAX_DB / 20)``, 0 dB at rest, up to +6 dB (the master
  bus's gain rider then keeps peaks below full scale).

Both amounts ramp linearly across a hop from the last hop's value (no zipper steps). At rest
(both 0) the mix passes unchanged, bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter

SHELF_HZ = 1000.0
BRIGHTNESS_MAX_DB = 12.0
GAIN_MAX_DB = 6.0


class Expression:
    """The mix's brightness shelf and gain, one hop at a time.

    Parameters
    ----------
    hop : int
        Samples per hop.
    sample_rate : int
        Hz (the model's: this runs before the output resampler).
    channels : int
        Rows of the mix (1 mono, 2 stereo); each has its own filter state.
    """

    def __init__(self, *, hop: int, sample_rate: int, channels: int = 1) -> None:
        pole = math.exp(-2.0 * math.pi * SHELF_HZ / sample_rate)
        self._b = np.array([1.0 - pole])
        self._a = np.array([1.0, -pole])
        self._zi = np.zeros((channels, 1))
        self._shelf = 0.0  # k at the end of the last hop
        self._gain = 1.0
        self._ramp = np.arange(1, hop + 1, dtype=np.float64) / hop

    @property
    def gain(self) -> float:
        """The gain amount's linear gain at the end of the last hop (1 at rest)."""
        return self._gain

    def process(self, mix: np.ndarray, *, brightness: float, gain: float) -> np.ndarray:
        """``(channels, hop)`` float64 -> same, with the amounts (each in [0, 1]) ramped in over the hop."""
        low, self._zi = lfilter(self._b, self._a, mix, axis=-1, zi=self._zi)
        shelf = 10.0 ** (float(brightness) * BRIGHTNESS_MAX_DB / 20.0) - 1.0
        level = 10.0 ** (float(gain) * GAIN_MAX_DB / 20.0)
        if shelf == 0.0 and self._shelf == 0.0 and level == 1.0 and self._gain == 1.0:
            return mix
        k = self._shelf + (shelf - self._shelf) * self._ramp
        g = self._gain + (level - self._gain) * self._ramp
        self._shelf, self._gain = shelf, level
        return g * (mix + k * (mix - low))
