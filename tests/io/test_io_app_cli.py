"""run_live.py on bad input: one clear message naming the problem, a non-zero exit, no traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "bach_bwv66_6.mid"


def run_cli(*args, cwd=REPO_ROOT, timeout=60):
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "run_live.py"), *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin", "JACK_NO_START_SERVER": "1"},
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_missing_model_names_the_file(tmp_path):
    missing = tmp_path / "nope.onnx"
    result = run_cli("--offline", "--play", EXAMPLE, "--record", tmp_path / "o.wav", "--model", missing)
    assert result.returncode == 2
    assert str(missing) in result.stderr and "not found" in result.stderr
    assert not (tmp_path / "o.wav").exists()


def test_corrupt_model_names_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"this is not an onnx protobuf" * 10)
    result = run_cli("--offline", "--play", EXAMPLE, "--record", tmp_path / "o.wav", "--model", corrupt)
    assert result.returncode != 0
    assert str(corrupt) in result.stderr
    assert not (tmp_path / "o.wav").exists()


def test_unknown_preset_lists_valid_ones(tmp_path):
    result = run_cli("--offline", "--play", EXAMPLE, "--record", tmp_path / "o.wav", "--preset", "kazoo_orchestra")
    assert result.returncode == 2
    assert "kazoo_orchestra" in result.stderr
    assert "default" in result.stderr  # a valid preset is named


@pytest.mark.parametrize("content", [b"", b"MThd garbage that is not midi", b"RIFF\x00\x00\x00\x00WAVE"])
def test_unparseable_midi_file_is_a_clear_error(tmp_path, content):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(content)
    result = run_cli("--offline", "--play", bad, "--record", tmp_path / "o.wav")
    assert result.returncode == 2
    assert str(bad) in result.stderr and "MIDI" in result.stderr


@pytest.mark.parametrize("content, what", [
    (b"", "is empty"), (b"RIFF\x00\x00\x00\x00WAVE", "is not a MIDI file"), (EXAMPLE.read_bytes()[:700], "is truncated"),
])
def test_midi_file_errors_are_one_line_saying_what_is_wrong(tmp_path, content, what):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(content)
    result = run_cli("--offline", "--play", bad, "--record", tmp_path / "o.wav")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and str(bad) in lines[0] and what in lines[0], result.stderr


def test_missing_midi_file(tmp_path):
    result = run_cli("--offline", "--play", tmp_path / "absent.mid")
    assert result.returncode == 2 and "not found" in result.stderr


def test_offline_needs_play():
    result = run_cli("--offline")
    assert result.returncode == 2 and "--play" in result.stderr


def test_record_refuses_to_overwrite_without_force(tmp_path):
    existing = tmp_path / "take.wav"
    existing.write_bytes(b"keep me")
    result = run_cli("--offline", "--play", EXAMPLE, "--record", existing)
    assert result.returncode == 2 and "--force" in result.stderr
    assert existing.read_bytes() == b"keep me"


def test_record_must_be_wav(tmp_path):
    result = run_cli("--offline", "--play", EXAMPLE, "--record", tmp_path / "take.mp3")
    assert result.returncode == 2 and ".wav" in result.stderr


@pytest.mark.parametrize("args, fragment", [
    (["--xy", "0.5", "1.5"], "0..1"),
    (["--block-size", "0"], "positive"),
    (["--osc-port", "70000"], "1..65535"),
    (["--duration", "nan"], "positive"),
])
def test_argument_errors_name_the_valid_range(args, fragment):
    result = run_cli(*args)
    assert result.returncode == 2 and fragment in result.stderr


def test_unknown_audio_device_lists_devices_and_fails(tmp_path):
    """A named device that does not exist is an error, never a silent fallback."""
    pytest.importorskip("sounddevice", exc_type=OSError)
    result = run_cli("--audio-device", "NoSuchInterface", "--play", EXAMPLE, "--no-midi", "--no-osc")
    assert result.returncode != 0
    assert "NoSuchInterface" in result.stderr


def test_list_devices_runs():
    pytest.importorskip("sounddevice", exc_type=OSError)
    result = run_cli("--list-devices")
    assert result.returncode == 0 and result.stdout.strip()
