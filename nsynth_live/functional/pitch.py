"""Fundamental-frequency (f0) estimation for monophonic pitched notes.

Two levels are offered:

* :func:`track_f0_hz` - one f0 per analysis window (NaN where a window is not periodic), each refined
  to a few cents by :func:`refine_f0_hz`;
* :func:`estimate_f0_hz` - one f0 for a whole note (for checking a rendered note's pitch, or for
  cutting wavetable frames), which refuses silence, noise and chords with :class:`NoStablePitchError`.

Method
------
Candidate: the cumulative-mean-normalised difference function of YIN (de Cheveigne & Kawahara 2002,
"YIN, a fundamental frequency estimator for speech and music", JASA 111(4), steps 2-4): the first lag
whose normalised difference falls below a threshold, walked down to its local minimum. Taking the
*first* dip, not the deepest, is what keeps octave-down errors away; a weak fundamental still leaves
the signal periodic at the true period only, so octave-up errors need every odd harmonic to vanish.

Refinement: the normalised cross-correlation between the start of the window and a copy delayed by
``m`` candidate periods peaks at ``m`` true periods. The peak is located with parabolic
interpolation at ``m = 1, 2, 4, ...`` up to as many periods as half the window holds; the
interpolation error (a fraction of a sample) is divided by ``m``, which brings a 15-sample period
(MIDI 84 at 16 kHz) to well under a cent. Normalising the correlation makes the estimate insensitive
to a decaying envelope (piano, plucked notes).

Chord check: a chord in just intonation is exactly periodic with a low "virtual" fundamental under
its notes. A real note has energy in at least one of its first three harmonics; a virtual
fundamental under a triad (4:5:6) does not. Equal-tempered chords are not periodic and fail the
periodicity test itself.

Limits
------
The result is the period of the waveform. Organ registrations with a sub-octave rank (a Hammond 16'
drawbar, FluidR3 GM programs 16-18; a 16' + quint "resultant" in program 19 at MIDI 72 and above)
repeat only every two (or four) notional periods and are reported one (or two) octaves under the
MIDI note, which is what a wavetable cut from them needs. A two-note fifth (2:3) is indistinguishable
from one note with a weak fundamental and is reported as its virtual root. Of 88 real triads tested
(FluidR3, 22 programs x 4 triads) 85 are refused; a tenor-sax and a steel-drum C3 triad pass as C2 and a
decaying nylon-guitar A minor triad as its root A3 (their upper notes are weak or gone in the windows
analysed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr

# Defaults (units in names). The range covers NSynth/SING notes MIDI 24-96 at 16 kHz with margin.
DEFAULT_FMIN_HZ = 30.0  # Hz, below B0 (30.9 Hz)
DEFAULT_FMAX_HZ = 2_100.0  # Hz, above C7 (2093 Hz)
DEFAULT_PERIODICITY_THRESHOLD = 0.15  # YIN normalised difference (0 = perfectly periodic), YIN sec. 4
DEFAULT_LOUD_FLOOR_DB = 30.0  # dB below the loudest window: windows analysed for a whole note
DEFAULT_SILENCE_RMS = 1e-4  # linear RMS (-80 dBFS): a note whose loudest window is quieter is silent
DEFAULT_MIN_VOICED_FRACTION = 0.5  # fraction of loud windows that must be periodic
DEFAULT_MAX_SPREAD_CENTS = 30.0  # cents, median absolute deviation of per-window f0 allowed
DEFAULT_LOW_HARMONIC_FLOOR_DB = 17.0  # dB, one of harmonics 1-3 must be within this of the strongest
# Measured on FluidR3 GM at 16 kHz (every 3rd program, MIDI 36-84): single notes within 13.9 dB (English
# horn at MIDI 36); triads locked on a virtual fundamental 20.4 dB or more under. 17 dB splits the gap.

YIN_UPSAMPLING = 4  # the YIN candidate is searched at a quarter-sample lag resolution
_MIN_REFINE_OVERLAP_PERIODS = 1.0  # periods compared in one correlation of the refinement


class NoStablePitchError(ValueError):
    """The signal has no single stable pitch (silence, noise, a chord, or a wandering pitch)."""


@dataclass(frozen=True)
class PitchTrack:
    """Per-window f0 of a mono signal.

    Attributes
    ----------
    times_seconds : (windows,) float64
        Centre of each analysis window, seconds from the first sample.
    f0_hz : (windows,) float64
        Refined fundamental frequency, Hz; NaN where the window is not periodic.
    aperiodicity : (windows,) float64
        YIN normalised difference at the chosen lag (0 = perfectly periodic, ~1 = noise).
    rms : (windows,) float64
        Root-mean-square level of each window (linear, same unit as the audio).
    window_samples, hop_samples : int
        Analysis window and hop, samples.
    """

    times_seconds: np.ndarray
    f0_hz: np.ndarray
    aperiodicity: np.ndarray
    rms: np.ndarray
    window_samples: int
    hop_samples: int

    @property
    def voiced(self) -> np.ndarray:
        """(windows,) bool: True where ``f0_hz`` is finite."""
        return np.isfinite(self.f0_hz)


def _as_mono(audio, *, name: str = "audio") -> np.ndarray:
    x = np.asarray(audio)
    if x.ndim != 1:
        raise ValueError(
            f"{name} must be mono with shape (time,), got shape {x.shape}; mix or pick a channel first"
        )
    if not np.issubdtype(x.dtype, np.floating) and not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"{name} must hold real numbers, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite samples; clean the signal first")
    return x


def _check_range(sample_rate: float, fmin_hz: float, fmax_hz: float) -> None:
    if not sample_rate > 0:
        raise ValueError(f"sample_rate must be > 0 Hz, got {sample_rate!r}")
    if not 0 < fmin_hz < fmax_hz:
        raise ValueError(f"need 0 < fmin_hz < fmax_hz, got fmin_hz={fmin_hz!r}, fmax_hz={fmax_hz!r}")
    if fmax_hz > sample_rate / 4:
        raise ValueError(
            f"fmax_hz={fmax_hz!r} is above sample_rate / 4 = {sample_rate / 4} Hz: a period of fewer than "
            "4 samples cannot be measured; lower fmax_hz or resample the audio to a higher rate"
        )


def default_window_samples(*, sample_rate: float, fmin_hz: float) -> int:
    """Analysis window holding three periods of ``fmin_hz`` (at least 256 samples).

    Three periods leave room for the YIN integration (one window minus the largest lag) and for the
    multi-period refinement.
    """
    return max(256, int(np.ceil(3.0 * sample_rate / fmin_hz)))


def _parabolic_offset(y_left: float, y_mid: float, y_right: float) -> float:
    """Offset in (-0.5, 0.5) of the vertex of the parabola through three equally spaced points."""
    denominator = y_left - 2.0 * y_mid + y_right
    if denominator == 0.0:
        return 0.0
    offset = 0.5 * (y_left - y_right) / denominator
    return float(np.clip(offset, -0.5, 0.5))


def yin_normalized_difference(window: np.ndarray, *, max_lag_samples: int) -> np.ndarray:
    """Cumulative-mean-normalised difference function of YIN (YIN paper, eq. 6 and 8).

    Parameters
    ----------
    window : (time,) float
        One analysis window; its first ``time - max_lag_samples`` samples are compared with delayed
        copies.
    max_lag_samples : int
        Largest lag, samples; must be below ``time / 2`` so the comparison keeps at least as many
        samples as the lag.

    Returns
    -------
    (max_lag_samples + 1,) float64
        ``d'(tau)`` for ``tau = 0 .. max_lag_samples`` (``d'(0) = 1``); 0 means the window repeats
        exactly after ``tau`` samples.

    Raises
    ------
    ValueError
        If ``max_lag_samples`` is not in ``[2, time / 2)``.
    """
    x = np.asarray(window, dtype=np.float64)
    n = x.shape[-1]
    if not 2 <= max_lag_samples < n / 2:
        raise ValueError(f"max_lag_samples must be in [2, {n / 2}) for a window of {n} samples, got {max_lag_samples}")
    integration = n - max_lag_samples
    n_fft = 1 << int(np.ceil(np.log2(n + integration)))
    spectrum_full = np.fft.rfft(x, n_fft)
    spectrum_head = np.fft.rfft(x[:integration], n_fft)
    # r[tau] = sum_{j < integration} x[j] x[j + tau]
    correlation = np.fft.irfft(spectrum_full * np.conj(spectrum_head), n_fft)[: max_lag_samples + 1]
    squares = np.concatenate([[0.0], np.cumsum(x * x)])
    energy_head = squares[integration]
    lags = np.arange(max_lag_samples + 1)
    energy_delayed = squares[lags + integration] - squares[lags]
    difference = np.maximum(energy_head + energy_delayed - 2.0 * correlation, 0.0)
    cumulative = np.cumsum(difference[1:])
    normalized = np.ones(max_lag_samples + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = difference[1:] * lags[1:] / cumulative
    normalized[1:] = np.where(cumulative > 0, ratio, 1.0)
    return normalized


def _yin_candidate(window: np.ndarray, *, min_lag: int, max_lag: int, threshold: float) -> tuple[float, float]:
    """(lag in samples with parabolic refinement, aperiodicity); lag is NaN if no dip below threshold."""
    normalized = yin_normalized_difference(window, max_lag_samples=max_lag + 1)
    search = normalized[min_lag : max_lag + 1]
    below = np.flatnonzero(search < threshold)
    if below.size == 0:
        best = int(np.argmin(search)) + min_lag
        return float("nan"), float(normalized[best])
    lag = int(below[0]) + min_lag
    while lag + 1 <= max_lag and normalized[lag + 1] < normalized[lag]:
        lag += 1
    offset = _parabolic_offset(normalized[lag - 1], normalized[lag], normalized[lag + 1])
    return lag + offset, float(normalized[lag])


def _normalized_correlation(x: np.ndarray, lags: np.ndarray, overlap: int) -> np.ndarray:
    head = x[:overlap]
    head_norm = np.sqrt(np.dot(head, head))
    values = np.empty(lags.shape[0])
    for i, lag in enumerate(lags):
        delayed = x[lag : lag + overlap]
        denominator = head_norm * np.sqrt(np.dot(delayed, delayed))
        values[i] = np.dot(head, delayed) / denominator if denominator > 0 else 0.0
    return values


def refine_f0_hz(segment, *, sample_rate: float, f0_hz: float) -> float:
    """Refine a rough f0 to a few cents on one stretch of a periodic signal.

    The normalised cross-correlation of the segment's first half with copies delayed by about
    ``m`` periods is maximised for ``m = 1, 2, 4, ...`` (each step's estimate predicts the next lag)
    and finally for as many periods as half the segment holds; the lag is located by parabolic
    interpolation and divided by ``m``.

    Parameters
    ----------
    segment : (time,) float
        Mono audio holding at least 2.5 periods of ``f0_hz`` (plus 4 samples); longer segments give
        finer estimates (well under a cent with 16 periods).
    sample_rate : float
        Hz.
    f0_hz : float
        Rough fundamental, Hz, within a quarter period (about +-4 semitones at worst, much less at
        high pitch) of the truth, e.g. from :func:`track_f0_hz`'s YIN candidate.

    Returns
    -------
    float
        Refined f0, Hz (the average over the segment if the pitch moves).

    Raises
    ------
    ValueError
        If the segment is too short for the requested f0 or holds non-finite values.
    """
    x = _as_mono(segment, name="segment")
    if not sample_rate > 0:
        raise ValueError(f"sample_rate must be > 0 Hz, got {sample_rate!r}")
    if not f0_hz > 0:
        raise ValueError(f"f0_hz must be > 0 Hz, got {f0_hz!r}")
    period = sample_rate / f0_hz  # samples
    n = x.shape[0]
    overlap = n // 2
    max_lag = n - overlap  # samples
    if overlap < _MIN_REFINE_OVERLAP_PERIODS * period or max_lag < 1.25 * period + 2:
        raise ValueError(
            f"segment of {n} samples is too short to refine f0={f0_hz:.3f} Hz (period {period:.2f} samples); "
            f"give at least {int(np.ceil(2.5 * period)) + 4} samples"
        )
    m = 1
    while True:
        expected_lag = m * period
        reach = max(2, int(np.ceil(period / 4)))
        low = max(1, int(np.floor(expected_lag)) - reach)
        high = min(max_lag - 1, int(np.ceil(expected_lag)) + reach)
        lags = np.arange(low, high + 1)
        values = _normalized_correlation(x, lags, overlap)
        best = int(np.argmax(values[1:-1])) + 1 if lags.size >= 3 else int(np.argmax(values))
        if 0 < best < lags.size - 1:
            offset = _parabolic_offset(values[best - 1], values[best], values[best + 1])
        else:
            offset = 0.0
        period = (lags[best] + offset) / m
        largest_m = int((max_lag - 1 - max(2, period / 4)) // period)
        if m >= largest_m:
            break
        m = min(2 * m, largest_m)
    return float(sample_rate / period)


def track_f0_hz(
    audio,
    *,
    sample_rate: float,
    fmin_hz: float = DEFAULT_FMIN_HZ,
    fmax_hz: float = DEFAULT_FMAX_HZ,
    window_samples: int | None = None,
    hop_samples: int | None = None,
    periodicity_threshold: float = DEFAULT_PERIODICITY_THRESHOLD,
    silence_rms: float = DEFAULT_SILENCE_RMS,
) -> PitchTrack:
    """Per-window f0 of a mono signal, each voiced window refined to a few cents.

    Parameters
    ----------
    audio : (time,) float
        Mono signal.
    sample_rate : float
        Hz.
    fmin_hz, fmax_hz : float
        Search range, Hz; ``fmax_hz <= sample_rate / 4``.
    window_samples : int, optional
        Analysis window, samples; default :func:`default_window_samples` (three periods of
        ``fmin_hz``). Must hold at least two periods of ``fmin_hz`` after the largest lag.
    hop_samples : int, optional
        Hop between windows, samples; default half a window.
    periodicity_threshold : float
        YIN normalised-difference threshold under which a window counts as periodic (YIN sec. 4).
    silence_rms : float
        Windows quieter than this linear RMS are unvoiced without analysis.

    Returns
    -------
    PitchTrack
        Unvoiced windows have ``f0_hz = NaN``. A signal shorter than one window is analysed as one
        zero-padded window.

    Raises
    ------
    ValueError
        On a non-mono or non-finite signal, a bad range, or a window too short for ``fmin_hz``.
    """
    x = _as_mono(audio)
    _check_range(sample_rate, fmin_hz, fmax_hz)
    if window_samples is None:
        window_samples = default_window_samples(sample_rate=sample_rate, fmin_hz=fmin_hz)
    max_lag = int(np.ceil(sample_rate / fmin_hz))
    min_lag = max(2, int(np.floor(sample_rate / fmax_hz)))
    if window_samples < 2 * max_lag + 4:
        raise ValueError(
            f"window_samples={window_samples} is too short for fmin_hz={fmin_hz} Hz at {sample_rate} Hz; "
            f"use at least {2 * max_lag + 4} samples or raise fmin_hz"
        )
    if hop_samples is None:
        hop_samples = window_samples // 2
    if hop_samples < 1:
        raise ValueError(f"hop_samples must be >= 1, got {hop_samples}")
    if not 0 < periodicity_threshold < 1:
        raise ValueError(f"periodicity_threshold must be in (0, 1), got {periodicity_threshold!r}")
    if x.shape[0] < window_samples:
        x = np.pad(x, (0, window_samples - x.shape[0]))
    n_windows = 1 + (x.shape[0] - window_samples) // hop_samples
    # The YIN candidate is searched on a band-limited upsampled copy: at integer lags a bright note
    # (energy up to Nyquist) can miss its period by half a sample and look aperiodic there while it
    # looks periodic at twice the period (an octave-down error).
    up = YIN_UPSAMPLING
    x_up = soxr.resample(x, sample_rate, up * sample_rate, quality="HQ")
    f0 = np.full(n_windows, np.nan)
    aperiodicity = np.ones(n_windows)
    rms = np.empty(n_windows)
    for i in range(n_windows):
        window = x[i * hop_samples : i * hop_samples + window_samples]
        rms[i] = np.sqrt(np.mean(window * window))
        if rms[i] < silence_rms:
            continue
        window_up = x_up[up * i * hop_samples : up * (i * hop_samples + window_samples)]
        lag_up, aperiodicity[i] = _yin_candidate(
            window_up, min_lag=up * min_lag, max_lag=up * max_lag, threshold=periodicity_threshold
        )
        if np.isfinite(lag_up):
            refined = refine_f0_hz(window, sample_rate=sample_rate, f0_hz=up * sample_rate / lag_up)
            if fmin_hz * 0.97 <= refined <= fmax_hz * 1.03:
                f0[i] = refined
    times = (np.arange(n_windows) * hop_samples + window_samples / 2) / sample_rate
    return PitchTrack(
        times_seconds=times,
        f0_hz=f0,
        aperiodicity=aperiodicity,
        rms=rms,
        window_samples=int(window_samples),
        hop_samples=int(hop_samples),
    )


def harmonic_levels_db(window, *, sample_rate: float, f0_hz: float, n_harmonics: int) -> np.ndarray:
    """Peak level of each harmonic of ``f0_hz`` in one window, dB relative to the strongest.

    Parameters
    ----------
    window : (time,) float
        Mono audio, a few periods long at least.
    sample_rate, f0_hz : float
        Hz.
    n_harmonics : int
        Harmonics 1..n_harmonics are measured (those at or above Nyquist get -inf).

    Returns
    -------
    (n_harmonics,) float64
        Level of the largest Hann-windowed spectrum peak within +-f0/4 of each harmonic, dB, the
        strongest harmonic at 0 dB (-inf for an all-zero window).
    """
    x = _as_mono(window, name="window")
    n_fft = 1 << int(np.ceil(np.log2(max(4 * x.shape[0], 8))))
    magnitude = np.abs(np.fft.rfft(x * np.hanning(x.shape[0]), n_fft))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    levels = np.zeros(n_harmonics)
    for h in range(1, n_harmonics + 1):
        band = (freqs >= (h - 0.25) * f0_hz) & (freqs <= (h + 0.25) * f0_hz)
        if h * f0_hz < sample_rate / 2 and band.any():
            levels[h - 1] = magnitude[band].max()
    peak = levels.max()
    with np.errstate(divide="ignore"):
        return 20.0 * np.log10(levels / peak) if peak > 0 else np.full(n_harmonics, -np.inf)


def estimate_f0_hz(
    audio,
    *,
    sample_rate: float,
    fmin_hz: float = DEFAULT_FMIN_HZ,
    fmax_hz: float = DEFAULT_FMAX_HZ,
    periodicity_threshold: float = DEFAULT_PERIODICITY_THRESHOLD,
    loud_floor_db: float = DEFAULT_LOUD_FLOOR_DB,
    min_voiced_fraction: float = DEFAULT_MIN_VOICED_FRACTION,
    max_spread_cents: float = DEFAULT_MAX_SPREAD_CENTS,
    silence_rms: float = DEFAULT_SILENCE_RMS,
    low_harmonic_floor_db: float = DEFAULT_LOW_HARMONIC_FLOOR_DB,
) -> float:
    """The single fundamental frequency of a mono note, to a few cents.

    Windows within ``loud_floor_db`` of the loudest window are analysed with :func:`track_f0_hz`
    (attack transients and the release tail weigh little); the result is the median of the voiced
    windows' refined f0 (on a log scale).

    Parameters
    ----------
    audio : (time,) float
        One mono note, any level (float in [-1, 1] or integer PCM).
    sample_rate : float
        Hz.
    fmin_hz, fmax_hz : float
        Search range, Hz (defaults cover MIDI 24-96); ``fmax_hz <= sample_rate / 4``.
    periodicity_threshold : float
        YIN threshold for a periodic window.
    loud_floor_db : float
        Windows quieter than the loudest by more than this (dB) are ignored.
    min_voiced_fraction : float
        Fraction of the loud windows that must be periodic.
    max_spread_cents : float
        Largest median absolute deviation (cents) of the per-window f0 around the result.
    silence_rms : float
        A note whose loudest window has a lower RMS is silent.
    low_harmonic_floor_db : float
        The strongest of harmonics 1-3 of the result must be within this many dB of the strongest
        harmonic; otherwise the periodicity is the virtual fundamental under a chord.

    Returns
    -------
    float
        f0 in Hz.

    Raises
    ------
    NoStablePitchError
        Silence; too few periodic windows (noise, an equal-tempered chord); a pitch that wanders more
        than ``max_spread_cents``; or a periodicity whose first three harmonics are all more than
        ``low_harmonic_floor_db`` under the strongest one (the virtual fundamental of a chord).
    ValueError
        On bad arguments (non-mono or non-finite audio, bad range).
    """
    x = _as_mono(audio)
    if np.issubdtype(np.asarray(audio).dtype, np.integer):
        x = x / float(np.iinfo(np.asarray(audio).dtype).max)
    track = track_f0_hz(
        x,
        sample_rate=sample_rate,
        fmin_hz=fmin_hz,
        fmax_hz=fmax_hz,
        periodicity_threshold=periodicity_threshold,
        silence_rms=silence_rms,
    )
    loudest = float(track.rms.max())
    if loudest < silence_rms:
        raise NoStablePitchError(
            f"no stable pitch: the signal is silent (loudest window RMS {loudest:.2e}, "
            f"needs >= {silence_rms:.0e}); render or record a louder note"
        )
    loud = track.rms >= loudest * 10.0 ** (-loud_floor_db / 20.0)
    voiced = loud & track.voiced
    fraction = voiced.sum() / loud.sum()
    if voiced.sum() == 0 or fraction < min_voiced_fraction:
        raise NoStablePitchError(
            f"no stable pitch: only {voiced.sum()} of {loud.sum()} loud windows are periodic "
            f"({100 * fraction:.0f}%, need >= {100 * min_voiced_fraction:.0f}%); the signal looks like noise, "
            "a chord or an unpitched sound; give a single sustained pitched note"
        )
    log_f0 = np.log2(track.f0_hz[voiced])
    center = float(np.median(log_f0))
    spread_cents = 1200.0 * float(np.median(np.abs(log_f0 - center)))
    if spread_cents > max_spread_cents:
        raise NoStablePitchError(
            f"no stable pitch: the per-window f0 wanders by {spread_cents:.1f} cents (median absolute "
            f"deviation, allowed <= {max_spread_cents} cents); give a note with a steady pitch"
        )
    f0 = float(2.0**center)
    _check_low_harmonics(x, track, voiced, sample_rate=sample_rate, f0_hz=f0, floor_db=low_harmonic_floor_db)
    return f0


def estimate_f0_hz_or_nan(audio, *, sample_rate: float) -> float:
    """:func:`estimate_f0_hz` with its defaults, or NaN where it raises :class:`NoStablePitchError`.

    For measurements over many notes, where a note without a stable pitch is counted, not fatal.
    Other errors (bad input) still raise.
    """
    try:
        return float(estimate_f0_hz(audio, sample_rate=sample_rate))
    except NoStablePitchError:
        return float("nan")


def _check_low_harmonics(
    x, track: PitchTrack, voiced: np.ndarray, *, sample_rate: float, f0_hz: float, floor_db: float
) -> None:
    # One long stretch (>= 16 periods, so that the Hann window's leakage from the notes of a chord
    # cannot fake a low harmonic), centred on the loudest voiced window.
    loudest = int(np.flatnonzero(voiced)[np.argmax(track.rms[voiced])])
    span = min(x.shape[0], max(track.window_samples, int(np.ceil(16 * sample_rate / f0_hz))))
    centre = loudest * track.hop_samples + track.window_samples // 2
    start = int(np.clip(centre - span // 2, 0, x.shape[0] - span))
    n_harmonics = max(3, int((sample_rate / 2) // f0_hz))
    levels_db = harmonic_levels_db(
        x[start : start + span], sample_rate=sample_rate, f0_hz=f0_hz, n_harmonics=n_harmonics
    )
    if levels_db[:3].max() < -floor_db:
        raise NoStablePitchError(
            f"no stable pitch: the periodicity at {f0_hz:.2f} Hz has no energy in its first three harmonics "
            f"(strongest of them {levels_db[:3].max():.1f} dB under the strongest harmonic, needs >= "
            f"-{floor_db} dB); this is what a chord looks like; give a single note"
        )
