"""``nsynth-train-v3`` end to end on a tiny 48-kHz SoundFont set: files, report, refusal without --force."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from nsynth_live.cli.train_v3 import main
from nsynth_live.data.soundfont import DEBIAN_GM_SOUNDFONT, FULL_BAND_DATASET, build_soundfont_dataset
from nsynth_live.runtime.sing_onnx import load_synth

pytestmark = pytest.mark.skipif(not Path(DEBIAN_GM_SOUNDFONT).is_file(), reason="needs Debian fluid-soundfont-gm")


@pytest.fixture(scope="module")
def tiny_48k(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny48k")
    # the recipe's 20 instruments, 10 pitches (one held out per instrument), one velocity
    build_soundfont_dataset(replace(FULL_BAND_DATASET, pitch_min_midi=60, pitch_max_midi=69, velocities=(100,)), root)
    return root


def test_trains_exports_and_reports_then_refuses_to_overwrite(tiny_48k, tmp_path, capsys):
    args = ["--data", str(tiny_48k), "--run-dir", str(tmp_path / "run"), "--models-dir", str(tmp_path / "models"),
            "--name", "tiny", "--steps", "2", "--skip-measures", "--threads", "1"]
    assert main(args) == 0
    models = tmp_path / "models"
    assert sorted(p.name for p in models.iterdir()) == sorted(
        ["tiny.pt", "tiny.onnx", "tiny.replay.onnx", "tiny.report.json", "tiny.md"])
    report = json.loads((models / "tiny.report.json").read_text())
    assert report["train_config"]["steps"] == 2 and report["dataset"]["heldout_notes"] == 20
    assert report["model_config"]["architecture"] == "harmonic" and report["model_config"]["sample_rate"] == 48000
    assert 0 < report["heldout_losses"]["sing_l1_16k"] and report["files"]["tiny.onnx"]["sha256"]
    assert "harmonic-plus-noise SING at 48 kHz" in (models / "tiny.md").read_text()
    synth = load_synth(models / "tiny.onnx")
    assert synth.spec.sample_rate == 48000 and synth.replay_session is not None
    assert main(args) == 1  # the model files exist
    assert "--force" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0  # resumes the finished run: nothing to train, exports again
