"""Quality measures of single rendered notes: tuning, partials, level, bandwidth, noise, timbre distance.

Pure numpy / scipy / librosa functions (no torch) on mono notes, used to compare a neural synth's
notes with the SoundFont notes it was trained on (``nsynth_live.train.model_measures``,
``benchmarks/model_measures.py``; definitions and the reasons for each window and tolerance in
``docs/measures.md``).

Conventions
-----------
* Audio is mono, shape ``(time,)``, float (any float or integer dtype is read as float64; full scale
  is 1.0). Sample rates are in Hz, spans in seconds from the note-on (the first sample).
* A note is held from 0 s and released at 3 s (NSynth protocol, ``NSYNTH_NOTE_OFF_SECONDS``). Most
  measures look at a *held span* inside it, 0.1-2.5 s by default: after the attack, before the
  release. A span is clipped to the audio; at least :data:`MIN_SPAN_SECONDS` must remain.
* Levels are ``20 * log10(rms)`` with full scale 1.0: a full-scale square wave is 0 dB, a full-scale
  sine -3.01 dB. Levels of silence are floored at :data:`DB_FLOOR` instead of -inf.
* Measures that need a pitch return NaN for silence or an unpitched note; bad input (not mono,
  NaN samples, too short, a bad parameter) raises ``ValueError``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import scipy.fft
import scipy.signal

from nsynth_live.functional.midi import cents_between, midi_to_hz
from nsynth_live.functional.pitch import DEFAULT_SILENCE_RMS, estimate_f0_hz_or_nan

#: Held span of a note measured by default, seconds from note-on: after the attack, before the
#: release at 3 s (the same span as ``nsynth_live.train.sing_eval.HELD_SECONDS``).
HELD_SPAN_SECONDS = (0.1, 2.5)
#: Span of :func:`held_level_range_db`: from 0.3 s, when a sustained note's attack and decay are over.
LEVEL_RANGE_SPAN_SECONDS = (0.3, 2.5)
#: Shortest span (after clipping to the audio) a measure accepts, seconds.
MIN_SPAN_SECONDS = 0.2
#: Floor of every dB figure (a level of exact silence, a band holding no energy), dB.
DB_FLOOR = -200.0
#: Harmonics fitted by :func:`refined_f0_hz`.
DEFAULT_FIT_HARMONICS = 8
#: Harmonics that locate the first fit of :func:`refined_f0_hz` (from the coarse estimate).
COARSE_FIT_HARMONICS = 4
#: A harmonic's peak is searched within +- this fraction of f0 around ``k * f0``.
PEAK_SEARCH_HALF_WIDTH_F0 = 0.4
#: A harmonic more than this many dB under the strongest one is ignored (noise-prone), dB.
WEAK_HARMONIC_DB = 40.0
#: A harmonic's peak must stand this far above the median of its search band, dB (a peak of white
#: noise in a band of a few thousand bins stands about 11 dB above the median).
PEAK_PROMINENCE_DB = 20.0
#: Zero padding of the long FFT that the harmonic peaks are located on (bins 1/4 of 1/span apart).
PEAK_ZERO_PADDING = 4
#: Main-lobe half-width of the 4-term Blackman-Harris window, in bins of ``1 / span`` (Harris 1978,
#: "On the use of windows for harmonic analysis with the DFT", Proc. IEEE 66(1), table 1: the lobe
#: reaches its first zero 4 bins from its centre; side lobes are under -92 dB).
BLACKMAN_HARRIS_HALF_LOBE_BINS = 4.0
#: Extra half-width of a harmonic's band in :func:`off_harmonic_energy_share`, Hz.
DEFAULT_HARMONIC_TOLERANCE_HZ = 1.0
#: Frame of the log-mel spectrogram of :func:`log_mel_distance`, seconds (1024 samples at 16 kHz).
LOG_MEL_FRAME_SECONDS = 0.064
LOG_MEL_BANDS = 64
LOG_MEL_FMAX_HZ = 8_000.0  # Hz: the band a 16-kHz model has; the default when the rate allows
LOG_MEL_FLOOR_DB = -80.0  # dB relative to a full-scale sinusoid's peak: quieter cells count as this
#: SING's spectral loss (Defossez et al. 2018, section 3.2; nsynth_live.functional.spectral).
SPECTRAL_LOSS_SAMPLE_RATE = 16_000  # Hz, NSynth / SING
SPECTRAL_LOSS_N_FFT = 1024  # samples
SPECTRAL_LOSS_HOP_SAMPLES = 256  # samples
SPECTRAL_LOSS_EPS = 1.0  # log(eps + |STFT|^2), as SING's code


def _as_signal(audio, *, name: str = "audio") -> np.ndarray:
    x = np.asarray(audio)
    if x.ndim != 1:
        raise ValueError(f"{name} must be mono with shape (time,), got shape {x.shape}; mix or pick a channel first")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"{name} must hold real numbers, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite samples; clean the signal first")
    return x


def _check_sample_rate(sample_rate) -> float:
    if not (isinstance(sample_rate, (int, float, np.integer, np.floating)) and math.isfinite(sample_rate)
            and sample_rate > 0):
        raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
    return float(sample_rate)


def _held(audio, sample_rate: float, span, *, name: str = "audio") -> np.ndarray:
    """The samples of ``span`` (seconds), clipped to the audio; at least MIN_SPAN_SECONDS of them."""
    x = _as_signal(audio, name=name)
    sample_rate = _check_sample_rate(sample_rate)
    start_seconds, end_seconds = (float(s) for s in span)
    if not 0.0 <= start_seconds < end_seconds:
        raise ValueError(f"span must be (start, end) seconds with 0 <= start < end, got {span!r}")
    start = int(round(start_seconds * sample_rate))
    end = min(int(round(end_seconds * sample_rate)), x.shape[0])
    needed = int(math.ceil(MIN_SPAN_SECONDS * sample_rate))
    if end - start < needed:
        raise ValueError(
            f"{name} of {x.shape[0]} samples ({x.shape[0] / sample_rate:.3f} s at {sample_rate:g} Hz) leaves "
            f"{max(end - start, 0)} samples of the span {start_seconds:g}-{end_seconds:g} s; at least "
            f"{MIN_SPAN_SECONDS} s ({needed} samples) are needed: give a longer note or an earlier span")
    return x[start:end]


def _check_f0(f0_hz) -> float:
    f0 = float(f0_hz)
    if math.isnan(f0):
        return f0
    if not (math.isfinite(f0) and f0 > 0):
        raise ValueError(f"f0_hz must be a positive number of Hz (or NaN for an unpitched note), got {f0_hz!r}")
    return f0


def _to_db(power_ratio: float) -> float:
    """10 log10 of a power ratio, floored at DB_FLOOR."""
    return float(max(10.0 * math.log10(power_ratio), DB_FLOOR)) if power_ratio > 0 else DB_FLOOR


def _silent(segment: np.ndarray) -> bool:
    return float(np.sqrt(np.mean(segment * segment))) < DEFAULT_SILENCE_RMS


# --------------------------------------------------------------------------------------------------
# Harmonic peaks on one long spectrum
# --------------------------------------------------------------------------------------------------
class _Spectrum(NamedTuple):
    magnitude: np.ndarray  # (bins,) float64, |rfft| of the windowed, zero-padded span
    bin_hz: float  # Hz between bins
    nyquist_hz: float


def _long_spectrum(segment: np.ndarray, sample_rate: float) -> _Spectrum:
    """Blackman-Harris-windowed, zero-padded magnitude spectrum of a whole span (mean removed)."""
    n = segment.shape[0]
    window = scipy.signal.get_window("blackmanharris", n, fftbins=False)
    n_fft = scipy.fft.next_fast_len(PEAK_ZERO_PADDING * n, real=True)
    magnitude = np.abs(scipy.fft.rfft((segment - segment.mean()) * window, n_fft))
    return _Spectrum(magnitude, sample_rate / n_fft, sample_rate / 2.0)


def _harmonic_peaks(spectrum: _Spectrum, f0_hz: float, harmonics: int) -> tuple[np.ndarray, np.ndarray]:
    """Frequency (Hz) and magnitude of each harmonic k = 1..harmonics's spectral peak; NaN where absent.

    The peak is the largest bin within +- PEAK_SEARCH_HALF_WIDTH_F0 * f0 of ``k * f0``, refined by a
    parabola through the log magnitudes of it and its two neighbours (the Blackman-Harris main lobe
    is close to a Gaussian, whose log is a parabola). A harmonic is absent when its band reaches
    Nyquist, the largest bin is at the band's edge (no peak inside), the peak stands less than
    PEAK_PROMINENCE_DB above the band's median, or it is more than WEAK_HARMONIC_DB under the
    strongest harmonic found.
    """
    magnitude, bin_hz, nyquist = spectrum
    half_width = PEAK_SEARCH_HALF_WIDTH_F0 * f0_hz
    frequencies = np.full(harmonics, np.nan)
    levels = np.full(harmonics, np.nan)
    for k in range(1, harmonics + 1):
        centre = k * f0_hz
        if centre + half_width >= nyquist:
            break
        low = int(math.ceil((centre - half_width) / bin_hz))
        high = int(math.floor((centre + half_width) / bin_hz))
        band = magnitude[low:high + 1]
        if band.size < 3:
            continue
        i = int(np.argmax(band))
        if i == 0 or i == band.size - 1 or band[i] <= 0:
            continue
        if band[i] < np.median(band) * 10.0 ** (PEAK_PROMINENCE_DB / 20.0):
            continue
        with np.errstate(divide="ignore"):
            y_left, y_mid, y_right = np.log(band[i - 1:i + 2])
        denominator = y_left - 2.0 * y_mid + y_right
        if not (np.isfinite(denominator) and denominator < 0):
            continue
        offset = 0.5 * (y_left - y_right) / denominator  # bins, in (-1, 1) at a local maximum
        frequencies[k - 1] = (low + i + offset) * bin_hz
        levels[k - 1] = math.exp(y_mid - 0.25 * (y_left - y_right) * offset)
    if np.isfinite(levels).any():
        weak = levels < np.nanmax(levels) * 10.0 ** (-WEAK_HARMONIC_DB / 20.0)
        frequencies[weak] = np.nan
        levels[weak] = np.nan
    return frequencies, levels


def _fit_f0(frequencies: np.ndarray, levels: np.ndarray) -> float:
    """Weighted least-squares slope through the origin of peak frequency vs harmonic number."""
    found = np.isfinite(frequencies)
    if not found.any():
        return float("nan")
    k = np.arange(1, frequencies.shape[0] + 1)[found]
    weights = levels[found]
    return float(np.sum(weights * k * frequencies[found]) / np.sum(weights * k * k))


def refined_f0_hz(audio, sample_rate: float, *, midi_hint: float | None = None,
                  span: tuple[float, float] = HELD_SPAN_SECONDS, harmonics: int = DEFAULT_FIT_HARMONICS) -> float:
    """Fundamental frequency of a held note, to a small fraction of a cent on clean tones.

    1. Coarse f0: :func:`nsynth_live.functional.pitch.estimate_f0_hz_or_nan` (YIN with a
       correlation refinement, a few cents) on the span, or ``midi_to_hz(midi_hint)`` when a hint is
       given (then YIN is not run).
    2. One Blackman-Harris-windowed FFT of the whole span, zero padded 4x (2.4 s: bins 0.1 Hz apart).
       Each harmonic's peak is located near ``k * f0`` and refined by log-parabolic interpolation
       (see ``_harmonic_peaks``: weak, edge and non-prominent peaks are dropped).
    3. f0 is the least-squares slope through the origin of peak frequency vs ``k``, weighted by peak
       magnitude: first on harmonics 1-4 around the coarse f0 (which may be up to ~1.7 semitones
       off), then on harmonics 1..``harmonics`` around that fit.

    A tone of exact harmonics over 2.4 s reads within 1e-5 cent (tested: within 0.01 cent). An
    inharmonic (stretched) tone reads a compromise weighted towards its strong partials.

    Parameters
    ----------
    audio : (time,) float
        One mono note, note-on at sample 0.
    sample_rate : float
        Hz; at least 8400 Hz when no ``midi_hint`` is given (YIN's range ends at 2100 Hz).
    midi_hint : float, optional
        MIDI note number used as the coarse estimate instead of YIN. With a hint an octave error of
        the note is invisible (its harmonics are harmonics of the hint, or missing); without one, a
        note an octave off reads an octave off.
    span : (start, end) seconds
        Held part analysed (clipped to the audio; at least :data:`MIN_SPAN_SECONDS` must remain).
    harmonics : int
        Harmonics fitted (those whose search band reaches Nyquist are left out).

    Returns
    -------
    float
        f0 in Hz; NaN for silence (span RMS under -80 dBFS), for a note without a stable pitch
        (YIN refuses it) or when no harmonic peak is found near the coarse f0.

    Raises
    ------
    ValueError
        On audio that is not mono or holds NaN, a span too short, ``harmonics < 1``, a bad sample
        rate or a non-finite hint.
    """
    sample_rate = _check_sample_rate(sample_rate)
    segment = _held(audio, sample_rate, span)
    if int(harmonics) < 1:
        raise ValueError(f"harmonics must be >= 1, got {harmonics!r}")
    if _silent(segment):
        return float("nan")
    if midi_hint is None:
        coarse = estimate_f0_hz_or_nan(segment, sample_rate=sample_rate)
    else:
        if not math.isfinite(float(midi_hint)):
            raise ValueError(f"midi_hint must be a finite MIDI note number, got {midi_hint!r}")
        coarse = float(midi_to_hz(float(midi_hint)))
    if not math.isfinite(coarse):
        return float("nan")
    spectrum = _long_spectrum(segment, sample_rate)
    f0 = _fit_f0(*_harmonic_peaks(spectrum, coarse, min(COARSE_FIT_HARMONICS, int(harmonics))))
    if not math.isfinite(f0):
        return float("nan")
    f0_fine = _fit_f0(*_harmonic_peaks(spectrum, f0, int(harmonics)))
    return f0_fine if math.isfinite(f0_fine) else f0


def partial_deviations_cents(audio, sample_rate: float, f0_hz: float, *, harmonics: int = DEFAULT_FIT_HARMONICS,
                             span: tuple[float, float] = HELD_SPAN_SECONDS) -> np.ndarray:
    """How far each of the first partials sits from its harmonic ``k * f0_hz``, cents.

    The peaks are located as in :func:`refined_f0_hz` (one Blackman-Harris FFT of the span, zero
    padded 4x, log-parabolic interpolation) within +-0.4 * f0 of ``k * f0_hz``: deviations up to
    ``1200 * log2(1 + 0.4 / k)`` cents (+583 at k = 1, +85 at k = 8) are seen; a partial further out
    is taken for noise or missed. Pass the note's own f0 (:func:`refined_f0_hz`) to see the shape
    of the partials apart from the note's tuning: a harmonic tone then reads 0 everywhere, a piano-
    like stretched tone rises with ``k``.

    Parameters
    ----------
    audio : (time,) float
        One mono note.
    sample_rate : float
        Hz.
    f0_hz : float
        Reference fundamental, Hz; NaN (an unpitched note) gives all NaN.
    harmonics : int
        Partials k = 1..harmonics.
    span : (start, end) seconds
        Held part analysed (clipped to the audio).

    Returns
    -------
    (harmonics,) float64
        ``1200 * log2(f_k / (k * f0_hz))``; NaN where the partial is absent: its band reaches
        Nyquist, it is more than 40 dB (:data:`WEAK_HARMONIC_DB`) under the strongest partial, or it
        has no prominent peak (silence, noise).

    Raises
    ------
    ValueError
        On audio that is not mono or holds NaN, a span too short, ``harmonics < 1``, a bad sample
        rate, or ``f0_hz`` not positive (or infinite).
    """
    sample_rate = _check_sample_rate(sample_rate)
    segment = _held(audio, sample_rate, span)
    f0 = _check_f0(f0_hz)
    harmonics = int(harmonics)
    if harmonics < 1:
        raise ValueError(f"harmonics must be >= 1, got {harmonics!r}")
    if math.isnan(f0) or _silent(segment):
        return np.full(harmonics, np.nan)
    frequencies, _ = _harmonic_peaks(_long_spectrum(segment, sample_rate), f0, harmonics)
    with np.errstate(invalid="ignore"):
        return np.asarray(cents_between(frequencies, f0 * np.arange(1, harmonics + 1)), dtype=np.float64)


def tuning_error_cents(audio, sample_rate: float, midi: float, *,
                       span: tuple[float, float] = HELD_SPAN_SECONDS) -> float:
    """Signed tuning error of a held note against its MIDI pitch (equal temperament, A4 = 440 Hz), cents.

    ``cents_between(refined_f0_hz(audio, sample_rate, span=span), midi_to_hz(midi))`` with no MIDI
    hint: the coarse f0 comes from YIN, so a note sounding an octave off reads about +-1200 cents.

    Parameters
    ----------
    audio : (time,) float
        One mono note.
    sample_rate : float
        Hz (>= 8400).
    midi : float
        The MIDI note number the note should sound at.
    span : (start, end) seconds
        Held part analysed.

    Returns
    -------
    float
        Cents, positive when sharp; NaN for silence or a note without a stable pitch.

    Raises
    ------
    ValueError
        As :func:`refined_f0_hz`, or a non-finite ``midi``.
    """
    if not math.isfinite(float(midi)):
        raise ValueError(f"midi must be a finite MIDI note number, got {midi!r}")
    f0 = refined_f0_hz(audio, sample_rate, span=span)
    return float(cents_between(f0, midi_to_hz(float(midi)))) if math.isfinite(f0) else float("nan")


# --------------------------------------------------------------------------------------------------
# Level
# --------------------------------------------------------------------------------------------------
def note_level_db(audio, sample_rate: float, *, span: tuple[float, float] = HELD_SPAN_SECONDS) -> float:
    """RMS level of a note's held span, dB relative to full scale (1.0).

    ``20 * log10(sqrt(mean(x ** 2)))`` over the span: a sine of RMS 0.1 (amplitude 0.141) reads
    -20.0 dB; a full-scale sine -3.01 dB (this is not AES17's dBFS, which adds 3.01 dB).

    Parameters
    ----------
    audio : (time,) float
        One mono note.
    sample_rate : float
        Hz.
    span : (start, end) seconds
        Part measured (clipped to the audio).

    Returns
    -------
    float
        dB; :data:`DB_FLOOR` (-200) for digital silence.

    Raises
    ------
    ValueError
        On audio that is not mono or holds NaN, a span too short or a bad sample rate.
    """
    segment = _held(audio, _check_sample_rate(sample_rate), span)
    return _to_db(float(np.mean(segment * segment)))


def held_level_range_db(audio, sample_rate: float, *, span: tuple[float, float] = LEVEL_RANGE_SPAN_SECONDS,
                        frame_seconds: float = 0.05) -> float:
    """Loudness wobble of a held note: largest minus smallest frame level over the span, dB.

    The span is cut into frames of ``frame_seconds``, half overlapping (a last partial frame is
    dropped); each frame's level is its Hann-weighted mean square, ``sum(w x^2) / sum(w)``, in dB,
    and the spread (max - min) is returned. The taper keeps a frame that holds a fractional number
    of periods from swinging with the waveform's phase (an unweighted 50-ms RMS of a bright tone at
    97 Hz swings by 0.3 dB; the weighted one by 0.06 dB at most down to MIDI 36, where 50 ms is 3.3
    periods). A steady tone reads about 0; a 6-dB step reads 6 dB; a decaying note (piano, guitar)
    reads its decay over the span, so compare a model with its source note rather than with 0.

    Parameters
    ----------
    audio : (time,) float
        One mono note.
    sample_rate : float
        Hz.
    span : (start, end) seconds
        Part measured (clipped to the audio); default 0.3-2.5 s, after the attack.
    frame_seconds : float
        Frame length, seconds; the span must hold at least two frames.

    Returns
    -------
    float
        dB, >= 0 (frames of silence count as :data:`DB_FLOOR`; an all-silent span reads 0).

    Raises
    ------
    ValueError
        On audio that is not mono or holds NaN, a span too short, a bad sample rate, or a frame
        shorter than 4 samples or longer than half the span.
    """
    sample_rate = _check_sample_rate(sample_rate)
    segment = _held(audio, sample_rate, span)
    frame = int(round(frame_seconds * sample_rate))
    if frame < 4 or 2 * frame > segment.shape[0]:
        raise ValueError(f"frame_seconds={frame_seconds!r} gives {frame} samples; need 4 samples to half the span "
                         f"({segment.shape[0] / sample_rate:.3f} s)")
    frames = np.lib.stride_tricks.sliding_window_view(segment * segment, frame)[:: frame // 2]
    window = scipy.signal.get_window("hann", frame, fftbins=False)
    mean_square = frames @ (window / window.sum())
    with np.errstate(divide="ignore"):
        levels = np.maximum(10.0 * np.log10(mean_square), DB_FLOOR)
    return float(levels.max() - levels.min())


# --------------------------------------------------------------------------------------------------
# Spectrum shares
# --------------------------------------------------------------------------------------------------
BAND_ENERGY_FRAME_SECONDS = 0.085  # s: Welch segments (4096 samples at 48 kHz)


def band_energy_db(audio, sample_rate: float, *, above_hz: float = 8_000.0) -> float:
    """Energy above ``above_hz`` relative to the whole signal's energy, dB.

    Welch's averaged periodogram (``scipy.signal.welch``) with a 4-term Blackman-Harris window of
    about 85 ms (half overlap, mean removed): the window's side lobes (under -92 dB) keep a strong
    low partial's leakage from reading as high-frequency energy, so a note without any energy up
    there reads under -90 dB. The bin at ``above_hz`` counts as above when its centre is strictly
    above. Use it on a whole note (the attack holds much of a note's high band).

    Parameters
    ----------
    audio : (time,) float
        Mono signal (at least 256 samples).
    sample_rate : float
        Hz; ``sample_rate / 2`` must be above ``above_hz`` (a 16-kHz signal has nothing to measure
        above 8 kHz).
    above_hz : float
        Hz, > 0.

    Returns
    -------
    float
        dB <= 0, floored at :data:`DB_FLOOR` (-200) when the band is empty; NaN for all-zero audio.

    Raises
    ------
    ValueError
        If ``sample_rate / 2 <= above_hz`` (resample the note to a higher rate, or measure a lower
        band), ``above_hz <= 0``, or on audio that is not mono, holds NaN or is too short.
    """
    sample_rate = _check_sample_rate(sample_rate)
    x = _as_signal(audio)
    if not (math.isfinite(above_hz) and above_hz > 0):
        raise ValueError(f"above_hz must be a positive number of Hz, got {above_hz!r}")
    if sample_rate / 2.0 <= above_hz:
        raise ValueError(
            f"band_energy_db: a signal at {sample_rate:g} Hz has no band above {above_hz:g} Hz (its Nyquist "
            f"frequency is {sample_rate / 2:g} Hz); measure a signal sampled above {2 * above_hz:g} Hz")
    if x.shape[0] < 256:
        raise ValueError(f"audio must hold at least 256 samples, got {x.shape[0]}")
    segment_samples = min(x.shape[0], int(round(BAND_ENERGY_FRAME_SECONDS * sample_rate)))
    frequencies, power = scipy.signal.welch(x, fs=sample_rate, window="blackmanharris", nperseg=segment_samples,
                                            detrend="constant", scaling="density")
    total = float(power.sum())
    if total <= 0:
        return float("nan")
    return _to_db(float(power[frequencies > above_hz].sum()) / total)


def off_harmonic_energy_share(audio, sample_rate: float, f0_hz: float, *,
                              tolerance_hz: float = DEFAULT_HARMONIC_TOLERANCE_HZ,
                              span: tuple[float, float] = HELD_SPAN_SECONDS) -> float:
    """Share of a held note's energy that lies away from the harmonics of ``f0_hz``.

    One power spectrum of the whole span (4-term Blackman-Harris window, mean removed, no zero
    padding: bins ``1 / T`` apart for a span of T seconds). A bin is *harmonic* when it lies within
    ``half_width = 4 / T + tolerance_hz`` of some ``k * f0_hz``, ``k >= 1`` (4 / T is the window's
    main-lobe half-width, 1.67 Hz for the default 2.4 s: a steady partial puts all but 1e-9 of its
    energy inside it), up to Nyquist. The share is the power of the other bins over the total:
    noise, partials off the harmonic series (a decoder's frame-rate lines, aliasing), and
    the part of a partial whose pitch drifts beyond the band.

    A tone of exact harmonics reads under 1e-6. White noise reads ``1 - 2 * half_width / f0_hz``
    of its energy share (the bands cover that fraction of the spectrum): 0.988 of it at 440 Hz, 0.92
    at MIDI 36 (65.4 Hz).

    Parameters
    ----------
    audio : (time,) float
        One mono note.
    sample_rate : float
        Hz.
    f0_hz : float
        The note's own fundamental (:func:`refined_f0_hz`), Hz; NaN gives NaN.
    tolerance_hz : float
        Hz added to the main-lobe half-width, >= 0 (a slow drift of the partials).
    span : (start, end) seconds
        Held part analysed (clipped to the audio).

    Returns
    -------
    float
        In [0, 1]; NaN for silence (span RMS under -80 dBFS) or a NaN ``f0_hz``.

    Raises
    ------
    ValueError
        On audio that is not mono or holds NaN, a bad sample rate, ``f0_hz`` not positive,
        ``tolerance_hz < 0``, or a span too short to separate the harmonics (``half_width`` over
        ``f0_hz / 4``: give a longer span).
    """
    sample_rate = _check_sample_rate(sample_rate)
    segment = _held(audio, sample_rate, span)
    f0 = _check_f0(f0_hz)
    if not (math.isfinite(tolerance_hz) and tolerance_hz >= 0):
        raise ValueError(f"tolerance_hz must be >= 0 Hz, got {tolerance_hz!r}")
    n = segment.shape[0]
    half_width = BLACKMAN_HARRIS_HALF_LOBE_BINS * sample_rate / n + tolerance_hz  # Hz
    if not math.isnan(f0) and half_width > f0 / 4.0:
        raise ValueError(
            f"a span of {n / sample_rate:.3f} s cannot separate the harmonics of {f0:.2f} Hz (band half-width "
            f"{half_width:.2f} Hz > f0 / 4); give a span of at least "
            f"{BLACKMAN_HARRIS_HALF_LOBE_BINS / max(f0 / 4.0 - tolerance_hz, 1e-9):.3f} s or a smaller tolerance_hz")
    if math.isnan(f0) or _silent(segment):
        return float("nan")
    window = scipy.signal.get_window("blackmanharris", n, fftbins=False)
    power = np.abs(scipy.fft.rfft((segment - segment.mean()) * window)) ** 2
    frequencies = scipy.fft.rfftfreq(n, 1.0 / sample_rate)
    k = np.maximum(np.round(frequencies / f0), 1.0)
    harmonic = np.abs(frequencies - k * f0) <= half_width
    total = float(power.sum())
    return float(power[~harmonic].sum() / total) if total > 0 else float("nan")


# --------------------------------------------------------------------------------------------------
# Distances between notes
# --------------------------------------------------------------------------------------------------
def log_mel_spectrogram_db(audio, sample_rate: float, *, n_mels: int = LOG_MEL_BANDS, fmax_hz: float | None = None,
                           floor_db: float = LOG_MEL_FLOOR_DB, range_db: float | None = None) -> np.ndarray:
    """Log-mel spectrogram of a note, dB relative to a full-scale sinusoid, as :func:`log_mel_distance` uses it.

    STFT with a Hann window of ``LOG_MEL_FRAME_SECONDS`` (64 ms: 1024 samples at 16 kHz, 3072 at
    48 kHz), hop a quarter of it, centred frames (``librosa.stft``); magnitudes scaled by
    ``2 / sum(window)`` so that a sinusoid's peak bin reads its amplitude; powers summed by
    ``n_mels`` triangular mel filters of unit height (``librosa.filters.mel``, Slaney's mel scale,
    ``norm=None``) from 0 Hz to ``fmax_hz``; 10 log10, floored at ``floor_db`` and, when ``range_db``
    is given, at ``range_db`` under the spectrogram's loudest cell.

    Parameters
    ----------
    audio : (time,) float
        Mono signal, at least one frame long.
    sample_rate : float
        Hz.
    n_mels : int
        Mel bands.
    fmax_hz : float, optional
        Top of the highest band, Hz; default ``min(sample_rate / 2, 8000)`` (the band of a 16-kHz
        model, so that models of different rates compare alike). At most ``sample_rate / 2``.
    floor_db : float
        Cells quieter than this (dB relative to a full-scale sinusoid) read this.
    range_db : float, optional
        Dynamic range kept under the loudest cell, dB (> 0): quieter cells read ``max - range_db``.
        A relative floor: content that far under the note's own peak (a model's noise floor
        between the harmonics of a clean source) does not count, whatever the note's level.

    Returns
    -------
    (n_mels, frames) float64
        dB; ``frames = 1 + time // hop``.

    Raises
    ------
    ValueError
        On audio that is not mono, holds NaN or is shorter than one frame, ``n_mels < 1``,
        ``fmax_hz`` outside (0, sample_rate / 2], or ``range_db <= 0``.
    """
    import librosa  # noqa: PLC0415 (~1 s to import: only where a librosa feature is used)

    sample_rate = _check_sample_rate(sample_rate)
    x = _as_signal(audio)
    n_fft = int(round(LOG_MEL_FRAME_SECONDS * sample_rate))
    if x.shape[0] < n_fft:
        raise ValueError(f"audio of {x.shape[0]} samples is shorter than one log-mel frame "
                         f"({n_fft} samples = {LOG_MEL_FRAME_SECONDS} s at {sample_rate:g} Hz)")
    if int(n_mels) < 1:
        raise ValueError(f"n_mels must be >= 1, got {n_mels!r}")
    if fmax_hz is None:
        fmax_hz = min(sample_rate / 2.0, LOG_MEL_FMAX_HZ)
    if not 0 < fmax_hz <= sample_rate / 2.0:
        raise ValueError(f"fmax_hz must be in (0, {sample_rate / 2:g}] Hz at {sample_rate:g} Hz, got {fmax_hz!r}")
    if range_db is not None and not range_db > 0:
        raise ValueError(f"range_db must be > 0 dB (or None), got {range_db!r}")
    window = scipy.signal.get_window("hann", n_fft, fftbins=True)
    filters = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=int(n_mels), fmin=0.0, fmax=fmax_hz,
                                  norm=None, htk=False)
    stft = librosa.stft(x, n_fft=n_fft, hop_length=n_fft // 4, window=window, center=True)
    power = (np.abs(stft) * (2.0 / window.sum())) ** 2
    log_mel = 10.0 * np.log10(np.maximum(filters @ power, 10.0 ** (floor_db / 10.0)))
    return log_mel if range_db is None else np.maximum(log_mel, log_mel.max() - range_db)


def log_mel_distance(a, b, sample_rate: float, *, n_mels: int = LOG_MEL_BANDS, fmax_hz: float | None = None,
                     floor_db: float = LOG_MEL_FLOOR_DB, range_db: float | None = None) -> float:
    """Mean absolute difference of two notes' log-mel spectrograms, dB.

    The spectrograms are :func:`log_mel_spectrogram_db` (64 bands up to ``min(sample_rate / 2,
    8000)`` Hz by default, 64-ms Hann frames, floor -80 dB); the result is the mean over bands and
    frames of their absolute difference. Level matters: a copy 6 dB quieter reads 6 dB. The
    signals are compared over their common length (the longer is cut).

    Parameters
    ----------
    a, b : (time,) float
        Mono signals at ``sample_rate`` (resample one first if their rates differ).
    sample_rate : float
        Hz.
    n_mels, fmax_hz, floor_db, range_db
        As :func:`log_mel_spectrogram_db` (each spectrogram gets its own relative floor).

    Returns
    -------
    float
        dB, >= 0; 0 for identical signals.

    Raises
    ------
    ValueError
        On signals that are not mono or hold NaN, a common length under one frame (64 ms), or bad
        ``n_mels`` / ``fmax_hz`` / ``range_db``.
    """
    x, y = _as_signal(a, name="a"), _as_signal(b, name="b")
    length = min(x.shape[0], y.shape[0])
    kwargs = dict(n_mels=n_mels, fmax_hz=fmax_hz, floor_db=floor_db, range_db=range_db)
    return float(np.mean(np.abs(log_mel_spectrogram_db(x[:length], sample_rate, **kwargs)
                                - log_mel_spectrogram_db(y[:length], sample_rate, **kwargs))))


class IdentityResult(NamedTuple):
    """Result of :func:`nearest_source_identity`."""

    n_nearest_own: int  #: rows whose smallest distance is in their own column
    nearest: np.ndarray  #: (n_models,) int64, column of each row's smallest distance (-1: all NaN)


def nearest_source_identity(distances) -> IdentityResult:
    """How many models are nearest to their own source: row ``i`` of a distance matrix vs column ``i``.

    Parameters
    ----------
    distances : (n_models, n_sources) float
        ``distances[i, j]``: distance of model instrument ``i`` to source instrument ``j``, where
        source ``i`` is model ``i``'s own (``n_sources >= n_models``; extra columns are distractors).
        NaN means not measured and never wins.

    Returns
    -------
    IdentityResult
        ``(n_nearest_own, nearest)``; a tie goes to the lowest column (``numpy.argmin``).

    Raises
    ------
    ValueError
        If ``distances`` is not 2-D, is empty, or has fewer columns than rows.
    """
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2 or d.size == 0:
        raise ValueError(f"distances must be a non-empty (n_models, n_sources) matrix, got shape {d.shape}")
    if d.shape[1] < d.shape[0]:
        raise ValueError(f"distances has {d.shape[0]} rows but {d.shape[1]} columns: every model row needs its own "
                         "source column (column i for row i)")
    filled = np.where(np.isnan(d), np.inf, d)
    nearest = np.argmin(filled, axis=1).astype(np.int64)
    nearest[np.all(np.isnan(d), axis=1)] = -1
    return IdentityResult(int(np.sum(nearest == np.arange(d.shape[0]))), nearest)


def spectral_loss_16k(estimate, target, sample_rate: float) -> float:
    """SING's spectral loss between two notes, at 16 kHz: mean ``|log(1 + |S_e|^2) - log(1 + |S_t|^2)|``.

    Defossez et al. 2018 ("SING", section 3.2, eq. 3.2-3.3 with the l1 distance; epsilon 1 as in
    the authors' code): ``S`` is the STFT with a 1024-sample periodic Hann window, hop 256 samples,
    no centring, no normalisation (so the scale, unlike that of a dB measure, depends on the STFT
    size). Both signals are first resampled to 16 kHz (``soxr``, HQ) when ``sample_rate`` differs.
    A numpy re-implementation (``librosa.stft``) of
    :func:`nsynth_live.functional.spectral.spectral_loss` with ``distance="l1"`` and default STFT
    arguments: the two agree to float precision on 16-kHz input (tested), so the figure is on the
    scale of the training reports (``models/*.md``).

    Parameters
    ----------
    estimate, target : (time,) float
        Mono notes of one length at ``sample_rate`` (at least 1024 samples once at 16 kHz).
    sample_rate : float
        Hz.

    Returns
    -------
    float
        >= 0; 0 for identical signals.

    Raises
    ------
    ValueError
        On signals that are not mono, hold NaN, differ in length or are too short.
    """
    import librosa  # noqa: PLC0415

    sample_rate = _check_sample_rate(sample_rate)
    x, y = _as_signal(estimate, name="estimate"), _as_signal(target, name="target")
    if x.shape != y.shape:
        raise ValueError(f"estimate {x.shape} and target {y.shape} must have one length; cut or pad one first")
    if sample_rate != SPECTRAL_LOSS_SAMPLE_RATE:
        import soxr  # noqa: PLC0415

        x = soxr.resample(x, sample_rate, SPECTRAL_LOSS_SAMPLE_RATE, quality="HQ")
        y = soxr.resample(y, sample_rate, SPECTRAL_LOSS_SAMPLE_RATE, quality="HQ")
    if x.shape[0] < SPECTRAL_LOSS_N_FFT:
        raise ValueError(f"notes of {x.shape[0]} samples at 16 kHz are shorter than one {SPECTRAL_LOSS_N_FFT}-sample "
                         "STFT frame")

    def log_power(signal: np.ndarray) -> np.ndarray:
        stft = librosa.stft(signal, n_fft=SPECTRAL_LOSS_N_FFT, hop_length=SPECTRAL_LOSS_HOP_SAMPLES, window="hann",
                            center=False)
        return np.log(SPECTRAL_LOSS_EPS + np.abs(stft) ** 2)

    return float(np.mean(np.abs(log_power(x) - log_power(y))))
