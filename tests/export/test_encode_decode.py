import json
import os
import runpy
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from nsynth_live.models.wavenet_ae import WaveNetAutoencoder
from nsynth_live.runtime.wavenet_files import decode_files, encode_files, load_encoding, load_mono_audio
from nsynth_live.runtime.wavenet_generate import WaveNetGenerator

REPO = Path(__file__).resolve().parents[2]
encode_cli = runpy.run_path(str(REPO / "export" / "encode.py"))["main"]
decode_cli = runpy.run_path(str(REPO / "export" / "decode.py"))["main"]


@pytest.fixture
def model():
    torch.manual_seed(0)
    return WaveNetAutoencoder.from_name("tiny").eval()  # hop 16, 4 dims


@pytest.fixture
def checkpoint(model, tmp_path):
    return model.save(tmp_path / "tiny.pt")


def _tone(frequency_hz, seconds, sample_rate):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (0.5 * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)


def test_encode_names_shapes_and_lengths(model, checkpoint, tmp_path, capsys):
    notes = tmp_path / "notes"
    (notes / "sub").mkdir(parents=True)
    soundfile.write(notes / "keys.v2.wav", _tone(440, 0.1, 16000), 16000)  # 1600 samples = 100 frames
    soundfile.write(notes / "sub" / "odd.wav", _tone(220, 0.0503, 16000), 16000)  # 804: not a multiple of 16
    out = tmp_path / "enc"
    assert encode_cli([str(notes), "--out-dir", str(out), "--checkpoint", str(checkpoint), "--device", "cpu",
                       "--no-progress"]) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npy")) == ["keys.v2.npy", "sub/odd.npy"]
    enc = np.load(out / "keys.v2.npy")
    assert enc.shape == (100, 4) and enc.dtype == np.float32
    with torch.no_grad():
        stored, _ = soundfile.read(notes / "keys.v2.wav", dtype="float32")  # 16-bit PCM as written
        expected = model.encode(torch.from_numpy(stored)[None])[0].numpy()
    np.testing.assert_allclose(enc, expected, atol=1e-6)
    odd, num_samples = load_encoding(out / "sub" / "odd.npy", bottleneck_dims=4, hop_length_samples=16)
    assert odd.shape == (51, 4) and num_samples == 804  # padded to 816, length kept in the sidecar
    assert json.loads((out / "sub" / "odd.json").read_text())["format_version"] == 1

    # a second run skips finished files; --force redoes them
    mtime = os.stat(out / "keys.v2.npy").st_mtime_ns
    assert encode_cli([str(notes), "--out-dir", str(out), "--checkpoint", str(checkpoint), "--device", "cpu",
                       "--no-progress"]) == 0
    assert "wrote 0 encodings" in capsys.readouterr().out
    assert os.stat(out / "keys.v2.npy").st_mtime_ns == mtime
    assert encode_cli([str(notes / "keys.v2.wav"), "--out-dir", str(out), "--checkpoint", str(checkpoint),
                       "--device", "cpu", "--no-progress", "--force"]) == 0
    assert "wrote 1 encodings" in capsys.readouterr().out

    # decoded, each note comes back at its input's length: 804 samples were padded to 816 and trimmed back
    wavs = tmp_path / "wav"
    assert decode_cli([str(out), "--out-dir", str(wavs), "--checkpoint", str(checkpoint), "--device", "cpu",
                       "--no-progress"]) == 0
    assert {p.relative_to(wavs).as_posix(): soundfile.info(p).frames for p in wavs.rglob("*.wav")} == {
        "keys.v2.wav": 1600, "sub/odd.wav": 804}


def test_stereo_and_other_rates_are_mixed_and_resampled_with_warnings(tmp_path):
    stereo = np.stack([_tone(440, 0.5, 22050), np.zeros(11025, np.float32)], axis=1)
    soundfile.write(tmp_path / "st.wav", stereo, 22050)
    with pytest.warns(UserWarning) as record:
        audio = load_mono_audio(tmp_path / "st.wav", sample_rate=16000)
    messages = " ".join(str(w.message) for w in record)
    assert "mixed down to mono" in messages and "22050 Hz to 16000 Hz" in messages
    assert audio.shape == (8000,)
    # mono mix halves the tone; resampling keeps its pitch (peak of the spectrum at 440 Hz)
    assert np.max(np.abs(audio[1000:-1000])) == pytest.approx(0.25, abs=0.01)
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    assert np.argmax(spectrum) * 16000 / audio.size == pytest.approx(440, abs=2)


def test_name_collisions_and_missing_inputs_are_refused(tmp_path, model):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    soundfile.write(tmp_path / "a" / "x.wav", np.zeros(32, np.float32), 16000)
    soundfile.write(tmp_path / "b" / "x.wav", np.zeros(32, np.float32), 16000)
    with pytest.raises(ValueError, match="would both write"):
        encode_files([tmp_path / "a" / "x.wav", tmp_path / "b" / "x.wav"], tmp_path / "o", model=model,
                     progress=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        encode_files([tmp_path / "nope.wav"], tmp_path / "o", model=model, progress=False)


def test_decode_batches_trims_and_writes_16k_wavs(model, checkpoint, tmp_path, rng):
    enc_dir = tmp_path / "enc"
    enc_dir.mkdir()
    for name, frames in [("n1", 3), ("n.2", 5), ("n3", 4)]:
        np.save(enc_dir / f"{name}.npy", rng.normal(size=(frames, 4)).astype(np.float32))
    np.save(enc_dir / "magenta3d.npy", rng.normal(size=(1, 2, 4)).astype(np.float32))  # Magenta's 3-D layout
    # a sidecar asks to trim n3 back to 50 samples (it was padded from 50 to 64)
    (enc_dir / "n3.json").write_text(json.dumps({"format_version": 1, "num_samples": 50, "frames": 4,
                                                 "sample_rate": 16000}))
    out = tmp_path / "wav"
    assert decode_cli([str(enc_dir), "--out-dir", str(out), "--checkpoint", str(checkpoint), "--device", "cpu",
                       "--batch-size", "3", "--no-progress"]) == 0
    lengths = {p.name: soundfile.info(p).frames for p in out.glob("*.wav")}
    assert lengths == {"n1.wav": 48, "n.2.wav": 80, "n3.wav": 50, "magenta3d.wav": 32}
    info = soundfile.info(out / "n.2.wav")
    assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
    assert not list(out.glob(".*"))  # no temporary files left


def test_padding_in_a_batch_does_not_change_a_note(model, tmp_path, rng):
    """Decoded alone or next to a longer note (zero-padded frames), a note's samples are identical."""
    enc_dir = tmp_path / "enc"
    enc_dir.mkdir()
    short = rng.normal(size=(2, 4)).astype(np.float32)
    np.save(enc_dir / "short.npy", short)
    np.save(enc_dir / "long.npy", rng.normal(size=(6, 4)).astype(np.float32))
    generator = WaveNetGenerator(model.decoder)
    decode_files([enc_dir], tmp_path / "both", generator=generator, batch_size=2, seed=5, progress=False)
    both, _ = soundfile.read(tmp_path / "both" / "short.wav", dtype="float64")
    # the same noise rows: sampling noise is drawn per batch row, so decode short in row 0 again
    alone = generator.generate(torch.from_numpy(np.stack([short, np.zeros_like(short)])), seed=5)[0].numpy()
    np.testing.assert_allclose(both, alone, atol=1.01 / 32768, rtol=0)  # equal up to 16-bit rounding


def test_interrupted_decode_resumes_without_redoing_finished_files(model, tmp_path, rng, monkeypatch):
    enc_dir = tmp_path / "enc"
    enc_dir.mkdir()
    for i in range(5):
        np.save(enc_dir / f"note{i}.npy", rng.normal(size=(2, 4)).astype(np.float32))
    out = tmp_path / "wav"
    generator = WaveNetGenerator(model.decoder)
    real_generate = generator.generate
    calls = []

    def generate_then_die(encodings, **kwargs):
        calls.append(encodings.shape[0])
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed during the second batch
        return real_generate(encodings, **kwargs)

    monkeypatch.setattr(generator, "generate", generate_then_die)
    with pytest.raises(KeyboardInterrupt):
        decode_files([enc_dir], out, generator=generator, batch_size=2, progress=False)
    finished = sorted(p.name for p in out.glob("*.wav"))
    assert len(finished) == 2
    mtimes = {name: os.stat(out / name).st_mtime_ns for name in finished}
    (out / ".note4.wav.abc.partial").write_bytes(b"junk of a killed write")

    (out / ".other.wav.abc.partial").write_bytes(b"another job's write in progress")

    calls.clear()
    monkeypatch.setattr(generator, "generate", lambda e, **k: (calls.append(e.shape[0]), real_generate(e, **k))[1])
    written = decode_files([enc_dir], out, generator=generator, batch_size=2, progress=False)
    assert sum(calls) == 3  # only the three unfinished notes were generated
    assert sorted(p.name for p in written) == sorted(set(f"note{i}.wav" for i in range(5)) - set(finished))
    assert {name: os.stat(out / name).st_mtime_ns for name in finished} == mtimes
    assert len(list(out.glob("*.wav"))) == 5
    assert [p.name for p in out.glob(".*")] == [".other.wav.abc.partial"]  # only this job's leftovers go

    # the resumed job wrote what one never stopped writes; so does one stopped inside a batch,
    # after writing one of its two notes (that batch is generated whole again, one file written)
    straight = tmp_path / "straight"
    decode_files([enc_dir], straight, generator=generator, batch_size=2, progress=False)
    for name in (f"note{i}.wav" for i in range(5)):
        assert (out / name).read_bytes() == (straight / name).read_bytes(), name
    (out / "note3.wav").unlink()
    calls.clear()
    assert [p.name for p in decode_files([enc_dir], out, generator=generator, batch_size=2, progress=False)] == [
        "note3.wav"]
    assert calls == [2] and (out / "note3.wav").read_bytes() == (straight / "note3.wav").read_bytes()


def test_bad_encodings_are_refused(checkpoint, tmp_path, capsys):
    enc_dir = tmp_path / "enc"
    enc_dir.mkdir()
    np.save(enc_dir / "wrong.npy", np.zeros((3, 16), np.float32))  # 16 dims, the tiny model has 4
    assert decode_cli([str(enc_dir), "--out-dir", str(tmp_path / "o"), "--checkpoint", str(checkpoint),
                       "--device", "cpu", "--no-progress"]) == 2
    assert "expected (frames, 4)" in capsys.readouterr().err
    assert decode_cli([str(enc_dir), "--out-dir", str(tmp_path / "o"), "--checkpoint", str(checkpoint),
                       "--device", "cpu", "--batch-size", "0", "--no-progress"]) == 2
    assert "batch_size must be >= 1" in capsys.readouterr().err
