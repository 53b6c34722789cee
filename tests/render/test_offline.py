from pathlib import Path
"""Offline rendering of MIDI files through the live engine's render_hop."""

import os

import mido
import numpy as np
import pytest
import soundfile as sf

from nsynth_live.engine import ControlChange, Engine, NoteOff, NoteOn
from nsynth_live.engine.events import Timed
from nsynth_live.functional.midi import cents_between, midi_to_hz
from nsynth_live.render.offline import (
    MidiFileError, midi_file_events, render_events, render_midi_file, write_wav_atomic,
)
from tests.engine.additive_synth import AdditiveTestSynth
from tests.engine.signal_checks import peak_frequency_hz

NOTES = [(57, 0.0, 0.6), (64, 0.8, 1.4), (72, 1.6, 2.2)]  # (pitch, on s, off s) at 120 bpm


def write_midi(path):
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))  # 120 bpm: 1 beat = 0.5 s
    track.append(mido.Message("control_change", control=7, value=100, time=0))
    timeline = []
    for pitch, on, off in NOTES:
        timeline.append((on, mido.Message("note_on", note=pitch, velocity=100)))
        timeline.append((off, mido.Message("note_on", note=pitch, velocity=0)))  # running-status style off
    now = 0.0
    for at, message in sorted(timeline, key=lambda item: item[0]):
        message.time = int(round((at - now) * 960))  # ticks: 480 per 0.5 s
        track.append(message)
        now = at
    midi.save(str(path))
    return path


def test_midi_file_events(tmp_path):
    events = midi_file_events(write_midi(tmp_path / "tune.mid"))
    notes = [(round(t, 3), e) for t, e in events if isinstance(e, (NoteOn, NoteOff))]
    expected = []
    for pitch, on, off in NOTES:
        expected += [(on, NoteOn(pitch, 100)), (off, NoteOff(pitch))]
    assert sorted(notes, key=lambda x: x[0]) == sorted(expected, key=lambda x: x[0])
    assert (0.0, ControlChange(7, 100)) in events


@pytest.mark.parametrize("content", [b"", b"MThd garbage", b"\x00" * 100, b"RIFF....WAVEfmt "])
def test_unparseable_midi_file_names_the_file(tmp_path, content):
    path = tmp_path / "broken.mid"
    path.write_bytes(content)
    with pytest.raises(MidiFileError, match="broken.mid"):
        midi_file_events(path)


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"RIFF....WAVEfmt ", "is not a MIDI file: it starts with b'RIFF'"),
    (b"RIFF....RMIDdata", "RIFF MIDI file \\(RMID\\), which is not read here"),
    (b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x00\x40\x00\x90", "is truncated"),
])
def test_midi_file_errors_say_what_is_wrong_in_one_line(tmp_path, content, message):
    path = tmp_path / "broken.mid"
    path.write_bytes(content)
    with pytest.raises(MidiFileError, match=message) as raised:
        midi_file_events(path)
    assert "\n" not in str(raised.value) and str(path) in str(raised.value)


def test_a_truncated_copy_of_the_example_is_reported_as_truncated(tmp_path):
    example = Path(__file__).resolve().parents[2] / "examples" / "bach_bwv66_6.mid"
    path = tmp_path / "cut.mid"
    path.write_bytes(example.read_bytes()[:700])
    with pytest.raises(MidiFileError, match="cut.mid is truncated"):
        midi_file_events(path)


def test_missing_midi_file(tmp_path):
    with pytest.raises(MidiFileError, match="does not exist"):
        midi_file_events(tmp_path / "nope.mid")


def test_render_midi_file_plays_each_note_at_its_pitch_and_time(tmp_path):
    engine = Engine(AdditiveTestSynth(), "default", output_sample_rate=48000)
    out = tmp_path / "out.wav"
    audio = render_midi_file(engine, write_midi(tmp_path / "tune.mid"), output_path=out,
                             tail_seconds=1.0)
    assert audio.shape[1] == 2 and abs(len(audio) / 48000 - 3.2) < 0.05
    written, sample_rate = sf.read(out, dtype="float32")
    assert sample_rate == 48000 and written.shape == audio.shape
    np.testing.assert_allclose(written, audio, atol=1.0 / 32768 + 1e-6)  # PCM_16
    for pitch, on, off in NOTES:
        segment = audio[int((on + 0.15) * 48000):int((off - 0.05) * 48000), 0]
        f0 = peak_frequency_hz(segment, 48000)
        assert abs(cents_between(f0, midi_to_hz(pitch))) < 10, (pitch, f0)
    gap = audio[int(0.75 * 48000):int(0.8 * 48000), 0]  # 0.15 s into a -60 dB / 0.5 s release
    assert np.sqrt(np.mean(gap ** 2)) < 0.2 * np.sqrt(np.mean(audio[:int(0.5 * 48000), 0] ** 2))


def test_same_audio_as_driving_render_hop_by_hand():
    events = [(0.0, NoteOn(60, 100)), (0.1, NoteOn(64, 90)), (0.5, NoteOff(60)), (0.525, NoteOff(64))]
    offline = render_events(Engine(AdditiveTestSynth(), "default"), events, tail_seconds=0.5)
    engine = Engine(AdditiveTestSynth(), "default")
    blocks = []
    for hop in range(int(np.ceil((0.525 + 0.5) / 0.016))):  # last event + tail
        for at, event in events:
            if int(at * 16000) // 256 == hop:  # the hop holding the event
                engine.post(Timed(event, int(round(at * 16000))) if isinstance(event, NoteOn) else event)
        blocks.append(engine.render_hop())
    np.testing.assert_array_equal(offline, np.concatenate(blocks))


@pytest.mark.parametrize("start_seconds", [0.0, 0.0031, 0.1, 0.25 + 255 / 16000])
def test_a_note_starts_at_its_own_sample_not_on_the_hop_grid(start_seconds):
    """The same note rendered at two times is the same audio shifted by the exact difference
    (3 device frames per model sample at 48 kHz), wherever the times fall in the 16-ms hops."""
    def render(at):
        events = [(at, NoteOn(60, 100)), (at + 0.3, NoteOff(60))]
        return render_events(Engine(AdditiveTestSynth(), "default"), events, tail_seconds=0.4)[:, 0]

    reference = render(0.0)
    shifted = render(start_seconds)
    shift = 3 * int(round(start_seconds * 16000))
    onset = int(np.argmax(np.abs(shifted) > 1e-3))
    assert onset == int(np.argmax(np.abs(reference) > 1e-3)) + shift
    n = reference.size - shift
    held = 12000  # frames before the note-off (note-offs still take effect at a hop start)
    np.testing.assert_allclose(shifted[shift:shift + held], reference[:held], atol=2e-6)


def test_wav_is_written_atomically_and_not_overwritten(tmp_path):
    path = tmp_path / "take.wav"
    write_wav_atomic(path, np.zeros((100, 2)), sample_rate=48000)
    with pytest.raises(FileExistsError, match="--force"):
        write_wav_atomic(path, np.ones((100, 2)) * 0.5, sample_rate=48000)
    assert np.all(sf.read(path)[0] == 0.0)
    write_wav_atomic(path, np.ones((100, 2)) * 0.5, sample_rate=48000, force=True)
    assert np.allclose(sf.read(path)[0], 0.5, atol=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.wav"]  # no temp files left
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # permissions of a plain open()


def test_render_refuses_to_overwrite_before_rendering(tmp_path):
    out = tmp_path / "out.wav"
    out.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        render_midi_file(Engine(AdditiveTestSynth(), "default"), write_midi(tmp_path / "t.mid"),
                         output_path=out)
    assert out.read_bytes() == b"precious"


def test_render_events_rejects_bad_times():
    engine = Engine(AdditiveTestSynth(), "default")
    with pytest.raises(ValueError, match="finite"):
        render_events(engine, [(float("nan"), NoteOn(60, 90))])
    with pytest.raises(ValueError, match="tail_seconds"):
        render_events(engine, [], tail_seconds=-1)


def test_streaming_to_a_wav_is_bit_exact_and_atomic(tmp_path):
    """render_events_to_wav writes exactly render_events' samples (float WAV), hop by hop, through a
    temporary file renamed at the end; an existing file is refused without force."""
    import soundfile

    from nsynth_live.engine import Engine
    from nsynth_live.engine.events import NoteOff, NoteOn, PitchBend
    from nsynth_live.render.offline import render_events, render_events_to_wav
    from tests.engine.additive_synth import AdditiveTestSynth

    events = [(0.0, NoteOn(60, 100)), (0.13, NoteOn(67, 80)), (0.5, PitchBend(12000)), (0.9, NoteOff(60)),
              (1.1, NoteOff(67))]
    expected = render_events(Engine(AdditiveTestSynth(), "default", output_sample_rate=48000), events)
    path = tmp_path / "take.wav"
    written, frames = render_events_to_wav(Engine(AdditiveTestSynth(), "default", output_sample_rate=48000),
                                           events, path)
    audio, rate = soundfile.read(written, dtype="float32", always_2d=True)
    assert rate == 48000 and frames == expected.shape[0]
    np.testing.assert_array_equal(audio, expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.wav"]
    with pytest.raises(FileExistsError, match="--force"):
        render_events_to_wav(Engine(AdditiveTestSynth(), "default", output_sample_rate=48000), events, path)
