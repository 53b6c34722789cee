"""Small NSynth-layout datasets written by the tests themselves (real field names, 16-bit WAVs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nsynth_live.constants import NSYNTH_FAMILIES, NSYNTH_NOTE_SAMPLES, NSYNTH_SAMPLE_RATE, NSYNTH_SOURCES
from nsynth_live.data.nsynth import (
    NSynthNote, make_instrument_str, make_note_str, write_audio_atomic, write_examples_json,
)
from nsynth_live.functional.midi import midi_to_hz


def harmonic_note(pitch_midi: int, velocity: int, brightness: float, *, samples: int = NSYNTH_NOTE_SAMPLES) -> np.ndarray:
    """A 4-s harmonic tone held 3 s then released, float32 ``(samples,)``."""
    t = np.arange(samples) / NSYNTH_SAMPLE_RATE
    f0 = midi_to_hz(pitch_midi)
    audio = sum(brightness ** (k - 1) * np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6) if k * f0 < 7000)
    envelope = np.minimum(t / 0.01, 1.0) * np.where(t < 3.0, 1.0, np.exp(-(t - 3.0) / 0.1))
    return (0.3 * velocity / 127 * envelope * audio).astype(np.float32)


def write_tiny_dataset(root: Path, *, instruments=(("keyboard", "acoustic"), ("organ", "electronic")),
                       pitches=(48, 50, 52, 55, 57, 60, 62, 64, 67, 69), velocities=(50, 100)) -> list[NSynthNote]:
    notes = []
    for i, (family, source) in enumerate(instruments):
        instrument_str = make_instrument_str(family, source, i)
        for pitch in pitches:
            for velocity in velocities:
                note_str = make_note_str(instrument_str, pitch, velocity)
                write_audio_atomic(root / "audio" / f"{note_str}.wav", harmonic_note(pitch, velocity, 0.3 + 0.4 * i))
                notes.append(NSynthNote(
                    note=len(notes), note_str=note_str, instrument=i, instrument_str=instrument_str, pitch=pitch,
                    velocity=velocity, sample_rate=NSYNTH_SAMPLE_RATE, qualities=(1, 0, 0, 0, 0, 0, 0, 0, 0, 0),
                    qualities_str=("bright",), instrument_family=NSYNTH_FAMILIES.index(family),
                    instrument_family_str=family, instrument_source=NSYNTH_SOURCES.index(source),
                    instrument_source_str=source,
                ))
    write_examples_json(root, notes)
    return notes
