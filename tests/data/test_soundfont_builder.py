import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from nsynth_live.data.nsynth import NSynthDataset
from nsynth_live.data.soundfont import DEBIAN_GM_SOUNDFONT, GMInstrument, SoundFontDatasetConfig, build_soundfont_dataset

pytestmark = pytest.mark.skipif(not Path(DEBIAN_GM_SOUNDFONT).is_file(), reason="needs Debian fluid-soundfont-gm")

CONFIG = SoundFontDatasetConfig(
    instruments=(GMInstrument(0, "keyboard", "acoustic", "Acoustic Grand Piano"),
                 GMInstrument(73, "flute", "acoustic", "Flute")),
    pitch_min_midi=60, pitch_max_midi=61, velocities=(25, 127),
)


def digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((folder / "audio").glob("*.wav"))}


def test_builds_an_nsynth_dataset_deterministically(tmp_path):
    notes = build_soundfont_dataset(CONFIG, tmp_path / "a")
    assert [n.note_str for n in notes] == sorted(
        f"{i}-{p:03d}-{v:03d}" for i in ("keyboard_acoustic_000", "flute_acoustic_001") for p in (60, 61) for v in (25, 127))
    ds = NSynthDataset(tmp_path / "a")
    audio = ds.load_audio("flute_acoustic_001-061-127")
    assert audio.shape == (64000,)
    sr = 16000
    held, tail = audio[: 3 * sr], audio[-1600:]
    assert np.sqrt(np.mean(held ** 2)) > 0.01  # sounding while the key is held
    assert np.sqrt(np.mean(tail ** 2)) < 0.1 * np.sqrt(np.mean(held ** 2))  # released after 3 s
    loud, quiet = (np.abs(ds.load_audio(f"keyboard_acoustic_000-060-{v:03d}")).max() for v in (127, 25))
    assert loud > 4 * quiet  # velocity reaches the sound
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["soundfont_name"] == "FluidR3_GM.sf2"
    assert manifest["soundfont_sha256"] == hashlib.sha256(Path(DEBIAN_GM_SOUNDFONT).read_bytes()).hexdigest()
    assert (tmp_path / "a" / "DONE").is_file()
    build_soundfont_dataset(CONFIG, tmp_path / "b")
    assert digest(tmp_path / "a") == digest(tmp_path / "b")


def test_resumes_and_refuses_a_foreign_folder(tmp_path):
    build_soundfont_dataset(CONFIG, tmp_path)
    before = digest(tmp_path)
    (tmp_path / "audio" / "flute_acoustic_001-060-025.wav").unlink()
    (tmp_path / "DONE").unlink()
    build_soundfont_dataset(CONFIG, tmp_path)
    assert digest(tmp_path) == before
    with pytest.raises(ValueError, match="another SoundFont or config"):
        build_soundfont_dataset(SoundFontDatasetConfig(instruments=CONFIG.instruments, pitch_min_midi=60,
                                                       pitch_max_midi=60, velocities=(25,)), tmp_path)


def test_silent_notes_are_dropped(tmp_path):
    config = SoundFontDatasetConfig(instruments=CONFIG.instruments[:1], pitch_min_midi=60, pitch_max_midi=60,
                                    velocities=(25, 127), silence_threshold_dbfs=-26.0)
    notes = build_soundfont_dataset(config, tmp_path)
    assert [n.velocity for n in notes] == [127]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["instruments"]["keyboard_acoustic_000"]["dropped"] == ["keyboard_acoustic_000-060-025"]


def test_config_validation():
    with pytest.raises(ValueError, match="subset"):
        SoundFontDatasetConfig(velocities=(64,))
    with pytest.raises(ValueError, match="pitch range"):
        SoundFontDatasetConfig(pitch_min_midi=90, pitch_max_midi=80)
    with pytest.raises(FileNotFoundError, match="fluid-soundfont-gm"):
        from nsynth_live.data.soundfont import render_instrument_notes
        render_instrument_notes(SoundFontDatasetConfig(soundfont_path="/nonexistent.sf2"), 0)


def test_force_never_empties_a_folder_that_is_not_a_dataset(tmp_path):
    """A user's folder with its own audio/ and other files: refused with or without force, nothing deleted."""
    (tmp_path / "audio").mkdir()
    mine = tmp_path / "audio" / "my_take.wav"
    mine.write_bytes(b"RIFF precious")
    (tmp_path / "notes.txt").write_text("mine")
    for force in (False, True):
        with pytest.raises(FileExistsError, match="is not a dataset"):
            build_soundfont_dataset(CONFIG, tmp_path, force=force)
    assert mine.read_bytes() == b"RIFF precious" and (tmp_path / "notes.txt").is_file()


def test_full_band_flac_dataset_resumes_and_reads_back(tmp_path):
    from dataclasses import replace

    from nsynth_live.data.soundfont import FULL_BAND_DATASET

    config = replace(FULL_BAND_DATASET, instruments=CONFIG.instruments[1:], pitch_min_midi=84, pitch_max_midi=84,
                     velocities=(127,))
    build_soundfont_dataset(config, tmp_path)
    path = tmp_path / "audio" / "flute_acoustic_000-084-127.flac"
    assert path.is_file() and not list((tmp_path / "audio").glob("*.wav"))
    audio = NSynthDataset(tmp_path).load_audio("flute_acoustic_000-084-127")
    assert audio.shape == (192000,)
    spectrum = np.abs(np.fft.rfft(audio[:96000])) ** 2
    freqs = np.fft.rfftfreq(96000, 1 / 48000)
    above = spectrum[freqs > 8000].sum() / spectrum.sum()
    assert above > 1e-6  # full band: a 16-kHz render has nothing there (a flute at MIDI 84 has partials there)
    assert path.stat().st_size < 0.75 * 192000 * 2  # FLAC is smaller than the 16-bit WAV would be
    (tmp_path / "DONE").unlink()
    path.unlink()
    build_soundfont_dataset(config, tmp_path)  # resumes and renders the missing FLAC
    assert np.array_equal(NSynthDataset(tmp_path).load_audio("flute_acoustic_000-084-127"), audio)


def test_a_dataset_written_before_audio_format_existed_still_resumes(tmp_path):
    build_soundfont_dataset(CONFIG, tmp_path)
    manifest_path = tmp_path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["config"]["audio_format"]
    manifest_path.write_text(json.dumps(manifest))
    (tmp_path / "DONE").unlink()
    build_soundfont_dataset(CONFIG, tmp_path)  # the same dataset: not refused as another config
    assert (tmp_path / "DONE").is_file()
