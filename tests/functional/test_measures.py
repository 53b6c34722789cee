"""Note quality measures (nsynth_live.functional.measures): known answers on synthetic tones, and errors."""

import math

import numpy as np
import pytest

from nsynth_live.functional.measures import (
    DB_FLOOR,
    band_energy_db,
    held_level_range_db,
    log_mel_distance,
    nearest_source_identity,
    note_level_db,
    off_harmonic_energy_share,
    partial_deviations_cents,
    refined_f0_hz,
    spectral_loss_16k,
    tuning_error_cents,
)
from nsynth_live.functional.midi import cents_between, midi_to_hz


def partials_tone(frequencies_hz, amplitudes, *, sample_rate, duration_seconds=3.0, rng=None):
    """Sum of sines at ``frequencies_hz`` (those below Nyquist) with random phases, float64."""
    rng = rng if rng is not None else np.random.default_rng(0)
    t = np.arange(int(round(duration_seconds * sample_rate))) / sample_rate
    x = np.zeros_like(t)
    for frequency, amplitude in zip(frequencies_hz, amplitudes):
        if frequency < sample_rate / 2:
            x += amplitude * np.sin(2 * np.pi * frequency * t + rng.uniform(0, 2 * np.pi))
    return x


def harmonic_tone(f0_hz, n_harmonics=30, *, sample_rate, rng=None, duration_seconds=3.0):
    return partials_tone([k * f0_hz for k in range(1, n_harmonics + 1)], [1.0 / k for k in range(1, n_harmonics + 1)],
                         sample_rate=sample_rate, rng=rng, duration_seconds=duration_seconds)


# --------------------------------------------------------------------------------------------------
# f0, partials, tuning
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sample_rate", [16_000, 48_000])
def test_detuned_harmonic_tone_reads_its_detuning_within_a_fifth_of_a_cent(rng, sample_rate):
    f0 = float(midi_to_hz(59)) * 2 ** (7.3 / 1200)
    x = harmonic_tone(f0, sample_rate=sample_rate, rng=rng)
    assert tuning_error_cents(x, sample_rate, 59) == pytest.approx(7.3, abs=0.2)
    # the peak interpolation matters: the nearest zero-padded bin alone is up to 0.05 Hz (0.7 cent
    # at the fundamental, ~0.1 cent in the fit) off; interpolated peaks read within 1e-5 cent
    assert abs(cents_between(refined_f0_hz(x, sample_rate), f0)) < 0.01
    assert abs(cents_between(refined_f0_hz(x, sample_rate, harmonics=1), f0)) < 0.01


def test_random_f0_with_a_midi_hint_reads_within_a_fifth_of_a_cent(rng):
    f0 = float(rng.uniform(65.0, 1000.0))
    x = harmonic_tone(f0, sample_rate=16_000, rng=rng)
    hint = round(float(12 * np.log2(f0 / 440.0) + 69))  # the nearest MIDI note: up to 50 cents off
    assert abs(cents_between(refined_f0_hz(x, 16_000, midi_hint=hint), f0)) < 0.2


def test_tuning_follows_a_half_semitone_detuning_and_an_octave_error(rng):
    x = harmonic_tone(float(midi_to_hz(60.45)), sample_rate=16_000, rng=rng)
    assert tuning_error_cents(x, 16_000, 60) == pytest.approx(45.0, abs=0.2)
    octave_down = harmonic_tone(float(midi_to_hz(48)), sample_rate=16_000, rng=rng)
    assert tuning_error_cents(octave_down, 16_000, 60) == pytest.approx(-1200.0, abs=0.2)


def test_third_harmonic_detuned_by_12_cents_reads_12_cents_others_zero(rng):
    f0 = 201.3
    frequencies = [k * f0 for k in range(1, 12)]
    frequencies[2] *= 2 ** (12 / 1200)
    x = partials_tone(frequencies, [1.0 / k for k in range(1, 12)], sample_rate=16_000, rng=rng)
    deviations = partial_deviations_cents(x, 16_000, f0, harmonics=8)
    assert deviations.shape == (8,)
    assert deviations[2] == pytest.approx(12.0, abs=0.5)
    np.testing.assert_allclose(np.delete(deviations, 2), 0.0, atol=0.5)


def test_stretched_tone_reads_its_stretch_and_an_f0_between_its_partials(rng):
    # stiff-string partials f_k = k f1 sqrt((1 + B k^2) / (1 + B)) (Fletcher 1964), f1 the first partial
    f1, stiffness = 146.8, 5e-4
    k = np.arange(1, 16)
    frequencies = k * f1 * np.sqrt((1 + stiffness * k**2) / (1 + stiffness))
    x = partials_tone(frequencies, 1.0 / k, sample_rate=16_000, rng=rng)
    expected = 1200 * np.log2(frequencies[:8] / (k[:8] * f1))  # 0 .. 26.8 cents
    np.testing.assert_allclose(partial_deviations_cents(x, 16_000, f1, harmonics=8), expected, atol=0.5)
    f0 = refined_f0_hz(x, 16_000)
    assert f1 + 0.2 < f0 < frequencies[7] / 8  # pulled up by the stretched partials, below the 8th's f/8


def test_weak_and_missing_partials_are_nan(rng):
    f0 = 300.0
    x = partials_tone([f0, 2 * f0, 3 * f0], [1.0, 10 ** (-50 / 20), 0.5], sample_rate=16_000, rng=rng)
    deviations = partial_deviations_cents(x, 16_000, f0, harmonics=30)
    assert np.isfinite(deviations[[0, 2]]).all()
    assert np.isnan(deviations[1])  # 50 dB under the strongest
    assert np.isnan(deviations[3:]).all()  # absent, or beyond Nyquist (k >= 26)


def test_silence_and_noise_have_no_f0(rng):
    noise = rng.standard_normal(48_000)
    assert math.isnan(refined_f0_hz(np.zeros(48_000), 16_000))
    assert math.isnan(refined_f0_hz(noise, 16_000))
    assert math.isnan(refined_f0_hz(noise, 16_000, midi_hint=60))  # no prominent peak near the hint
    assert math.isnan(tuning_error_cents(noise, 16_000, 60))
    assert np.isnan(partial_deviations_cents(noise, 16_000, 261.6)).all()
    assert np.isnan(partial_deviations_cents(np.ones(48_000), 16_000, float("nan"))).all()


# --------------------------------------------------------------------------------------------------
# Level
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sample_rate", [16_000, 48_000])
def test_sine_of_rms_0_1_is_minus_20_db(sample_rate):
    x = partials_tone([440.0], [0.1 * np.sqrt(2.0)], sample_rate=sample_rate)
    assert note_level_db(x, sample_rate) == pytest.approx(-20.0, abs=0.01)
    assert note_level_db(np.zeros(3 * sample_rate), sample_rate) == DB_FLOOR


def test_held_range_of_a_6_db_step_is_6_db_and_of_a_steady_tone_about_0(rng):
    sample_rate = 16_000
    x = harmonic_tone(97.3, sample_rate=sample_rate, rng=rng)
    assert held_level_range_db(x, sample_rate) < 0.2
    stepped = x.copy()
    stepped[int(1.5 * sample_rate):] *= 10 ** (-6 / 20)
    assert held_level_range_db(stepped, sample_rate) == pytest.approx(6.0, abs=0.2)


# --------------------------------------------------------------------------------------------------
# Spectrum shares
# --------------------------------------------------------------------------------------------------
def test_band_energy_above_8_khz_with_and_without_a_10_khz_partial(rng):
    sample_rate = 48_000
    x = partials_tone([440.0, 880.0, 1320.0], [1.0, 0.5, 0.3], sample_rate=sample_rate, rng=rng)
    assert band_energy_db(x, sample_rate) < -90.0
    partial = partials_tone([10_000.0], [0.01], sample_rate=sample_rate, rng=rng)
    expected = 10 * np.log10(np.sum(partial**2) / np.sum((x + partial) ** 2))  # -41.3 dB
    assert band_energy_db(x + partial, sample_rate) == pytest.approx(expected, abs=0.1)
    assert math.isnan(band_energy_db(np.zeros(4800), sample_rate))


def test_off_harmonic_share_of_a_harmonic_tone_and_of_a_tone_in_noise(rng):
    sample_rate, f0 = 16_000, 440.0
    x = harmonic_tone(f0, 18, sample_rate=sample_rate, rng=rng)
    assert off_harmonic_energy_share(x, sample_rate, f0) < 0.01
    span = slice(int(0.1 * sample_rate), int(2.5 * sample_rate))
    noise = rng.standard_normal(x.shape[0])
    noise *= np.sqrt(0.1 * np.sum(x[span] ** 2) / np.sum(noise[span] ** 2))  # noise : tone = 0.1 in the span
    share = off_harmonic_energy_share(x + noise, sample_rate, f0)
    ratio = 0.1 / 1.1
    assert share == pytest.approx(ratio, rel=0.05)  # the harmonic bands hold 1.1% of the noise
    assert math.isnan(off_harmonic_energy_share(x, sample_rate, float("nan")))


# --------------------------------------------------------------------------------------------------
# Distances
# --------------------------------------------------------------------------------------------------
def test_log_mel_distance_zero_for_identical_signals_and_larger_for_another_timbre(rng):
    sample_rate, f0 = 16_000, 220.0
    bright = harmonic_tone(f0, 30, sample_rate=sample_rate, rng=rng, duration_seconds=1.0)
    dark = partials_tone([f0, 2 * f0], [1.0, 0.3], sample_rate=sample_rate, rng=rng, duration_seconds=1.0)
    assert log_mel_distance(bright, bright.copy(), sample_rate) == 0.0
    near = log_mel_distance(bright, 0.9 * bright, sample_rate)  # 0.9 dB quieter
    assert near == pytest.approx(-20 * np.log10(0.9), rel=0.05)
    assert log_mel_distance(bright, dark, sample_rate) > 5 * near
    assert log_mel_distance(bright, np.concatenate([bright, dark]), sample_rate) == 0.0  # common length only
    # white noise of RMS -45 dB: -55 to -65 dB per mel band, over the -80 dB floor where the tone has nothing
    hiss = bright + 10 ** (-45 / 20) * rng.standard_normal(bright.shape[0])
    assert log_mel_distance(bright, hiss, sample_rate) > 1.0
    assert log_mel_distance(bright, hiss, sample_rate, range_db=40.0) < 0.05  # > 40 dB under the peak: ignored


def test_nearest_source_identity_on_a_hand_made_matrix():
    distances = np.array([[1.0, 2.0, 3.0, 0.5],  # nearest column 3: a distractor
                          [4.0, 1.0, 2.0, 9.0],  # own
                          [0.1, 5.0, 0.2, 9.0],  # nearest column 0
                          [np.nan, np.nan, np.nan, np.nan]])  # not measured
    result = nearest_source_identity(distances[:3])
    assert result.n_nearest_own == 1
    np.testing.assert_array_equal(result.nearest, [3, 1, 0])
    assert nearest_source_identity(np.eye(3) * -1.0 + 1.0).n_nearest_own == 3
    n_own, nearest = nearest_source_identity(distances)
    assert (n_own, nearest[-1]) == (1, -1)


def test_spectral_loss_16k_zero_for_identical_positive_otherwise_and_equal_to_the_torch_loss(rng):
    torch = pytest.importorskip("torch")
    from nsynth_live.functional.spectral import spectral_loss

    x = harmonic_tone(220.0, sample_rate=16_000, rng=rng, duration_seconds=1.0)
    y = x + 0.1 * rng.standard_normal(x.shape[0])
    assert spectral_loss_16k(x, x.copy(), 16_000) == 0.0
    loss = spectral_loss_16k(x, y, 16_000)
    reference = float(spectral_loss(torch.from_numpy(x)[None], torch.from_numpy(y)[None], distance="l1"))
    assert loss > 0.01
    assert loss == pytest.approx(reference, rel=1e-9)
    # at 48 kHz both are resampled to 16 kHz first: about the same figure for the same notes
    x48 = harmonic_tone(220.0, sample_rate=48_000, rng=rng, duration_seconds=1.0)
    assert spectral_loss_16k(x48, x48.copy(), 48_000) == 0.0
    assert spectral_loss_16k(x48, 0.5 * x48, 48_000) > 0.1


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("measure", [
    lambda x: refined_f0_hz(x, 16_000),
    lambda x: partial_deviations_cents(x, 16_000, 220.0),
    lambda x: tuning_error_cents(x, 16_000, 60),
    lambda x: note_level_db(x, 16_000),
    lambda x: held_level_range_db(x, 16_000),
    lambda x: band_energy_db(x, 48_000),
    lambda x: off_harmonic_energy_share(x, 16_000, 220.0),
    lambda x: log_mel_distance(x, x, 16_000),
    lambda x: spectral_loss_16k(x, x, 16_000),
], ids=["refined_f0", "partials", "tuning", "level", "held_range", "band_energy", "off_harmonic", "log_mel",
        "spectral_loss"])
def test_bad_input_raises(measure):
    with pytest.raises(ValueError, match="mono"):
        measure(np.zeros((2, 48_000)))
    with pytest.raises(ValueError, match="NaN"):
        measure(np.full(48_000, np.nan))
    with pytest.raises(ValueError, match="samples"):
        measure(np.zeros(100))  # too short for any span, frame or window


def test_parameter_errors_say_what_is_wrong():
    x = np.zeros(48_000)
    with pytest.raises(ValueError, match="no band above 8000 Hz"):
        band_energy_db(x, 16_000)
    with pytest.raises(ValueError, match="f0_hz"):
        partial_deviations_cents(x, 16_000, -5.0)
    with pytest.raises(ValueError, match="cannot separate"):
        off_harmonic_energy_share(x, 16_000, 30.0, span=(0.0, 0.25))
    with pytest.raises(ValueError, match="sample_rate"):
        note_level_db(x, 0)
    with pytest.raises(ValueError, match="span"):
        note_level_db(x, 16_000, span=(2.0, 1.0))
    with pytest.raises(ValueError, match="one length"):
        spectral_loss_16k(x, x[:-1], 16_000)
    with pytest.raises(ValueError, match="columns"):
        nearest_source_identity(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="matrix"):
        nearest_source_identity(np.zeros(3))


# --------------------------------------------------------------------------------------------------
# The library over the measures (nsynth_live.train.model_measures) on a stand-in 48-kHz model
# --------------------------------------------------------------------------------------------------
class HarmonicStandIn:
    """A 'model' at 48 kHz with a 480-sample hop whose notes are exact harmonic tones (3 s at most).

    It has ``render_note`` but no ``step``: measure_model must use render_note and read every rate,
    hop and length from ``spec``.
    """

    def __init__(self):
        from nsynth_live.runtime.protocol import StreamSpec

        self.spec = StreamSpec(sample_rate=48_000, hop_length_samples=480, preroll_steps=2, time_steps=302,
                               embedding_dims=2, pitch_min_midi=36, pitch_max_midi=84,
                               instrument_names=("organ_acoustic_005",))

    def instrument_embedding(self, name):
        return np.zeros(self.spec.embedding_dims, np.float32)

    def render_note(self, instrument_embedding, *, pitch_midi, velocity, hops):
        assert 0 < hops <= self.spec.time_steps - self.spec.preroll_steps
        f0 = float(midi_to_hz(pitch_midi))
        x = harmonic_tone(f0, 40, sample_rate=48_000, duration_seconds=hops * 480 / 48_000)
        return (0.05 * velocity / 127 * x).astype(np.float32)


def test_measure_model_reads_everything_from_the_spec_of_a_48_khz_model():
    import os

    from nsynth_live.data.soundfont import DEBIAN_GM_SOUNDFONT, DEFAULT_GM_INSTRUMENTS, SoundFontDatasetConfig
    from nsynth_live.train.model_measures import format_report, gm_instrument_of, measure_model

    assert gm_instrument_of("organ_acoustic_005") == (5, DEFAULT_GM_INSTRUMENTS[5])
    for name in ("organ_acoustic_004", "organ_acoustic_020", "organ"):
        with pytest.raises(ValueError, match="instrument"):
            gm_instrument_of(name)
    if not os.path.isfile(DEBIAN_GM_SOUNDFONT):
        pytest.skip(f"needs the SoundFont {DEBIAN_GM_SOUNDFONT} (Debian fluid-soundfont-gm)")
    synth = HarmonicStandIn()
    dataset = SoundFontDatasetConfig(instruments=DEFAULT_GM_INSTRUMENTS[:1], pitch_min_midi=60, pitch_max_midi=60,
                                     velocities=(100,), sample_rate=48_000, note_samples=192_000)  # one note: fast
    result = measure_model(synth, ["organ_acoustic_005"], [60], 100, dataset_config=dataset, identity_pitches=[60])
    assert result["model"] == {"sample_rate": 48_000, "hop_length_samples": 480, "note_seconds": 3.0,
                               "pitch_range_midi": [36, 84]}
    note = result["instruments"]["organ_acoustic_005"]["notes"][0]
    assert abs(note["model"]["tuning_cents"]) < 0.05
    assert all(abs(c) < 0.05 for c in note["model"]["partial_cents"])
    assert note["model"]["off_harmonic_share"] < 1e-3
    assert note["model"]["above_8khz_db"] is not None and note["source"]["above_8khz_db"] is not None
    assert note["spectral_loss_16k"] > 0 and note["spectral_loss_16k_vs_dataset"] > 0
    assert result["identity"]["timbre"]["n_nearest_own"] == 1
    with pytest.raises(ValueError, match="velocity"):
        measure_model(synth, ["organ_acoustic_005"], [60], 90, dataset_config=dataset)
    with pytest.raises(ValueError, match="outside"):
        measure_model(synth, ["organ_acoustic_005"], [30], 100, dataset_config=dataset)
    report = format_report(result)
    assert "organ_acoustic_005" in report and "n/a" not in report


def test_spectral_centroid_of_known_spectra():
    from nsynth_live.train.model_measures import spectral_centroid_hz

    sr = 48000
    t = np.arange(2 * sr) / sr
    assert abs(spectral_centroid_hz(np.sin(2 * np.pi * 1000 * t), sr) - 1000) < 15
    two = np.sin(2 * np.pi * 1000 * t) + np.sin(2 * np.pi * 3000 * t)  # equal power: centroid halfway
    assert abs(spectral_centroid_hz(two, sr) - 2000) < 30
    assert np.isnan(spectral_centroid_hz(np.zeros(sr), sr))
