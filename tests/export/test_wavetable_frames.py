"""Frame extraction: each frame is one exact cycle of the source, seamless, phase-aligned, in tune."""

import numpy as np
import pytest

from nsynth_live.export.wavetable import (
    ALIGNED_FUNDAMENTAL_PHASE,
    MAX_WAVETABLE_FRAMES,
    WAVETABLE_FRAME_SAMPLES,
    WavetableConfig,
    _solve_harmonic_least_squares,
    align_phases,
    extract_wavetable,
    fit_harmonic_cycle,
    frames_from_harmonics,
)
from nsynth_live.functional.midi import cents_between, midi_to_hz
from nsynth_live.functional.pitch import NoStablePitchError

SAMPLE_RATE = 16_000  # Hz
FRAME = WAVETABLE_FRAME_SAMPLES
PHASE_ORIGIN = 1.234  # rad: the source's fundamental phase at t = 0, arbitrary


def n_harmonics_below_nyquist(f0_hz, sample_rate=SAMPLE_RATE):
    return int(np.ceil(sample_rate / 2 / f0_hz)) - 1


def render(f0_hz, amplitude_fn, *, duration_seconds=1.0, sample_rate=SAMPLE_RATE):
    """sum_h A_h(t) sin(h (2 pi f0 t + PHASE_ORIGIN)); amplitude_fn(h, t) -> A_h(t)."""
    t = np.arange(int(duration_seconds * sample_rate)) / sample_rate
    x = np.zeros_like(t)
    for h in range(1, n_harmonics_below_nyquist(f0_hz, sample_rate) + 1):
        x += amplitude_fn(h, t) * np.sin(h * (2 * np.pi * f0_hz * t + PHASE_ORIGIN))
    return x


def analytic_cycle(amplitudes):
    """One period on 2048 points, fundamental phase at the aligned origin: sum_h A_h sin(2 pi h j / N)."""
    j = np.arange(FRAME)
    return sum(a * np.sin(2 * np.pi * h * j / FRAME) for h, a in enumerate(amplitudes, start=1))


def saw(h, t):
    return np.full_like(t, 1.0 / h)


def brightening(h, t):
    # a timbre that evolves across the note: a dark spectrum (1/h^2, a smooth cycle) crossfades into
    # a bright one (1/h^1.5: the upper harmonics grow up to 9 times)
    w = np.clip(t / 1.2, 0.0, 1.0)
    return (1.0 - w) / h**2 + w / h**1.5


def peak_relative_error(frame, expected):
    return float(np.max(np.abs(frame - expected)) / np.max(np.abs(expected)))


@pytest.mark.parametrize("pitch_midi", [36.37, 47.5, 60.0, 72.81])
def test_saw_at_fractional_period_gives_the_analytic_cycle(pitch_midi):
    f0 = float(midi_to_hz(pitch_midi))
    assert (SAMPLE_RATE / f0) % 1 != 0  # the period is fractional
    table = extract_wavetable(render(f0, saw), sample_rate=SAMPLE_RATE, config=WavetableConfig(n_frames=8))
    assert table.frames.shape == (8, FRAME) and table.frames.dtype == np.float32
    amplitudes = [1.0 / h for h in range(1, n_harmonics_below_nyquist(f0) + 1)]
    for frame in table.frames:
        expected = analytic_cycle(amplitudes) * table.gain
        assert peak_relative_error(frame, expected) < 0.02
        spectrum = np.abs(np.fft.rfft(frame))
        assert np.argmax(spectrum) == 1  # fundamental in the first bin: one cycle per frame
        assert spectrum[0] < 1e-3 * spectrum[1]  # DC removed
    assert np.max(np.abs(table.frames)) == pytest.approx(0.98, abs=1e-6)


def test_evolving_harmonics_each_frame_matches_the_source_at_its_time():
    f0 = float(midi_to_hz(43.3))  # 101.2 Hz, 158.1 samples per period
    x = render(f0, brightening, duration_seconds=1.2)
    table = extract_wavetable(x, sample_rate=SAMPLE_RATE, config=WavetableConfig(n_frames=16))
    period_seconds = 1.0 / f0
    errors = []
    for frame, start, frame_f0 in zip(table.frames, table.positions_seconds, table.f0_hz):
        centre = np.array([start + 2 * period_seconds])  # middle of the 4 fitted periods
        amplitudes = [brightening(h, centre)[0] for h in range(1, n_harmonics_below_nyquist(f0) + 1)]
        errors.append(peak_relative_error(frame, analytic_cycle(amplitudes) * table.gain))
    assert max(errors) < 0.02
    # The timbre really evolves across the table: first and last frames differ a lot.
    assert peak_relative_error(table.frames[0], table.frames[-1]) > 0.2


def test_each_frame_wraps_seamlessly():
    f0 = float(midi_to_hz(52.21))
    table = extract_wavetable(render(f0, brightening, duration_seconds=1.2), sample_rate=SAMPLE_RATE,
                              config=WavetableConfig(n_frames=8))
    for frame in table.frames:
        inner_steps = np.abs(np.diff(frame))
        wrap_step = abs(frame[0] - frame[-1])
        assert wrap_step <= 1.05 * inner_steps.max()
        # the periodic continuation is as smooth as the inside: same second difference scale
        extended = np.concatenate([frame[-3:], frame[:3]])
        assert np.abs(np.diff(extended, 2)).max() <= 1.05 * np.abs(np.diff(frame, 2)).max()


def test_consecutive_frames_are_phase_aligned():
    f0 = float(midi_to_hz(45.77))
    table = extract_wavetable(render(f0, brightening, duration_seconds=1.2), sample_rate=SAMPLE_RATE,
                              config=WavetableConfig(n_frames=12))
    for previous, current in zip(table.frames[:-1], table.frames[1:]):
        correlation = np.fft.irfft(np.fft.rfft(current) * np.conj(np.fft.rfft(previous)), FRAME)
        assert np.argmax(correlation) == 0  # best circular lag between neighbours is zero
    fundamental_phase = np.angle(np.fft.rfft(table.frames)[:, 1])
    np.testing.assert_allclose(fundamental_phase, ALIGNED_FUNDAMENTAL_PHASE, atol=1e-6)


def test_weak_fundamental_frames_still_align_to_the_previous_frame(rng):
    # Fundamental far below the anchor level: alignment falls back to harmonic 2 (two candidate
    # shifts) and must pick the one matching the previous frame.
    amplitudes = np.array([0.01, 1.0, 0.7, 0.5, 0.3])
    frames = []
    for shift in rng.uniform(0, 2 * np.pi, 6):
        c = np.zeros(1024, dtype=complex)
        c[1:6] = amplitudes * np.exp(1j * (np.arange(1, 6) * shift + np.array([0, 0.3, 0.1, 0.2, 0.4])))
        frames.append(c)
    aligned = frames_from_harmonics(align_phases(np.array(frames)))
    for previous, current in zip(aligned[:-1], aligned[1:]):
        np.testing.assert_allclose(current, previous, atol=1e-9)


def test_ten_cent_detune_is_recovered():
    nominal = float(midi_to_hz(48))
    detuned = nominal * 2 ** (10 / 1200)
    x = render(detuned, saw)
    table = extract_wavetable(x, sample_rate=SAMPLE_RATE, config=WavetableConfig(n_frames=6))
    np.testing.assert_allclose(cents_between(table.f0_hz, nominal), 10.0, atol=1.0)
    amplitudes = [1.0 / h for h in range(1, n_harmonics_below_nyquist(detuned) + 1)]
    assert peak_relative_error(table.frames[0], analytic_cycle(amplitudes) * table.gain) < 0.02
    # Cutting the same note at the nominal pitch (10 cents off) ruins the frame: the test can fail.
    start = float(table.positions_seconds[0] * SAMPLE_RATE)
    wrong = frames_from_harmonics(align_phases(
        fit_harmonic_cycle(x, sample_rate=SAMPLE_RATE, start_sample=start, f0_hz=nominal, periods=4)[None]
    ))[0]
    expected = analytic_cycle(amplitudes)
    assert peak_relative_error(wrong / np.abs(wrong).max(), expected / np.abs(expected).max()) > 0.02


@pytest.mark.parametrize("sample_rate", [22_050, 44_100])
def test_other_sample_rates(sample_rate):
    f0 = 97.53
    x = render(f0, saw, duration_seconds=0.6, sample_rate=sample_rate)
    table = extract_wavetable(x, sample_rate=sample_rate, config=WavetableConfig(n_frames=3))
    amplitudes = [1.0 / h for h in range(1, min(n_harmonics_below_nyquist(f0, sample_rate), 1023) + 1)]
    assert peak_relative_error(table.frames[1], analytic_cycle(amplitudes) * table.gain) < 0.02


def test_closed_form_least_squares_equals_numpy_lstsq(rng):
    period, span, n_harmonics, offset = 61.37, 247, 30, 0.21
    samples = rng.standard_normal(span)
    tau = offset + np.arange(span) / period
    h = np.arange(1, n_harmonics + 1)
    design = np.concatenate(
        [np.ones((span, 1)), np.cos(2 * np.pi * np.outer(tau, h)), np.sin(2 * np.pi * np.outer(tau, h))], axis=1
    )
    reference = np.linalg.lstsq(design, samples, rcond=None)[0]
    cosine, sine = _solve_harmonic_least_squares(samples, offset_periods=offset, period=period, n_harmonics=n_harmonics)
    np.testing.assert_allclose(cosine, reference[1 : n_harmonics + 1], atol=1e-10)
    np.testing.assert_allclose(sine, reference[n_harmonics + 1 :], atol=1e-10)


def test_table_normalised_as_a_whole_keeps_the_loudness_evolution():
    f0 = 150.3
    x = render(f0, lambda h, t: (1.0 / h) * (0.2 + 0.8 * t), duration_seconds=1.0)  # crescendo
    table = extract_wavetable(x, sample_rate=SAMPLE_RATE, config=WavetableConfig(n_frames=5))
    peaks = np.abs(table.frames).max(axis=1)
    assert peaks[-1] == pytest.approx(0.98, abs=1e-6)
    assert np.all(np.diff(peaks) > 0) and peaks[0] < 0.6 * peaks[-1]


def test_silence_noise_and_chord_are_refused(rng):
    with pytest.raises(NoStablePitchError, match="silent"):
        extract_wavetable(np.zeros(16_000), sample_rate=SAMPLE_RATE)
    with pytest.raises(NoStablePitchError, match="no stable pitch"):
        extract_wavetable(0.3 * rng.standard_normal(16_000), sample_rate=SAMPLE_RATE)
    chord = sum(render(float(midi_to_hz(p)), saw) for p in (60, 64, 67))
    with pytest.raises(NoStablePitchError, match="no stable pitch"):
        extract_wavetable(chord, sample_rate=SAMPLE_RATE)


def test_more_than_256_frames_is_refused_with_the_limit():
    with pytest.raises(ValueError, match=str(MAX_WAVETABLE_FRAMES)):
        WavetableConfig(n_frames=MAX_WAVETABLE_FRAMES + 1)
    WavetableConfig(n_frames=MAX_WAVETABLE_FRAMES)  # the limit itself is fine


def test_bad_audio_is_refused():
    with pytest.raises(ValueError, match="mono"):
        extract_wavetable(np.zeros((2, 16_000)), sample_rate=SAMPLE_RATE)
    with pytest.raises(ValueError, match="NaN"):
        extract_wavetable(np.full(16_000, np.nan), sample_rate=SAMPLE_RATE)
    with pytest.raises(ValueError, match="outside the note"):
        extract_wavetable(render(200.0, saw), sample_rate=SAMPLE_RATE,
                          config=WavetableConfig(start_seconds=2.0, end_seconds=3.0))
