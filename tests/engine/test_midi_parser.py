import numpy as np
import pytest

from nsynth_live.engine.events import (
    CONTROL_CHANGE, NOTE_OFF, NOTE_ON, PROGRAM_CHANGE, AllNotesOff, AllSoundOff, ControlChange,
    NoteOff, NoteOn, ProgramChange, SetXY,
)
from nsynth_live.engine.midi import parse_midi_message


@pytest.mark.parametrize("data, expected", [
    ([NOTE_ON, 60, 100], NoteOn(60, 100)),
    ([NOTE_ON | 0x0F, 127, 1], NoteOn(127, 1)),  # any channel
    (bytes([NOTE_ON, 60, 0]), NoteOff(60)),  # velocity 0 = note off
    ((NOTE_OFF | 3, 61, 64), NoteOff(61)),
    ([CONTROL_CHANGE, 64, 127], ControlChange(64, 127)),
    ([CONTROL_CHANGE, 64, 0], ControlChange(64, 0)),
    ([CONTROL_CHANGE, 123, 0], AllNotesOff()),
    ([CONTROL_CHANGE, 120, 0], AllSoundOff()),
    ([CONTROL_CHANGE, 1, 33], ControlChange(1, 33)),
    ([PROGRAM_CHANGE, 2], ProgramChange(2)),
    (bytearray([PROGRAM_CHANGE | 9, 0]), ProgramChange(0)),
    (np.array([NOTE_ON, 69, 90], dtype=np.uint8), NoteOn(69, 90)),
])
def test_valid_messages(data, expected):
    assert parse_midi_message(data) == expected


@pytest.mark.parametrize("data", [
    [], b"", None, "hello", 42, 3.5, {"a": 1},
    [NOTE_ON], [NOTE_ON, 60],  # truncated
    [NOTE_ON, 60, 100, 5],  # overlong
    [60, 100],  # running-status data without a status byte
    [NOTE_ON, 128, 100], [NOTE_ON, 60, 200],  # data byte with the high bit set
    [NOTE_ON, -1, 100], [NOTE_ON, 60.0, 100], [256, 1, 2],
    [0xF0, 0x7E, 0x7F, 0x09, 0x01, 0xF7],  # sysex
    [0xF8], [0xFE], [0xFF],  # clock, active sensing, reset
    [0xE0, 0, 64],  # pitch bend (not mapped)
    [0xA0, 60, 10], [0xD0, 10],  # aftertouch
    [PROGRAM_CHANGE, 1, 2],
    [object(), 1, 2],
])
def test_garbage_is_ignored(data):
    assert parse_midi_message(data) is None


def test_random_bytes_never_raise(rng):
    results = []
    for _ in range(5000):
        n = int(rng.integers(0, 6))
        data = rng.integers(0, 256, size=n).tolist()
        results.append(parse_midi_message(data))
    kinds = {type(r).__name__ for r in results}
    assert "NoneType" in kinds and "NoteOn" in kinds  # both paths taken by the fuzz


def test_events_validate_their_fields():
    with pytest.raises(ValueError, match="velocity"):
        NoteOn(60, 0)
    with pytest.raises(ValueError, match="pitch_midi"):
        NoteOff(128)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        SetXY(float("nan"), 0.5)
