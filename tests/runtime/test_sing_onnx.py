from pathlib import Path

import numpy as np
import pytest
import torch

from nsynth_live.models.sing import Sing
from nsynth_live.models.sing_configs import SingConfig
from nsynth_live.runtime.sing_export import export_sing_onnx
from nsynth_live.runtime.sing_onnx import ModelFileError, load_synth, weights_sha256

SMALL = SingConfig(name="test", conv_channels=64, lstm_hidden=32, num_instruments=3)
NAMES = ["keyboard_acoustic_000", "organ_electronic_001", "flute_acoustic_002"]
DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "sing_default.onnx"
LOUD = {"test_note_peak_limit": None}  # small_model's atoms are scaled x20: its notes peak near 9 full scale


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    torch.manual_seed(0)
    sing = Sing(SMALL).eval()
    # Scale the synthesis atoms up so the outputs are far from zero and 1e-4 is a tight bound
    # (and beyond the loader's test-note limit: loaded with LOUD).
    with torch.no_grad():
        sing.decoder.synthesis.weight.mul_(20.0)
    path = tmp_path_factory.mktemp("onnx") / "small.onnx"
    export_sing_onnx(sing, NAMES, path, pitch_min_midi=40, pitch_max_midi=80)
    return sing, path


def stream_whole_notes(synth, embedding, pitch, velocity):
    voices = len(pitch)
    state = synth.new_state(voices)
    hops = []
    for t in range(synth.spec.time_steps):
        audio, state = synth.step(embedding, pitch, velocity, np.full(voices, t), state)
        hops.append(audio)
    cfg = synth.config
    pad = cfg.decoder_padding_samples
    return np.concatenate(hops[cfg.decoder_kernel_frames - 1:], axis=1)[:, pad:pad + cfg.decoder_output_samples]


@pytest.mark.parametrize("voices", [1, 2, 5])
def test_streamed_onnx_equals_pytorch_full_note(small_model, voices):
    sing, path = small_model
    synth = load_synth(path, **LOUD)
    rng = np.random.default_rng(voices)
    embedding = sing.instrument_embedding(torch.tensor(rng.integers(0, 3, voices))).detach().numpy()
    pitch = rng.integers(40, 81, voices)
    velocity = rng.uniform(1, 127, voices).astype(np.float32)
    with torch.no_grad():
        full = sing(torch.from_numpy(embedding), torch.from_numpy(pitch), torch.from_numpy(velocity)).numpy()
    streamed = stream_whole_notes(synth, embedding, pitch, velocity)
    assert np.abs(full).max() > 0.05
    assert np.abs(streamed - full).max() <= 1e-4


def test_batch_equals_one_by_one(small_model):
    _, path = small_model
    synth = load_synth(path, **LOUD)
    embedding = np.stack([synth.instrument_embedding(n) for n in NAMES])
    pitch, velocity = np.array([45, 60, 75]), np.array([30.0, 90.0, 127.0], np.float32)
    together = stream_whole_notes(synth, embedding, pitch, velocity)
    for i in range(3):
        alone = stream_whole_notes(synth, embedding[i:i + 1], pitch[i:i + 1], velocity[i:i + 1])
        assert np.abs(alone[0] - together[i]).max() <= 1e-5


def test_spec_and_embeddings_come_from_the_file(small_model):
    sing, path = small_model
    synth = load_synth(path, **LOUD)
    assert synth.spec.instrument_names == tuple(NAMES)
    assert (synth.spec.pitch_min_midi, synth.spec.pitch_max_midi) == (40, 80)
    assert synth.spec.preroll_steps == 13 and synth.spec.hop_length_samples == 256
    np.testing.assert_allclose(synth.instrument_embedding(NAMES[1]),
                               sing.sequence_generator.instrument_table.weight[1].detach().numpy(), atol=1e-6)
    with pytest.raises(KeyError, match="unknown instrument 'tuba'"):
        synth.instrument_embedding("tuba")
    assert "CPUExecutionProvider" in synth.providers


def test_bad_model_files(tmp_path, small_model):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_synth(tmp_path / "nope.onnx")
    (tmp_path / "corrupt.onnx").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelFileError, match="not a readable ONNX model"):
        load_synth(tmp_path / "corrupt.onnx")
    import onnx

    model = onnx.load(small_model[1])
    for entry in model.metadata_props:
        if entry.key == "format_version":
            entry.value = "7"
    onnx.save(model, tmp_path / "v7.onnx")
    with pytest.raises(ModelFileError, match="format_version '7'"):
        load_synth(tmp_path / "v7.onnx")


def test_export_writes_name_and_weights_sha256(small_model):
    import onnx

    _, path = small_model
    model = onnx.load(path)
    meta = {entry.key: entry.value for entry in model.metadata_props}
    assert meta["name"] == SMALL.name
    assert meta["weights_sha256"] == weights_sha256(model) and len(meta["weights_sha256"]) == 64
    synth = load_synth(path, **LOUD)
    assert synth.name == SMALL.name and synth.weights_sha256 == meta["weights_sha256"]
    assert synth.test_note_peak > 4.0  # measured 8.8
    with pytest.raises(ModelFileError, match="a test note .* peaks at 8"):
        load_synth(path)


@pytest.mark.skipif(not DEFAULT_MODEL.is_file(), reason="the default model is produced by export/train_sing.py")
def test_default_model_streams_like_its_checkpoint():
    from nsynth_live.models.checkpoint import load_sing

    sing, names = load_sing(DEFAULT_MODEL.with_suffix(".pt"))
    synth = load_synth(DEFAULT_MODEL)
    assert list(synth.spec.instrument_names) == names
    idx = torch.tensor([0, 5, 11])
    embedding = sing.instrument_embedding(idx).detach().numpy()
    pitch, velocity = np.array([36, 60, 84]), np.array([25.0, 100.0, 127.0], np.float32)
    with torch.no_grad():
        full = sing(torch.from_numpy(embedding), torch.from_numpy(pitch), torch.from_numpy(velocity)).numpy()
    assert np.abs(stream_whole_notes(synth, embedding, pitch, velocity) - full).max() <= 1e-4


# ------------------------------------------------------------------ the replay graph (the morph)
def _stepped(synth, embedding, pitch, velocity, frames):
    """States before every frame 0..frames of notes stepped from a fresh state."""
    state = synth.new_state(len(pitch))
    states = [state]
    for t in range(frames):
        _, state = synth.step(embedding, pitch, velocity, np.full(len(pitch), t), state)
        states.append(state)
    return states


@pytest.mark.parametrize("start, frames", [(0, 14), (20, 12), (9, 11), (30, 16)])
def test_replay_graph_equals_stepping(small_model, start, frames):
    """From the LSTM state alone (the engine's ring keeps only that), the replay graph gives the
    whole state stepping gives: from a note's start, or from a window inside it."""
    sing, path = small_model
    synth = load_synth(path, **LOUD)
    assert synth.replay_session is not None and synth.replay_state_keys == ("lstm_h", "lstm_c")
    embedding = sing.instrument_embedding(torch.tensor([0, 2])).detach().numpy()
    pitch, velocity = np.array([45, 70]), np.array([30.0, 127.0], np.float32)
    states = _stepped(synth, embedding, pitch, velocity, start + frames)
    begin = {k: states[start][k] for k in synth.replay_state_keys}
    time_index = np.arange(start, start + frames)[None].repeat(2, axis=0)
    replayed = synth.replay(embedding, pitch, velocity, time_index, begin)
    for key, value in states[start + frames].items():
        assert np.abs(replayed[key] - value).max() <= 1e-5, key


def test_a_model_without_replay_graph_replays_by_stepping(small_model, tmp_path):
    sing, path = small_model
    alone = tmp_path / "alone.onnx"
    alone.write_bytes(path.read_bytes())
    synth = load_synth(alone, **LOUD)
    assert synth.replay_session is None and set(synth.replay_state_keys) == set(synth.new_state(1))
    embedding = sing.instrument_embedding(torch.tensor([1])).detach().numpy()
    pitch, velocity = np.array([60]), np.array([100.0], np.float32)
    states = _stepped(synth, embedding, pitch, velocity, 20)
    replayed = synth.replay(embedding, pitch, velocity, np.arange(8, 20)[None], states[8])
    assert all(np.array_equal(replayed[k], states[20][k]) for k in states[20])


def test_a_corrupt_or_foreign_replay_graph_is_refused(small_model, tmp_path):
    from nsynth_live.runtime.sing_export import export_sing_replay_onnx
    from nsynth_live.runtime.sing_onnx import ModelIntegrityError, replay_path

    sing, path = small_model
    copy = tmp_path / "m.onnx"
    copy.write_bytes(path.read_bytes())
    torch.manual_seed(5)
    other = Sing(SMALL).eval()
    export_sing_replay_onnx(other, replay_path(copy))  # another model's replay graph, no step hash in it
    with pytest.raises(ModelIntegrityError, match="does not match m.onnx"):
        load_synth(copy, **LOUD)
    replay_path(copy).write_bytes(b"not onnx at all")
    with pytest.raises(ModelFileError, match="m.replay.onnx"):
        load_synth(copy, **LOUD)


def test_default_model_has_its_replay_graph():
    synth = load_synth(DEFAULT_MODEL)
    assert synth.replay_session is not None
    assert synth._replay_parity_error() <= 1e-5
