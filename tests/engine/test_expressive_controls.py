"""MIDI controllers in the engine: XY on CC 12/13 (14-bit with CC 44/45), pitch bend with its RPN 0
range, mod wheel / aftertouch amounts, and preset [controls] (docs/midi.md).

The model is the additive test double: its harmonics sit exactly at the MIDI pitch, so a bend's
cents are measured from the audio with nothing of the model's own tuning in the way.
"""

import dataclasses

import numpy as np
import pytest

from nsynth_live.engine.controllers import ControllerState, bend_semitones
from nsynth_live.engine.events import ChannelPressure, ControlChange, NoteOff, NoteOn, PitchBend
from nsynth_live.functional.midi import midi_to_hz
from nsynth_live.functional.pitch import refine_f0_hz
from nsynth_live.presets import Controls, PresetError, load_preset
from tests.engine.signal_checks import render_hops

SR = 48000
HOP_FRAMES = 768  # 256 model samples at 48 kHz


def cents(ratio):
    return 1200.0 * np.log2(ratio)


def f0_of(audio, pitch_midi, semitones=0.0):
    """f0 refined around the expected pitch (the estimator locks to the nearest period multiple)."""
    guess = float(midi_to_hz(pitch_midi)) * 2 ** (semitones / 12)
    return refine_f0_hz(np.asarray(audio, np.float64), sample_rate=SR, f0_hz=guess)


def rpn0(range_semitones, cents_value=None, channel=0):
    events = [ControlChange(101, 0, channel), ControlChange(100, 0, channel), ControlChange(6, range_semitones, channel)]
    if cents_value is not None:
        events.append(ControlChange(38, cents_value, channel))
    return events


# ------------------------------------------------------------------ XY
def test_cc12_and_cc13_move_xy_seven_bit(make_engine):
    engine = make_engine(output_sample_rate=SR)
    engine.post(ControlChange(12, 127))
    engine.post(ControlChange(13, 0, channel=5))  # omni: the pad is one, whatever the channel
    engine.render_hop()
    assert engine.xy == (1.0, 0.0)
    engine.post(ControlChange(12, 64))
    engine.render_hop()
    assert engine.xy[0] == pytest.approx(64 / 127)


def test_fourteen_bit_pairs_with_cc44_and_cc45(make_engine):
    engine = make_engine(output_sample_rate=SR)
    for event in (ControlChange(12, 64), ControlChange(44, 0), ControlChange(13, 0), ControlChange(45, 1)):
        engine.post(event)
    engine.render_hop()
    assert engine.xy == (64 * 128 / 16383, 1 / 16383)
    # an MSB alone resets the LSB (MIDI 1.0): the controller stays in 14-bit mode
    engine.post(ControlChange(12, 127))
    engine.post(ControlChange(44, 127))
    engine.render_hop()
    assert engine.xy[0] == 1.0
    engine.post(ControlChange(12, 32))
    engine.render_hop()
    assert engine.xy[0] == 32 * 128 / 16383


def test_xy_controllers_follow_the_preset(make_engine):
    preset = dataclasses.replace(load_preset("default"), controls=Controls(x_cc=16, y_cc=-1))
    engine = make_engine(preset, output_sample_rate=SR)
    start = engine.xy
    engine.post(ControlChange(12, 0))
    engine.post(ControlChange(13, 0))
    engine.render_hop()
    assert engine.xy == start, "CC 12/13 are not the pad's in this preset"
    engine.post(ControlChange(16, 127))
    engine.render_hop()
    assert engine.xy == (1.0, start[1])


def test_mod_wheel_can_drive_y(make_engine):
    preset = dataclasses.replace(load_preset("default"), controls=Controls(mod_wheel="y", aftertouch="x"))
    engine = make_engine(preset, output_sample_rate=SR)
    engine.post(ControlChange(1, 0))
    engine.post(ChannelPressure(127))
    engine.render_hop()
    assert engine.xy == (1.0, 0.0)


def test_preset_controls_are_validated(tmp_path):
    with pytest.raises(PresetError, match="x_cc"):
        Controls(x_cc=64)
    with pytest.raises(PresetError, match="both 12"):
        Controls(x_cc=12, y_cc=12)
    with pytest.raises(PresetError, match="mod_wheel"):
        Controls(mod_wheel="wah")
    with pytest.raises(PresetError, match="mod wheel"):
        Controls(x_cc=1)
    with pytest.raises(PresetError, match="bend_range"):
        Controls(bend_range=48)
    path = tmp_path / "p.toml"
    path.write_text('format_version = 1\nname = "p"\ncorners = ["a", "b", "c", "d"]\n[controls]\nx_cc = 20\nwidth = 1\n')
    with pytest.raises(PresetError, match=r"unknown keys in \[controls\] \['width'\]"):
        load_preset("p", presets_dir=tmp_path)
    path.write_text('format_version = 1\nname = "p"\ncorners = ["a", "b", "c", "d"]\n[controls]\nx_cc = 20\n'
                    'aftertouch = "gain"\nbend_range = 12\n')
    assert load_preset("p", presets_dir=tmp_path).controls == Controls(x_cc=20, aftertouch="gain", bend_range=12.0)


# ------------------------------------------------------------------ pitch bend
def test_bend_value_to_semitones_reaches_both_ends():
    assert bend_semitones(8192, 2.0) == 0.0
    assert bend_semitones(16383, 2.0) == 2.0
    assert bend_semitones(0, 2.0) == -2.0
    assert bend_semitones(4096, 12.0) == -6.0


@pytest.mark.parametrize("value, range_events, expected_semitones", [
    (16383, [], 2.0),  # default range
    (0, [], -2.0),
    (16383, rpn0(12), 12.0),
    (12288, rpn0(7, 50), 3.75),  # half-way up a 7.5-semitone range
])
def test_bend_is_exact_in_cents(make_engine, value, range_events, expected_semitones):
    """A held note bent and left there: its f0 is the note's times 2**(semitones/12) within 5 cents
    (measured: well under 1 cent)."""
    pitch = 57
    engine = make_engine(output_sample_rate=SR)
    for event in range_events:
        engine.post(event)
    engine.post(NoteOn(pitch, 100))
    unbent = render_hops(engine, 30)[:, 0]
    engine.post(PitchBend(value))
    bent = render_hops(engine, 40)[:, 0]
    reference = f0_of(unbent[10 * HOP_FRAMES:], pitch)
    measured = f0_of(bent[4 * HOP_FRAMES:], pitch, expected_semitones)
    assert abs(cents(reference / midi_to_hz(pitch))) < 1.0
    assert abs(cents(measured / reference) - 100.0 * expected_semitones) < 5.0


def test_bend_is_per_channel_and_reaches_released_voices(make_engine):
    engine = make_engine(output_sample_rate=SR)
    engine.post(NoteOn(60, 100, channel=1))
    engine.post(NoteOn(64, 100, channel=2))
    render_hops(engine, 20)
    engine.post(NoteOff(60))  # released: still sounding for release_seconds
    engine.post(PitchBend(16383, channel=1))
    render_hops(engine, 3)
    slots = {int(engine._key[s]): s for s in np.flatnonzero(engine._phase != 0)}
    assert engine._bend.ratio[slots[60]] == pytest.approx(2 ** (2 / 12))
    assert engine._bend.ratio[slots[64]] == 1.0


def test_a_note_started_on_a_bent_channel_starts_bent(make_engine):
    pitch = 52
    engine = make_engine(output_sample_rate=SR)
    engine.post(PitchBend(0))
    engine.post(NoteOn(pitch, 100))
    audio = render_hops(engine, 40)[:, 0]
    assert abs(cents(f0_of(audio[8 * HOP_FRAMES:], pitch, -2.0) / midi_to_hz(pitch)) + 200.0) < 5.0


def test_bend_sweep_is_smooth(make_engine):
    """A bend moved in 7-bit steps once per hop (as a wheel sends it): the rate ramps within each hop,
    so the audio has no zipper clicks: the largest sample step stays that of the unbent note's."""
    engine = make_engine(output_sample_rate=SR)
    engine.post(NoteOn(60, 100))
    steady = render_hops(engine, 30)[:, 0]
    chunks = []
    for k in range(40):
        engine.post(PitchBend(8192 + k * 200))
        chunks.append(engine.render_hop()[:, 0])
    sweep = np.concatenate(chunks)
    ratio = 2 ** (bend_semitones(8192 + 39 * 200, 2.0) / 12)
    assert np.max(np.abs(np.diff(sweep))) < 1.2 * ratio * np.max(np.abs(np.diff(steady[10 * HOP_FRAMES:])))
    # and the spectrum above the note's harmonics stays empty (a click is broadband)
    spectrum = np.abs(np.fft.rfft(sweep * np.hanning(sweep.size))) ** 2
    freqs = np.fft.rfftfreq(sweep.size, 1 / SR)
    assert spectrum[freqs > 9000].sum() < 1e-6 * spectrum.sum()


def test_reset_all_controllers_centres_the_bend_but_keeps_its_range():
    state = ControllerState(Controls())
    for event in rpn0(12):
        state.control_change(event.controller, event.value, 0)
    state.pitch_bend(16383, 0)
    assert state.bend_semitones[0] == 12.0
    state.control_change(121, 0, 0)
    assert state.bend_semitones[0] == 0.0 and state.bend_range(0) == 12.0
    state.control_change(6, 5, 0)  # the RPN was deselected by the reset: data entry does nothing
    assert state.bend_range(0) == 12.0


def test_rpn_range_is_clamped_and_other_rpns_ignored():
    state = ControllerState(Controls())
    for event in rpn0(60):
        state.control_change(event.controller, event.value, 3)
    assert state.bend_range(3) == 24.0
    state.control_change(101, 0, 4)
    state.control_change(100, 1, 4)  # RPN 1: fine tuning, not handled
    state.control_change(6, 9, 4)
    assert state.bend_range(4) == 2.0


# ------------------------------------------------------------------ amounts
def _spectral_centroid(x):
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    freqs = np.fft.rfftfreq(x.size, 1 / SR)
    return float((spectrum * freqs).sum() / spectrum.sum())


def test_mod_wheel_brightens_by_default_and_aftertouch_gain_when_assigned(make_engine):
    preset = dataclasses.replace(load_preset("default"), controls=Controls(aftertouch="gain"))
    reference = make_engine(preset, output_sample_rate=SR)
    bright = make_engine(preset, output_sample_rate=SR)
    loud = make_engine(preset, output_sample_rate=SR)
    for engine in (reference, bright, loud):
        engine.post(NoteOn(60, 40))
    bright.post(ControlChange(1, 127))
    loud.post(ChannelPressure(127))
    a, b, c = (render_hops(e, 30)[10 * HOP_FRAMES:, 0] for e in (reference, bright, loud))
    assert _spectral_centroid(b) > 1.2 * _spectral_centroid(a)
    level_db = 20 * np.log10(np.sqrt(np.mean(c ** 2)) / np.sqrt(np.mean(a ** 2)))
    assert level_db == pytest.approx(6.0, abs=0.3)
    assert _spectral_centroid(c) == pytest.approx(_spectral_centroid(a), rel=1e-3)


def test_a_bend_that_returns_to_the_centre_passes_the_voice_unfiltered_again(make_engine):
    """After a bend comes back to 8192 the read position settles on a whole sample within a hop:
    the voice's audio is then bit for bit the unbent voice's (no lasting treble loss)."""
    bent = make_engine(output_sample_rate=16000)
    plain = make_engine(output_sample_rate=16000)
    for engine in (bent, plain):
        engine.post(NoteOn(79, 100))  # harmonics up to 6.3 kHz, where a cubic interpolator dulls most
    for hop in range(40):
        if hop in (10, 13):
            bent.post(PitchBend(9000 if hop == 10 else 8192))
        a, b = bent.render_hop(), plain.render_hop()
    slot = int(np.flatnonzero(bent._phase != 0)[0])
    assert bent._bend.position[slot] == np.round(bent._bend.position[slot])
    # same waveform, shifted by the whole samples the bend consumed: compare spectra of the last hops
    tail_a = np.concatenate([bent.render_hop()[:, 0] for _ in range(8)])
    tail_b = np.concatenate([plain.render_hop()[:, 0] for _ in range(8)])
    spectrum = lambda x: np.abs(np.fft.rfft(x * np.hanning(x.size)))  # noqa: E731
    high = np.fft.rfftfreq(tail_a.size, 1 / 16000) > 4000
    assert spectrum(tail_a)[high].sum() == pytest.approx(spectrum(tail_b)[high].sum(), rel=0.02)


def test_preset_change_returns_unassigned_amounts_to_rest_and_nrpn_leaves_the_bend_range():
    state = ControllerState(Controls())
    state.control_change(1, 127, 0)
    assert state.amounts["brightness"] == 1.0
    state.set_controls(Controls(mod_wheel="gain"))
    assert state.amounts["brightness"] == 0.0
    for event in rpn0(2):
        state.control_change(event.controller, event.value, 0)
    state.control_change(99, 0, 0)  # an NRPN is selected: data entry is not the bend range's
    state.control_change(98, 5, 0)
    state.control_change(6, 64, 0)
    assert state.bend_range(0) == 2.0
    with pytest.raises(PresetError, match="LSBs"):
        Controls(x_cc=40)


def test_a_note_bent_two_octaves_up_fades_before_the_end_of_the_time_table(make_engine):
    """Bent up by 24 semitones a voice reads its model stream 4x faster: it must fade and be freed
    before any model step is asked for a time index past the table (that used to raise every hop)."""
    preset = dataclasses.replace(load_preset("default"), release_seconds=4.0)
    engine = make_engine(preset, output_sample_rate=SR)
    for event in rpn0(24):
        engine.post(event)
    engine.post(PitchBend(16383))
    engine.post(NoteOn(48, 100))
    engine.render_hop()
    engine.post(NoteOff(48))  # released: the 4-s release outlasts the 265-frame table read 4x faster
    for _ in range(200):
        engine.render_hop()
    assert engine.active_voice_count == 0
    engine.post(PitchBend(8192))
    engine.post(NoteOn(60, 100))  # and the instrument still plays
    assert np.abs(render_hops(engine, 10)).max() > 0.01
