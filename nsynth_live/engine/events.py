"""Typed control events of the live engine, and the MIDI constants they come from.

Every input (MIDI bytes, OSC messages, MIDI files, tests) becomes one of these frozen dataclasses in
a pure function (:mod:`nsynth_live.engine.midi`, :mod:`nsynth_live.engine.osc`); the engine only
ever sees typed events, posted to :meth:`nsynth_live.engine.Engine.post` from any thread.

Source of the numbers: MIDI 1.0 Detailed Specification (status bytes, controller numbers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

from nsynth_live.presets import Preset

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
CC_DATA_ENTRY_MSB = 6  # the value of the selected RPN (MIDI 1.0 spec, "Registered Parameter Numbers")
CC_X_DEFAULT = 12  # "effect control 1": the pad's X by default (docs/midi.md)
CC_Y_DEFAULT = 13  # "effect control 2": the pad's Y by default
CC_LSB_OFFSET = 32  # controllers 0-31 are MSBs; 32-63 their LSBs (CC 12 -> 44, CC 13 -> 45)
CC_DATA_ENTRY_LSB = CC_DATA_ENTRY_MSB + CC_LSB_OFFSET
CC_SUSTAIN_PEDAL = 64  # value >= 64 means pedal down
CC_RPN_LSB = 100
CC_RPN_MSB = 101
CC_ALL_SOUND_OFF = 120
CC_RESET_ALL_CONTROLLERS = 121
CC_ALL_NOTES_OFF = 123

SUSTAIN_ON_THRESHOLD = 64  # CC64 values >= this hold released notes (MIDI 1.0 spec)
MIDI_DATA_MAX = 127  # largest 7-bit data byte
MIDI_CHANNELS = 16
PITCH_BEND_CENTER = 8192  # 14-bit pitch bend value of "no bend" (0..16383)
PITCH_BEND_MAX = 16383


def _check_7bit(name: str, value: int, *, low: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MIDI_DATA_MAX:
        raise ValueError(f"{name} must be an int in [{low}, {MIDI_DATA_MAX}], got {value!r}")


def _check_channel(channel: int) -> None:
    if isinstance(channel, bool) or not isinstance(channel, int) or not 0 <= channel < MIDI_CHANNELS:
        raise ValueError(f"channel must be an int in [0, {MIDI_CHANNELS - 1}], got {channel!r}")


def _check_unit(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a finite float in [0, 1], got {value!r}")


@dataclass(frozen=True)
class NoteOn:
    """Start a note. ``velocity`` 1..127 (a note-on with velocity 0 is parsed as :class:`NoteOff`);
    ``channel`` 0..15 (the voice follows that channel's pitch bend)."""

    pitch_midi: int
    velocity: int
    channel: int = 0

    def __post_init__(self):
        _check_7bit("pitch_midi", self.pitch_midi)
        _check_7bit("velocity", self.velocity, low=1)
        _check_channel(self.channel)


@dataclass(frozen=True)
class NoteOff:
    """Release the note on key ``pitch_midi`` (held on while the sustain pedal is down)."""

    pitch_midi: int

    def __post_init__(self):
        _check_7bit("pitch_midi", self.pitch_midi)


@dataclass(frozen=True)
class ControlChange:
    """A MIDI controller on ``channel`` 0..15 (what the engine does with each: ``docs/midi.md``)."""

    controller: int
    value: int
    channel: int = 0

    def __post_init__(self):
        _check_7bit("controller", self.controller)
        _check_7bit("value", self.value)
        _check_channel(self.channel)


@dataclass(frozen=True)
class PitchBend:
    """MIDI pitch bend: ``value`` 0..16383, 8192 is no bend; the range is the channel's RPN 0
    (default +-2 semitones). Bends every voice of ``channel``, held or released."""

    value: int
    channel: int = 0

    def __post_init__(self):
        if isinstance(self.value, bool) or not isinstance(self.value, int) or not 0 <= self.value <= PITCH_BEND_MAX:
            raise ValueError(f"pitch bend value must be an int in [0, {PITCH_BEND_MAX}], got {self.value!r}")
        _check_channel(self.channel)


@dataclass(frozen=True)
class ChannelPressure:
    """MIDI channel aftertouch, ``value`` 0..127 (assignable in the preset's ``[controls]``)."""

    value: int
    channel: int = 0

    def __post_init__(self):
        _check_7bit("value", self.value)
        _check_channel(self.channel)


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
    """Switch to the preset named ``name`` (a file ``presets/<name>.toml``).

    ``preset``, when given, is that file already read and validated by the producer (the OSC server
    loads presets on its own thread): the engine then applies it without touching the file system.
    Without it the engine loads ``name`` itself.

    Raises
    ------
    ValueError
        If ``name`` is not a str, or ``preset`` is neither None nor a
        :class:`~nsynth_live.presets.Preset` named ``name``.
    """

    name: str
    preset: Preset | None = None

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise ValueError(f"preset name must be a str, got {self.name!r}")
        if self.preset is not None and (not isinstance(self.preset, Preset) or self.preset.name != self.name):
            raise ValueError(f"preset must be None or the Preset named {self.name!r}, got {self.preset!r}")


@dataclass(frozen=True)
class AllNotesOff:
    """CC123: release every held note (notes stay on while the sustain pedal is down)."""


@dataclass(frozen=True)
class AllSoundOff:
    """CC120: silence every voice at once with a fast ramp (about 10 ms, never a click)."""


@dataclass(frozen=True)
class Timed:
    """An event with the model-rate sample at which it takes effect.

    ``at_sample`` counts samples at the model's rate (16 kHz for SING) since the engine's first
    hop. A note-on starts its voice at that exact sample inside its hop (no quantisation to the
    16-ms hop grid); an event for a later hop waits for it; a late one takes effect at once. Other
    events take effect at the start of the hop that holds ``at_sample``.

    Raises
    ------
    ValueError
        If ``at_sample`` is not an int >= 0 or ``event`` is itself a ``Timed``.
    """

    event: object
    at_sample: int

    def __post_init__(self):
        if isinstance(self.at_sample, bool) or not isinstance(self.at_sample, int) or self.at_sample < 0:
            raise ValueError(f"at_sample must be an int >= 0 samples, got {self.at_sample!r}")
        if isinstance(self.event, Timed):
            raise ValueError("a Timed event cannot wrap another Timed event")


@dataclass(frozen=True)
class CachedNoteOn:
    """A note whose first hops the audio callback plays from an attack cache (posted by
    :class:`nsynth_live.engine.callback.CallbackSide`, always inside :class:`Timed`).

    The engine continues the voice from ``cache.state_row(row)`` at the ``Timed`` sample, where the
    cached attack hands over (see :mod:`nsynth_live.engine.attack_cache`).

    Attributes
    ----------
    key : int
        The MIDI key (note-offs find the voice by it).
    pitch_midi : int
        The model pitch the cache row was rendered at.
    velocity : float
        The cache row's velocity layer, 1..127.
    cache : AttackCache
    row : int
        Row of ``cache``.
    release_sample : int or None
        Model sample at which the note's release began (the callback released the attack), or
        None while the key is held.
    channel : int
        The note-on's MIDI channel, 0..15.
    """

    key: int
    pitch_midi: int
    velocity: float
    cache: object
    row: int
    release_sample: int | None = None
    channel: int = 0


@dataclass(frozen=True)
class ReleaseAttack:
    """The callback released key ``key`` during its cached attack, at the ``Timed`` sample (the
    engine starts the continuation already releasing from there)."""

    key: int


class EventBatch:
    """A producer's handle on the events it queued for the next hop (not itself an :data:`Event`).

    A producer that coalesces its input (the OSC server: many XY moves between two hops become the
    newest one) keeps its events in an outbox of its own and posts ONE ``EventBatch`` to the engine
    while that outbox holds anything. The engine calls :meth:`take` once when it reaches the batch
    in its queue and applies the events it returns, in order, like posted ones; the producer posts
    the next batch only after that. So the engine's queue holds at most one batch per producer.

    Parameters
    ----------
    take : callable
        ``take() -> tuple[Event, ...]``: empties the producer's outbox and returns its events; must
        be thread-safe and must not raise.
    """

    __slots__ = ("_take",)

    def __init__(self, take: Callable[[], tuple]) -> None:
        self._take = take

    def take(self) -> tuple:
        """The queued events, oldest first (the outbox is empty afterwards). Call once."""
        return tuple(self._take())

    def __repr__(self) -> str:
        return f"EventBatch({self._take!r})"


Event = Union[
    NoteOn, NoteOff, ControlChange, PitchBend, ChannelPressure, ProgramChange, SetXY, SetX, SetY, SelectPreset, AllNotesOff,
    AllSoundOff,
]
