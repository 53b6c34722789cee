"""The bank job on the shipped SING model: files, resume after kill -9, refused settings, workers, Ray."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from nsynth_live.constants import DEFAULT_MODEL_FILE
from nsynth_live.data.bank_index import load_bank_index
from nsynth_live.export.riff import read_riff_chunks, read_smpl
from nsynth_live.presets import load_preset
from nsynth_live.render.bank import NOTES_LOG_NAME, BankJobError, BankSettings, render_bank
from nsynth_live.render.sources import SourceError, SourceSpec

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / DEFAULT_MODEL_FILE  # the shipped default (the CLI runs without --model)
CORNERS = load_preset("default").corners
# 2 x 2 grid, 2 roots: 8 notes in 4 chunks of 2
SMALL = dict(name="small", grid_size=2, pitches=(48, 60), formats=(), plots=False)
CLI_ARGS = ["--preset", "default", "--name", "small", "--grid", "2", "--pitches", "48,60", "--batch-size", "2",
            "--formats", "sfz", "--no-plots", "--no-progress"]


def _source(batch_size=2):
    return SourceSpec(backend="sing", model_path=str(MODEL), corners=CORNERS, batch_size=batch_size)


def _render(out, **overrides):
    settings = BankSettings(**{**SMALL, **overrides.pop("settings", {})})
    return render_bank(out, settings=settings, source=overrides.pop("source", _source()), progress=False,
                       announce=lambda _: None, **overrides)


def _bank_files(folder: Path) -> dict[str, bytes]:
    """Every file of a bank but the notes log (its line order follows completion order)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != NOTES_LOG_NAME}


@pytest.fixture(scope="module")
def reference_bank(tmp_path_factory):
    """The small bank rendered in one uninterrupted in-process run (with an SFZ, as the CLI runs)."""
    out = tmp_path_factory.mktemp("reference") / "bank"
    _render(out, settings={"formats": ("sfz",)})
    return out


def test_a_bank_has_one_24_bit_wav_per_note_with_root_key_and_sustain_loop(reference_bank):
    index = load_bank_index(reference_bank)
    assert (index.grid_size, index.pitches, index.velocities, index.sample_rate) == (2, (48, 60), (100,), 48_000)
    assert len(index.samples) == 8
    assert index.source["model_sha256"] and index.source["backend"] == "sing"
    for sample in index.samples.values():
        path = reference_bank / sample.path
        info = soundfile.info(str(path))
        assert (info.samplerate, info.subtype, info.channels, info.frames) == (48_000, "PCM_24", 1, sample.frames)
        smpl = read_smpl(dict(read_riff_chunks(path.read_bytes()))[b"smpl"])
        assert smpl["root_key"] == sample.pitch_midi
        # the loop lies in the held part of the note (SING's notes are held 3 s)
        assert sample.has_loop and 0.5 * 48_000 <= sample.loop_start < sample.loop_end <= 2.75 * 48_000
        loop = smpl["loops"][0]
        assert (loop["start"], loop["end_inclusive"]) == (sample.loop_start, sample.loop_end - 1)
    assert (reference_bank / "small.sfz").is_file()


def test_resume_after_kill_9_writes_the_same_bank(tmp_path, reference_bank):
    out = tmp_path / "bank"
    command = [sys.executable, str(REPO / "export" / "render_bank.py"), str(out), *CLI_ARGS]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = out / NOTES_LOG_NAME
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if log.exists() and log.read_bytes().count(b"\n") >= 3:
                break
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the job ended before it could be killed"
    assert not (out / "bank.json").exists()
    done_before = log.read_bytes().count(b"\n")
    assert 3 <= done_before < 8
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert f"{done_before} already done" in finished.stdout
    assert _bank_files(out) == _bank_files(reference_bank)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(entry["key"] for entry in lines) == sorted(load_bank_index(out).samples)  # none twice


def test_torn_log_line_stale_temporary_and_damaged_wav_are_repaired_on_resume(tmp_path, reference_bank):
    out = tmp_path / "bank"
    result = _render(out, settings={"formats": ("sfz",)}, max_chunks=2)
    assert result.notes_rendered == 4 and not (out / "bank.json").exists()
    log = out / NOTES_LOG_NAME
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(lines[0] + b'{"key": "x0y1/48/100", "damaged": tru\n' + b"".join(lines[1:]))
    with open(log, "ab") as stream:
        stream.write(b'{"key": "x1y1/60/100", "fi')  # a kill in the middle of an append
    (out / "samples" / ".small_x1y1_060_v100.wav.abc.tmp").write_bytes(b"RIFF half a file")
    first = json.loads(log.read_text().splitlines()[0])
    damaged = out / "samples" / first["file"]
    damaged.write_bytes(damaged.read_bytes()[:1000])  # truncated behind the job's back
    result = _render(out, settings={"formats": ("sfz",)})
    assert result.notes_rendered == 5  # 4 missing + the truncated WAV (the damaged line's note is listed again)
    assert _bank_files(out) == _bank_files(reference_bank)
    assert not list((out / "samples").glob(".*.tmp"))


def test_other_settings_on_resume_are_refused_naming_each_difference(tmp_path):
    out = tmp_path / "bank"
    _render(out, max_chunks=1)
    with pytest.raises(BankJobError) as error:
        _render(out, settings={"pitches": (48, 62), "grid_size": 3}, source=_source(batch_size=4))
    message = str(error.value)
    assert "bank.pitches: [48, 60] in the manifest, [48, 62] now" in message
    assert "bank.grid_size: 2 in the manifest, 3 now" in message
    assert "source.batch_size: 2 in the manifest, 4 now" in message
    assert "--force" in message


def test_two_jobs_cannot_write_one_folder(tmp_path):
    from nsynth_live.render import bank

    out = tmp_path / "bank"
    out.mkdir()
    lock = bank._lock_folder(out)  # another job holds the folder
    try:
        with pytest.raises(BankJobError, match="another job is rendering"):
            _render(out)
    finally:
        bank._unlock_folder(lock)
    assert _render(out).notes_rendered == 8


def test_open_nsynth_super_needs_its_9x9_grid_before_anything_renders():
    with pytest.raises(ValueError, match="9x9 grid"):
        BankSettings(**{**SMALL, "formats": ("sfz", "ons")})


def test_a_complete_bank_is_not_overwritten_without_force(tmp_path):
    out = tmp_path / "bank"
    _render(out)
    with pytest.raises(BankJobError, match="--force"):
        _render(out)
    stale = out / "samples" / "small_x9y9_100_v100.wav"  # a note of an older render of this folder
    stale.write_bytes(b"RIFF")
    result = _render(out, force=True)
    assert result.notes_rendered == 8
    assert not stale.exists() and len(list((out / "samples").glob("*.wav"))) == 8


def test_a_foreign_folder_is_not_used(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(BankJobError, match="not an unfinished bank"):
        _render(tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_a_corner_the_model_lacks_is_refused_with_the_valid_names(tmp_path):
    source = SourceSpec(backend="sing", model_path=str(MODEL), corners=("nope_000",) + CORNERS[1:], batch_size=2)
    with pytest.raises(SourceError, match=r"nope_000.*valid names:.*organ_acoustic_005"):
        _render(tmp_path / "bank", source=source)
    assert not (tmp_path / "bank").exists()


def test_batches_of_any_size_give_the_same_notes(tmp_path, reference_bank):
    out = tmp_path / "bank"
    _render(out, source=_source(batch_size=8), settings={"formats": ("sfz",)})
    ours, reference = _bank_files(out), _bank_files(reference_bank)
    assert ours.keys() == reference.keys()
    for name in ours:
        if name.endswith(".wav"):
            a = soundfile.read(str(out / name))[0]
            b = soundfile.read(str(reference_bank / name))[0]
            assert np.max(np.abs(a - b)) < 1e-4, name


def test_two_local_worker_processes_write_the_same_bank(tmp_path, reference_bank):
    out = tmp_path / "bank"
    _render(out, workers=2, settings={"formats": ("sfz",)})
    assert _bank_files(out) == _bank_files(reference_bank)


@pytest.mark.slow
def test_a_local_ray_cluster_with_two_workers_writes_the_same_bank(tmp_path, reference_bank):
    pytest.importorskip("ray")
    out = tmp_path / "bank"
    _render(out, workers=2, ray_address="local", settings={"formats": ("sfz",)})
    assert _bank_files(out) == _bank_files(reference_bank)


def test_sfizz_plays_the_rendered_bank_in_tune_with_its_roots(reference_bank):
    """The model's own bank in a real SFZ player: key 62 plays root 60 two semitones up, 4 voices."""
    pysfizz = pytest.importorskip("pysfizz")
    from nsynth_live.functional.midi import cents_between
    from nsynth_live.functional.pitch import estimate_f0_hz

    wrapper = reference_bank / "ram.sfz"  # samples in RAM: pysfizz 0.1.3 may cut streamed ones short
    wrapper.write_text('<control> hint_ram_based=1\n#include "small.sfz"\n')
    synth = pysfizz.Synth(48_000, 1024)
    try:
        assert synth.load_sfz_file(wrapper, quiet=False)
    finally:
        wrapper.unlink()  # the bank folder is shared with the other tests
    raw = synth._synth
    raw.cc(0, 12, 0)
    raw.cc(0, 13, 0)
    raw.note_on(0, 62, 100)
    blocks, voices = [], []
    for _ in range(60):  # 1.28 s
        left, _ = raw.render_block()
        blocks.append(np.array(left, dtype=np.float64))
        voices.append(raw.get_num_active_voices())
    played = np.concatenate(blocks)[int(0.6 * 48_000):]
    root, _ = soundfile.read(str(reference_bank / "samples" / "small_x0y0_060_v100.wav"), dtype="float64")
    root_f0 = estimate_f0_hz(root[int(0.6 * 48_000): int(1.28 * 48_000)], sample_rate=48_000, fmin_hz=100, fmax_hz=800)
    played_f0 = estimate_f0_hz(played, sample_rate=48_000, fmin_hz=100, fmax_hz=800)
    assert abs(float(cents_between(played_f0, root_f0 * 2 ** (2 / 12)))) < 3.0
    assert max(voices) == 4


def test_local_wavenet_workers_get_one_gpu_each_when_there_are_several(monkeypatch):
    import torch

    from nsynth_live.render import bank

    wavenet = SourceSpec(backend="wavenet", model_path="ck.pt", corners=("a", "b", "c", "d"), device="auto")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert bank._worker_devices(wavenet, 3) == ["cuda:0", "cuda:1", "cuda:0"]
    assert bank._worker_devices(_source(), 3) is None  # SING runs on ONNX Runtime's CPU
    assert bank._worker_devices(SourceSpec(**{**wavenet.__dict__, "device": "cpu"}), 3) is None
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert bank._worker_devices(wavenet, 3) is None


def test_a_bank_index_with_a_loop_outside_its_sample_is_refused(reference_bank):
    from nsynth_live.data.bank_index import BankFormatError, BankIndex

    data = json.loads((reference_bank / "bank.json").read_text())
    key = next(iter(data["samples"]))
    data["samples"][key]["loop_end"] = data["samples"][key]["frames"] + 10
    with pytest.raises(BankFormatError, match="outside its"):
        BankIndex.from_json(data)
