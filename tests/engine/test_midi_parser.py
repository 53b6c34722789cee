import numpy as np
import pytest

from nsynth_live.engine.events import (
    CONTROL_CHANGE, NOTE_OFF, NOTE_ON, PROGRAM_CHANGE, AllNotesOff, AllSoundOff, ControlChange,
    ChannelPressure, NoteOff, NoteOn, PitchBend, ProgramChange, SetXY,
)
from nsynth_live.engine.midi import INITIAL_PARSER_STATE, MidiStreamParser, parse_midi_bytes, parse_midi_message


@pytest.mark.parametrize("data, expected", [
    ([NOTE_ON, 60, 100], NoteOn(60, 100)),
    ([NOTE_ON | 0x0F, 127, 1], NoteOn(127, 1, channel=15)),  # any channel
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
    ([NOTE_ON | 3, 60, 90], NoteOn(60, 90, channel=3)),
    ([CONTROL_CHANGE | 15, 12, 127], ControlChange(12, 127, channel=15)),
    ([0xE0, 0, 64], PitchBend(8192)),  # LSB first: centre
    ([0xE5, 0x7F, 0x7F], PitchBend(16383, channel=5)),
    ([0xE0, 0, 0], PitchBend(0)),
    ([0xD2, 99], ChannelPressure(99, channel=2)),
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
    [0xA0, 60, 10],  # polyphonic aftertouch (not mapped)
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


# ---------------------------------------------------------------------------------------------
# the stream parser (live input): SysEx, running status, real-time bytes, resynchronisation
# ---------------------------------------------------------------------------------------------
ALL_NOTES_OFF_BYTES = [CONTROL_CHANGE, 123, 0]


def feed_chunks(chunks, state=INITIAL_PARSER_STATE):
    """Events of a stream given in chunks (as separate JACK MIDI events), and the final state."""
    events = []
    for chunk in chunks:
        new, state = parse_midi_bytes(chunk, state)
        events += new
    return events, state


def random_chunks(rng, total_bytes):
    """``total_bytes`` random bytes split into chunks of 1..8 bytes (as separate MIDI events)."""
    data = rng.integers(0, 256, size=total_bytes).tolist()
    chunks, start = [], 0
    while start < len(data):
        size = int(rng.integers(1, 9))
        chunks.append(data[start:start + size])
        start += size
    return chunks


@pytest.mark.parametrize("chunks, expected", [
    # the user's case (issue 15): unterminated SysEx, then note-off / CC123 / CC120
    ([[0x90, 60, 100], [0xF0, 0x01, 0x02], [0x80, 60, 0]], [NoteOn(60, 100), NoteOff(60)]),
    ([[0xF0, 0x01, 0x02], ALL_NOTES_OFF_BYTES], [AllNotesOff()]),
    ([[0xF0, 0x01, 0x02], [0xB0, 120, 0]], [AllSoundOff()]),
    # in one chunk, and with more SysEx data in later chunks
    ([[0xF0, 0x01, 0x02, 0x80, 60, 0]], [NoteOff(60)]),
    ([[0xF0, 0x01], [0x02, 0x03], [0x7F], [0x80, 60, 0]], [NoteOff(60)]),
    # a complete SysEx is dropped; its data never become running-status data
    ([[0xF0, 0x7E, 0x7F, 0x09, 0x01, 0xF7], [0x3C, 0x40]], []),
    ([[0xF0, 0x7E, 0x7F, 0xF7, 0x90, 60, 100]], [NoteOn(60, 100)]),
    # a SysEx continued in another event, terminated there
    ([[0xF0, 0x43, 0x10], [0x4C, 0x00, 0xF7], [0x90, 62, 90]], [NoteOn(62, 90)]),
])
def test_sysex_is_dropped_and_the_next_message_is_kept(chunks, expected):
    assert feed_chunks(chunks)[0] == expected


def test_running_status_yields_every_note_in_one_chunk_and_across_chunks():
    pitches = list(range(48, 72))
    stream = [NOTE_ON]
    for pitch in pitches:
        stream += [pitch, 100]
    for pitch in pitches:
        stream += [pitch, 0]  # note-on velocity 0 = note-off, still running status
    expected = [NoteOn(p, 100) for p in pitches] + [NoteOff(p) for p in pitches]
    assert feed_chunks([stream])[0] == expected
    # one message per chunk after the first, as a sender that uses running status splits them
    assert feed_chunks([stream[:3]] + [stream[i:i + 2] for i in range(3, len(stream), 2)])[0] == expected
    # byte by byte
    assert feed_chunks([[b] for b in stream])[0] == expected


def test_running_status_of_controllers_and_program_changes():
    events, state = feed_chunks([[CONTROL_CHANGE | 2, 64, 127, 64, 0, 123, 0], [PROGRAM_CHANGE, 3, 4]])
    assert events == [ControlChange(64, 127, 2), ControlChange(64, 0, 2), AllNotesOff(), ProgramChange(3), ProgramChange(4)]
    assert state.status == PROGRAM_CHANGE and state.data == ()


@pytest.mark.parametrize("chunks, expected", [
    ([[NOTE_ON, 0xF8, 60, 0xFE, 100]], [NoteOn(60, 100)]),  # clock and active sensing inside a message
    ([[0xF0, 0x01, 0xF8, 0x02], [0xFF, NOTE_OFF, 60, 0xFA, 0]], [NoteOff(60)]),  # inside SysEx too
    ([[NOTE_ON, 60, 100], [0xF8], [0xFC], [62, 100]], [NoteOn(60, 100), NoteOn(62, 100)]),  # running status kept
    ([[0xF8] * 24, [0xFE]], []),
])
def test_realtime_bytes_are_ignored_wherever_they_appear(chunks, expected):
    assert feed_chunks(chunks)[0] == expected


@pytest.mark.parametrize("chunks, expected", [
    ([[NOTE_ON, 60], ALL_NOTES_OFF_BYTES], [AllNotesOff()]),  # truncated note-on, then CC123
    ([[NOTE_ON], [NOTE_OFF, 60, 0]], [NoteOff(60)]),
    ([[60, 100, 0x33], [NOTE_OFF, 60, 0]], [NoteOff(60)]),  # data bytes without a status
    ([[0xF2, 0x10], [0x20, 0x30, 0x40], [NOTE_OFF, 61, 0]], [NoteOff(61)]),  # song position; no running status after it
    ([[0xF1, 0x10, 0x20], [0xF6, 0x10], [0xF4, 1, 2], [0xF5, 3], [0xF7, 5], [NOTE_OFF, 62, 0]], [NoteOff(62)]),
    ([[0xE0, 0, 64, 0, 64], [0xA0, 60, 10], [0xD0, 10, 11], [NOTE_OFF, 63, 0]],
     [PitchBend(8192), PitchBend(8192), ChannelPressure(10), ChannelPressure(11), NoteOff(63)]),  # running status
    ([[NOTE_ON, 60], [100]], [NoteOn(60, 100)]),  # a message split over two chunks is completed
])
def test_malformed_messages_are_dropped_without_losing_the_next(chunks, expected):
    assert feed_chunks(chunks)[0] == expected


@pytest.mark.parametrize("chunk", [
    None, "hello", 42, 3.5, {"a": 1}, [256, 1, 2], [-1], [NOTE_ON, 60.0, 100], [object()],
])
def test_chunks_that_are_not_bytes_are_ignored_and_leave_the_state(chunk):
    _, state = parse_midi_bytes([NOTE_ON, 60, 100])
    events, after = parse_midi_bytes(chunk, state)
    assert events == [] and after == state
    assert parse_midi_bytes([61, 90], after)[0] == [NoteOn(61, 90)]


def test_chunk_types_bytes_bytearray_memoryview_numpy():
    for chunk in (bytes([NOTE_ON, 60, 100]), bytearray([NOTE_ON, 60, 100]), memoryview(bytes([NOTE_ON, 60, 100])),
                  np.array([NOTE_ON, 60, 100], dtype=np.uint8)):
        assert parse_midi_bytes(chunk)[0] == [NoteOn(60, 100)]


@pytest.mark.parametrize("final", [
    [ALL_NOTES_OFF_BYTES], [[0xB0 | 5, 123, 0]], [[0xB0, 120, 0]], [[NOTE_OFF | 9, 60, 0]], [[NOTE_ON, 60, 0]],
])
def test_random_garbage_then_a_message_always_yields_that_message(rng, final):
    expected = feed_chunks(final)[0]
    for _ in range(2000):
        chunks = random_chunks(rng, int(rng.integers(0, 64)))
        if rng.random() < 0.5:
            chunks.insert(int(rng.integers(0, len(chunks) + 1)), [0xF0, 0x01, 0x02])  # an unterminated SysEx
        events, state = feed_chunks(chunks)
        events, _ = feed_chunks(final, state)
        assert events == expected, chunks


def test_random_garbage_never_raises_and_matches_one_pass(rng):
    for _ in range(500):
        chunks = random_chunks(rng, int(rng.integers(1, 200)))
        events, state = feed_chunks(chunks)
        flat = [b for chunk in chunks for b in chunk]
        assert parse_midi_bytes(flat) == (events, state)  # chunking never changes the result


def test_stream_parser_keeps_its_state_between_chunks():
    parser = MidiStreamParser()
    assert parser.feed([NOTE_ON, 60, 100]) == [NoteOn(60, 100)]
    assert parser.feed([0xF0, 1, 2]) == [] and parser.state.in_sysex
    assert parser.feed([3, 4]) == []
    assert parser.feed(ALL_NOTES_OFF_BYTES) == [AllNotesOff()]
    assert parser.feed([NOTE_ON, 60]) == []
    parser.reset()
    assert parser.state == INITIAL_PARSER_STATE
    assert parser.feed([100]) == []
