"""f0 estimation: physics on synthetic tones, octave traps, rejection of unpitched input, real notes."""

import os

import numpy as np
import pytest

from nsynth_live.functional.midi import cents_between, midi_to_hz
from nsynth_live.functional.pitch import (
    NoStablePitchError,
    estimate_f0_hz,
    estimate_f0_hz_or_nan,
    refine_f0_hz,
    track_f0_hz,
)

SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"


def harmonic_tone(f0_hz, amplitudes, *, sample_rate=16_000, duration_seconds=1.0, phases=None, envelope=None):
    """Sum of harmonics ``h * f0`` (h = 1, 2, ...) below Nyquist, float64."""
    t = np.arange(int(duration_seconds * sample_rate)) / sample_rate
    x = np.zeros_like(t)
    for h, amplitude in enumerate(amplitudes, start=1):
        if h * f0_hz < sample_rate / 2:
            phase = 0.0 if phases is None else phases[h - 1]
            x += amplitude * np.sin(2 * np.pi * h * f0_hz * t + phase)
    return x if envelope is None else x * envelope(t)


def saw_amplitudes(n=400):
    return [1.0 / h for h in range(1, n + 1)]


@pytest.mark.parametrize("sample_rate", [16_000, 44_100])
@pytest.mark.parametrize("pitch_midi", [36.0, 41.37, 48.5, 60.0, 69.23, 77.8, 84.0])
def test_band_limited_saw_at_fractional_frequency_within_one_cent(pitch_midi, sample_rate):
    f0 = float(midi_to_hz(pitch_midi))
    x = harmonic_tone(f0, saw_amplitudes(), sample_rate=sample_rate, duration_seconds=0.5)
    estimate = estimate_f0_hz(x, sample_rate=sample_rate)
    assert abs(cents_between(estimate, f0)) < 1.0


def test_random_phases_and_decay_still_within_two_cents(rng):
    f0 = 97.31  # Hz, period 164.4 samples
    phases = rng.uniform(0, 2 * np.pi, 60)
    x = harmonic_tone(
        f0, [1.0 / h**0.7 for h in range(1, 61)], phases=phases, duration_seconds=2.0,
        envelope=lambda t: np.exp(-t / 0.4),  # piano-like decay, 40 dB in 1.8 s
    )
    x[:400] += 0.3 * rng.standard_normal(400)  # hammer noise in the attack
    assert abs(cents_between(estimate_f0_hz(x, sample_rate=16_000), f0)) < 2.0


def test_weak_fundamental_is_not_an_octave_up():
    f0 = 110.37
    x = harmonic_tone(f0, [0.03, 1.0, 0.8, 0.6, 0.5, 0.3])  # fundamental 30 dB under the 2nd harmonic
    assert abs(cents_between(estimate_f0_hz(x, sample_rate=16_000), f0)) < 2.0


def test_missing_fundamental_gives_the_residue_pitch():
    f0 = 130.0
    x = harmonic_tone(f0, [0.0, 1.0, 0.9, 0.7, 0.5, 0.4])
    assert abs(cents_between(estimate_f0_hz(x, sample_rate=16_000), f0)) < 2.0


def test_odd_harmonics_only_is_not_an_octave_down_or_up():
    f0 = 220.5
    x = harmonic_tone(f0, [1.0 if h % 2 else 0.0 for h in range(1, 30)])  # clarinet-like
    assert abs(cents_between(estimate_f0_hz(x, sample_rate=16_000), f0)) < 2.0


def test_strong_second_harmonic_is_not_an_octave_down():
    f0 = 300.0
    x = harmonic_tone(f0, [0.4, 1.0, 0.1, 0.5])
    assert abs(cents_between(estimate_f0_hz(x, sample_rate=16_000), f0)) < 2.0


@pytest.mark.parametrize("true_offset_cents", [-30.0, 12.0, 45.0])
def test_refine_recovers_fraction_of_a_cent_from_a_rough_guess(true_offset_cents):
    guess = 523.25  # Hz, C5: period 30.58 samples
    f0 = guess * 2 ** (true_offset_cents / 1200)
    x = harmonic_tone(f0, saw_amplitudes(), duration_seconds=0.13)  # 2080 samples
    assert abs(cents_between(refine_f0_hz(x, sample_rate=16_000, f0_hz=guess), f0)) < 0.5


def test_refine_refuses_a_segment_too_short():
    with pytest.raises(ValueError, match="too short"):
        refine_f0_hz(np.ones(100), sample_rate=16_000, f0_hz=100.0)


def test_track_follows_two_pitches_and_marks_silence_unvoiced():
    sample_rate = 16_000
    low, high = 200.0, 200.0 * 2 ** (7.3 / 12)
    x = np.concatenate([
        harmonic_tone(low, saw_amplitudes(), duration_seconds=0.5),
        np.zeros(8000),
        harmonic_tone(high, saw_amplitudes(), duration_seconds=0.5),
    ])
    track = track_f0_hz(x, sample_rate=sample_rate, fmin_hz=60.0)
    first = track.times_seconds < 0.45
    gap = (track.times_seconds > 0.55) & (track.times_seconds < 0.95)
    last = track.times_seconds > 1.05
    assert np.all(np.abs(cents_between(track.f0_hz[first], low)) < 1.0)
    assert np.all(np.abs(cents_between(track.f0_hz[last], high)) < 1.0)
    assert gap.any() and not track.voiced[gap].any()


def test_silence_is_rejected():
    with pytest.raises(NoStablePitchError, match="silent"):
        estimate_f0_hz(np.zeros(16_000), sample_rate=16_000)


@pytest.mark.parametrize("kind", ["white", "brown"])
def test_noise_is_rejected(rng, kind):
    noise = rng.standard_normal(16_000)
    x = 0.3 * noise if kind == "white" else 0.01 * np.cumsum(noise)
    with pytest.raises(NoStablePitchError, match="periodic"):
        estimate_f0_hz(x, sample_rate=16_000)


@pytest.mark.parametrize("tuning", ["equal", "just"])
def test_triad_is_rejected(tuning):
    ratios = [1.0, 2 ** (4 / 12), 2 ** (7 / 12)] if tuning == "equal" else [1.0, 5 / 4, 3 / 2]
    x = sum(harmonic_tone(261.63 * r, [1.0 / h for h in range(1, 10)]) for r in ratios)
    with pytest.raises(NoStablePitchError, match="no stable pitch"):
        estimate_f0_hz(x, sample_rate=16_000)


def test_glide_is_rejected():
    sample_rate = 16_000
    t = np.arange(sample_rate) / sample_rate
    f = 200.0 * 2 ** (3 * t / 12)  # three semitones in one second
    phase = 2 * np.pi * np.cumsum(f) / sample_rate
    x = sum(np.sin(h * phase) / h for h in range(1, 20))
    with pytest.raises(NoStablePitchError, match="wanders"):
        estimate_f0_hz(x, sample_rate=sample_rate)


def test_error_class_is_a_value_error():
    assert issubclass(NoStablePitchError, ValueError)


@pytest.mark.parametrize(
    "audio, kwargs, message",
    [
        (np.zeros((2, 1000)), {}, "mono"),
        (np.array([0.0, np.nan] * 1000), {}, "NaN"),
        (np.zeros(1000), {"fmax_hz": 5000.0}, "sample_rate / 4"),
        (np.zeros(1000), {"fmin_hz": 500.0, "fmax_hz": 400.0}, "fmin_hz < fmax_hz"),
    ],
)
def test_bad_arguments_are_refused(audio, kwargs, message):
    with pytest.raises(ValueError, match=message):
        estimate_f0_hz(audio, sample_rate=16_000, **kwargs)


def render_soundfont_note(program, pitch_midi, *, sample_rate=16_000):
    fluidsynth = pytest.importorskip("fluidsynth")
    synth = fluidsynth.Synth(
        gain=0.5, samplerate=float(sample_rate), **{"synth.reverb.active": 0, "synth.chorus.active": 0}
    )
    try:
        soundfont_id = synth.sfload(SOUNDFONT)
        synth.program_select(0, soundfont_id, 0, program)
        synth.noteon(0, pitch_midi, 100)
        held = synth.get_samples(int(0.8 * sample_rate))
        synth.noteoff(0, pitch_midi)
        tail = synth.get_samples(int(0.2 * sample_rate))
    finally:
        synth.delete()
    stereo = np.concatenate([held, tail]).reshape(-1, 2)
    return stereo[:, 0].astype(np.float64) / 32768.0


@pytest.mark.skipif(not os.path.exists(SOUNDFONT), reason="needs the Debian package fluid-soundfont-gm")
@pytest.mark.parametrize("program", [0, 20, 33, 73, 80], ids=["piano", "reed-organ", "bass", "flute", "square"])
def test_real_soundfont_notes_midi_36_to_84(program):
    # FluidR3's samples are themselves tuned within about 10 cents; octave or semitone errors fail.
    for pitch_midi in (36, 48, 60, 72, 84):
        estimate = estimate_f0_hz(render_soundfont_note(program, pitch_midi), sample_rate=16_000)
        assert abs(cents_between(estimate, midi_to_hz(pitch_midi))) < 15.0, (program, pitch_midi, estimate)


@pytest.mark.skipif(not os.path.exists(SOUNDFONT), reason="needs the Debian package fluid-soundfont-gm")
def test_real_piano_triad_is_rejected():
    x = sum(render_soundfont_note(0, pitch_midi) for pitch_midi in (60, 64, 67))
    with pytest.raises(NoStablePitchError):
        estimate_f0_hz(x, sample_rate=16_000)


def test_f0_or_nan_counts_an_unpitched_note_and_still_refuses_bad_input(rng):
    tone = harmonic_tone(220.0, [1.0, 0.5, 0.25])
    assert estimate_f0_hz_or_nan(tone, sample_rate=16_000) == estimate_f0_hz(tone, sample_rate=16_000)
    assert np.isnan(estimate_f0_hz_or_nan(rng.normal(0.0, 0.3, 16_000), sample_rate=16_000))
    with pytest.raises(ValueError, match="NaN or infinite"):
        estimate_f0_hz_or_nan(np.full(16_000, np.nan), sample_rate=16_000)
