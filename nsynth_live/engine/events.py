"""Typed control events of the live engine, and the MIDI constants they come from.

Every input (MIDI bytes, OSC messages, MIDI files, tests) becomes one of these frozen dataclasses in
a pure function (:mod:`nsynth_live.engine.midi`, :mod:`nsynth_live.engine.osc`); the engine only
ever sees typed events, posted to :meth:`nsynth_live.engine.Engine.post` from any thread.

Source of the numbers: MIDI 1.0 Detailed Specification (status bytes, controller numbers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

# --- MIDI status bytes (high nibble of channel messages; MIDI 1.0 spec, table I) -------------
NOTE_OFF = 0x80
NOTE_ON = 0x90
POLY_AFTERTOUCH = 0xA0
CONTROL_CHANGE = 0xB0
PROGRAM_CHANGE = 0xC0
CHANNEL_AFTERTOUCH = 0xD0
PITCH_BEND = 0xE0
SYSEX_START = 0xF0
SYSEX_END = 0xF7

# --- Controller numbers (MIDI 1.0 spec, table III) ------------------------------------------
CC_MOD_WHEEL = 1
CC_SUSTAIN_PEDAL = 64  # value >= 64 means pedal down
CC_ALL_SOUND_OFF = 120
CC_RESET_ALL_CONTROLLERS = 121
CC_ALL_NOTES_OFF = 123

SUSTAIN_ON_THRESHOLD = 64  # CC64 values >= this hold released notes (MIDI 1.0 spec)
MIDI_DATA_MAX = 127  # largest 7-bit data byte


def _check_7bit(name: str, value: int, *, low: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MIDI_DATA_MAX:
        raise ValueError(f"{name} must be an int in [{low}, {MIDI_DATA_MAX}], got {value!r}")


def _check_unit(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a finite float in [0, 1], got {value!r}")


@dataclass(frozen=True)
class NoteOn:
    """Start a note. ``velocity`` 1..127 (a note-on with velocity 0 is parsed as :class:`NoteOff`)."""

    pitch_midi: int
    velocity: int

    def __post_init__(self):
        _check_7bit("pitch_midi", self.pitch_midi)
        _check_7bit("velocity", self.velocity, low=1)


@dataclass(frozen=True)
class NoteOff:
    """Release the note on key ``pitch_midi`` (held on while the sustain pedal is down)."""

    pitch_midi: int

    def __post_init__(self):
        _check_7bit("pitch_midi", self.pitch_midi)


@dataclass(frozen=True)
class ControlChange:
    """A MIDI controller (CC64 is the sustain pedal; other controllers are ignored by the engine)."""

    controller: int
    value: int

    def __post_init__(self):
        _check_7bit("controller", self.controller)
        _check_7bit("value", self.value)


@dataclass(frozen=True)
class ProgramChange:
    """MIDI program change: selects the preset at this index of ``list_presets()`` (sorted)."""

    program: int

    def __post_init__(self):
        _check_7bit("program", self.program)


@dataclass(frozen=True)
class SetXY:
    """Move the timbre position; ``x``, ``y`` in [0, 1] (bilinear blend of the preset's corners)."""

    x: float
    y: float

    def __post_init__(self):
        _check_unit("x", self.x)
        _check_unit("y", self.y)


@dataclass(frozen=True)
class SetX:
    """Move only the x coordinate of the timbre position, in [0, 1]."""

    x: float

    def __post_init__(self):
        _check_unit("x", self.x)


@dataclass(frozen=True)
class SetY:
    """Move only the y coordinate of the timbre position, in [0, 1]."""

    y: float

    def __post_init__(self):
        _check_unit("y", self.y)


@dataclass(frozen=True)
class SelectPreset:
    """Switch to the preset named ``name`` (a file ``presets/<name>.toml``)."""

    name: str

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise ValueError(f"preset name must be a str, got {self.name!r}")


@dataclass(frozen=True)
class AllNotesOff:
    """CC123: release every held note (notes stay on while the sustain pedal is down)."""


@dataclass(frozen=True)
class AllSoundOff:
    """CC120: silence every voice at once with a fast ramp (about 10 ms, never a click)."""


Event = Union[
    NoteOn, NoteOff, ControlChange, ProgramChange, SetXY, SetX, SetY, SelectPreset, AllNotesOff,
    AllSoundOff,
]
