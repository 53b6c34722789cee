"""WaveNet note renderer: a tiny random autoencoder, tiny corner files and a tiny NSynth-layout dataset."""

import warnings

import numpy as np
import pytest
import soundfile
import torch

from nsynth_live.functional.midi import midi_to_hz
from nsynth_live.functional.pitch import estimate_f0_hz
from nsynth_live.models.checkpoint import sha256_of_file
from nsynth_live.models.wavenet_ae import WaveNetAutoencoder
from nsynth_live.render.sources import SourceError, SourceSpec, make_renderer
from nsynth_live.render.wavenet_source import WavenetNoteRenderer, note_seed, transpose_by_resampling
from nsynth_live.runtime.wavenet_files import load_mono_audio
from tests.nsynth_fixtures import write_tiny_dataset

RATE = 16_000  # Hz, the tiny model's
NOTE_SECONDS = 0.025  # 400 samples = 25 frames of the tiny model's 16-sample hop


def _tone(frequency_hz, seconds, sample_rate, *, harmonics=3):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (0.4 * sum(np.sin(2 * np.pi * k * frequency_hz * t) / k for k in range(1, harmonics + 1))).astype(np.float32)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return WaveNetAutoencoder.from_name("tiny").eval()  # hop 16, 4 dims


@pytest.fixture
def checkpoint(model, tmp_path):
    return str(model.save(tmp_path / "tiny.pt"))


@pytest.fixture
def corner_files(tmp_path):
    """Four pitched corners; corner 1 is a 440 Hz tone at 44.1 kHz in stereo."""
    paths = [tmp_path / f"corner{i}.wav" for i in range(4)]
    soundfile.write(paths[0], _tone(220.0, 0.4, RATE), RATE)
    soundfile.write(paths[1], np.stack([_tone(440.0, 0.4, 44_100)] * 2, axis=1), 44_100)
    soundfile.write(paths[2], _tone(330.0, 0.4, RATE, harmonics=1), RATE)
    soundfile.write(paths[3], _tone(261.63, 0.4, RATE, harmonics=5), RATE)
    return [str(p) for p in paths]


def _renderer(checkpoint, corners, **spec_fields):
    spec = SourceSpec(backend="wavenet", model_path=checkpoint, corners=tuple(corners), device="cpu",
                      batch_size=spec_fields.pop("batch_size", 8), **spec_fields)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # corner 1 is mixed down and resampled (tested below)
        return WavenetNoteRenderer(spec, note_seconds=NOTE_SECONDS)


def test_stereo_44k_corner_warns_and_renderer_reports_its_facts(checkpoint, corner_files):
    spec = SourceSpec(backend="wavenet", model_path=checkpoint, corners=tuple(corner_files), device="cpu")
    with pytest.warns(UserWarning) as record:
        renderer = make_renderer(spec)
    messages = " ".join(str(w.message) for w in record)
    assert "mixed down to mono" in messages and "44100 Hz to 16000 Hz" in messages
    assert isinstance(renderer, WavenetNoteRenderer)
    assert (renderer.sample_rate, renderer.note_samples, renderer.hold_seconds) == (16_000, 64_000, 3.0)
    assert (renderer.pitch_min_midi, renderer.pitch_max_midi) == (0, 127)
    facts = renderer.describe()
    assert facts["backend"] == "wavenet" and facts["model_path"] == "tiny.pt"
    assert facts["model_sha256"] == sha256_of_file(checkpoint)
    assert facts["sample_rate"] == 16_000 and facts["note_samples"] == 64_000
    assert [c["sha256"] for c in facts["corners"]] == [sha256_of_file(p) for p in corner_files]
    assert abs(facts["corners"][1]["f0_hz"] - 440.0) < 1.0


def test_render_shape_dtype_and_batch_equals_one_by_one(checkpoint, corner_files):
    renderer = _renderer(checkpoint, corner_files)
    weights = np.array([[1.0, 0, 0, 0], [0.25, 0.25, 0.25, 0.25], [0.0, 0.3, 0.0, 0.7]])
    pitch = np.array([60, 48, 72], np.int64)
    velocity = np.array([100, 64, 127], np.int64)
    together = renderer.render(weights, pitch, velocity)
    assert together.shape == (3, 400) and together.dtype == np.float32
    assert np.all(np.isfinite(together)) and np.all(np.abs(together) < 1.0)
    assert len({row.tobytes() for row in together}) == 3
    # one by one, in another order, by a fresh renderer (empty embedding cache)
    alone = _renderer(checkpoint, corner_files)
    for row in (2, 0, 1):
        np.testing.assert_array_equal(alone.render(weights[row: row + 1], pitch[row: row + 1], velocity[row: row + 1])[0],
                                      together[row])
    # batched smaller than the call: still the same notes; a repeated note is rendered once and copied
    small = _renderer(checkpoint, corner_files, batch_size=2)
    again = small.render(np.concatenate([weights, weights[:1]]), np.append(pitch, 60), np.append(velocity, 100))
    np.testing.assert_array_equal(again[:3], together)
    np.testing.assert_array_equal(again[3], together[0])
    # another seed samples other audio from the same embeddings
    other = _renderer(checkpoint, corner_files, seed=1).render(weights[:1], pitch[:1], velocity[:1])
    assert not np.array_equal(other[0], together[0])


def test_corner_weights_mix_embeddings_frame_by_frame(model, checkpoint, corner_files):
    renderer = _renderer(checkpoint, corner_files)
    pitch, velocity = 57, 100
    one_hot = renderer.cell_embeddings(np.eye(4), np.full(4, pitch), np.full(4, velocity))
    assert one_hot.shape == (4, 25, 4) and one_hot.dtype == np.float32
    # corner 0 alone is exactly the encoding of its file, transposed to MIDI 57 and scaled by 100/127
    audio = load_mono_audio(corner_files[0], sample_rate=RATE)
    f0_hz = estimate_f0_hz(audio, sample_rate=RATE)
    expected_audio = 100 / 127 * transpose_by_resampling(audio, ratio=float(midi_to_hz(pitch)) / f0_hz, note_samples=400)
    with torch.inference_mode():
        expected = model.encode(torch.from_numpy(expected_audio)[None])[0].numpy()
    np.testing.assert_array_equal(one_hot[0], expected)
    # a bilinear cell is the weighted sum of the corners' embeddings
    x, y = 0.3, 0.8
    weights = np.array([[(1 - x) * (1 - y), x * (1 - y), (1 - x) * y, x * y]])
    mixed = renderer.cell_embeddings(weights, [pitch], [velocity])[0]
    np.testing.assert_allclose(mixed, np.tensordot(weights[0], one_hot.astype(np.float64), axes=1), rtol=1e-6, atol=1e-7)
    # file corners: velocity is a gain on the encoded audio; 127 encodes the file at its own level
    loud = renderer.cell_embeddings(np.eye(4)[:1], [pitch], [127])[0]
    with torch.inference_mode():
        unscaled = model.encode(torch.from_numpy(127 / 100 * expected_audio)[None])[0].numpy()
    np.testing.assert_allclose(loud, unscaled, atol=1e-5)
    assert not np.array_equal(loud, one_hot[0])


def test_dataset_corners_pick_nearest_velocity_and_transpose_missing_pitches(model, checkpoint, tmp_path):
    write_tiny_dataset(tmp_path / "nsynth", pitches=(48, 50, 55), velocities=(50, 100))
    spec = SourceSpec(backend="wavenet", model_path=checkpoint, corners=(
        "keyboard_acoustic_000", "organ_electronic_001", "organ_electronic_001", "keyboard_acoustic_000"),
        dataset_path=str(tmp_path / "nsynth"), device="cpu")
    renderer = WavenetNoteRenderer(spec, note_seconds=NOTE_SECONDS)
    assert (renderer.pitch_min_midi, renderer.pitch_max_midi) == (48, 55)
    assert renderer.describe()["corners"][0] == {"kind": "nsynth", "name": "keyboard_acoustic_000"}
    corner0 = np.array([[1.0, 0, 0, 0]])

    def encoded(pitch, velocity, ratio=1.0):
        audio, _ = soundfile.read(tmp_path / "nsynth" / "audio" / f"keyboard_acoustic_000-{pitch:03d}-{velocity:03d}.wav",
                                  dtype="float32")
        with torch.inference_mode():
            return model.encode(torch.from_numpy(transpose_by_resampling(audio, ratio=ratio, note_samples=400))[None])[0]

    np.testing.assert_array_equal(renderer.cell_embeddings(corner0, [50], [90])[0], encoded(50, 100))  # nearest layer
    np.testing.assert_array_equal(renderer.cell_embeddings(corner0, [50], [30])[0], encoded(50, 50))
    # MIDI 49 is missing: 48 and 50 are as near, the lower is transposed up a semitone
    np.testing.assert_array_equal(renderer.cell_embeddings(corner0, [49], [100])[0], encoded(48, 100, 2 ** (1 / 12)))
    audio = renderer.render(np.array([[0.5, 0.5, 0, 0]]), [52], [75])
    assert audio.shape == (1, 400) and np.all(np.isfinite(audio))
    with pytest.raises(ValueError, match="outside this source's range 48..55"):
        renderer.render(corner0, [60], [100])


def test_unusable_corners_and_models_raise_source_errors(checkpoint, corner_files, tmp_path, rng):
    silent, noise = tmp_path / "silent.wav", tmp_path / "noise.wav"
    soundfile.write(silent, np.zeros(8000, np.float32), RATE)
    soundfile.write(noise, (0.3 * rng.standard_normal(8000)).astype(np.float32), RATE)
    for bad, reason in ((silent, "silent"), (noise, "noise")):
        spec = SourceSpec(backend="wavenet", model_path=checkpoint, device="cpu",
                          corners=(corner_files[0], str(bad), corner_files[2], corner_files[3]))
        with pytest.raises(SourceError, match=f"corner 1: audio file '.*{bad.name}' has no usable pitch.*{reason}"):
            WavenetNoteRenderer(spec)
    corners = (corner_files[0], "organ_electronic_001", corner_files[2], corner_files[3])
    with pytest.raises(SourceError, match="neither an existing file nor an audio file .*dataset_path"):
        WavenetNoteRenderer(SourceSpec(backend="wavenet", model_path=checkpoint, corners=corners, device="cpu"))
    with pytest.raises(SourceError, match="missing.pt' does not exist; train one"):
        WavenetNoteRenderer(SourceSpec(backend="wavenet", model_path=str(tmp_path / "missing.pt"),
                                       corners=tuple(corner_files), device="cpu"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SourceError, match="junk.pt' is not a usable WaveNet autoencoder checkpoint"):
        WavenetNoteRenderer(SourceSpec(backend="wavenet", model_path=str(tmp_path / "junk.pt"),
                                       corners=tuple(corner_files), device="cpu"))
    with pytest.raises(SourceError, match="precision must be one of"):
        WavenetNoteRenderer(SourceSpec(backend="wavenet", model_path=checkpoint, corners=tuple(corner_files),
                                       device="cpu", precision="int8"))


def test_bad_note_arguments_are_refused(checkpoint, corner_files):
    renderer = _renderer(checkpoint, corner_files)
    with pytest.raises(ValueError, match="shape \\(notes, 4\\)"):
        renderer.render(np.ones((1, 3)) / 3, [60], [100])
    with pytest.raises(ValueError, match="sum to 1"):
        renderer.render(np.array([[0.5, 0.6, 0, 0]]), [60], [100])
    with pytest.raises(ValueError, match="velocity \\[0\\] outside 1..127"):
        renderer.render(np.array([[1.0, 0, 0, 0]]), [60], [0])


def test_estimate_seconds_projects_a_timed_step(checkpoint, corner_files):
    renderer = _renderer(checkpoint, corner_files, batch_size=4)
    one_batch = renderer.estimate_seconds(4)
    assert 0 < one_batch < 60
    assert renderer.estimate_seconds(9) == pytest.approx(3 * one_batch)  # 3 batches of 4, measured once
    assert renderer.estimate_seconds(0) == 0.0


def test_note_seed_depends_on_the_note_only():
    w = np.array([0.25, 0.25, 0.25, 0.25])
    assert note_seed(0, w, 60, 100) == note_seed(0, w.copy(), 60, 100)
    assert note_seed(0, np.array([1.0, -0.0, 0, 0]), 60, 100) == note_seed(0, np.array([1.0, 0, 0, 0]), 60, 100)
    assert len({note_seed(0, w, 60, 100), note_seed(1, w, 60, 100), note_seed(0, w, 61, 100),
                note_seed(0, w, 60, 101)}) == 4


def test_transposition_by_resampling_moves_f0_by_the_ratio():
    audio = _tone(220.0, 1.0, RATE)
    up = transpose_by_resampling(audio, ratio=2 ** (7 / 12), note_samples=16_000)
    assert up.shape == (16_000,) and np.all(up[12_000:] == 0)  # 1 s played 1.5x faster, then silence
    assert 1200 * np.log2(estimate_f0_hz(up[:10_000], sample_rate=RATE) / (220.0 * 2 ** (7 / 12))) == pytest.approx(0, abs=5)
