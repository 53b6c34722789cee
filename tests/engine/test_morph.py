"""The crossfaded replay morph (docs/engine.md, "Morph"): speed measured from the audio of the
default model, the per-hop bound, the newest target winning, and held notes that keep looping."""

from pathlib import Path

import numpy as np
import pytest

from nsynth_live.engine import Engine, EngineConfig
from nsynth_live.engine.events import ControlChange, NoteOff, NoteOn
from nsynth_live.functional.timbre_change import change_done, time_to_reach
from tests.engine.signal_checks import windowed_rms

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "sing_default.onnx"
SR = 48000


@pytest.fixture(scope="module")
def sing_synth():
    from nsynth_live.runtime.sing_onnx import load_synth

    return load_synth(DEFAULT_MODEL)


def _render(synth, mode, start_cc, jump_cc=None, *, jump_hop=60, hops=90, note=60):
    engine = Engine(synth, "default", output_sample_rate=SR, config=EngineConfig(morph_mode=mode))
    engine.post(ControlChange(12, start_cc))
    engine.post(ControlChange(13, start_cc))
    for _ in range(3):
        engine.render_hop()
    engine.post(NoteOn(note, 100))
    out = []
    for h in range(hops):
        if h == jump_hop and jump_cc is not None:
            engine.post(ControlChange(12, jump_cc))
            engine.post(ControlChange(13, jump_cc))
        out.append(engine.render_hop()[:, 0].astype(np.float64))
    return np.concatenate(out), engine


@pytest.mark.parametrize("mode, bound_ms", [("replay", 50.0), ("ramp", None)])
def test_a_cc_jump_morphs_within_50_ms_without_dip_or_click(sing_synth, mode, bound_ms):
    """A CC 12/13 jump from (0,0) to (1,1) under a held note, rendered offline: 90% of the spectral
    change within 50 ms (measured 36 ms; the ramp alone takes 210 ms: benchmarks/morph.py), no level
    dip below the quieter held render over 1 dB, no click."""
    source, _ = _render(sing_synth, mode, 0)
    target, _ = _render(sing_synth, mode, 127)
    audio, engine = _render(sing_synth, mode, 0, 127)
    start = 60 * engine.hop_seconds
    done, times = change_done(audio, source, target, sample_rate=SR)
    most = time_to_reach(done, times, start_seconds=start, fraction=0.9)
    if bound_ms is None:  # the measure can fail: the slow ramp does
        assert most > 0.1
        return
    assert most <= bound_ms / 1000.0
    assert engine.morph_replays == 1
    window = SR // 100
    region = slice(int(start * SR) // window, int((start + 0.1) * SR) // window)
    floor = np.minimum(windowed_rms(source, window), windowed_rms(target, window))[region]
    assert np.min(windowed_rms(audio, window)[region] / floor) > 10 ** (-1 / 20)
    around = slice(int(start * SR), int((start + 0.1) * SR))
    held = max(np.abs(np.diff(source[around])).max(), np.abs(np.diff(target[around])).max())
    assert np.abs(np.diff(audio[around])).max() < 1.5 * held


def test_replays_per_hop_are_bounded_and_served_in_order(make_engine):
    engine = make_engine(output_sample_rate=SR, max_voices=16, config=EngineConfig(morph_replays_per_hop=4))
    for key in range(50, 60):
        engine.post(NoteOn(key, 90))
    for _ in range(30):
        engine.render_hop()
    engine.post(ControlChange(12, 0))
    counts = []
    for _ in range(4):
        engine.render_hop()
        counts.append(engine.morph_replays)
    assert counts == [4, 8, 10, 10]


def test_the_newest_target_wins(make_engine):
    """Moves that arrive while a voice waits or crossfades cost one more replay, to the newest target."""
    engine = make_engine(output_sample_rate=SR)
    engine.post(NoteOn(60, 90))
    for _ in range(30):
        engine.render_hop()
    for value in (10, 40, 90):  # three moves in one hop: one replay
        engine.post(ControlChange(12, value))
    engine.render_hop()
    assert engine.morph_replays == 1
    engine.post(ControlChange(12, 120))  # during the crossfade: replayed once it ends
    for _ in range(4):
        engine.render_hop()
    assert engine.morph_replays == 2
    slot = int(np.flatnonzero(engine._phase != 0)[0])
    assert not engine._morph_pending[slot]


def test_held_notes_keep_looping_while_xy_moves(make_engine):
    """Morphs never make a held note miss its sustain loop (the loop's crossfade would start at the
    loop end; a morph crossfade waits around it), so the note is still sounding after 10 s."""
    engine = make_engine(output_sample_rate=SR)
    engine.post(NoteOn(57, 100))
    levels = []
    for hop in range(int(10 / engine.hop_seconds)):
        if hop % 3 == 0:
            engine.post(ControlChange(12, (hop * 7) % 128))
        levels.append(np.abs(engine.render_hop()).max())
    assert engine.active_voice_count == 1 and engine.morph_replays > 100
    assert min(levels[-60:]) > 0.1 * max(levels)
    engine.post(NoteOff(57))
    for _ in range(100):
        engine.render_hop()
    assert engine.active_voice_count == 0


def test_ramp_mode_does_not_replay(make_engine):
    engine = make_engine(output_sample_rate=SR, config=EngineConfig(morph_mode="ramp"))
    engine.post(NoteOn(60, 90))
    for _ in range(20):
        engine.render_hop()
    engine.post(ControlChange(12, 0))
    for _ in range(5):
        engine.render_hop()
    assert engine.morph_replays == 0


def test_a_held_note_keeps_its_new_timbre_across_loop_turns(sing_synth):
    """A jump after the sustain loop's snapshot (frame 124): each later loop turn restarts from the
    snapshot re-rendered at the new timbre, so the sound never falls back to the old one (it dipped
    to 37% of the change once per loop before; measured now: >= 97%)."""
    jump, hops = 140, 330  # the jump 2.2 s into the note; two loop turns follow
    source, _ = _render(sing_synth, "replay", 0, hops=hops, jump_hop=jump)
    target, _ = _render(sing_synth, "replay", 127, hops=hops, jump_hop=jump)
    audio, engine = _render(sing_synth, "replay", 0, 127, hops=hops, jump_hop=jump)
    done, times = change_done(audio, source, target, sample_rate=SR)
    after = times > jump * engine.hop_seconds + 0.1
    assert np.nanmin(done[after]) > 0.9
    assert engine.morph_replays >= 3  # the jump, then one re-rendered snapshot per loop turn
