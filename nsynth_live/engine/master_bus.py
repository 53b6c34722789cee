"""The master bus: preset gain, a per-hop gain rider and the soft clipper (no model, no voices).

Order in the engine (``docs/engine.md``): voices are mixed at the model rate, then
:meth:`MasterBus.process` applies the preset gain (ramped across the hop when it changes) and the
gain rider (a peak limiter per hop: attack within 2 ms, one-pole recovery), then the resampler, then
:func:`soft_clip` at the device rate (the resampler's ringing may overshoot the rider's peak).
"""

from __future__ import annotations

import math

import numpy as np

LIMITER_ATTACK_SECONDS = 0.002  # s, gain-rider ramp down (a 2 ms ramp, not a step)


def soft_clip(x: np.ndarray, knee: float) -> np.ndarray:
    """Identity below ``knee``, tanh above it, never beyond 1 (full scale); any shape, a copy when
    something was over the knee, else ``x`` itself."""
    magnitude = np.abs(x)
    over = magnitude > knee
    if np.any(over):
        soft = knee + (1.0 - knee) * np.tanh((magnitude[over] - knee) / (1.0 - knee))
        x = x.copy()
        x[over] = np.sign(x[over]) * soft
    return x


class MasterBus:
    """Preset gain and gain rider over hops of ``hop`` samples at ``sample_rate`` Hz.

    Parameters
    ----------
    hop : int
        Samples per hop.
    sample_rate : int
        Hz (the model's rate).
    threshold : float
        Peak level the rider aims at, per hop (full scale 1).
    release_seconds : float
        Time constant of the rider's recovery toward unity.
    gain_db : float
        Initial preset gain, dB.

    Attributes
    ----------
    gain_target : float
        Linear preset gain the bus is moving to.
    limiter_gain : float
        The rider's gain at the end of the last hop (1 = not limiting).
    """

    def __init__(self, *, hop: int, sample_rate: int, threshold: float, release_seconds: float,
                 gain_db: float = 0.0) -> None:
        self._n = np.arange(1, hop + 1, dtype=np.float64)
        self._hop = hop
        self._threshold = float(threshold)
        self._attack_samples = LIMITER_ATTACK_SECONDS * sample_rate
        self._recovery = 1.0 - math.exp(-(hop / sample_rate) / release_seconds)
        self.gain_target = 10.0 ** (gain_db / 20.0)
        self._gain = self.gain_target
        self.limiter_gain = 1.0

    def set_gain_db(self, gain_db: float) -> None:
        """New preset gain; reached by a linear ramp over the next hop."""
        self.gain_target = 10.0 ** (gain_db / 20.0)

    @property
    def gain(self) -> float:
        """Linear gain the bus applies now: preset gain times the rider's."""
        return float(self.gain_target * self.limiter_gain)

    def process(self, mono: np.ndarray) -> np.ndarray:
        """One hop: ``(hop,)`` or ``(channels, hop)`` float64 -> same, gain-ramped and limited (one
        gain for every channel, from the peak over all of them)."""
        n, hop = self._n, self._hop
        gain = self._gain + (self.gain_target - self._gain) * n / hop
        self._gain = self.gain_target
        x = mono * gain
        peak = float(np.max(np.abs(x))) if x.size else 0.0
        target = min(1.0, self._threshold / peak) if peak > 0 else 1.0
        if target < self.limiter_gain:  # attack: reach the target within 2 ms
            new = target
            ramp = np.minimum(n / self._attack_samples, 1.0)
        else:  # recovery: one-pole toward unity, ramped over the hop
            new = self.limiter_gain + (1.0 - self.limiter_gain) * self._recovery
            ramp = n / hop
        limiter = self.limiter_gain + (new - self.limiter_gain) * ramp
        self.limiter_gain = new
        return x * limiter
