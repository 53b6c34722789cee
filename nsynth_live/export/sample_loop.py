"""Sustain loops for rendered notes: a seamless ``[start, end)`` span that a sampler repeats while a
key is held.

Method (``docs/formats.md``, "Sustain loop placement"): both loop
points are rising zero crossings inside the steady part of the note, an integer number of periods
apart; among all such pairs the one whose waveform around the seam matches best wins. Playing
``audio[start:end]`` over and over then continues the waveform at the seam as the note itself
would have continued it at ``end``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SILENCE_RMS = 1e-6  # RMS (full scale 1.0) under which the search window counts as silent (-120 dBFS)
MAX_START_CANDIDATES = 128  # loop starts tried (evenly thinned from the rising zero crossings)
PERIOD_TOLERANCE = 0.25  # periods: an end crossing may sit this far from an integer number of periods
SEAM_FLOOR_DB = -200.0  # dB reported for a bit-exact seam (instead of -inf)


@dataclass(frozen=True)
class LoopPoints:
    """A sustain loop found by :func:`find_sustain_loop`.

    Attributes
    ----------
    start : int
        First frame of the loop (a rising zero crossing: ``audio[start - 1] < 0 <= audio[start]``).
    end : int
        Frame after the last frame of the loop (exclusive; also a rising zero crossing), so the loop
        is ``audio[start:end]``. A WAV ``smpl`` chunk stores ``end - 1``.
    seam_db : float
        Mismatch at the seam in dB: the RMS of ``audio[end - w : end + w] - audio[start - w : start + w]``
        (``w`` = half a period, rounded up, so one whole period is compared) relative to the RMS of the
        loop ``audio[start:end]``. It measures what a listener hears at the splice: waveform-shape
        mismatch, a fractional-period phase error and the level step of a decaying note. About
        -20 dB is audible on a sine; below -30 dB the seam is inaudible on sustained tones.
    periods : int
        Number of fundamental periods in the loop: ``(end - start) ~= periods * sample_rate / f0_hz``.
    """

    start: int
    end: int
    seam_db: float
    periods: int

    def __post_init__(self):
        if not 0 <= self.start < self.end:
            raise ValueError(f"a loop needs 0 <= start < end, got {self.start}..{self.end}")

    @property
    def length_frames(self) -> int:
        """Loop length in frames."""
        return self.end - self.start


def find_sustain_loop(
    audio,
    *,
    sample_rate: float,
    f0_hz: float,
    search_start_seconds: float,
    search_end_seconds: float,
    min_loop_seconds: float = 0.25,
) -> LoopPoints:
    """Find a click-free sustain loop in the steady part of a mono note.

    Candidates are pairs of rising zero crossings ``(start, end)`` inside
    ``[search_start_seconds, search_end_seconds]`` whose distance is within a quarter period of an
    integer number ``k >= ceil(min_loop_seconds * f0_hz)`` of periods ``sample_rate / f0_hz``. Each
    pair is scored by the waveform match around the seam (``seam_db`` of :class:`LoopPoints`, a Gram
    matrix over one-period windows centred on every crossing); the best-matching pair is returned.
    An ``f0_hz`` a few cents off still works: the waveform match, not the nominal period, decides
    among the crossings near each multiple of the period.

    Parameters
    ----------
    audio : (time,) float
        One mono note, full scale 1.0.
    sample_rate : float
        Hz.
    f0_hz : float
        Fundamental frequency of the note, Hz (e.g. from
        :func:`nsynth_live.functional.pitch.estimate_f0_hz`); ``0 < f0_hz <= sample_rate / 2``.
    search_start_seconds, search_end_seconds : float
        Steady part of the note where both loop points must lie (Open NSynth Super loops 0.20-0.41
        of its 60000-sample notes). Half a period is kept free at both ends for the seam comparison.
    min_loop_seconds : float
        Shortest loop, seconds (short loops of a decaying note match best, but sound static).

    Returns
    -------
    LoopPoints

    Raises
    ------
    ValueError
        If ``audio`` is not 1-D finite, ``f0_hz``/``sample_rate`` are invalid, the search window lies
        outside the note or is shorter than ``min_loop_seconds`` plus one period, the window is silent,
        or no pair of rising zero crossings an integer number of periods apart exists (wrong
        ``f0_hz``, or noise). Each message names the value and the fix.
    """
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"audio must be mono with shape (time,), got shape {np.shape(audio)}; mix down first")
    if not np.all(np.isfinite(x)):
        raise ValueError("audio contains NaN or infinite samples")
    if not sample_rate > 0:
        raise ValueError(f"sample_rate must be positive (Hz), got {sample_rate!r}")
    if not 0 < f0_hz <= sample_rate / 2:
        raise ValueError(f"f0_hz must be in (0, sample_rate / 2 = {sample_rate / 2:g}] Hz, got {f0_hz!r}")
    if not min_loop_seconds > 0:
        raise ValueError(f"min_loop_seconds must be positive, got {min_loop_seconds!r}")
    n = x.shape[0]
    duration = n / sample_rate
    if not 0 <= search_start_seconds < search_end_seconds <= duration:
        raise ValueError(
            f"the search window {search_start_seconds!r}..{search_end_seconds!r} s must lie inside the "
            f"note (0..{duration:.4f} s) with start < end")

    period = sample_rate / f0_hz  # samples per period (fractional)
    half = max(1, math.ceil(period / 2))  # samples each side of a loop point compared at the seam
    k_min = max(1, math.ceil(min_loop_seconds * sample_rate / period))  # shortest loop, periods
    lo = max(int(math.ceil(search_start_seconds * sample_rate)), half, 1)
    hi = min(int(math.floor(search_end_seconds * sample_rate)), n - half)
    needed = (k_min + 1) * period
    if hi - lo < needed:
        raise ValueError(
            f"the search window {search_start_seconds:g}..{search_end_seconds:g} s holds "
            f"{max(hi - lo, 0) / sample_rate:.4f} s of usable audio; a loop of min_loop_seconds="
            f"{min_loop_seconds:g} s at f0 {f0_hz:g} Hz needs {needed / sample_rate:.4f} s: widen the "
            "window or lower min_loop_seconds")
    window_rms = float(np.sqrt(np.mean(x[lo:hi] ** 2)))
    if window_rms < SILENCE_RMS:
        raise ValueError(
            f"the search window is silent (RMS {window_rms:.2e} < {SILENCE_RMS:.0e}); a silent note has "
            "no sustain loop: render it again or move the window into the note")

    rising = np.flatnonzero((x[lo - 1 : hi] < 0) & (x[lo:hi + 1] >= 0)) + lo  # frames n: x[n-1] < 0 <= x[n]
    if rising.size < 2:
        raise ValueError(
            f"found {rising.size} rising zero crossings in the search window: the note has a DC offset "
            "or no oscillation there; remove DC or move the window")

    offsets = np.arange(-half, half)
    windows = x[rising[:, None] + offsets[None, :]]  # (crossings, 2 * half)
    energy = np.einsum("ij,ij->i", windows, windows)
    starts = np.unique(np.linspace(0, rising.size - 1, min(MAX_START_CANDIDATES, rising.size)).round().astype(int))
    # mismatch energy of every (start, end) pair: |w_e - w_s|^2 = |w_e|^2 + |w_s|^2 - 2 w_e . w_s
    mismatch = energy[starts, None] + energy[None, :] - 2.0 * (windows[starts] @ windows.T)  # (starts, ends)
    distance = rising[None, :] - rising[starts, None]  # frames
    periods = np.rint(distance / period)
    valid = (periods >= k_min) & (np.abs(distance - periods * period) <= PERIOD_TOLERANCE * period)
    if not valid.any():
        raise ValueError(
            f"no pair of rising zero crossings is an integer number (>= {k_min}) of periods of "
            f"{f0_hz:g} Hz apart in the search window: check f0_hz (estimate it from the note) or widen "
            "the window")
    square_sum = np.concatenate([[0.0], np.cumsum(x**2)])
    loop_power = (square_sum[rising[None, :]] - square_sum[rising[starts, None]]) / np.maximum(distance, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.maximum(mismatch, 0.0) / (2 * half) / loop_power
    score = np.where(valid & (loop_power > 0), score, np.inf)
    row, col = np.unravel_index(int(np.argmin(score)), score.shape)
    best = float(score[row, col])
    seam_db = 10.0 * math.log10(best) if best > 0 else SEAM_FLOOR_DB
    return LoopPoints(
        start=int(rising[starts[row]]), end=int(rising[col]), seam_db=max(seam_db, SEAM_FLOOR_DB),
        periods=int(periods[row, col]))


def bake_loop_crossfade(audio, loop: LoopPoints, *, sample_rate: float, f0_hz: float,
                        crossfade_seconds: float = 0.05) -> tuple[np.ndarray, float]:
    """Blend the end of a loop into what precedes its start, so that the wrap is the note's own waveform.

    The last ``n`` frames of the loop become ``(1 - g) * audio[end - n + i] + g * audio[start - n + i]``
    with ``g`` rising linearly from 0 to 1 (the two spans are period-aligned, so a linear fade keeps
    the level). A sampler that jumps from ``end - 1`` to ``start`` then plays ``audio[start - 1]``,
    ``audio[start]``: the waveform as the note itself continued there, whatever the note's level or
    timbre drifted by over the loop. This is the usual "crossfade loop" of sample editors; the
    loop points stay where they are and every sampler plays it without a crossfade opcode.

    Parameters
    ----------
    audio : (time,) float
        The note.
    loop : LoopPoints
        From :func:`find_sustain_loop`.
    sample_rate, f0_hz : float
        Hz; the seam is measured over one period.
    crossfade_seconds : float
        Length of the blend, s; shortened to half the loop and to what precedes ``start``.

    Returns
    -------
    audio : (time,) float64
        A copy with the blend applied (frames outside ``[end - n, end)`` untouched).
    seam_db : float
        The seam as played: RMS of ``(audio[end - w : end], audio[start : start + w])`` minus
        ``audio[start - w : start + w]`` (``w`` half a period), relative to the loop's RMS.

    Raises
    ------
    ValueError
        If the loop lies outside ``audio`` or ``crossfade_seconds`` is not positive.
    """
    x = np.asarray(audio, dtype=np.float64).copy()
    start, end = loop.start, loop.end
    if not 0 < start < end <= x.shape[0]:
        raise ValueError(f"loop {start}..{end} does not fit {x.shape[0]} frames with a frame before its start")
    if not crossfade_seconds > 0:
        raise ValueError(f"crossfade_seconds must be > 0, got {crossfade_seconds!r}")
    n = int(min(round(crossfade_seconds * sample_rate), (end - start) // 2, start))
    if n >= 1:
        gain = (np.arange(n) + 1.0) / n  # 1/n .. 1: the last frame of the loop is audio[start - 1]
        x[end - n : end] = (1.0 - gain) * x[end - n : end] + gain * x[start - n : start]
    half = max(1, math.ceil(sample_rate / f0_hz / 2))
    half = min(half, start, end - start)
    played = np.concatenate([x[end - half : end], x[start : start + half]])
    natural = np.asarray(audio, dtype=np.float64)[start - half : start + half]
    loop_rms = float(np.sqrt(np.mean(x[start:end] ** 2)))
    error_rms = float(np.sqrt(np.mean((played - natural) ** 2)))
    if loop_rms <= 0 or error_rms <= 0:
        return x, SEAM_FLOOR_DB
    return x, max(20.0 * math.log10(error_rms / loop_rms), SEAM_FLOOR_DB)
