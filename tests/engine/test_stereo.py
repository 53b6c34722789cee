"""The stereo mix: each voice panned by its key (a piano's spread) and the preset's width, mono-compatible,
and the mono output (channels=1) still the centred mix."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from nsynth_live.engine import Engine
from nsynth_live.engine.events import NoteOn
from nsynth_live.engine.voices import key_pan, pan_gains
from nsynth_live.presets import PresetError, load_preset
from tests.engine.signal_checks import render_hops

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "sing_default.onnx"
CHORD = (40, 52, 59, 64, 71, 79)


@pytest.fixture(scope="module")
def sing_synth():
    from nsynth_live.runtime.sing_onnx import load_synth

    return load_synth(DEFAULT_MODEL)


def _chord(synth, *, width, channels=2):
    preset = dataclasses.replace(load_preset("default"), width=width)
    engine = Engine(synth, preset, output_sample_rate=48000, channels=channels, max_voices=8)
    for key in CHORD:
        engine.post(NoteOn(key, 100))
    return render_hops(engine, 60).astype(np.float64)


def rms_db(x):
    return 10 * np.log10(np.mean(np.asarray(x) ** 2))


def test_a_chord_is_stereo_and_mono_compatible(sing_synth):
    """Left and right differ (low keys left, high keys right); the mono sum (L + R) / 2 is within
    1 dB of the centred mix (measured: -0.17 dB, left-right correlation 0.96)."""
    stereo = _chord(sing_synth, width=1.0)
    centred = _chord(sing_synth, width=0.0)
    left, right = stereo[:, 0], stereo[:, 1]
    assert np.abs(left - right).max() > 0.05 * np.abs(stereo).max()
    correlation = np.corrcoef(left, right)[0, 1]
    assert correlation < 0.98
    np.testing.assert_array_equal(centred[:, 0], centred[:, 1])
    loss = rms_db((left + right) / 2) - rms_db(centred[:, 0])
    assert -1.0 <= loss <= 0.2, loss
    # each side's level stays within 3 dB of the centred mix's (no side swallowed)
    for side in (left, right):
        assert abs(rms_db(side) - rms_db(centred[:, 0])) < 3.0


def test_mono_output_is_the_centred_mix(sing_synth):
    mono = _chord(sing_synth, width=1.0, channels=1)
    centred = _chord(sing_synth, width=0.0)
    assert mono.shape[1] == 1
    np.testing.assert_allclose(mono[:, 0], centred[:, 0], atol=1e-6)


def test_more_channels_repeat_the_pair(make_engine):
    engine = make_engine(output_sample_rate=48000, channels=4)
    engine.post(NoteOn(40, 100))
    audio = render_hops(engine, 10)
    np.testing.assert_array_equal(audio[:, 0], audio[:, 2])
    np.testing.assert_array_equal(audio[:, 1], audio[:, 3])
    assert not np.array_equal(audio[:, 0], audio[:, 1])


def test_pan_law():
    assert np.array_equal(pan_gains(0.0), [1.0, 1.0])
    for pan in (-0.5, -0.2, 0.3, 0.5):
        left, right = pan_gains(pan)
        assert left ** 2 + right ** 2 == pytest.approx(2.0)
        assert (right > left) == (pan > 0)
    assert key_pan(60, 1.0) == 0.0 and key_pan(84, 1.0) == 0.5 and key_pan(36, 0.5) == -0.25
    assert key_pan(108, 1.0) == 0.5  # beyond the model's range: the widest place


def test_width_is_a_preset_field(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('format_version = 1\nname = "p"\ncorners = ["a", "b", "c", "d"]\nwidth = 0.25\n')
    assert load_preset("p", presets_dir=tmp_path).width == 0.25
    path.write_text('format_version = 1\nname = "p"\ncorners = ["a", "b", "c", "d"]\nwidth = 2\n')
    with pytest.raises(PresetError, match="width must be in"):
        load_preset("p", presets_dir=tmp_path)
