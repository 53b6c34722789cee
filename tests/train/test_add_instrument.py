"""Adding an instrument to model v3: names -> pitches, a folder of notes -> training notes, the fitted
embedding (the frozen model plays the new notes better than from the mean), the written model files,
and the refusals (duplicate, trained instrument, unsafe name, empty folder)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from nsynth_live.cli.add_instrument import main
from nsynth_live.data.soundfont import DEBIAN_GM_SOUNDFONT
from nsynth_live.functional.midi import midi_to_hz
from nsynth_live.functional.pitch import estimate_f0_hz
from nsynth_live.models.checkpoint import load_sing, save_sing
from nsynth_live.models.sing_configs import SingHarmonicConfig
from nsynth_live.runtime.sing_export import export_sing_onnx
from nsynth_live.runtime.sing_onnx import load_synth
from nsynth_live.train.add_instrument import (
    AddInstrumentError,
    AddInstrumentRefused,
    add_instrument_to_model,
    check_can_add,
    check_instrument_name,
    find_soundfont_preset,
    fit_instrument_embedding,
    list_soundfont_presets,
    load_note_folder,
    pitch_from_name,
    render_soundfont_preset,
    velocity_from_name,
)
from nsynth_live.train.sing_harmonic import HarmonicTrainConfig, HarmonicTrainer
from tests.nsynth_fixtures import write_tiny_dataset

TINY = SingHarmonicConfig(name="tiny-v3", sample_rate=16000, hop_length_samples=128, note_samples=64000,
                          lstm_hidden=16, lstm_layers=1, num_instruments=2, n_harmonics=8, n_noise_bands=4,
                          noise_table_samples=4096)
RECIPE = HarmonicTrainConfig(steps=40, batch_size=8, crop_frames=16, spectral_n_ffts=(1024, 256, 64),
                             save_every_steps=40, threads=1, learning_rate=1e-2)
FILE_RATE = 22_050  # Hz: the user's files, resampled to the model's 16 kHz
FIT = dict(steps=150, minutes=None, batch_size=4, crop_frames=16, n_ffts=(1024, 256, 64), learning_rate=0.1)
needs_soundfont = pytest.mark.skipif(not Path(DEBIAN_GM_SOUNDFONT).is_file(), reason="needs Debian fluid-soundfont-gm")


def tone(pitch_midi: int, velocity: int, brightness: float, *, seconds: float = 3.5, rate: int = FILE_RATE):
    """A harmonic tone held 3 s then released (a user's recording: any rate, any length)."""
    t = np.arange(int(seconds * rate)) / rate
    f0 = midi_to_hz(pitch_midi)
    audio = sum(brightness ** (k - 1) * np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6) if k * f0 < 7000)
    envelope = np.minimum(t / 0.01, 1.0) * np.where(t < 3.0, 1.0, np.exp(-(t - 3.0) / 0.1))
    return (0.2 * velocity / 127 * envelope * audio).astype(np.float32)


def write_family(folder: Path, brightness: float) -> Path:
    folder.mkdir(parents=True)
    sf.write(folder / "C4_v100.wav", tone(60, 100, brightness), FILE_RATE)
    sf.write(folder / "061.wav", tone(61, 100, brightness), FILE_RATE)
    sf.write(folder / "note64_vel50.wav", np.stack([tone(64, 50, brightness)] * 2, axis=1), FILE_RATE)  # stereo
    sf.write(folder / "mystery.wav", tone(57, 100, brightness, seconds=5.0), FILE_RATE)  # unnamed, too long
    sf.write(folder / "C1.wav", tone(24, 100, brightness), FILE_RATE)  # below the model's MIDI 36
    (folder / "README.txt").write_text("not audio")
    return folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny model v3 trained 40 steps on two synthetic instruments; returns its .onnx (with .pt, .replay.onnx)."""
    root = tmp_path_factory.mktemp("add_instrument")
    write_tiny_dataset(root / "data")
    trainer = HarmonicTrainer(dataset_dir=root / "data", run_dir=root / "run", model_config=TINY, train_config=RECIPE)
    trainer.run()
    save_sing(trainer.model, trainer.instrument_names, root / "models" / "tiny.pt")
    export_sing_onnx(trainer.model, trainer.instrument_names, root / "models" / "tiny.onnx")
    return root / "models" / "tiny.onnx"


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("notes")
    return {"bright": write_family(root / "bright", 0.9), "dark": write_family(root / "dark", 0.1)}


@pytest.fixture(scope="module")
def fitted(tiny_model, folders):
    """The embeddings fitted to each family, with their reports and notes."""
    model, _ = load_sing(tiny_model.with_suffix(".pt"))
    out = {}
    for name, folder in folders.items():
        notes = load_note_folder(folder, sample_rate=TINY.sample_rate, note_samples=TINY.note_samples)
        embedding, report = fit_instrument_embedding(model, notes, **FIT)
        out[name] = (embedding, report, notes)
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("stem, pitch", [
    ("060", 60), ("note60", 60), ("midi_072", 72), ("C4", 60), ("c4", 60), ("F#3", 54), ("Fs3", 54), ("Bb2", 46),
    ("B2", 47), ("Db4", 61), ("keyboard_acoustic_004-060-100", 60), ("C4_v100", 60), ("piano2_C4", 60),
    ("Piano.ff.Bb3", 58), ("Cello A2 vel80", 45), ("mystery", None), ("take_1_take_2", None), ("v100", None),
    ("128", None), ("C4_E4", None), ("",  None),
])
def test_pitch_from_name(stem, pitch):
    assert pitch_from_name(stem) == pitch


@pytest.mark.parametrize("stem, velocity", [
    ("C4_v100", 100), ("x-060-075", 75), ("vel50_C4", 50), ("Piano.ff.C4", 115), ("Piano.pp.C4", 25), ("C4", 100),
    ("C4_v300", 127), ("C4_v0", 1),
])
def test_velocity_from_name(stem, velocity):
    assert velocity_from_name(stem) == velocity


@pytest.mark.parametrize("name", ["../x", "a/b", "", "a b", "oboe.onnx", "x" * 65, "\u00e9t\u00e9"])
def test_unsafe_instrument_names_are_refused(name):
    with pytest.raises(AddInstrumentError, match="not allowed"):
        check_instrument_name(name)
    assert check_instrument_name("oboe_Mine-2") == "oboe_Mine-2"


def test_a_folder_becomes_notes_at_the_models_rate_and_length(folders):
    lines = []
    notes = load_note_folder(folders["bright"], sample_rate=16000, note_samples=64000, notice=lines.append)
    assert [(p, v) for p, v, _ in notes] == [(61, 100), (60, 100), (57, 100), (64, 50)]  # sorted by file name
    assert any("mystery.wav" in line and "estimated MIDI 57" in line for line in lines)
    assert any("README.txt" in line for line in lines) and any("C1.wav (MIDI 24)" in line for line in lines)
    assert all(a.shape == (64000,) and a.dtype == np.float32 for _, _, a in notes)
    peaks = [float(np.max(np.abs(a))) for _, _, a in notes]
    assert max(peaks) == pytest.approx(10 ** (-1 / 20), rel=1e-4)  # the set's loudest note at -1 dBFS
    assert peaks[3] < 0.6 * peaks[1]  # velocity 50 stays quieter than 100
    c4 = notes[1][2]
    assert abs(1200 * np.log2(estimate_f0_hz(c4, sample_rate=16000) / midi_to_hz(60))) < 5  # resampled, in tune
    assert np.all(c4[int(3.5 * 16000) + 10:] == 0)  # 3.5 s padded with silence
    mystery = notes[2][2]
    assert abs(mystery[-1]) < 1e-4 < float(np.max(np.abs(mystery[-2000:-1000])))  # 5 s cut with a fade


def test_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(AddInstrumentError, match="empty"):
        load_note_folder(tmp_path, sample_rate=16000, note_samples=64000)
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(AddInstrumentError, match="no readable audio"):
        load_note_folder(tmp_path, sample_rate=16000, note_samples=64000)
    sf.write(tmp_path / "noise.wav", np.random.default_rng(0).uniform(-0.5, 0.5, 16000).astype(np.float32), 16000)
    with pytest.raises(AddInstrumentError, match="noise.wav: no pitch in the name and none estimated"):
        load_note_folder(tmp_path, sample_rate=16000, note_samples=64000)
    with pytest.raises(AddInstrumentError, match="does not exist"):
        load_note_folder(tmp_path / "nope", sample_rate=16000, note_samples=64000)


def test_fitting_lowers_the_loss_and_leaves_the_model_alone(tiny_model, fitted):
    model, _ = load_sing(tiny_model.with_suffix(".pt"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for name, (embedding, report, _) in fitted.items():
        assert embedding.shape == (16,) and embedding.dtype == np.float32
        assert report["loss_after"] < 0.97 * report["loss_before"], (name, report)  # measured 0.88-0.92
        assert report["steps"] == FIT["steps"] and report["stopped_by"] == "steps"
    # each family is played better by its own embedding than by the other family's
    bright, _, bright_notes = fitted["bright"]
    dark, _, _ = fitted["dark"]
    _, own = fit_instrument_embedding(model, bright_notes, **{**FIT, "steps": 0}, init_embedding=bright)
    _, other = fit_instrument_embedding(model, bright_notes, **{**FIT, "steps": 0}, init_embedding=dark)
    assert own["loss_before"] < other["loss_before"]
    # only the trained rows count (not instruments added before): start from the better of their mean and row 1
    _, only_one = fit_instrument_embedding(model, bright_notes, **{**FIT, "steps": 0}, init="best", trained_rows=[1])
    assert only_one["init"] in ("mean", "row 1") and only_one["nearest_trained_row"] == 1
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())


def test_the_time_budget_ends_the_fit(tiny_model, fitted):
    model, _ = load_sing(tiny_model.with_suffix(".pt"))
    _, report = fit_instrument_embedding(model, fitted["bright"][2], **{**FIT, "steps": 10_000, "minutes": 0.02})
    assert report["stopped_by"] == "time" and 0 < report["steps"] < 10_000 and report["seconds"] < 5


def test_written_model_plays_the_new_instrument(tiny_model, fitted, tmp_path):
    bright, dark = fitted["bright"][0], fitted["dark"][0]
    source_hashes = {p: _sha256(p) for p in tiny_model.parent.iterdir()}
    out = tmp_path / "plus.onnx"
    written = add_instrument_to_model(tiny_model, out, "bright", bright)
    assert written == {"onnx": out, "replay": tmp_path / "plus.replay.onnx", "checkpoint": tmp_path / "plus.pt"}
    assert {p: _sha256(p) for p in tiny_model.parent.iterdir()} == source_hashes  # the source is untouched
    synth = load_synth(out)
    assert synth.spec.instrument_names == ("keyboard_acoustic_000", "organ_electronic_001", "bright")
    np.testing.assert_allclose(synth.instrument_embedding("bright"), bright, atol=1e-6)
    assert synth.replay_session is not None  # the copied replay graph passes its parity check
    model, names = load_sing(tmp_path / "plus.pt")
    assert names == list(synth.spec.instrument_names) and model.config.num_instruments == 3
    np.testing.assert_allclose(model.sequence_generator.instrument_table.weight[2].detach().numpy(), bright, atol=1e-6)
    audio = model.generate(model.instrument_embedding(torch.tensor([2])), torch.tensor([60]), torch.tensor([100.0]))
    assert torch.isfinite(audio).all() and float(audio.abs().max()) > 1e-3

    # in place, a second instrument; the replay graph stays as it is
    replay_hash = _sha256(tmp_path / "plus.replay.onnx")
    add_instrument_to_model(out, None, "dark", dark)
    assert load_synth(out).spec.instrument_names[-2:] == ("bright", "dark")
    assert _sha256(tmp_path / "plus.replay.onnx") == replay_hash
    # refusals: an added name without force, a trained name even with force, existing files at --out
    with pytest.raises(AddInstrumentRefused, match="--force"):
        add_instrument_to_model(out, None, "bright", dark)
    with pytest.raises(AddInstrumentRefused, match="never"):
        add_instrument_to_model(out, None, "organ_electronic_001", dark, force=True)
    with pytest.raises(AddInstrumentRefused, match="--force"):
        add_instrument_to_model(tiny_model, out, "other", dark)
    with pytest.raises(AddInstrumentError, match="not allowed"):
        add_instrument_to_model(out, None, "../evil", dark)
    # force replaces an added instrument where it is
    add_instrument_to_model(out, None, "bright", dark, force=True)
    synth = load_synth(out)
    assert synth.spec.instrument_names[2:] == ("bright", "dark")
    np.testing.assert_allclose(synth.instrument_embedding("bright"), dark, atol=1e-6)
    model, names = load_sing(tmp_path / "plus.pt")
    assert model.config.num_instruments == 4 and names[2:] == ["bright", "dark"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left
    # re-exported from the checkpoint, the ONNX file forgets which were added; the checkpoint remembers
    export_sing_onnx(model, names, tmp_path / "re" / "re.onnx")
    (tmp_path / "re" / "re.pt").write_bytes((tmp_path / "plus.pt").read_bytes())
    assert check_can_add(tmp_path / "re" / "re.onnx", None, "bright", force=True)["onnx"] == tmp_path / "re" / "re.onnx"
    with pytest.raises(AddInstrumentRefused, match="never"):
        check_can_add(tmp_path / "re" / "re.onnx", None, "keyboard_acoustic_000", force=True)


class Killed(BaseException):
    """The process dying between two renames."""


def test_a_run_killed_between_its_renames_is_repaired_by_the_next(tiny_model, fitted, tmp_path, monkeypatch):
    import nsynth_live.fileio as fileio

    out = tmp_path / "k.onnx"
    add_instrument_to_model(tiny_model, out, "bright", fitted["bright"][0])
    (tmp_path / ".k.onnx.abc123.tmp").write_bytes(b"left by a kill -9")
    real_replace, renames = os.replace, []

    def dying_replace(source, destination):
        if renames:
            raise Killed()
        renames.append(destination)
        real_replace(source, destination)

    monkeypatch.setattr(fileio.os, "replace", dying_replace)
    with pytest.raises(Killed):
        add_instrument_to_model(out, None, "dark", fitted["dark"][0])
    monkeypatch.undo()
    assert renames == [tmp_path / "k.pt"]  # the checkpoint has the new row, the ONNX file not
    assert load_sing(tmp_path / "k.pt")[1][-1] == "dark" and load_synth(out).spec.instrument_names[-1] == "bright"
    add_instrument_to_model(out, None, "dark", fitted["dark"][0])  # the ONNX file decides; no error
    assert load_synth(out).spec.instrument_names[-2:] == ("bright", "dark")
    assert load_sing(tmp_path / "k.pt")[1][-2:] == ["bright", "dark"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.onnx", "k.pt", "k.replay.onnx"]


def test_command_line(tiny_model, folders, tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    argv = [str(folders["dark"]), "--name", "dark_cli", "--model", str(tiny_model), "--out", str(out),
            "--steps", "3", "--threads", "1"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "loss" in printed and "before" in printed and f"wrote {out}" in printed
    assert load_synth(out).spec.instrument_names[-1] == "dark_cli"
    assert main(argv) == 1  # exists: refused before fitting
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "--force" in error and "\n" not in error
    assert main([str(tmp_path / "none"), "--name", "x", "--model", str(tiny_model), "--out", str(tmp_path / "y.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err


@needs_soundfont
def test_soundfont_presets_are_listed_found_and_rendered():
    presets = list_soundfont_presets(DEBIAN_GM_SOUNDFONT)
    assert (0, 68, "Oboe") in presets and (0, 42, "Cello") in presets and any(bank == 128 for bank, _, _ in presets)
    assert find_soundfont_preset(presets, "oboe") == (0, 68, "Oboe")
    assert find_soundfont_preset(presets, "0:42") == (0, 42, "Cello")
    with pytest.raises(AddInstrumentError, match="did you mean 'Oboe'"):
        find_soundfont_preset(presets, "Oboee")
    notes = render_soundfont_preset(DEBIAN_GM_SOUNDFONT, bank=0, program=68, sample_rate=16000, note_samples=64000,
                                    pitches_midi=(60, 72), velocities=(100,))
    assert [(p, v) for p, v, _ in notes] == [(60, 100), (72, 100)]
    assert max(float(np.max(np.abs(a))) for _, _, a in notes) == pytest.approx(10 ** (-1 / 20), rel=1e-4)
    assert abs(1200 * np.log2(estimate_f0_hz(notes[0][2], sample_rate=16000) / midi_to_hz(60))) < 10
