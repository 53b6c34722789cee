"""Single-cycle wavetable frames cut from a pitched note.

Method (harmonic projection, ``docs/formats.md`` "Single-cycle frames from a note"):

1. The note's f0 is found once (:func:`nsynth_live.functional.pitch.estimate_f0_hz`; a note with no
   stable pitch raises :class:`~nsynth_live.functional.pitch.NoStablePitchError`), the usable part of
   the note is where windows are loud and periodic at that pitch, and ``n_frames`` positions are
   spread evenly over it.
2. At each position the f0 is refined on a local window (a few cents matter: a 10-cent error smears
   the upper harmonics of a 4-period frame), giving a fractional period ``P`` samples.
3. ``periods_per_frame`` periods starting at a fractional sample position are read band-limited by
   fitting the harmonic series ``sum_h a_h cos(2 pi h t / P) + b_h sin(2 pi h t / P)`` (all harmonics
   below Nyquist, plus DC) to the integer samples covering them, by least squares. This is what
   "resample K periods onto K * 2048 points with an ideal band-limited reader, FFT, keep bins k * K"
   computes, without a resampling filter's passband loss near Nyquist or edge margins; the
   fractional period needs no rounding at all.
4. DC is dropped; phases are rotated by a time shift so that the fundamental (or, when it is weak,
   the lowest strong harmonic, choosing among its ambiguous shifts the one closest to the previous
   frame) sits at phase ``-pi/2`` (a sine starting upwards): consecutive frames line up and
   morphing does not comb-filter.
5. Each frame is synthesised on 2048 points by an inverse FFT: it is exactly one period, so its end
   continues into its start. The whole table is scaled by one gain so that its peak is ``peak``
   (the evolution of loudness across frames is kept).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nsynth_live.functional.pitch import (
    DEFAULT_FMAX_HZ,
    DEFAULT_FMIN_HZ,
    NoStablePitchError,
    estimate_f0_hz,
    refine_f0_hz,
    track_f0_hz,
)

WAVETABLE_FRAME_SAMPLES = 2048  # samples per frame: Serum assumes 2048 (docs/formats.md "Serum wavetable WAV")
MAX_WAVETABLE_FRAMES = 256  # frames, Serum's limit (docs/formats.md "Serum wavetable WAV")
N_HARMONIC_BINS = WAVETABLE_FRAME_SAMPLES // 2  # bins 0..1023 of a frame's rfft (Nyquist bin unused)
DEFAULT_TABLE_PEAK = 0.98  # linear full scale, peak of the whole table (docs/formats.md)
ALIGNED_FUNDAMENTAL_PHASE = -np.pi / 2  # rad: cos(theta - pi/2) = sin(theta), the frame starts rising
_ANCHOR_RELATIVE_LEVEL = 0.1  # a harmonic at least this fraction of the strongest may anchor phases
_PITCH_TOLERANCE_CENTS = 50.0  # cents: windows further from the note's f0 are not used for frames
_LOUD_FLOOR_DB = 30.0  # dB under the loudest window: quieter windows are not used for frames


@dataclass(frozen=True)
class WavetableConfig:
    """How frames are cut from a note.

    Attributes
    ----------
    n_frames : int
        Frames in the table, 1..256 (Serum's limit).
    periods_per_frame : int
        Source periods fitted for one frame (the reference advises 4-8): more rejects noise and
        inharmonicity better, fewer follows fast timbre changes.
    peak : float
        Peak of the normalised table, linear full scale in (0, 1].
    fmin_hz, fmax_hz : float
        f0 search range for the whole-note estimate, Hz.
    start_seconds, end_seconds : float or None
        Restrict the frames to this part of the note (seconds from its first sample); ``None``
        takes the loud periodic part found automatically.
    """

    n_frames: int = 64
    periods_per_frame: int = 4
    peak: float = DEFAULT_TABLE_PEAK
    fmin_hz: float = DEFAULT_FMIN_HZ
    fmax_hz: float = DEFAULT_FMAX_HZ
    start_seconds: float | None = None
    end_seconds: float | None = None

    def __post_init__(self):
        if not isinstance(self.n_frames, (int, np.integer)) or not 1 <= self.n_frames <= MAX_WAVETABLE_FRAMES:
            raise ValueError(
                f"n_frames must be an integer in 1..{MAX_WAVETABLE_FRAMES} (Serum's limit of "
                f"{MAX_WAVETABLE_FRAMES} frames), got {self.n_frames!r}; ask for fewer frames"
            )
        if not isinstance(self.periods_per_frame, (int, np.integer)) or not 1 <= self.periods_per_frame <= 32:
            raise ValueError(f"periods_per_frame must be an integer in 1..32, got {self.periods_per_frame!r}")
        if not 0 < self.peak <= 1:
            raise ValueError(f"peak must be in (0, 1], got {self.peak!r}")
        if not 0 < self.fmin_hz < self.fmax_hz:
            raise ValueError(f"need 0 < fmin_hz < fmax_hz, got {self.fmin_hz!r}, {self.fmax_hz!r}")
        if self.start_seconds is not None and self.start_seconds < 0:
            raise ValueError(f"start_seconds must be >= 0, got {self.start_seconds!r}")
        if (
            self.start_seconds is not None
            and self.end_seconds is not None
            and not self.end_seconds > self.start_seconds
        ):
            raise ValueError(
                f"end_seconds ({self.end_seconds!r}) must be after start_seconds ({self.start_seconds!r})"
            )


@dataclass(frozen=True)
class Wavetable:
    """A table of single-cycle frames and where they came from.

    Attributes
    ----------
    frames : (n_frames, 2048) float32
        One period per frame, DC-free, phase-aligned, normalised over the whole table.
    f0_hz : (n_frames,) float64
        Source f0 each frame was cut at, Hz.
    positions_seconds : (n_frames,) float64
        Source time of each frame's first sample, seconds (NaN when frames come from separate notes).
    gain : float
        Linear factor applied to every frame by the table normalisation.
    """

    frames: np.ndarray
    f0_hz: np.ndarray
    positions_seconds: np.ndarray
    gain: float


def fit_harmonic_cycle(audio, *, sample_rate: float, start_sample: float, f0_hz: float, periods: int) -> np.ndarray:
    """Harmonic coefficients of ``periods`` periods of a signal, starting at a fractional sample.

    The band-limited periodic model ``x(t) = Re(sum_h c_h exp(2j pi h f0 (t - start) / sample_rate))``
    (DC and every harmonic resolvable below Nyquist) is fitted by least squares to the integer
    samples covering ``[start_sample, start_sample + periods * P]``, ``P = sample_rate / f0_hz``.

    Parameters
    ----------
    audio : (time,) float
        Mono source signal.
    sample_rate : float
        Hz.
    start_sample : float
        Fractional sample index of the cycle start (time 0 of the model).
    f0_hz : float
        Fundamental frequency, Hz; it must be exact to a few cents (the period is not searched).
    periods : int
        Number of periods fitted, >= 1.

    Returns
    -------
    (1024,) complex128
        ``c_h`` for ``h = 0 .. 1023`` in peak-amplitude units (``|c_h|`` is the amplitude of harmonic
        ``h``); DC (``h = 0``) is set to 0; harmonics above Nyquist or above 1023 are 0.

    Raises
    ------
    ValueError
        If the requested span does not lie inside the signal, or f0 is outside (0, Nyquist).
    """
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"audio must be mono with shape (time,), got shape {x.shape}")
    if not 0 < f0_hz < sample_rate / 2:
        raise ValueError(f"f0_hz must be in (0, {sample_rate / 2}) Hz, got {f0_hz!r}")
    period = sample_rate / f0_hz  # samples (fractional)
    end_sample = start_sample + periods * period
    first = int(np.ceil(start_sample))
    last = int(np.floor(end_sample))
    if first < 0 or last >= x.shape[0]:
        raise ValueError(
            f"{periods} periods from sample {start_sample:.2f} (to {end_sample:.2f}) do not fit in a signal "
            f"of {x.shape[0]} samples"
        )
    span = last + 1 - first
    # Harmonics closer to Nyquist than half a bin of the fitted span cannot be told from their alias.
    nyquist_harmonics = (0.5 - 0.5 / span) * period
    n_harmonics = max(1, int(min(N_HARMONIC_BINS - 1, np.ceil(nyquist_harmonics) - 1)))
    cosine, sine = _solve_harmonic_least_squares(
        x[first : last + 1], offset_periods=(first - start_sample) / period, period=period, n_harmonics=n_harmonics
    )
    coefficients = np.zeros(N_HARMONIC_BINS, dtype=np.complex128)
    coefficients[1 : 1 + n_harmonics] = cosine - 1j * sine  # a cos + b sin = Re((a - jb) e^{j theta})
    return coefficients


def _geometric_phasor_sums(d: np.ndarray, *, offset_periods: float, period: float, span: int) -> np.ndarray:
    """``S(d) = sum_{m < span} exp(2j pi d (offset + m / period))`` in closed form, for integer d."""
    theta = 2.0 * np.pi * d / period  # rad / sample
    ratio = np.exp(1j * theta)
    with np.errstate(divide="ignore", invalid="ignore"):
        sums = (1.0 - ratio**span) / (1.0 - ratio)
    sums = np.where(np.abs(1.0 - ratio) < 1e-12, span, sums)
    return np.exp(2j * np.pi * d * offset_periods) * sums


def _solve_harmonic_least_squares(
    samples: np.ndarray, *, offset_periods: float, period: float, n_harmonics: int
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares cos/sin amplitudes of harmonics 1..n_harmonics (and DC) of ``samples``.

    The model is ``x[m] = a_0 + sum_h a_h cos(2 pi h tau_m) + b_h sin(2 pi h tau_m)`` with
    ``tau_m = offset_periods + m / period``. The Gram matrix of these columns is built in closed form
    from geometric sums (``cos A cos B = (cos(A - B) + cos(A + B)) / 2`` and the like), so the cost
    is ``O(span * harmonics + iterations * harmonics^2)`` instead of ``O(span * harmonics^2)``.
    """
    span = samples.shape[0]
    h = np.arange(n_harmonics + 1)  # 0 = DC
    sums = _geometric_phasor_sums(
        np.arange(-2 * n_harmonics, 2 * n_harmonics + 1), offset_periods=offset_periods, period=period, span=span
    )
    at = lambda d: sums[d + 2 * n_harmonics]  # noqa: E731  S(d) for integer arrays d
    diff = at(h[None, :] - h[:, None])  # S(k - h)
    total = at(h[None, :] + h[:, None])  # S(k + h)
    gram_cc = 0.5 * np.real(diff + total)
    gram_ss = 0.5 * np.real(diff - total)
    gram_cs = 0.5 * np.imag(total + diff)  # sum cos(h) sin(k)
    # Projections sum_m x[m] exp(2j pi h tau_m) by repeated multiplication (no trig per harmonic).
    step = np.exp(2j * np.pi * (offset_periods + np.arange(span) / period))
    projections = np.empty(n_harmonics + 1, dtype=np.complex128)
    weighted = samples.astype(np.complex128)
    for k in range(n_harmonics + 1):
        projections[k] = weighted.sum()
        weighted *= step
    rhs = np.concatenate([np.real(projections), np.imag(projections[1:])])  # [x.cos(h)], [x.sin(h)]
    gram = np.block([[gram_cc, gram_cs[:, 1:]], [gram_cs[:, 1:].T, gram_ss[1:, 1:]]])
    solution = _solve_well_conditioned_spd(gram, rhs)
    return solution[1 : n_harmonics + 1], solution[n_harmonics + 1 :]


def _solve_well_conditioned_spd(matrix: np.ndarray, rhs: np.ndarray, *, max_iterations: int = 200) -> np.ndarray:
    """Solve ``matrix @ x = rhs`` for a symmetric positive-definite, nearly diagonal matrix.

    Jacobi-preconditioned conjugate gradients (Golub & Van Loan, Matrix Computations, sec. 11.5):
    the harmonic Gram matrix over >= 1 period has a condition number of about 2, so ~20 matrix-vector
    products reach machine precision. That is cheaper than an LU factorisation and, unlike LAPACK on
    a busy machine, does not stall on BLAS thread contention. Falls back to ``numpy.linalg.solve``
    if it has not converged.
    """
    inverse_diagonal = 1.0 / np.diag(matrix)
    x = rhs * inverse_diagonal
    residual = rhs - matrix @ x
    direction = residual * inverse_diagonal
    rz = float(residual @ direction)
    tolerance = 1e-14 * float(np.linalg.norm(rhs))
    for _ in range(max_iterations):
        if float(np.linalg.norm(residual)) <= tolerance:
            return x
        product = matrix @ direction
        step = rz / float(direction @ product)
        x = x + step * direction
        residual = residual - step * product
        preconditioned = residual * inverse_diagonal
        rz_next = float(residual @ preconditioned)
        direction = preconditioned + (rz_next / rz) * direction
        rz = rz_next
    return np.linalg.solve(matrix, rhs)


def align_phases(coefficients) -> np.ndarray:
    """Time-shift every frame so consecutive frames line up.

    The anchor of a frame is its fundamental, or when the fundamental is under
    ``0.1 *`` the strongest harmonic, the lowest harmonic that is not. The anchor is rotated to
    phase ``-pi/2`` by a time shift (harmonic ``h`` turns by ``h`` times the fundamental's angle); an
    anchor ``a > 1`` allows ``a`` such shifts and the one most correlated with the previous frame is
    kept.

    Parameters
    ----------
    coefficients : (frames, 1024) complex
        Harmonic coefficients of each frame, as :func:`fit_harmonic_cycle` returns.

    Returns
    -------
    (frames, 1024) complex128
        The shifted coefficients (magnitudes unchanged). All-zero frames stay zero.
    """
    c = np.array(coefficients, dtype=np.complex128, ndmin=2)
    h = np.arange(c.shape[1])
    aligned = np.zeros_like(c)
    previous = None
    for i, frame in enumerate(c):
        magnitude = np.abs(frame)
        if magnitude.max() == 0:
            aligned[i] = frame
            continue
        anchor = int(np.flatnonzero(magnitude >= _ANCHOR_RELATIVE_LEVEL * magnitude.max())[0])
        base = (ALIGNED_FUNDAMENTAL_PHASE - np.angle(frame[anchor])) / anchor
        candidates = [frame * np.exp(1j * h * (base + 2.0 * np.pi * m / anchor)) for m in range(anchor)]
        if previous is None:
            best = candidates[0]
        else:
            best = max(candidates, key=lambda shifted: float(np.real(np.vdot(previous, shifted))))
        aligned[i] = best
        previous = best
    return aligned


def frames_from_harmonics(coefficients) -> np.ndarray:
    """Synthesise one period per frame on 2048 points.

    Parameters
    ----------
    coefficients : (frames, 1024) complex
        Harmonic coefficients (peak-amplitude units), bin ``h`` = harmonic ``h``; bin 0 is ignored.

    Returns
    -------
    (frames, 2048) float64
        ``frame[j] = sum_h |c_h| cos(2 pi h j / 2048 + arg c_h)``, exactly periodic, zero mean.
    """
    c = np.array(coefficients, dtype=np.complex128, ndmin=2)
    spectrum = np.zeros((c.shape[0], WAVETABLE_FRAME_SAMPLES // 2 + 1), dtype=np.complex128)
    spectrum[:, 1:N_HARMONIC_BINS] = c[:, 1:N_HARMONIC_BINS] * (WAVETABLE_FRAME_SAMPLES / 2)
    return np.fft.irfft(spectrum, WAVETABLE_FRAME_SAMPLES, axis=-1)


def normalize_table(frames, *, peak: float = DEFAULT_TABLE_PEAK) -> tuple[np.ndarray, float]:
    """Scale a whole table by one gain so its largest absolute sample is ``peak``.

    Parameters
    ----------
    frames : (frames, samples) float
    peak : float
        Target peak, linear full scale in (0, 1].

    Returns
    -------
    frames : (frames, samples) float32
    gain : float
        The linear factor applied.

    Raises
    ------
    NoStablePitchError
        If the table is silent (nothing to normalise: the source had no pitched content).
    """
    x = np.asarray(frames, dtype=np.float64)
    largest = float(np.max(np.abs(x))) if x.size else 0.0
    if not largest > 1e-9:
        raise NoStablePitchError("no stable pitch: every frame is silent; nothing to export")
    gain = peak / largest
    return (x * gain).astype(np.float32), gain


def _usable_region(x, *, sample_rate: float, f0_hz: float, config: WavetableConfig) -> tuple[float, float]:
    """First and last sample (fractional) of the loud part that is periodic at the note's pitch."""
    track = track_f0_hz(x, sample_rate=sample_rate, fmin_hz=config.fmin_hz, fmax_hz=config.fmax_hz)
    loud = track.rms >= track.rms.max() * 10.0 ** (-_LOUD_FLOOR_DB / 20.0)
    with np.errstate(invalid="ignore"):
        near = np.abs(1200.0 * np.log2(track.f0_hz / f0_hz)) <= _PITCH_TOLERANCE_CENTS
    good = np.flatnonzero(loud & near)
    if good.size == 0:
        raise NoStablePitchError(
            f"no stable pitch: no loud window is periodic within {_PITCH_TOLERANCE_CENTS} cents of "
            f"{f0_hz:.2f} Hz; give a single sustained pitched note"
        )
    first = good[0] * track.hop_samples
    last = good[-1] * track.hop_samples + track.window_samples
    return float(first), float(min(last, x.shape[0]))


def extract_wavetable(
    audio,
    *,
    sample_rate: float,
    config: WavetableConfig = WavetableConfig(),
    f0_hz: float | None = None,
) -> Wavetable:
    """Cut a table of single-cycle frames spread over a pitched note.

    Parameters
    ----------
    audio : (time,) float
        One mono note (any sample rate; 16 kHz NSynth/SING renders work).
    sample_rate : float
        Hz.
    config : WavetableConfig
        Frame count, periods per frame, peak, search range, optional time range.
    f0_hz : float, optional
        Rough f0 of the note, Hz (e.g. from the MIDI pitch); default: estimated with
        :func:`~nsynth_live.functional.pitch.estimate_f0_hz`. Either way each frame's f0 is refined
        on its own window.

    Returns
    -------
    Wavetable
        ``frames`` of shape ``(config.n_frames, 2048)``, float32.

    Raises
    ------
    NoStablePitchError
        The note has no stable pitch (silence, noise, chord, wandering pitch), or its periodic part
        is shorter than ``periods_per_frame`` periods.
    ValueError
        On a non-mono or non-finite signal or a time range outside the note.

    Notes
    -----
    Source: ``docs/formats.md`` ("Single-cycle frames from a note").
    """
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"audio must be mono with shape (time,), got shape {x.shape}; mix the channels first")
    if not np.all(np.isfinite(x)):
        raise ValueError("audio contains NaN or infinite samples")
    if f0_hz is None:
        f0_hz = estimate_f0_hz(x, sample_rate=sample_rate, fmin_hz=config.fmin_hz, fmax_hz=config.fmax_hz)
    if config.start_seconds is None and config.end_seconds is None:
        region_start, region_end = _usable_region(x, sample_rate=sample_rate, f0_hz=f0_hz, config=config)
    else:
        region_start = (config.start_seconds or 0.0) * sample_rate
        region_end = x.shape[0] if config.end_seconds is None else config.end_seconds * sample_rate
        if region_end > x.shape[0] or region_start >= x.shape[0]:
            raise ValueError(
                f"time range {region_start / sample_rate:.3f}-{region_end / sample_rate:.3f} s lies outside the "
                f"note ({x.shape[0] / sample_rate:.3f} s); pick a range inside it"
            )
    period = sample_rate / f0_hz  # samples
    span = config.periods_per_frame * period  # samples per frame fit
    # Local f0 refinement window: the frame's span plus a margin, at least 6 periods and 1024 samples.
    refine_half = max(span, 6.0 * period, 1024.0) / 2.0 + 2.0 * period
    # Frame starts: the fitted span must lie inside the region with half a period to spare.
    earliest = region_start + 0.5 * period
    latest = region_end - span - 1.5 * period
    if latest < earliest:
        raise NoStablePitchError(
            f"no stable pitch: the periodic part of the note ({(region_end - region_start) / sample_rate:.3f} s) "
            f"is shorter than {config.periods_per_frame} periods of {f0_hz:.2f} Hz; give a longer note or "
            "fewer periods_per_frame"
        )
    starts = np.linspace(earliest, latest, config.n_frames)
    coefficients = np.zeros((config.n_frames, N_HARMONIC_BINS), dtype=np.complex128)
    frame_f0 = np.empty(config.n_frames)
    for i, start in enumerate(starts):
        centre = start + span / 2.0
        lo = int(max(0, np.floor(centre - refine_half)))
        hi = int(min(x.shape[0], np.ceil(centre + refine_half)))
        frame_f0[i] = refine_f0_hz(x[lo:hi], sample_rate=sample_rate, f0_hz=f0_hz)
        # Keep the fitted span inside the signal if the refined period is a little longer.
        frame_span = config.periods_per_frame * sample_rate / frame_f0[i]
        start = min(start, x.shape[0] - 1 - frame_span)
        starts[i] = start
        coefficients[i] = fit_harmonic_cycle(
            x, sample_rate=sample_rate, start_sample=start, f0_hz=frame_f0[i], periods=config.periods_per_frame
        )
    frames, gain = normalize_table(frames_from_harmonics(align_phases(coefficients)), peak=config.peak)
    return Wavetable(frames=frames, f0_hz=frame_f0, positions_seconds=starts / sample_rate, gain=gain)
