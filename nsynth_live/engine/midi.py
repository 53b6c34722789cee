"""Raw MIDI bytes -> typed engine events (pure, never raises).

Two entry points:

* :func:`parse_midi_bytes` reads a MIDI byte *stream* (MIDI 1.0 Detailed Specification, "Data
  Format" and "System Exclusive Messages"): the bytes of one JACK MIDI event or rtmidi message,
  which may hold several messages, part of one, running-status data or garbage. Its state
  (:class:`MidiParserState`) carries over from one chunk to the next; :class:`MidiStreamParser`
  holds it for the live input. This is what the live MIDI input uses.
* :func:`parse_midi_message` reads exactly one complete message (MIDI files through mido).

Channel messages are accepted on every channel (omni); notes, controllers, pitch bend and channel
pressure carry their channel (0..15). Mapping:

==========================  =====================================================
bytes                       event
==========================  =====================================================
``9n kk vv`` (vv > 0)       ``NoteOn(kk, vv, n)``
``9n kk 00``, ``8n kk vv``  ``NoteOff(kk)``
``Bn 40 vv`` (CC64)         ``ControlChange(64, vv, n)`` (sustain pedal, down if vv >= 64)
``Bn 78 vv`` (CC120)        ``AllSoundOff()``
``Bn 7B vv`` (CC123)        ``AllNotesOff()``
``Bn cc vv`` (other CC)     ``ControlChange(cc, vv, n)`` (XY, RPN, mod wheel: ``docs/midi.md``)
``Cn pp``                   ``ProgramChange(pp)``
``En ll mm``                ``PitchBend(mm * 128 + ll, n)`` (8192 = no bend)
``Dn vv``                   ``ChannelPressure(vv, n)``
anything else               nothing (sysex, clock and other real-time bytes, system common,
                            polyphonic aftertouch, truncated messages, stray data bytes)
==========================  =====================================================

Stream rules (MIDI 1.0 spec), so that no garbage can make the parser lose a later message:

* A status byte (``80``-``F7``) always starts a new message and abandons an unfinished one.
* SysEx (``F0``) is dropped, terminated or not: it ends at ``F7`` *or at any other status byte*
  except real-time ones (the spec: "any Status byte except Real-Time will terminate a SysEx").
  So after ``F0 01 02`` without ``F7``, the next ``B0 7B 00`` is an all-notes-off.
* Running status: data bytes after a complete channel message reuse its status byte, also in a
  later chunk (``90 3C 64 3E 64`` is two note-ons). System common and SysEx cancel it.
* Real-time bytes (``F8``-``FF``) are ignored wherever they appear, even inside a message, and
  leave the state as it was.
* Data bytes without a status (after SysEx, system common, or at the start) are dropped.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

from nsynth_live.engine.events import (
    CC_ALL_NOTES_OFF,
    CC_ALL_SOUND_OFF,
    CONTROL_CHANGE,
    CHANNEL_AFTERTOUCH,
    NOTE_OFF,
    NOTE_ON,
    PITCH_BEND,
    PROGRAM_CHANGE,
    SYSEX_START,
    AllNotesOff,
    AllSoundOff,
    ChannelPressure,
    ControlChange,
    Event,
    NoteOff,
    NoteOn,
    PitchBend,
    ProgramChange,
)

# Data bytes after each status byte (MIDI 1.0 spec, table I; channel messages by high nibble).
_CHANNEL_DATA_BYTES = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2}
_SYSTEM_COMMON_DATA_BYTES = {0xF1: 1, 0xF2: 2, 0xF3: 1}  # MTC quarter frame, song position, song select
REALTIME_FIRST = 0xF8  # F8-FF: system real-time (clock, start, continue, stop, active sensing, reset)
_STATUS_FIRST = 0x80  # bytes >= this are status bytes; below, 7-bit data bytes


def _data_bytes_after(status: int) -> int | None:
    """Data bytes a status byte takes; None for one that takes none (F0, F4-F7)."""
    if status < 0xF0:
        return _CHANNEL_DATA_BYTES[status & 0xF0]
    return _SYSTEM_COMMON_DATA_BYTES.get(status)


def _channel_event(status: int, data: tuple[int, ...] | list[int]) -> Event | None:
    """The event of one complete channel message (status 80-EF, its 7-bit data bytes)."""
    kind = status & 0xF0
    channel = status & 0x0F
    if kind == NOTE_ON:
        pitch_midi, velocity = data[0], data[1]
        return NoteOn(pitch_midi, velocity, channel) if velocity > 0 else NoteOff(pitch_midi)
    if kind == NOTE_OFF:
        return NoteOff(data[0])
    if kind == CONTROL_CHANGE:
        controller, value = data[0], data[1]
        if controller == CC_ALL_NOTES_OFF:
            return AllNotesOff()
        if controller == CC_ALL_SOUND_OFF:
            return AllSoundOff()
        return ControlChange(controller, value, channel)
    if kind == PROGRAM_CHANGE:
        return ProgramChange(data[0])
    if kind == PITCH_BEND:  # LSB first (MIDI 1.0 spec, table I)
        return PitchBend(data[1] * 128 + data[0], channel)
    if kind == CHANNEL_AFTERTOUCH:
        return ChannelPressure(data[0], channel)
    return None  # polyphonic aftertouch: not mapped


def _as_bytes(data) -> list[int] | None:
    """``data`` as a list of ints 0..255, or None if it is not a sequence of bytes."""
    try:
        if isinstance(data, (str, dict)) or data is None:
            return None
        if isinstance(data, (bytes, bytearray, memoryview)):
            return list(bytes(data))
        message = [operator.index(b) for b in data]
    except (TypeError, ValueError, OverflowError):
        return None
    if any(b < 0 or b > 0xFF for b in message):
        return None
    return message


@dataclass(frozen=True)
class MidiParserState:
    """Where :func:`parse_midi_bytes` stands in a MIDI byte stream, between two chunks.

    Attributes
    ----------
    status : int or None
        Status byte whose data bytes are expected: the running status after a channel message
        (80-EF), a system common message (F1-F3) until its data are complete, or None (data
        bytes are dropped: at the start, in or after SysEx, after F4-F7).
    data : tuple of int
        Data bytes of the message in progress (fewer than ``status`` takes).
    in_sysex : bool
        Inside a SysEx (after ``F0``, before the next non-real-time status byte).
    """

    status: int | None = None
    data: tuple[int, ...] = ()
    in_sysex: bool = False


INITIAL_PARSER_STATE = MidiParserState()


def parse_midi_bytes(data, state: MidiParserState = INITIAL_PARSER_STATE) -> tuple[list[Event], MidiParserState]:
    """Parse a chunk of a MIDI byte stream into engine events (pure, never raises).

    Parameters
    ----------
    data : sequence of int, bytes, bytearray or memoryview
        Raw MIDI bytes (0..255), any number of messages or parts of messages, e.g. one JACK MIDI
        event or one message as python-rtmidi delivers it (without its delta time).
    state : MidiParserState
        The state the previous chunk of the same stream left (default: the stream's start).

    Returns
    -------
    events : list of Event
        The events of the messages completed in this chunk, in order (see the module docstring for
        the mapping and for how SysEx, running status and real-time bytes are read).
    state : MidiParserState
        The state to pass with the next chunk. A ``data`` that is not a sequence of bytes (None,
        a string, values outside 0..255) is ignored: no events, ``state`` unchanged.

    Notes
    -----
    Source: MIDI 1.0 Detailed Specification 4.2, "Data Format" (running status, real-time bytes
    inside messages) and "System Exclusive Messages" (any status byte except real-time ends a
    SysEx).
    """
    message = _as_bytes(data)
    if message is None:
        return [], state
    events: list[Event] = []
    status, pending, in_sysex = state.status, list(state.data), state.in_sysex
    expected = 0 if status is None else (_data_bytes_after(status) or 0)
    for byte in message:
        if byte >= REALTIME_FIRST:  # real-time: anywhere, changes nothing
            continue
        if byte >= _STATUS_FIRST:  # a status byte ends whatever came before (SysEx included)
            in_sysex = byte == SYSEX_START
            pending = []
            expected = _data_bytes_after(byte) or 0
            status = byte if expected else None
            continue
        if status is None:  # SysEx data, or stray data bytes: dropped
            continue
        pending.append(byte)
        if len(pending) < expected:
            continue
        if status < 0xF0:
            event = _channel_event(status, pending)
            if event is not None:
                events.append(event)
        else:  # system common: complete, and no running status after it
            status = None
        pending = []
    return events, MidiParserState(status=status, data=tuple(pending), in_sysex=in_sysex)


class MidiStreamParser:
    """The state of one MIDI input stream, for :func:`parse_midi_bytes` (one per input port).

    Not thread-safe: feed it from one thread (the MIDI input's callback).

    Attributes
    ----------
    state : MidiParserState
        Where the stream stands.
    """

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = INITIAL_PARSER_STATE

    def feed(self, data) -> list[Event]:
        """Parse the next chunk of the stream; the events it completes (never raises)."""
        events, self.state = parse_midi_bytes(data, self.state)
        return events

    def reset(self) -> None:
        """Forget the stream's state (a port reconnected)."""
        self.state = INITIAL_PARSER_STATE


def parse_midi_message(data) -> Event | None:
    """Parse exactly one complete raw MIDI message into an engine event.

    For a MIDI file's messages (mido's ``Message.bytes()``). A live input, whose chunks may hold
    several messages, running status or garbage, uses :func:`parse_midi_bytes` instead.

    Parameters
    ----------
    data : sequence of int, bytes or bytearray
        One complete MIDI message, status byte first.

    Returns
    -------
    Event or None
        The event, or None for anything the engine does not use or cannot trust (garbage, sysex,
        real-time bytes, truncated or overlong messages, running-status data). Never raises.
    """
    message = _as_bytes(data)
    if not message:
        return None
    status = message[0]
    if status < _STATUS_FIRST or status >= 0xF0:  # running-status data, or system/sysex/real-time
        return None
    if len(message) != 1 + _CHANNEL_DATA_BYTES[status & 0xF0]:
        return None
    if any(b >= _STATUS_FIRST for b in message[1:]):
        return None
    return _channel_event(status, message[1:])
