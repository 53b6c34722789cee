import json

import numpy as np
import pytest
import soundfile as sf

from nsynth_live.data.nsynth import NSynthDataset, NSynthFormatError, make_instrument_str, make_note_str
from tests.nsynth_fixtures import harmonic_note, write_tiny_dataset


def test_reads_the_json_wav_layout(tmp_path):
    notes = write_tiny_dataset(tmp_path, pitches=(60, 62), velocities=(100,))
    raw = json.loads((tmp_path / "examples.json").read_text())
    assert set(raw["keyboard_acoustic_000-060-100"]) >= {
        "note", "note_str", "instrument", "instrument_str", "pitch", "velocity", "sample_rate", "qualities",
        "qualities_str", "instrument_family", "instrument_family_str", "instrument_source", "instrument_source_str"}
    ds = NSynthDataset(tmp_path)
    assert len(ds) == len(notes) == 4
    assert ds.instruments() == ["keyboard_acoustic_000", "organ_electronic_001"]
    note = ds.note("organ_electronic_001-062-100")
    assert (note.pitch, note.velocity, note.instrument_family_str, note.instrument_source_str) == (62, 100, "organ", "electronic")
    assert note.qualities_str == ("bright",)
    audio = ds.load_audio(note.note_str)
    assert audio.shape == (64000,) and audio.dtype == np.float32
    np.testing.assert_allclose(audio, harmonic_note(62, 100, 0.7), atol=1 / 32768 + 1e-7)


def test_note_and_instrument_names():
    assert make_note_str("organ_electronic_083", 83, 100) == "organ_electronic_083-083-100"
    assert make_instrument_str("synth_lead", "synthetic", 7) == "synth_lead_synthetic_007"
    with pytest.raises(ValueError, match="not an NSynth family"):
        make_instrument_str("kazoo", "acoustic", 0)


def test_errors_name_the_file_and_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="examples.json"):
        NSynthDataset(tmp_path)
    (tmp_path / "examples.json").write_text("{not json")
    with pytest.raises(NSynthFormatError, match="not valid JSON"):
        NSynthDataset(tmp_path)
    (tmp_path / "examples.json").write_text(json.dumps({"x_acoustic_000-060-100": {"pitch": 60}}))
    with pytest.raises(NSynthFormatError, match="missing field"):
        NSynthDataset(tmp_path)
    write_tiny_dataset(tmp_path, instruments=(("bass", "synthetic"),), pitches=(40,), velocities=(75,))
    ds = NSynthDataset(tmp_path)
    sf.write(ds.audio_path("bass_synthetic_000-040-075"), np.zeros((100, 2)), 16000)
    with pytest.raises(NSynthFormatError, match="mono"):
        ds.load_audio("bass_synthetic_000-040-075")
    sf.write(ds.audio_path("bass_synthetic_000-040-075"), np.zeros(100), 22050)
    with pytest.raises(NSynthFormatError, match="22050 Hz"):
        ds.load_audio("bass_synthetic_000-040-075")
    with pytest.raises(KeyError, match="not in"):
        ds.note("nope")
