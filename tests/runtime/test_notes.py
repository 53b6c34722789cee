"""render_notes: one pre-roll loop for batches of notes of different pitches and velocities."""

from pathlib import Path

import numpy as np
import pytest

from nsynth_live.runtime.notes import render_notes
from nsynth_live.runtime.sing_onnx import load_synth

MODEL = Path(__file__).resolve().parents[2] / "models" / "sing_default.onnx"


@pytest.fixture(scope="module")
def synth():
    return load_synth(MODEL)


def test_a_batch_of_mixed_notes_equals_the_notes_one_by_one(synth):
    names = synth.spec.instrument_names
    embeddings = np.stack([synth.instrument_embedding(names[k]) for k in (0, 3, 7)])
    pitches, velocities = np.array([40, 60, 77]), np.array([30.0, 100.0, 127.0])
    batch = render_notes(synth, instrument_embeddings=embeddings, pitch_midi=pitches, velocity=velocities,
                         n_note_steps=20, max_voices_per_batch=3)
    assert batch.shape == (3, 20 * synth.spec.hop_length_samples) and batch.dtype == np.float32
    for k in range(3):
        one = synth.render_note(embeddings[k], pitch_midi=int(pitches[k]), velocity=float(velocities[k]), hops=20)
        np.testing.assert_allclose(batch[k], one, atol=1e-5)
    assert np.std(batch[0]) > 1e-4  # a real note, not silence


def test_out_of_range_notes_are_refused_naming_the_value(synth):
    emb = synth.instrument_embedding(synth.spec.instrument_names[0])[None]
    with pytest.raises(ValueError, match="pitch_midi=20"):
        render_notes(synth, instrument_embeddings=emb, pitch_midi=[20], velocity=100, n_note_steps=4)
    with pytest.raises(ValueError, match="velocity"):
        render_notes(synth, instrument_embeddings=emb, pitch_midi=60, velocity=[0.0], n_note_steps=4)
    with pytest.raises(ValueError, match="time steps"):
        render_notes(synth, instrument_embeddings=emb, pitch_midi=60, velocity=100, n_note_steps=10_000)
