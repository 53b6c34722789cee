"""nsynth-wavetable (export/wavetable.py) end to end on WAV notes written under tmp_path."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from nsynth_live.export.wavetable_formats import read_serum_wav, read_surge_wt, read_vitaltable

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "export" / "wavetable.py"


@pytest.fixture(scope="module")
def cli():
    from nsynth_live.cli import wavetable

    return wavetable


@pytest.fixture
def note_wav(tmp_path):
    """A 0.8 s band-limited saw at MIDI 47.3 (fractional period), 16 kHz float WAV."""
    sample_rate, f0 = 16_000, 440.0 * 2 ** ((47.3 - 69) / 12)
    t = np.arange(int(0.8 * sample_rate)) / sample_rate
    x = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, int(8000 / f0)))
    path = tmp_path / "note.wav"
    soundfile.write(str(path), 0.3 * x / np.abs(x).max(), sample_rate, subtype="FLOAT")
    return path


def test_serum_export_writes_table_and_picture(cli, note_wav, tmp_path, capsys):
    out = tmp_path / "table.wav"
    assert cli.main(["--from-wav", str(note_wav), "--frames", "16", "--interpolation", "2", "-o", str(out)]) == 0
    frames, clm = read_serum_wav(out)
    assert frames.shape == (16, 2048) and np.abs(frames).max() == pytest.approx(0.98, abs=1e-6)
    assert clm == b"<!>2048 20000000 wavetable (nsynth-live)"
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert "16 frames" in capsys.readouterr().out


@pytest.mark.parametrize("suffix, reader", [(".wt", read_surge_wt), (".vitaltable", read_vitaltable)])
def test_format_follows_the_suffix(cli, note_wav, tmp_path, suffix, reader):
    out = tmp_path / f"table{suffix}"
    assert cli.main(["--from-wav", str(note_wav), "--frames", "4", "-o", str(out)]) == 0
    assert reader(out)[0].shape == (4, 2048)


def test_existing_output_is_refused_without_force(cli, note_wav, tmp_path, capsys):
    out = tmp_path / "table.wav"
    out.write_bytes(b"keep me")
    assert cli.main(["--from-wav", str(note_wav), "--frames", "4", "-o", str(out)]) == 2
    assert capsys.readouterr().err == f"error: {out} already exists; pass --force to replace it\n"  # one line
    assert out.read_bytes() == b"keep me" and not out.with_suffix(".png").exists()
    assert cli.main(["--from-wav", str(note_wav), "--frames", "4", "-o", str(out), "--force"]) == 0
    assert read_serum_wav(out)[0].shape == (4, 2048)


def test_existing_picture_is_refused_too(cli, note_wav, tmp_path):
    out = tmp_path / "table.wav"
    out.with_suffix(".png").write_bytes(b"old picture")
    assert cli.main(["--from-wav", str(note_wav), "-o", str(out)]) == 2
    assert not out.exists()


def test_more_than_256_frames_is_refused_with_the_limit(cli, note_wav, tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["--from-wav", str(note_wav), "--frames", "300", "-o", str(tmp_path / "t.wav")])
    assert stopped.value.code == 2
    assert "256" in capsys.readouterr().err


def test_noise_fails_saying_no_stable_pitch(cli, tmp_path, capsys, rng):
    noise = tmp_path / "noise.wav"
    soundfile.write(str(noise), 0.2 * rng.standard_normal(16_000), 16_000, subtype="FLOAT")
    out = tmp_path / "t.wav"
    assert cli.main(["--from-wav", str(noise), "-o", str(out)]) == 1
    assert "no stable pitch" in capsys.readouterr().err
    assert not out.exists() and not out.with_suffix(".png").exists()


def test_preset_mode_needs_path_and_pitch(cli, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["--preset", "default", "-o", str(tmp_path / "t.wav")])
    assert "--path" in capsys.readouterr().err


def test_preset_mode_without_the_model_fails_clearly(cli, tmp_path, capsys):
    assert cli.main(["--preset", "default", "--path", "0,0 1,1", "--pitch", "48",
                     "--model", str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "t.wav")]) == 2
    message = capsys.readouterr().err
    assert message.startswith("error:") and "missing.onnx" in message and "does not exist" in message


def test_preset_mode_with_an_unknown_preset_lists_the_valid_ones(cli, tmp_path, capsys):
    assert cli.main(["--preset", "nope", "--path", "0,0 1,1", "--pitch", "69", "-o", str(tmp_path / "t.wav")]) == 2
    message = capsys.readouterr().err
    assert "nope" in message and "default" in message and "keys" in message


def test_preset_mode_renders_a_path_with_the_default_model(cli, tmp_path):
    """The real SING model and preset: one frame per pad point, timbre changing along the path."""
    out = tmp_path / "path.vitaltable"
    assert cli.main(["--preset", "default", "--path", "0,0 1,0 0,1 1,1", "--pitch", "69", "-o", str(out)]) == 0
    frames, _, _ = read_vitaltable(out)
    assert frames.shape == (4, 2048)
    spectra = np.abs(np.fft.rfft(frames, axis=1))[:, 1:20]
    assert int(np.argmax(spectra[0])) == 0 or spectra[0, 0] > 0.1 * spectra[0].max()  # one cycle per frame
    corners = spectra / np.linalg.norm(spectra, axis=1, keepdims=True)
    assert np.min(np.linalg.norm(corners[:, None] - corners[None], axis=2)[np.triu_indices(4, 1)]) > 0.05
    assert out.with_suffix(".png").is_file()


def test_script_runs_as_a_program(note_wav, tmp_path):
    out = tmp_path / "table.wt"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--from-wav", str(note_wav), "--frames", "2", "-o", str(out)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert read_surge_wt(out)[0].shape == (2, 2048)
