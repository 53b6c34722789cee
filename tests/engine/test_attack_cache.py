"""The attack cache: a note-on sounds in the block the callback runs, and the callback's cached
attack plus the engine's continuation equal the note the engine renders by itself."""

from pathlib import Path

import numpy as np
import pytest

from nsynth_live.engine import Engine, NoteOff, NoteOn
from nsynth_live.engine.attack_cache import build_attack_cache, layer_velocities
from nsynth_live.engine.events import AllSoundOff, Timed
from nsynth_live.engine.realtime import RealtimeRunner

pytest.importorskip("onnxruntime")
from nsynth_live.runtime.sing_onnx import load_synth  # noqa: E402

MODEL = Path(__file__).resolve().parents[2] / "models" / "sing_default.onnx"
BLOCK = 256


@pytest.fixture(scope="module")
def synth():
    return load_synth(MODEL)


@pytest.fixture(scope="module")
def runner_cache(synth):
    """One cache for the default preset at 48 kHz (1-2 s to build), shared by the tests."""
    runner = RealtimeRunner(Engine(synth, "default", output_sample_rate=48000, max_voices=8), block_size=BLOCK)
    return runner.build_cache()


def _runner(synth, cache, **engine_kwargs):
    engine = Engine(synth, "default", output_sample_rate=48000, max_voices=8, **engine_kwargs)
    runner = RealtimeRunner(engine, block_size=BLOCK)
    runner._set_cache(cache)  # noqa: SLF001 - same timbre (default preset): reuse the module's cache
    return runner


def _play(runner, blocks: int, events_at: dict, channel: int = 0) -> np.ndarray:
    """Drive the runner as the device would, without threads: pump, then one callback per block;
    ``events_at[block]`` are posted just before that block's callback. Returns ``channel``."""
    out = []
    for b in range(blocks):
        for event in events_at.get(b, ()):
            runner.post(event)
        runner.pump()
        buffer = np.zeros((BLOCK, 2), dtype=np.float32)
        runner.audio_callback(buffer, BLOCK, None, 0)
        out.append(buffer[:, channel].copy())
    return np.concatenate(out)


def test_layers_cover_the_velocity_range():
    layers = layer_velocities(16)
    assert layers[0] == 8 and layers[-1] == 127 and np.all(np.diff(layers) > 0)
    with pytest.raises(ValueError):
        layer_velocities(0)


@pytest.mark.parametrize("key, channel", [(60, 0), (71, 0), (71, 1), (41, 1)])
def test_cached_note_sounds_in_its_block_and_equals_the_engines_own_note(synth, runner_cache, key, channel):
    """On both sides of the stereo mix: the callback pans the attack as the engine pans the voice."""
    runner = _runner(synth, runner_cache)
    note_block = 10
    live = _play(runner, 120, {note_block: [NoteOn(key, 127)]}, channel)
    now = note_block * BLOCK
    onset = int(np.argmax(np.abs(live) > 1e-4))
    assert now <= onset < now + BLOCK  # first sound within the block the note-on arrived for
    assert runner.cached_notes == 1 and runner.engine.late_handoffs == 0

    # the same note started by the engine alone, at the same model sample, same velocity
    engine = Engine(synth, "default", output_sample_rate=48000, max_voices=8)
    start = runner_cache.note_start_frame(now)
    engine.post(Timed(NoteOn(key, 127), start // 3))
    reference = np.concatenate([engine.render_hop()[:, channel] for _ in range(live.size // 768 + 1)])[:live.size]
    handoff = start + int(runner_cache.handoff_frames)
    assert handoff < live.size - 2 * 768  # the comparison spans the hand-over
    # exact from the block on; before it, the engine's note has only its resampler's pre-ringing,
    # which the callback cannot play (it is in the past)
    np.testing.assert_allclose(live[now:], reference[now:], atol=2e-5)
    assert np.abs(reference[:now]).max() < 1e-3 * np.abs(reference).max()


def test_note_off_during_the_attack_releases_it_and_the_continuation_goes_on_releasing(synth, runner_cache):
    """Released at its frame in the callback; the engine's continuation starts already released:
    the result is the held note times the preset's release curve from the note-off frame."""
    runner = _runner(synth, runner_cache)
    live = _play(runner, 160, {4: [NoteOn(64, 127)], 5: [NoteOff(64)]})
    now, off = 4 * BLOCK, 5 * BLOCK
    start = runner_cache.note_start_frame(now)
    assert runner.engine._scheduled == [] and runner.engine.late_handoffs == 0  # noqa: SLF001

    engine = Engine(synth, "default", output_sample_rate=48000, max_voices=8)
    engine.post(Timed(NoteOn(64, 127), start // 3))
    held = np.concatenate([engine.render_hop()[:, 0] for _ in range(live.size // 768 + 1)])[:live.size]
    release = 10.0 ** (-3.0 / (engine.preset.release_seconds * 48000))
    t = np.arange(live.size)
    expected = held * release ** np.maximum(t - off, 0)
    np.testing.assert_allclose(live[now:], expected[now:], atol=3e-4)
    assert np.abs(live[off + 48000 // 2:]).max() < 2e-3 * np.abs(held).max()  # -60 dB after 0.5 s


def test_a_burst_of_every_key_costs_no_pre_roll_and_all_sound_off_silences_it(synth, runner_cache):
    """128 note-ons in one block: each starts its attack in that block, no voice is pre-rolled
    (the engine continues from cached states), and CC120 leaves silence within ~10 ms."""
    runner = _runner(synth, runner_cache)
    keys = range(36, 85)
    live = _play(runner, 60, {2: [NoteOn(k, 100) for k in keys], 40: [AllSoundOff()]})
    assert runner.cached_notes == len(keys)
    assert not runner.engine._needs_preroll.any()  # noqa: SLF001
    assert np.abs(live[2 * BLOCK:3 * BLOCK]).max() > 1e-3
    ring = runner.target_fill_frames + runner.engine.max_hop_frames  # what was queued before CC120
    assert np.abs(live[40 * BLOCK + ring + 480:]).max() < 1e-4  # then a 10-ms fade


def test_cache_rows_are_each_pitch_and_layer(synth):
    cache = build_attack_cache(synth, synth.instrument_embedding(synth.spec.instrument_names[0]),
                               output_sample_rate=48000, handoff_hops=1, attack_seconds=0.002,
                               velocity_layers=2)
    assert cache.attack.shape[0] == (synth.spec.pitch_max_midi - synth.spec.pitch_min_midi + 1) * 2
    assert cache.row(synth.spec.pitch_min_midi, 1) == 0 and cache.row(synth.spec.pitch_min_midi, 127) == 1
    with pytest.raises(KeyError):
        cache.row(synth.spec.pitch_max_midi + 1, 64)
    assert cache.note_start_frame(100) % 3 == 0


def test_keys_outside_the_model_and_osc_notes_are_cached_too(synth, runner_cache):
    """Key 24 plays the model's 36 (transposed by octaves, the engine's policy) from the cache, and
    notes in an OSC outbox batch go through the callback like MIDI ones."""
    from nsynth_live.engine.events import EventBatch

    runner = _runner(synth, runner_cache)
    live = _play(runner, 30, {3: [EventBatch(lambda: (NoteOn(24, 127),))]})
    assert runner.cached_notes == 1 and runner.uncached_notes == 0
    onset = int(np.argmax(np.abs(live) > 1e-4))
    assert 3 * BLOCK <= onset < 4 * BLOCK
    assert runner.engine._key[runner.engine._phase != 0].tolist() == [24]  # noqa: SLF001
    assert runner.engine._pitch[runner.engine._phase != 0].tolist() == [36]  # noqa: SLF001


def test_a_short_note_under_the_pedal_is_held_then_released_when_the_pedal_goes_up(synth, runner_cache):
    """Key up before the hand-over with the pedal down: the voice starts sustained (not held, not
    stuck) and is released at pedal-up like any sustained note."""
    from nsynth_live.engine import ControlChange

    runner = _runner(synth, runner_cache)
    pedal_up_block = 120
    live = _play(runner, 400, {2: [ControlChange(64, 127)], 3: [NoteOn(60, 127)], 4: [NoteOff(60)],
                               pedal_up_block: [ControlChange(64, 0)]})
    assert np.abs(live[(pedal_up_block - 10) * BLOCK:pedal_up_block * BLOCK]).max() > 1e-3  # sustained
    release_end = pedal_up_block * BLOCK + runner.target_fill_frames + 768 + int(0.6 * 48000)
    assert np.abs(live[release_end:]).max() < 1e-3 * np.abs(live).max()  # released, not stuck
    assert runner.engine.active_voice_count == 0


def test_an_underrun_silences_the_attack_too_and_it_resumes_in_step_with_the_ring(synth, runner_cache):
    """When the model thread falls behind, the callback plays silence for what the ring lacks and
    the attacks do not run ahead of it (they would repeat or drift from their continuation)."""
    runner = _runner(synth, runner_cache)
    reference = _play(_runner(synth, runner_cache), 60, {3: [NoteOn(60, 127)]})
    out = []
    for b in range(60):
        if b == 3:
            runner.post(NoteOn(60, 127))
        if not 5 <= b < 15:  # the model thread stalls for 10 blocks...
            runner.pump()
        buffer = np.zeros((BLOCK, 2), dtype=np.float32)
        runner.audio_callback(buffer, BLOCK, None, 0)
        out.append(buffer[:, 0].copy())
    stalled = np.concatenate(out)
    assert runner.underrun_count > 0
    # ...the ring held a few blocks, then silence until it refills: nothing is played twice
    assert np.abs(stalled[14 * BLOCK:15 * BLOCK]).max() == 0.0
    played = stalled[np.abs(stalled) > 0]
    assert played.size <= np.count_nonzero(reference) and runner.engine.late_handoffs == 0
