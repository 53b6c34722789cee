"""Measurements used by the engine and render tests (pure numpy)."""

from __future__ import annotations

import numpy as np


def peak_frequency_hz(signal: np.ndarray, sample_rate: float, *, min_hz: float = 20.0) -> float:
    """Frequency of the strongest spectral peak (Hann window, parabolic interpolation on log |X|)."""
    x = np.asarray(signal, dtype=np.float64)
    x = x - x.mean()
    n_fft = 1 << int(np.ceil(np.log2(len(x) * 4)))
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n_fft)) + 1e-20
    low = int(min_hz * n_fft / sample_rate)
    k = low + int(np.argmax(spectrum[low:-1]))
    a, b, c = np.log(spectrum[k - 1:k + 2])
    offset = 0.5 * (a - c) / (a - 2 * b + c)
    return (k + offset) * sample_rate / n_fft


def windowed_rms(signal: np.ndarray, window: int) -> np.ndarray:
    """RMS of consecutive non-overlapping windows of ``window`` samples."""
    x = np.asarray(signal, dtype=np.float64)
    n = len(x) // window
    return np.sqrt(np.mean(x[: n * window].reshape(n, window) ** 2, axis=1))


def max_jump(signal: np.ndarray) -> float:
    """Largest sample-to-sample difference (a click shows as a spike here)."""
    return float(np.max(np.abs(np.diff(np.asarray(signal, dtype=np.float64))))) if len(signal) > 1 else 0.0


def band_energy_ratio(signal: np.ndarray, sample_rate: float, *, split_hz: float) -> float:
    """Energy above ``split_hz`` divided by the energy below it."""
    x = np.asarray(signal, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1.0 / sample_rate)
    return float(spectrum[freqs >= split_hz].sum() / spectrum[freqs < split_hz].sum())


def render_hops(engine, hops: int) -> np.ndarray:
    """Concatenate ``hops`` calls of ``engine.render_hop()``: (frames, channels) float32."""
    return np.concatenate([engine.render_hop() for _ in range(hops)], axis=0)
