import numpy as np
import pytest

from nsynth_live.functional.midi import cents_between, hz_to_midi, midi_to_hz


def test_reference_values():
    assert midi_to_hz(69) == pytest.approx(440.0)
    assert midi_to_hz(60) == pytest.approx(261.6256, rel=1e-6)
    assert hz_to_midi(880.0) == pytest.approx(81.0)
    assert cents_between(midi_to_hz(60.1), midi_to_hz(60)) == pytest.approx(10.0)


def test_round_trip():
    pitches = np.linspace(0, 127, 50)
    np.testing.assert_allclose(hz_to_midi(midi_to_hz(pitches)), pitches, atol=1e-9)


def test_non_positive_frequency_is_refused():
    with pytest.raises(ValueError, match="> 0 Hz"):
        hz_to_midi(0.0)
