"""How far a morphing sound has gone from one timbre to another, measured from the audio.

Used by the morph's test and benchmark (``benchmarks/morph.py``). Three renders of the same notes
are compared frame by frame: ``audio`` (the timbre moves), ``source`` (held at the start timbre
throughout) and ``target`` (held at the end timbre throughout). With log-magnitude spectra
``S = log(|STFT| + floor)``, the remaining change at frame ``t`` is

    d(t) = mean_f |S_audio(t, f) - S_target(t, f)| / mean_f |S_source(t, f) - S_target(t, f)|

so ``1 - d(t)`` is the fraction of the spectral change done: 0 while the sound is the source's, 1
once it is the target's. Comparing with renders of the same notes (rather than one spectrum per
timbre) removes the note's own envelope from the measure.
"""

from __future__ import annotations

import numpy as np

DEFAULT_WINDOW_SECONDS = 0.02  # STFT window (Hann), long enough for 50-Hz partials to separate
DEFAULT_STEP_SECONDS = 0.0025  # between frames: the curve's time resolution
MAGNITUDE_FLOOR = 1e-4  # of full scale; keeps silence from dominating the log distance


def log_spectra(audio, *, sample_rate: float, window_seconds: float = DEFAULT_WINDOW_SECONDS,
                step_seconds: float = DEFAULT_STEP_SECONDS) -> tuple[np.ndarray, np.ndarray]:
    """Log-magnitude STFT of a mono signal.

    Returns
    -------
    spectra : (frames, bins) float64
        ``log(|X| + MAGNITUDE_FLOOR)``; |X| scaled so a full-scale sine peaks near 1.
    times : (frames,) float64
        Centre of each frame in s.
    """
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    window = max(16, int(round(window_seconds * sample_rate)))
    step = max(1, int(round(step_seconds * sample_rate)))
    if x.size < window:
        raise ValueError(f"audio of {x.size} samples is shorter than one window ({window})")
    starts = np.arange(0, x.size - window + 1, step)
    hann = np.hanning(window)
    frames = np.stack([x[s:s + window] * hann for s in starts])
    magnitude = np.abs(np.fft.rfft(frames, axis=1)) * (2.0 / hann.sum())
    return np.log(magnitude + MAGNITUDE_FLOOR), (starts + window / 2) / sample_rate


def change_done(audio, source, target, *, sample_rate: float, **stft) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of the spectral change from ``source`` to ``target`` done by ``audio``, per frame.

    Parameters
    ----------
    audio, source, target : (samples,) float
        Mono renders of the same notes, equally long and aligned (see the module docstring).
    sample_rate : float
        Hz.

    Returns
    -------
    done : (frames,) float64
        ``1 - d(t)``; frames where source and target hardly differ (below 5% of their median
        distance) are NaN.
    times : (frames,) float64
        s.
    """
    a, times = log_spectra(audio, sample_rate=sample_rate, **stft)
    s, _ = log_spectra(source, sample_rate=sample_rate, **stft)
    t, _ = log_spectra(target, sample_rate=sample_rate, **stft)
    span = np.abs(s - t).mean(axis=1)
    done = 1.0 - np.abs(a - t).mean(axis=1) / np.maximum(span, 1e-12)
    done[span < 0.05 * np.median(span)] = np.nan
    return done, times


def time_to_reach(done: np.ndarray, times: np.ndarray, *, start_seconds: float, fraction: float) -> float:
    """Seconds after ``start_seconds`` until ``done`` first reaches ``fraction`` and stays there
    (NaN frames ignored); ``inf`` if it never does."""
    after = times >= start_seconds
    values, at = done[after], times[after]
    below = np.flatnonzero(~(values >= fraction) & np.isfinite(values))
    if below.size == 0:
        return float(at[0] - start_seconds) if at.size else float("inf")
    last = below[-1]
    if last + 1 >= at.size:
        return float("inf")
    return float(at[last + 1] - start_seconds)
