"""The audio process's wire format: event records both ways, the record queue, the shared layout.
(The process itself plays in the JACK end-to-end tests, tests/e2e/test_e2e_jack.py.)"""

import subprocess
import sys

import numpy as np
import pytest

from nsynth_live.engine.attack_cache import AttackCache
from nsynth_live.engine.callback import CallbackConfig
from nsynth_live.engine.events import (
    AllNotesOff, AllSoundOff, CachedNoteOn, ChannelPressure, ControlChange, NoteOff, NoteOn, PitchBend, ProgramChange,
    ReleaseAttack, SetXY, Timed,
)
from nsynth_live.io.audio_process import RECORD_FIELDS, RecordQueue, _layout, decode_event, encode_event


def _cache(cache_id: int = 7) -> AttackCache:
    return AttackCache(embedding=np.zeros(16, np.float32), pitches=np.arange(36, 85), velocities=np.array([64.0, 127.0]),
                       attack=np.zeros((98, 10), np.float32), state={}, handoff_hops=5, time_index=18, ratio=3.0,
                       integer_ratio=3, delay_frames=96, hop_length_samples=256, cache_id=cache_id)


@pytest.mark.parametrize("event", [NoteOn(60, 100), NoteOn(60, 100, channel=15), NoteOff(61), ControlChange(64, 127),
                                   ControlChange(12, 5, channel=9), PitchBend(16383, channel=3), PitchBend(0),
                                   ChannelPressure(77, channel=1), ProgramChange(3), AllNotesOff(), AllSoundOff(), Timed(ReleaseAttack(62), 12345)])
def test_midi_and_callback_events_survive_the_round_trip(event):
    assert decode_event(encode_event(event)) == event


def test_a_cached_note_names_its_cache_and_finds_it_again():
    cache = _cache()
    event = Timed(CachedNoteOn(key=24, pitch_midi=36, velocity=127.0, cache=cache, row=1, channel=15), 999)
    record = encode_event(event)
    assert record[4] == 7
    back = decode_event(record, {7: cache})
    assert back.at_sample == 999 and back.event.cache is cache and back.event.row == 1 and back.event.channel == 15
    assert back.event.velocity == 127.0 and back.event.key == 24 and back.event.pitch_midi == 36
    assert decode_event(record, {}) is None  # a cache the instrument no longer keeps: dropped, no error


def test_events_the_queues_do_not_carry_are_refused_and_unknown_records_ignored():
    assert encode_event(SetXY(0.5, 0.5)) is None
    assert decode_event((99, 0, 0, 0, 0, 0)) is None


def test_record_queue_wraps_and_drops_when_full_without_losing_order():
    queue = RecordQueue(np.zeros((4, RECORD_FIELDS), np.int64), np.zeros(2, np.int64))
    taken = []
    for round_ in range(3):  # wraps around the 4 slots
        for i in range(3):
            assert queue.put((1, round_, i, 0, 0, 0))
        taken += [tuple(int(v) for v in r[1:3]) for r in queue.take()]
    assert taken == [(r, i) for r in range(3) for i in range(3)]
    for i in range(4):
        assert queue.put((1, 9, i, 0, 0, 0))
    assert not queue.put((1, 9, 4, 0, 0, 0)) and queue.dropped == 1
    assert [int(r[2]) for r in queue.take()] == [0, 1, 2, 3]


def test_shared_layout_is_aligned_and_disjoint():
    config = CallbackConfig(capacity_frames=3000, channels=2, output_sample_rate=48000, ratio=3.0, sample_origin=0,
                            nominal_hop_frames=768.0, max_hop_frames=832, resampler_delay_frames=95.5,
                            kill_frames=480.0, limiter_knee=0.8, pitch_min_midi=36, pitch_max_midi=84,
                            out_of_range="transpose")
    layout = _layout(config)
    arrays = [entry for name, entry in layout.items() if not name.startswith("_")]
    spans = sorted((offset, offset + int(np.prod(shape)) * np.dtype(dtype).itemsize) for offset, shape, dtype in arrays)
    assert all(start % 64 == 0 for start, _ in spans)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))
    assert spans[-1][1] <= layout["_size"]


def test_the_audio_process_imports_neither_the_model_runtime_nor_torch():
    """What the child imports (nsynth_live.io.audio_process and the callback side) stays light."""
    code = ("import sys, nsynth_live.io.audio_process, nsynth_live.io.audio, nsynth_live.io.recorder; "
            "print(sorted(m for m in ('onnxruntime', 'onnx', 'torch', 'matplotlib', 'librosa') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
