"""Timbre-path wavetables rendered through the StreamingSynth protocol, with an additive test synth."""

import numpy as np
import pytest

from nsynth_live.export.timbre_path import (
    TimbrePathConfig,
    bilinear_embeddings,
    parse_xy_path,
    timbre_path_wavetable,
)
from nsynth_live.functional.midi import cents_between, midi_to_hz
from nsynth_live.functional.pitch import NoStablePitchError
from nsynth_live.runtime.notes import render_notes
from nsynth_live.runtime.protocol import StreamSpec

FRAME = 2048
N_BASIS_HARMONICS = 40


def basis_spectra():
    """(3, harmonics) harmonic amplitudes of the three test instruments: saw, square, sine."""
    h = np.arange(1, N_BASIS_HARMONICS + 1)
    return np.stack([1.0 / h, np.where(h % 2 == 1, 1.0 / h, 0.0), (h == 1).astype(float)])


class AdditiveTestSynth:
    """A StreamingSynth test double: an additive oscillator whose harmonic amplitudes are linear in the
    embedding (``amplitudes = embedding @ basis_spectra()``). Pre-roll steps return a constant 1.0 (audio
    that must be discarded) and do not advance the phase; every call's ``time_index`` is recorded."""

    def __init__(self, *, detune_cents=0.0, preroll_steps=3, time_steps=120):
        self.spec = StreamSpec(
            sample_rate=16_000, hop_length_samples=256, preroll_steps=preroll_steps, time_steps=time_steps,
            embedding_dims=3, pitch_min_midi=24, pitch_max_midi=96, instrument_names=("saw", "square", "sine"),
        )
        self.detune_ratio = 2 ** (detune_cents / 1200)
        self.time_indices = []

    def instrument_embedding(self, name):
        if name not in self.spec.instrument_names:
            raise KeyError(name)
        return np.eye(3, dtype=np.float32)[self.spec.instrument_names.index(name)]

    def new_state(self, n_voices):
        return {"phase_cycles": np.zeros(n_voices)}

    def step(self, instrument_embedding, pitch_midi, velocity, time_index, state):
        self.time_indices.append(np.array(time_index))
        spec = self.spec
        f0 = midi_to_hz(pitch_midi) * self.detune_ratio  # (voices,) Hz
        phase = state["phase_cycles"][:, None] + f0[:, None] * np.arange(spec.hop_length_samples) / spec.sample_rate
        h = np.arange(1, N_BASIS_HARMONICS + 1)
        amplitudes = instrument_embedding.astype(np.float64) @ basis_spectra()  # (voices, harmonics)
        amplitudes = amplitudes * (h[None, :] * f0[:, None] < spec.sample_rate / 2)
        audio = np.einsum("vh,vht->vt", amplitudes, np.sin(2 * np.pi * h[None, :, None] * phase[:, None, :]))
        audio *= 0.2 * (velocity / 127.0)[:, None]
        audible = time_index >= spec.preroll_steps
        audio = np.where(audible[:, None], audio, 1.0)
        advanced = (state["phase_cycles"] + f0 * spec.hop_length_samples / spec.sample_rate) % 1.0
        return audio.astype(np.float32), {"phase_cycles": np.where(audible, advanced, state["phase_cycles"])}


def corners(synth):
    # (0,0) saw, (1,0) square, (0,1) sine, (1,1) half saw + half sine
    saw, square, sine = (synth.instrument_embedding(n) for n in ("saw", "square", "sine"))
    return np.stack([saw, square, sine, 0.5 * saw + 0.5 * sine])


def analytic_cycle(embedding, f0_hz):
    h = np.arange(1, N_BASIS_HARMONICS + 1)
    amplitudes = (np.asarray(embedding, dtype=np.float64) @ basis_spectra()) * (h * f0_hz < 8000)
    j = np.arange(FRAME)
    return np.sin(2 * np.pi * np.outer(j, h) / FRAME) @ amplitudes


def test_corner_frames_are_the_corner_instruments_cycles():
    synth = AdditiveTestSynth()
    corner_embeddings = corners(synth)
    table = timbre_path_wavetable(
        synth, corner_embeddings=corner_embeddings, path_xy=[[0, 0], [1, 0], [0, 1], [1, 1]], pitch_midi=45,
    )
    assert table.frames.shape == (4, FRAME)
    f0 = float(midi_to_hz(45))
    for frame, embedding in zip(table.frames, corner_embeddings):
        expected = analytic_cycle(embedding, f0) * 0.2 * (100 / 127) * table.gain
        assert np.max(np.abs(frame - expected)) < 0.02 * np.max(np.abs(expected))
    np.testing.assert_allclose(cents_between(table.f0_hz, f0), 0.0, atol=1.0)


def test_pad_centre_is_the_bilinear_blend_of_the_corners():
    synth = AdditiveTestSynth()
    table = timbre_path_wavetable(
        synth, corner_embeddings=corners(synth), path_xy=[[0, 0], [1, 0], [0, 1], [1, 1], [0.5, 0.5]], pitch_midi=50,
    )
    blend = table.frames[:4].mean(axis=0)
    assert np.max(np.abs(table.frames[4] - blend)) < 0.01 * np.max(np.abs(blend))
    # and the blend is not trivially equal to any corner
    assert min(np.max(np.abs(blend - corner)) for corner in table.frames[:4]) > 0.1


def test_bilinear_weights():
    corner_embeddings = np.array([[1.0, 0], [0, 1.0], [2.0, 0], [0, 2.0]])
    blended = bilinear_embeddings(corner_embeddings, [[0.25, 0.5]])
    # weights (0,0): .375, (1,0): .125, (0,1): .375, (1,1): .125
    np.testing.assert_allclose(blended[0], [0.375 + 0.75, 0.125 + 0.25])


def test_preroll_is_run_and_discarded_and_time_index_continues():
    synth = AdditiveTestSynth(preroll_steps=5)
    embeddings = np.stack([synth.instrument_embedding("saw")] * 3)
    audio = render_notes(synth, instrument_embeddings=embeddings, pitch_midi=60, velocity=100, n_note_steps=4,
                         max_voices_per_batch=2)
    assert audio.shape == (3, 4 * 256)
    assert np.abs(audio[:, 0]).max() < 1e-6  # the note starts at phase 0, not with pre-roll audio (1.0)
    # two batches (2 voices, then 1), each stepped 0..8 in order
    sequence = [int(t[0]) for t in synth.time_indices]
    assert sequence == list(range(9)) * 2
    assert [len(t) for t in synth.time_indices] == [2] * 9 + [1] * 9


def test_batch_size_does_not_change_the_table():
    path = [[0, 0], [0.3, 0.7], [1, 0.2], [0.9, 0.9], [0.1, 0.4]]
    one = timbre_path_wavetable(AdditiveTestSynth(), corner_embeddings=corners(AdditiveTestSynth()), path_xy=path,
                                pitch_midi=48, config=TimbrePathConfig(max_voices_per_batch=1))
    many = timbre_path_wavetable(AdditiveTestSynth(), corner_embeddings=corners(AdditiveTestSynth()), path_xy=path,
                                 pitch_midi=48, config=TimbrePathConfig(max_voices_per_batch=4))
    np.testing.assert_allclose(one.frames, many.frames, atol=1e-6)


def test_ten_cent_detuned_model_is_measured_and_cut_cleanly():
    synth = AdditiveTestSynth(detune_cents=10.0)
    table = timbre_path_wavetable(synth, corner_embeddings=corners(synth), path_xy=[[0, 0], [1, 0]], pitch_midi=40)
    np.testing.assert_allclose(cents_between(table.f0_hz, midi_to_hz(40)), 10.0, atol=1.0)
    expected = analytic_cycle(synth.instrument_embedding("saw"), float(midi_to_hz(40))) * 0.2 * (100 / 127) * table.gain
    assert np.max(np.abs(table.frames[0] - expected)) < 0.02 * np.max(np.abs(expected))


def test_model_out_of_tune_is_refused_naming_the_point():
    synth = AdditiveTestSynth(detune_cents=100.0)
    with pytest.raises(NoStablePitchError, match="point 0"):
        timbre_path_wavetable(synth, corner_embeddings=corners(synth), path_xy=[[0, 0]], pitch_midi=48)


def test_silent_corner_is_refused():
    synth = AdditiveTestSynth()
    silent = np.zeros((4, 3), dtype=np.float32)
    with pytest.raises(NoStablePitchError, match="silent"):
        timbre_path_wavetable(synth, corner_embeddings=silent, path_xy=[[0.5, 0.5]], pitch_midi=48)


def test_parse_xy_path():
    np.testing.assert_allclose(parse_xy_path("0,0  0.5,0.25 1,1"), [[0, 0], [0.5, 0.25], [1, 1]])
    for bad, message in [("0,0 1", "x,y"), ("0,0 a,b", "x,y"), ("0,0 1.5,0", r"\[0, 1\]"), ("", "at least one")]:
        with pytest.raises(ValueError, match=message):
            parse_xy_path(bad)
    with pytest.raises(ValueError, match="256"):
        parse_xy_path(" ".join(["0.5,0.5"] * 257))


def test_bad_arguments_are_refused():
    synth = AdditiveTestSynth()
    with pytest.raises(ValueError, match=r"\(4, embedding_dims\)"):
        timbre_path_wavetable(synth, corner_embeddings=np.zeros((3, 3)), path_xy=[[0, 0]], pitch_midi=48)
    with pytest.raises(ValueError, match="range 24..96"):
        timbre_path_wavetable(synth, corner_embeddings=corners(synth), path_xy=[[0, 0]], pitch_midi=100)
    with pytest.raises(ValueError, match="time steps"):
        timbre_path_wavetable(AdditiveTestSynth(time_steps=20), corner_embeddings=corners(synth), path_xy=[[0, 0]],
                              pitch_midi=48)
    with pytest.raises(ValueError, match="velocity"):
        timbre_path_wavetable(synth, corner_embeddings=corners(synth), path_xy=[[0, 0]], pitch_midi=48, velocity=0)
