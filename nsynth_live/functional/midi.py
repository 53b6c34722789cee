"""MIDI note number <-> frequency conversions (equal temperament, A4 = 440 Hz)."""

from __future__ import annotations

import numpy as np

from nsynth_live.constants import A4_FREQUENCY_HZ, MIDI_A4_NOTE


def midi_to_hz(pitch_midi):
    """Frequency in Hz of a (possibly fractional) MIDI note number.

    Parameters
    ----------
    pitch_midi : float or array_like
        MIDI note number(s); 69 is A4.

    Returns
    -------
    float or numpy.ndarray
        Frequency in Hz, same shape as the input.
    """
    return A4_FREQUENCY_HZ * 2.0 ** ((np.asarray(pitch_midi, dtype=np.float64) - MIDI_A4_NOTE) / 12.0)


def hz_to_midi(frequency_hz):
    """Fractional MIDI note number of a frequency in Hz.

    Raises
    ------
    ValueError
        If any frequency is not strictly positive.
    """
    f = np.asarray(frequency_hz, dtype=np.float64)
    if np.any(f <= 0):
        raise ValueError(f"frequency must be > 0 Hz, got {frequency_hz!r}")
    return MIDI_A4_NOTE + 12.0 * np.log2(f / A4_FREQUENCY_HZ)


def cents_between(frequency_hz, reference_hz):
    """Signed distance in cents from ``reference_hz`` to ``frequency_hz`` (100 cents = 1 semitone)."""
    return 1200.0 * np.log2(np.asarray(frequency_hz, dtype=np.float64) / np.asarray(reference_hz, dtype=np.float64))
