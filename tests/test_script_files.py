"""The scripts' files after a ``kill -9``, and their refusal to overwrite without ``--force``.

Every script writes each file under a temporary name in the destination's folder
(``.<name>.<random>.tmp``, nsynth_live.fileio) and renames it when complete; the next run removes
the temporaries a killed run left. Each test starts a script (``python export/<script>.py``, as a
user runs it) on a small job, SIGKILLs it while a temporary file exists, runs it again and checks
that no temporary file is left and the output is complete, then that a third run refuses to
overwrite (non-zero exit, one line naming the file and ``--force``) and that ``--force`` overwrites.

To kill reliably mid-write, the killed run goes through :data:`STALLED`: it runs the script
unchanged, except that its N-th rename of a temporary file onto its destination sleeps, so the
temporary (written, not yet renamed) stays until the test kills the process.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from nsynth_live.fileio import is_temporary_name

REPO = Path(__file__).resolve().parents[1]
STALL_ENV = "NSYNTH_TEST_STALL_AT_RENAME"
STALL_MARKER_ENV = "NSYNTH_TEST_STALL_MARKER"
STALLED = f"""
import os, runpy, sys, time
from nsynth_live.fileio import is_temporary_name

stall_at, renames, real_replace = int(os.environ[{STALL_ENV!r}]), [], os.replace

def replace(source, destination, *args, **kwargs):
    if is_temporary_name(os.path.basename(os.fspath(source))):
        renames.append(source)
        if len(renames) == stall_at:
            open(os.environ[{STALL_MARKER_ENV!r}], "w").close()  # tell the test: stalled, kill me now
            time.sleep(600)  # killed here: the temporary file is written, not renamed
    return real_replace(source, destination, *args, **kwargs)

os.replace = replace
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the installed package, as a user has it
    env.update(OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", **extra)
    return env


def temporaries(*folders: Path) -> list[Path]:
    """Temporary files of atomic writes under ``folders`` (recursively)."""
    found = []
    for folder in folders:
        for root, _, names in os.walk(folder):
            found += [Path(root) / name for name in names if is_temporary_name(name)]
    return sorted(found)


def _script_path(script: str) -> Path:
    return REPO / script if "/" in script or script == "run_live.py" else REPO / "export" / script


def run_script(script: str, *args, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(_script_path(script)), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=_env(), cwd=REPO)


def kill_mid_write(script: str, *args, watch: list[Path], stall_at: int = 1, timeout: float = 120) -> list[Path]:
    """Start the script, SIGKILL it while its ``stall_at``-th rename of a temporary file is held back
    (the wrapper says so with a marker file: killing at the first sight of a temporary raced with its
    rename on a busy machine) and return the temporaries it left under ``watch``."""
    marker = Path(tempfile.mkdtemp()) / "stalled"
    process = subprocess.Popen([sys.executable, "-c", STALLED, str(_script_path(script)), *map(str, args)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env=_env(**{STALL_ENV: str(stall_at), STALL_MARKER_ENV: str(marker)}), cwd=REPO)
    try:
        deadline = time.monotonic() + timeout
        while not marker.exists():
            if process.poll() is not None:
                pytest.fail(f"{script} ended (exit {process.returncode}) before its rename {stall_at}: "
                            f"{process.stderr.read()}")
            assert time.monotonic() < deadline, f"{script} did not reach rename {stall_at} in {timeout} s"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
        shutil.rmtree(marker.parent, ignore_errors=True)
    assert process.returncode == -signal.SIGKILL
    left = temporaries(*watch)
    assert left, "the killed run left no temporary file (the kill came after its rename)"
    return left


def assert_refused(done: subprocess.CompletedProcess, path: Path) -> None:
    """A refusal: non-zero exit, one line on stderr naming ``path`` and --force."""
    assert done.returncode != 0, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert str(path) in lines[0] and "--force" in lines[0], lines[0]


def mtimes(paths) -> dict[Path, int]:
    return {path: path.stat().st_mtime_ns for path in paths}


# ---------------------------------------------------------------------------- build_dataset.py
@pytest.mark.skipif(not Path("/usr/share/sounds/sf2/FluidR3_GM.sf2").is_file(), reason="needs Debian fluid-soundfont-gm")
def test_build_dataset_after_kill_9_resumes_without_temporaries_and_needs_force(tmp_path):
    from nsynth_live.data.nsynth import NSynthDataset

    out = tmp_path / "nsynth"
    args = [out, "--pitch-min", "60", "--pitch-max", "60", "--velocities", "127", "--no-progress"]
    # renames: instrument 0's WAV, the manifest, instrument 1's WAV <- killed there
    left = kill_mid_write("build_dataset.py", *args, watch=[out], stall_at=3)
    assert not (out / "DONE").exists()

    done = run_script("build_dataset.py", *args)
    assert done.returncode == 0, done.stderr
    assert temporaries(out) == [] and not any(path.exists() for path in left)
    assert (out / "DONE").read_text() == "complete\n"
    dataset = NSynthDataset(out)
    assert len(dataset) == len(list((out / "audio").glob("*.wav"))) >= 18  # 20 instruments, silent notes dropped
    assert {dataset.load_audio(note.note_str).shape for note in dataset.notes} == {(64000,)}
    before = mtimes((out / "audio").glob("*.wav"))

    assert_refused(run_script("build_dataset.py", *args), out)
    assert mtimes((out / "audio").glob("*.wav")) == before

    done = run_script("build_dataset.py", *args, "--force")
    assert done.returncode == 0, done.stderr
    after = mtimes((out / "audio").glob("*.wav"))
    assert after.keys() == before.keys() and all(after[p] != before[p] for p in after)  # rebuilt
    assert (out / "DONE").is_file() and len(NSynthDataset(out)) == len(dataset)


def test_build_dataset_refuses_a_folder_of_other_files_even_with_force(tmp_path):
    """A folder that is not a dataset is never written into: --force replaces a dataset, not a user's files."""
    (tmp_path / "notes.txt").write_text("mine")
    for force in ([], ["--force"]):
        done = run_script("build_dataset.py", tmp_path, "--pitch-min", "60", "--pitch-max", "60", "--no-progress",
                          *force)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode != 0 and len(lines) == 1, done.stderr
        assert str(tmp_path) in lines[0] and "is not a dataset" in lines[0] and "--force" not in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


# ---------------------------------------------------------------------------- wavetable.py
def test_wavetable_after_kill_9_leaves_no_temporary_and_needs_force(tmp_path):
    from nsynth_live.export.wavetable_formats import read_serum_wav

    sample_rate, f0 = 16_000, 220.0
    t = np.arange(int(0.5 * sample_rate)) / sample_rate
    note = tmp_path / "note.wav"
    soundfile.write(note, 0.3 * sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, 20)), sample_rate)
    out_dir = tmp_path / "tables"
    out_dir.mkdir()
    table = out_dir / "table.wav"
    args = ["--from-wav", note, "--frames", "4", "-o", table]
    kill_mid_write("wavetable.py", *args, watch=[out_dir], stall_at=1)  # the table, before its picture
    assert not table.exists()

    done = run_script("wavetable.py", *args)
    assert done.returncode == 0, done.stderr
    assert temporaries(out_dir) == [] and sorted(p.name for p in out_dir.iterdir()) == ["table.png", "table.wav"]
    assert read_serum_wav(table)[0].shape == (4, 2048)

    before = mtimes([table])
    assert_refused(run_script("wavetable.py", *args), table)
    assert mtimes([table]) == before
    done = run_script("wavetable.py", *args, "--force")
    assert done.returncode == 0, done.stderr
    assert mtimes([table]) != before and read_serum_wav(table)[0].shape == (4, 2048)


# ---------------------------------------------------------------------------- render_bank.py
@pytest.mark.skipif(not (REPO / "models" / "sing_default.onnx").is_file(), reason="needs the shipped SING model")
def test_render_bank_after_kill_9_resumes_without_temporaries_and_needs_force(tmp_path):
    bank = tmp_path / "bank"
    args = [bank, "--preset", "default", "--grid", "2", "--pitches", "60", "--no-plots", "--no-progress"]
    kill_mid_write("render_bank.py", *args, watch=[tmp_path], stall_at=2)
    assert not (bank / "bank.json").exists()

    done = run_script("render_bank.py", *args)
    assert done.returncode == 0, done.stderr
    assert temporaries(tmp_path) == []
    wavs = sorted((bank / "samples").glob("*.wav"))
    assert len(wavs) == 4 and all(soundfile.info(p).frames > 0 for p in wavs)
    assert (bank / "bank.json").is_file() and (bank / "default.sfz").is_file()

    before = mtimes(wavs)
    assert_refused(run_script("render_bank.py", *args), bank)
    assert mtimes(wavs) == before
    done = run_script("render_bank.py", *args, "--force")
    assert done.returncode == 0, done.stderr
    assert temporaries(tmp_path) == [] and (bank / "bank.json").is_file()


# ---------------------------------------------------------------------------- encode.py, decode.py
@pytest.fixture
def tiny_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    from nsynth_live.models.wavenet_ae import WaveNetAutoencoder

    torch.manual_seed(0)
    return WaveNetAutoencoder.from_name("tiny").save(tmp_path / "tiny.pt")


def test_encode_after_kill_9_resumes_without_temporaries_and_skips_existing(tmp_path, tiny_checkpoint):
    notes, out = tmp_path / "notes", tmp_path / "enc"
    notes.mkdir()
    t = np.arange(1600) / 16000
    for i in range(3):
        soundfile.write(notes / f"note{i}.wav", 0.4 * np.sin(2 * np.pi * 220 * (i + 1) * t), 16000)
    args = [notes, "--out-dir", out, "--checkpoint", tiny_checkpoint, "--device", "cpu", "--no-progress"]
    kill_mid_write("encode.py", *args, watch=[out], stall_at=2)  # note0's sidecar renamed, its .npy not

    done = run_script("encode.py", *args)
    assert done.returncode == 0, done.stderr
    assert temporaries(out) == []
    assert sorted(p.name for p in out.iterdir()) == [f"note{i}.{s}" for i in range(3) for s in ("json", "npy")]
    assert {np.load(out / f"note{i}.npy").shape for i in range(3)} == {(100, 4)}

    # encode and decode resume by skipping what exists: a finished job run again overwrites nothing
    before = mtimes(out.iterdir())
    done = run_script("encode.py", *args)
    assert done.returncode == 0 and "wrote 0 encodings" in done.stdout and "--force" in done.stdout
    assert mtimes(out.iterdir()) == before
    done = run_script("encode.py", *args, "--force")
    assert done.returncode == 0 and "wrote 3 encodings" in done.stdout


def test_decode_after_kill_9_resumes_without_temporaries_and_skips_existing(tmp_path, tiny_checkpoint):
    encodings, out = tmp_path / "enc", tmp_path / "wav"
    encodings.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        np.save(encodings / f"note{i}.npy", rng.normal(size=(20, 4)).astype(np.float32))  # 320 samples each
    args = [encodings, "--out-dir", out, "--checkpoint", tiny_checkpoint, "--device", "cpu", "--batch-size", "1",
            "--no-progress"]
    kill_mid_write("decode.py", *args, watch=[out], stall_at=2)

    done = run_script("decode.py", *args)
    assert done.returncode == 0, done.stderr
    assert temporaries(out) == []
    assert {p.name: soundfile.info(p).frames for p in out.iterdir()} == {f"note{i}.wav": 320 for i in range(3)}

    before = mtimes(out.iterdir())
    done = run_script("decode.py", *args)
    assert done.returncode == 0 and "wrote 0 WAV files" in done.stdout and "--force" in done.stdout
    assert mtimes(out.iterdir()) == before


# ---------------------------------------------------------------------------- convert_magenta_checkpoint.py
def test_convert_magenta_refuses_an_existing_output_before_reading_anything(tmp_path):
    out = tmp_path / "model.pt"
    out.write_bytes(b"keep me")
    assert_refused(run_script("convert_magenta_checkpoint.py", tmp_path / "no-such-ckpt", out), out)
    assert out.read_bytes() == b"keep me"


@pytest.mark.slow  # TensorFlow, in this process and in each run of the script (~4 s each)
def test_convert_magenta_after_kill_9_leaves_no_temporary(tmp_path):
    pytest.importorskip("tensorflow")
    sys.path.insert(0, str(REPO / "tests" / "models"))
    try:
        from test_magenta_convert import CONFIG, _random_magenta_arrays, _write_tf1_checkpoint
    finally:
        sys.path.remove(str(REPO / "tests" / "models"))
    from nsynth_live.models.wavenet_ae import WaveNetAutoencoder

    rng = np.random.default_rng(0)
    prefix = tmp_path / "ckpt" / "model.ckpt-200000"
    prefix.parent.mkdir()
    _write_tf1_checkpoint(prefix, _random_magenta_arrays(rng, CONFIG), rng)
    out_dir = tmp_path / "models"
    out_dir.mkdir()
    out = out_dir / "converted.pt"
    kill_mid_write("convert_magenta_checkpoint.py", prefix, out, "--config", "tiny", watch=[out_dir])
    assert not out.exists()
    done = run_script("convert_magenta_checkpoint.py", prefix, out, "--config", "tiny")
    assert done.returncode == 0, done.stderr
    assert temporaries(out_dir) == [] and [p.name for p in out_dir.iterdir()] == ["converted.pt"]
    WaveNetAutoencoder.load(out)
    # refused without --force: test_convert_magenta_refuses_an_existing_output_before_reading_anything;
    # overwritten with it: tests/models/test_magenta_convert.py


# ---------------------------------------------------------------------------- train_sing.py
def test_train_sing_refuses_to_overwrite_model_files_before_training(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "mine.onnx").write_bytes(b"keep me")
    args = ["--data", tmp_path / "no-data", "--run-dir", tmp_path / "run", "--models-dir", models, "--name", "mine"]
    assert_refused(run_script("train_sing.py", *args), models / "mine.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]  # no dataset, no run folder: refused first


@pytest.mark.skipif(not (REPO / "models" / "sing_default.pt").is_file(), reason="needs the shipped SING checkpoint")
def test_train_sing_after_kill_9_leaves_no_temporary_and_needs_force(tmp_path):
    """The recipe takes minutes even with --quick; its --export-replay step (the replay graph of a
    trained NAME.pt) goes through the same start (stale temporaries removed, --force checked)."""
    pytest.importorskip("torch")
    models, run_dir = tmp_path / "models", tmp_path / "run"
    models.mkdir()
    run_dir.mkdir()
    shutil.copy(REPO / "models" / "sing_default.pt", models / "mine.pt")
    stale_state = run_dir / ".train_state.pt.k1ll3d42.tmp"  # a killed trainer's checkpoint write
    stale_state.write_bytes(b"half a checkpoint")
    replay = models / "mine.replay.onnx"
    args = ["--models-dir", models, "--run-dir", run_dir, "--name", "mine", "--export-replay"]
    kill_mid_write("train_sing.py", *args, watch=[models])
    assert not replay.exists()

    done = run_script("train_sing.py", *args)
    assert done.returncode == 0, done.stderr
    assert temporaries(models, run_dir) == [] and replay.is_file()
    import onnx

    onnx.checker.check_model(str(replay))

    before = mtimes([replay])
    assert_refused(run_script("train_sing.py", *args), replay)
    assert mtimes([replay]) == before
    done = run_script("train_sing.py", *args, "--force")
    assert done.returncode == 0, done.stderr
    assert mtimes([replay]) != before


# ---------------------------------------------------------------------------- train_wavenet.py
def test_train_wavenet_after_kill_9_resumes_without_temporaries(tmp_path):
    pytest.importorskip("torch")
    from nsynth_live.models.checkpoint import load_checkpoint
    from tests.nsynth_fixtures import write_tiny_dataset

    dataset, run_dir = tmp_path / "nsynth", tmp_path / "run"
    write_tiny_dataset(dataset, pitches=(48, 55, 60, 67), velocities=(100,))
    args = [dataset, "--run-dir", run_dir, "--model", "tiny", "--batch-size", "2", "--crop-samples", "256",
            "--max-steps", "4", "--checkpoint-every", "2", "--holdout-fraction", "0.25", "--evaluate", "0",
            "--device", "cpu", "--threads", "1", "--no-progress"]
    kill_mid_write("train_wavenet.py", *args, watch=[run_dir])  # its first checkpoint, at step 2

    done = run_script("train_wavenet.py", *args)
    assert done.returncode == 0, done.stderr
    assert "trained to step 4" in done.stdout
    assert temporaries(run_dir) == []
    assert load_checkpoint(run_dir / "train_state.pt", model="wavenet_autoencoder")["extra"]["step"] == 4
    # the run folder is the job's own: the same command resumes it (here: nothing left to train)
    done = run_script("train_wavenet.py", *args)
    assert done.returncode == 0 and "trained to step 4" in done.stdout


# ---------------------------------------------------------------------------- run_live.py
@pytest.mark.skipif(not (REPO / "models" / "sing_default.onnx").is_file(), reason="needs the shipped SING model")
def test_run_live_refuses_to_overwrite_a_recording(tmp_path):
    take = tmp_path / "take.wav"
    take.write_bytes(b"keep me")
    done = run_script("run_live.py", "--offline", "--play", REPO / "examples" / "bach_bwv66_6.mid", "--record", take)
    assert_refused(done, take)
    assert take.read_bytes() == b"keep me"


@pytest.mark.skipif(not (REPO / "models" / "sing_default.onnx").is_file(), reason="needs the shipped SING model")
def test_run_live_offline_record_after_kill_9_leaves_no_temporary(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    args = ["--offline", "--play", REPO / "examples" / "bach_bwv66_6.mid", "--duration", "1", "--record", out / "take.wav"]
    kill_mid_write("run_live.py", *args, watch=[out])
    done = run_script("run_live.py", *args)
    assert done.returncode == 0, done.stderr
    assert soundfile.info(out / "take.wav").frames > 0
    assert temporaries(out) == []


def test_temporary_names_follow_one_convention(tmp_path):
    from nsynth_live.fileio import atomic_output, remove_stale_temporaries, temporary_target
    from nsynth_live.io.recorder import BlockRecorder

    for suffix in (".tmp", ".wav.tmp", ".tmp.wav", ".partial"):
        with atomic_output(tmp_path / "atomic" / "take.wav", suffix=suffix) as temporary:
            assert temporary_target(temporary.name) == "take.wav"
    shutil.rmtree(tmp_path / "atomic")
    recorder = BlockRecorder(tmp_path / "live.wav", sample_rate=48000, channels=2, max_block_frames=64, ring_blocks=4)
    try:
        assert [temporary_target(p.name) for p in temporaries(tmp_path)] == ["live.wav"]
    finally:
        recorder.abort()
    for name in (".a.wav.x1.tmp", ".b.npy.x2.partial", ".c.wav.x3.wav.tmp", "notes.tmp", ".config.tmp", "x.wav"):
        (tmp_path / name).write_bytes(b"")
    removed = remove_stale_temporaries(tmp_path, names=["a.wav", "c.wav"])
    assert sorted(p.name for p in removed) == [".a.wav.x1.tmp", ".c.wav.x3.wav.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".b.npy.x2.partial", ".config.tmp", "notes.tmp", "x.wav"]
    assert [p.name for p in remove_stale_temporaries(tmp_path)] == [".b.npy.x2.partial"]
