"""Model v3 through the live engine: 48 kHz with no resampler, no pre-roll, notes at their exact MIDI
pitch (the B and F# that SING v2 played ~20 cents sharp), the morph replaying v3's state."""

import dataclasses

import numpy as np
import pytest
import torch

from nsynth_live.engine import Engine
from nsynth_live.engine.events import NoteOn, SetXY
from nsynth_live.functional.measures import refined_f0_hz
from nsynth_live.functional.midi import cents_between, midi_to_hz
from nsynth_live.models.sing_configs import SingHarmonicConfig
from nsynth_live.models.sing_harmonic import SingHarmonic
from nsynth_live.presets import load_preset
from nsynth_live.runtime.sing_export import export_sing_onnx
from nsynth_live.runtime.sing_onnx import load_synth
from tests.engine.signal_checks import render_hops

CORNERS = ["organ_acoustic_005", "string_acoustic_011", "flute_acoustic_016", "reed_acoustic_015"]
CONFIG = SingHarmonicConfig(name="engine-v3", lstm_hidden=16, lstm_layers=1, num_instruments=4, n_harmonics=16,
                            n_noise_bands=4)


@pytest.fixture(scope="module")
def v3_synth(tmp_path_factory):
    torch.manual_seed(0)
    model = SingHarmonic(CONFIG).eval()
    with torch.no_grad():
        model.sequence_generator.output.bias[0] = 0.0  # about -10 dBFS
        model.sequence_generator.output.bias[1 + CONFIG.n_harmonics:] = -8.0  # noise far below the partials
    path = tmp_path_factory.mktemp("v3") / "v3.onnx"
    export_sing_onnx(model, CORNERS, path)
    return load_synth(path)


def _held_note(synth, pitch_midi, *, sample_rate=48000, hops=140):
    engine = Engine(synth, load_preset("default"), output_sample_rate=sample_rate, channels=1, max_voices=4)
    engine.post(NoteOn(pitch_midi, 100))
    return engine, render_hops(engine, hops)[:, 0].astype(np.float64)


@pytest.mark.parametrize("pitch_midi", [59, 66, 47, 78])  # B3, F#4, B2, F#5
@pytest.mark.parametrize("sample_rate", [48000, 44100])
def test_notes_sound_at_their_midi_pitch_through_the_engine(v3_synth, pitch_midi, sample_rate):
    assert v3_synth.spec.preroll_steps == 0
    engine, audio = _held_note(v3_synth, pitch_midi, sample_rate=sample_rate)
    assert np.sqrt(np.mean(audio[sample_rate // 4:] ** 2)) > 1e-3
    f0 = refined_f0_hz(audio, sample_rate, midi_hint=pitch_midi, span=(0.2, 1.4))
    assert abs(cents_between(f0, midi_to_hz(pitch_midi))) < 0.5


def test_first_sound_comes_with_the_first_hop(v3_synth):
    """No pre-roll: the note is audible within the hop after the note-on (v2 needed 13 steps first)."""
    engine = Engine(v3_synth, load_preset("default"), output_sample_rate=48000, channels=1, max_voices=4)
    engine.post(NoteOn(60, 100))
    first = render_hops(engine, 2)[:, 0]
    assert np.max(np.abs(first[:v3_synth.spec.hop_length_samples * 2])) > 1e-3


def test_a_held_note_morphs_with_the_v3_replay(v3_synth):
    engine, before = _held_note(v3_synth, 60, hops=40)
    engine.post(SetXY(1.0, 1.0))
    after = render_hops(engine, 40)[:, 0]
    assert np.all(np.isfinite(after)) and np.sqrt(np.mean(after ** 2)) > 1e-3
    state = engine_state_keys(engine)
    assert state == {"lstm_h", "lstm_c", "context"}


def engine_state_keys(engine):
    return set(engine.synth.new_state(1))
