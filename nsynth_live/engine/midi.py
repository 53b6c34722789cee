"""Raw MIDI bytes -> typed engine events (pure, never raises).

python-rtmidi delivers one complete message per callback as a list of ints; MIDI files (mido)
give the same bytes via ``Message.bytes()``. Channel messages are accepted on every channel (omni).

Mapping (MIDI 1.0 Detailed Specification):

==========================  =====================================================
bytes                       event
==========================  =====================================================
``9n kk vv`` (vv > 0)       ``NoteOn(kk, vv)``
``9n kk 00``, ``8n kk vv``  ``NoteOff(kk)``
``Bn 40 vv`` (CC64)         ``ControlChange(64, vv)`` (sustain pedal, down if vv >= 64)
``Bn 78 00`` (CC120)        ``AllSoundOff()``
``Bn 7B 00`` (CC123)        ``AllNotesOff()``
``Bn cc vv`` (other CC)     ``ControlChange(cc, vv)``
``Cn pp``                   ``ProgramChange(pp)``
anything else               ``None`` (sysex, clock, pitch bend, aftertouch, truncated or
                            overlong messages, data bytes without a status byte, non-bytes)
==========================  =====================================================

Pitch bend is not mapped: the model is conditioned on integer MIDI pitches.
"""

from __future__ import annotations

import operator

from nsynth_live.engine.events import (
    CC_ALL_NOTES_OFF,
    CC_ALL_SOUND_OFF,
    CONTROL_CHANGE,
    NOTE_OFF,
    NOTE_ON,
    PROGRAM_CHANGE,
    AllNotesOff,
    AllSoundOff,
    ControlChange,
    Event,
    NoteOff,
    NoteOn,
    ProgramChange,
)

_MESSAGE_LENGTHS = {NOTE_OFF: 3, NOTE_ON: 3, CONTROL_CHANGE: 3, PROGRAM_CHANGE: 2}


def parse_midi_message(data) -> Event | None:
    """Parse one raw MIDI message into an engine event.

    Parameters
    ----------
    data : sequence of int, bytes or bytearray
        One complete MIDI message, status byte first (as python-rtmidi's ``get_message()`` or
        callback deliver it, without the delta time).

    Returns
    -------
    Event or None
        The event, or None for anything the engine does not use or cannot trust (garbage, sysex,
        real-time bytes, truncated or overlong messages, running-status data). Never raises.
    """
    try:
        if isinstance(data, (str, dict)) or data is None:
            return None
        message = [operator.index(b) for b in data]
    except (TypeError, ValueError, OverflowError):
        return None
    if not message or any(b < 0 or b > 0xFF for b in message):
        return None
    status = message[0]
    if status < 0x80 or status >= 0xF0:  # running-status data, or system/sysex/real-time
        return None
    kind = status & 0xF0
    length = _MESSAGE_LENGTHS.get(kind)
    if length is None or len(message) != length:
        return None
    if any(b > 0x7F for b in message[1:]):
        return None
    if kind == NOTE_ON:
        pitch_midi, velocity = message[1], message[2]
        return NoteOn(pitch_midi, velocity) if velocity > 0 else NoteOff(pitch_midi)
    if kind == NOTE_OFF:
        return NoteOff(message[1])
    if kind == CONTROL_CHANGE:
        controller, value = message[1], message[2]
        if controller == CC_ALL_NOTES_OFF:
            return AllNotesOff()
        if controller == CC_ALL_SOUND_OFF:
            return AllSoundOff()
        return ControlChange(controller, value)
    return ProgramChange(message[1])
