"""Engine behaviour with the additive test double (physics on the rendered audio)."""

import logging

import numpy as np
import pytest

from nsynth_live.engine import (
    AllNotesOff, AllSoundOff, ControlChange, Engine, EngineConfig, NoteOff, NoteOn, ProgramChange,
    SelectPreset, SetX, SetXY, SustainLoop,
)
from nsynth_live.engine.engine import HELD, KILLING, RELEASED, SUSTAINED
from nsynth_live.functional.midi import cents_between, midi_to_hz
from nsynth_live.presets import Preset, PresetError
from tests.engine.additive_synth import AdditiveTestSynth
from tests.engine.signal_checks import (
    band_energy_ratio, max_jump, peak_frequency_hz, render_hops, windowed_rms,
)

HOP_SECONDS = 256 / 16000


def hops(seconds):
    return int(round(seconds / HOP_SECONDS))


from nsynth_live.engine.voices import key_pan, pan_gains  # noqa: E402


def phases_of(engine):
    """{key: phase} of the slots that count against max_voices, plus fading slots as KILLING."""
    return {int(engine._key[s]): int(engine._phase[s]) for s in np.flatnonzero(engine._phase != 0)
            if engine._phase[s] != KILLING}


@pytest.mark.parametrize("output_sample_rate", [48000, 44100, 32000, 16000])
def test_a4_is_440_hz_at_every_output_rate(make_engine, output_sample_rate):
    engine = make_engine(output_sample_rate=output_sample_rate)
    engine.post(NoteOn(69, 100))
    audio = render_hops(engine, hops(1.0))
    assert audio.shape[1] == 2 and audio.dtype == np.float32
    expected_frames = hops(1.0) * 256 * output_sample_rate / 16000
    assert abs(audio.shape[0] - expected_frames) < 0.01 * expected_frames + 256
    f0 = peak_frequency_hz(audio[len(audio) // 3:, 0], output_sample_rate)
    assert abs(cents_between(f0, 440.0)) < 3.0, f0
    # one voice: the same signal on both sides, panned right of centre (A4 is above middle C)
    left, right = pan_gains(key_pan(69, 1.0))
    assert right > left
    np.testing.assert_allclose(audio[:, 0] * right, audio[:, 1] * left, atol=1e-6)


def test_48k_hops_are_exactly_768_frames(make_engine):
    engine = make_engine()
    engine.post(NoteOn(60, 80))
    assert [engine.render_hop().shape for _ in range(5)] == [(768, 2)] * 5


def test_one_batched_model_step_per_hop_for_all_voices(make_engine, synth):
    engine = make_engine()
    for key in (60, 64, 67, 72):
        engine.post(NoteOn(key, 90))
    engine.render_hop()
    preroll = synth.spec.preroll_steps
    assert synth.batch_sizes == [4] * preroll + [4]  # one batched pre-roll, then one step
    synth.batch_sizes.clear()
    render_hops(engine, 10)
    assert synth.batch_sizes == [4] * 10


def test_polyphony_and_steal_order(make_engine):
    engine = make_engine(max_voices=4)
    for key in (60, 62, 64, 65):
        engine.post(NoteOn(key, 90))
    render_hops(engine, 3)
    assert engine.active_voice_count == 4
    engine.post(ControlChange(64, 127))  # pedal down
    engine.post(NoteOff(62))  # -> sustained
    render_hops(engine, 2)
    engine.post(ControlChange(64, 0))  # pedal up: 62 released
    engine.post(ControlChange(64, 127))
    engine.post(NoteOff(64))  # -> sustained
    render_hops(engine, 2)
    assert phases_of(engine) == {60: HELD, 62: RELEASED, 64: SUSTAINED, 65: HELD}
    engine.post(NoteOn(70, 90))  # steals the released voice first
    render_hops(engine, 1)
    assert phases_of(engine) == {60: HELD, 64: SUSTAINED, 65: HELD, 70: HELD}
    engine.post(NoteOn(71, 90))  # then the sustained one
    render_hops(engine, 1)
    assert phases_of(engine) == {60: HELD, 65: HELD, 70: HELD, 71: HELD}
    engine.post(NoteOn(72, 90))  # then the oldest held one
    render_hops(engine, 1)
    assert phases_of(engine) == {65: HELD, 70: HELD, 71: HELD, 72: HELD}
    assert engine.active_voice_count == 4


def test_sixteen_voices_and_a_storm_of_notes_in_one_hop(make_engine, synth):
    engine = make_engine(max_voices=16)
    for key in range(40, 80):  # 40 note-ons in one hop
        engine.post(NoteOn(key, 100))
    audio = render_hops(engine, 20)
    assert engine.active_voice_count == 16
    assert set(phases_of(engine)) == set(range(64, 80))  # the 16 newest keys
    assert np.all(np.isfinite(audio)) and np.max(np.abs(audio)) <= 1.0


def test_stolen_voice_fades_without_a_click(make_engine):
    engine = make_engine(max_voices=1, output_sample_rate=16000)
    engine.post(NoteOn(69, 127))
    steady = render_hops(engine, hops(0.5))[:, 0]
    engine.post(NoteOn(57, 127))
    transition = render_hops(engine, hops(0.2))[:, 0]
    assert max_jump(transition) < 1.2 * max_jump(steady)
    assert engine.sounding_slot_count == 1


def test_same_key_retrigger_reuses_its_voice(make_engine):
    engine = make_engine(output_sample_rate=16000)
    engine.post(NoteOn(60, 90))
    steady = render_hops(engine, 10)[:, 0]
    for _ in range(5):
        engine.post(NoteOn(60, 90))
        again = render_hops(engine, 3)[:, 0]
        assert engine.active_voice_count == 1
        assert max_jump(again) < 1.2 * max_jump(steady)
    for _ in range(5):  # several in one hop: only one voice
        engine.post(NoteOn(60, 90))
    render_hops(engine, 2)
    assert engine.active_voice_count == 1


def test_sustain_pedal_holds_released_notes(make_engine):
    engine = make_engine(output_sample_rate=16000)
    engine.post(ControlChange(64, 100))
    engine.post(NoteOn(60, 90))
    render_hops(engine, 10)
    engine.post(NoteOff(60))
    held = render_hops(engine, hops(1.0))[:, 0]
    assert windowed_rms(held, 1600)[-1] > 0.5 * windowed_rms(held, 1600)[0]
    assert phases_of(engine) == {60: SUSTAINED}
    engine.post(ControlChange(64, 0))
    released = render_hops(engine, hops(1.0))[:, 0]
    assert engine.active_voice_count == 0
    assert np.max(np.abs(released[-1600:])) < 1e-6


def test_all_notes_off_respects_sustain(make_engine):
    engine = make_engine()
    engine.post(NoteOn(60, 90))
    engine.post(NoteOn(64, 90))
    engine.post(ControlChange(64, 127))
    render_hops(engine, 5)
    engine.post(AllNotesOff())
    render_hops(engine, 5)
    assert phases_of(engine) == {60: SUSTAINED, 64: SUSTAINED}
    engine.post(ControlChange(64, 0))
    engine.post(NoteOn(67, 90))
    render_hops(engine, 2)
    engine.post(AllNotesOff())
    render_hops(engine, 1)
    assert set(phases_of(engine).values()) == {RELEASED}


def test_all_sound_off_is_fast_and_not_a_click(make_engine):
    engine = make_engine(output_sample_rate=16000)
    for key in (60, 64, 67):
        engine.post(NoteOn(key, 120))
    engine.post(ControlChange(64, 127))  # even with the pedal down
    steady = render_hops(engine, 30)[:, 0]
    engine.post(AllSoundOff())
    after = render_hops(engine, 3)[:, 0]
    assert engine.sounding_slot_count == 0
    silent_from = int(0.012 * 16000)  # 10 ms ramp, + a margin
    assert np.max(np.abs(after[silent_from:])) < 1e-7
    assert max_jump(after) < 1.2 * max_jump(steady)


@pytest.mark.parametrize("release_seconds", [0.1, 0.5, 1.5])
def test_release_reaches_minus_60_db_in_time_and_never_steps(synth, release_seconds):
    preset = Preset(name="r", corners=("organ_acoustic_005", "string_acoustic_011",
                                       "flute_acoustic_016", "reed_acoustic_015"),
                    release_seconds=release_seconds, gain_db=0.0)
    engine = Engine(synth, preset, output_sample_rate=16000)
    engine.post(NoteOn(69, 100))
    before = render_hops(engine, hops(0.5))[:, 0]
    engine.post(NoteOff(69))
    after = render_hops(engine, hops(release_seconds * 1.5) + 2)[:, 0]
    level = np.sqrt(np.mean(before[-1600:] ** 2))
    at = int(release_seconds * 16000)
    tail = np.sqrt(np.mean(after[at:at + 800] ** 2))
    assert 20 * np.log10(tail / level) < -59.0
    early = np.sqrt(np.mean(after[:int(0.04 * at)] ** 2))  # first 4 % of the release: > -2.4 dB
    assert 20 * np.log10(early / level) > -3.0  # it is a release, not a cut
    assert max_jump(after) <= max_jump(before) * 1.05
    rms = windowed_rms(after, 160)  # 10 ms windows never step up by more than 0.5 dB
    rms = rms[rms > 1e-6]
    assert np.all(rms[1:] / rms[:-1] < 10 ** (0.5 / 20))
    assert engine.active_voice_count == 0


@pytest.mark.parametrize("mode", ["crossfade", "hold"])
def test_note_held_longer_than_the_model_keeps_sounding_then_releases(synth, mode):
    preset = Preset(name="h", corners=("organ_acoustic_005",) * 4, release_seconds=0.3)
    loop = SustainLoop.for_spec(synth.spec, mode=mode)
    engine = Engine(synth, preset, output_sample_rate=16000, config=EngineConfig(sustain_loop=loop))
    engine.post(NoteOn(57, 100))
    held = render_hops(engine, hops(10.0))[:, 0]  # 10 s > 265 frames (4.2 s)
    rms = windowed_rms(held, 800)[4:]  # 50 ms windows after the attack
    assert rms.min() > 0.7 * np.median(rms), rms.min() / np.median(rms)
    steady = held[16000:32000]
    assert max_jump(held[8000:]) < 1.2 * max_jump(steady)
    f0 = peak_frequency_hz(held[-48000:], 16000)
    assert abs(cents_between(f0, midi_to_hz(57))) < 5
    engine.post(NoteOff(57))
    after = render_hops(engine, hops(0.8))[:, 0]
    assert max_jump(after) < 1.2 * max_jump(steady)
    assert engine.active_voice_count == 0 and np.max(np.abs(after[-800:])) < 1e-6


def test_sustain_loop_never_steps_past_the_time_table(synth):
    """The double raises on time_index >= 265; a 20 s pedal-held chord must not trigger it."""
    engine = Engine(synth, "default", output_sample_rate=16000)
    engine.post(ControlChange(64, 127))
    for key in (48, 55, 60):
        engine.post(NoteOn(key, 80))
    render_hops(engine, 40)
    for key in (48, 55, 60):
        engine.post(NoteOff(key))
    audio = render_hops(engine, hops(20.0))[:, 0]
    assert windowed_rms(audio, 1600)[-1] > 0.3 * windowed_rms(audio, 1600)[2]


def test_released_note_runs_into_the_end_guard_and_fades(synth):
    preset = Preset(name="long", corners=("organ_acoustic_005",) * 4, release_seconds=4.0)
    engine = Engine(synth, preset, output_sample_rate=16000)
    engine.post(NoteOn(60, 100))
    before = render_hops(engine, 180)[:, 0]  # near the loop end
    engine.post(NoteOff(60))
    audio = render_hops(engine, hops(5.0))[:, 0]  # release 4 s would pass frame 265
    assert engine.sounding_slot_count == 0
    assert max_jump(audio) < 1.05 * max_jump(before[-8000:])


def test_xy_jump_morphs_the_spectrum_within_50_ms_without_a_click(synth):
    engine = Engine(synth, "default", output_sample_rate=16000)
    engine.post(SetXY(0.0, 0.0))
    engine.post(NoteOn(57, 100))
    before = render_hops(engine, hops(0.6))[:, 0]
    engine.post(SetXY(1.0, 1.0))
    transition = render_hops(engine, hops(0.05))[:, 0]
    after = render_hops(engine, hops(0.6))[:, 0]
    ratio_before = band_energy_ratio(before[-4800:], 16000, split_hz=300)
    ratio_after = band_energy_ratio(after[:4800], 16000, split_hz=300)
    corner_00 = synth.harmonic_weights(synth.instrument_embedding("organ_acoustic_005")[None])[0]
    corner_11 = synth.harmonic_weights(synth.instrument_embedding("reed_acoustic_015")[None])[0]
    expected = np.sum(corner_11[1:] ** 2) / np.sum(corner_00[1:] ** 2)
    assert ratio_after / ratio_before == pytest.approx(expected, rel=0.05)
    np.testing.assert_allclose(engine._morph.embedding, synth.instrument_embedding("reed_acoustic_015"),
                               atol=1e-6)  # the target is reached within 50 ms
    limit = 1.2 * max(max_jump(before[-4800:]), max_jump(after))
    assert max_jump(transition) < limit
    # no zipper: the per-hop amplitude steps are ramps, so the 2nd difference stays smooth
    second = np.abs(np.diff(transition, 2)).max()
    assert second < 1.2 * max(np.abs(np.diff(before[-4800:], 2)).max(), np.abs(np.diff(after, 2)).max())


def test_note_released_in_the_hop_it_starts_is_still_heard(make_engine):
    engine = make_engine(output_sample_rate=16000)
    engine.post(NoteOn(69, 100))
    engine.post(NoteOff(69))  # a 5-ms grace note lands in one hop
    audio = render_hops(engine, hops(1.0))[:, 0]
    assert np.sqrt(np.mean(audio[:4000] ** 2)) > 0.01
    assert engine.active_voice_count == 0


def test_set_x_moves_only_x(make_engine):
    engine = make_engine()
    engine.post(SetXY(0.2, 0.7))
    engine.post(SetX(0.9))
    engine.render_hop()
    assert engine.xy == (0.9, 0.7)


def test_output_independent_of_hop_grouping(make_engine):
    """Same events at the same hops give the same audio whatever else happens between hops."""
    def run(split):
        engine = make_engine(output_sample_rate=44100)
        engine.post(NoteOn(60, 90))
        chunks = []
        for i in range(60):
            if i == 20:
                engine.post(SetXY(0.9, 0.1))
                engine.post(NoteOn(67, 70))
            if i == 40:
                engine.post(NoteOff(60))
            chunks.append(engine.render_hop())
            if split:  # queries between hops change nothing
                engine.latency_report(65)
                _ = engine.active_voice_count
        return np.concatenate(chunks)

    a, b = run(False), run(True)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("policy", ["transpose", "ignore"])
def test_notes_outside_the_model_range(synth, policy, caplog):
    engine = Engine(synth, "default", output_sample_rate=16000, config=EngineConfig(out_of_range=policy))
    with caplog.at_level(logging.WARNING, logger="nsynth_live.engine.engine"):
        engine.post(NoteOn(110, 100))  # model range 24..96
        audio = render_hops(engine, hops(0.5))[:, 0]
        engine.post(NoteOn(110, 100))
        render_hops(engine, 1)
    assert caplog.text.count("outside the model's pitch range") == 1  # once per key
    if policy == "ignore":
        assert engine.active_voice_count == 0 and np.max(np.abs(audio)) == 0.0
    else:
        f0 = peak_frequency_hz(audio[2000:], 16000)
        assert abs(cents_between(f0, midi_to_hz(86))) < 5  # 110 - 2 octaves
        engine.post(NoteOff(110))
        render_hops(engine, hops(2.0))
        assert engine.active_voice_count == 0


def test_sixteen_loud_voices_do_not_clip_hard(synth):
    preset = Preset(name="loud", corners=("organ_acoustic_005",) * 4, gain_db=12.0)
    engine = Engine(synth, preset, output_sample_rate=48000)
    for key in range(48, 64):
        engine.post(NoteOn(key, 127))
    audio = render_hops(engine, hops(1.0))[:, 0]
    assert np.max(np.abs(audio)) <= 1.0
    assert np.mean(np.abs(audio) > 0.999) < 0.001  # not a squared-off wave
    assert np.all(np.isfinite(audio))


def test_preset_change_and_program_change(make_engine, caplog):
    engine = make_engine()
    engine.post(NoteOn(60, 90))
    render_hops(engine, 3)
    with caplog.at_level(logging.WARNING, logger="nsynth_live.engine.engine"):
        engine.post(SelectPreset("../etc"))
        engine.post(SelectPreset("no_such_preset"))
        render_hops(engine, 1)
    assert engine.preset.name == "default" and "refused" in caplog.text and "valid presets" in caplog.text
    engine.post(SelectPreset("keys"))
    render_hops(engine, 3)
    assert engine.preset.name == "keys" and engine.active_voice_count == 1
    engine.post(ProgramChange(0))
    render_hops(engine, 1)
    assert engine.preset.name == "brass_reeds"  # sorted list_presets()[0]
    engine.post(ProgramChange(99))
    render_hops(engine, 1)
    assert engine.preset.name == "brass_reeds"


def test_bad_events_do_not_stop_the_engine(make_engine):
    engine = make_engine()
    engine.post("not an event")
    engine.post(None)
    engine.post(NoteOn(60, 90))
    audio = render_hops(engine, 5)
    assert np.max(np.abs(audio)) > 0


def test_unknown_corner_instrument_is_refused(synth):
    preset = Preset(name="bad", corners=("organ_acoustic_005", "kazoo_999", "flute_acoustic_016",
                                         "reed_acoustic_015"))
    with pytest.raises(PresetError, match="kazoo_999.*valid instruments"):
        Engine(synth, preset)


@pytest.mark.parametrize("kwargs", [
    {"max_voices": 0}, {"channels": 0}, {"output_sample_rate": 8000}, {"max_voices": 2.5},
])
def test_invalid_engine_arguments(synth, kwargs):
    with pytest.raises(ValueError):
        Engine(synth, "default", **kwargs)


def test_invalid_sustain_loop(synth):
    with pytest.raises(ValueError, match="does not fit"):
        Engine(synth, "default", config=EngineConfig(sustain_loop=SustainLoop(5, 100)))
    with pytest.raises(ValueError, match="at least"):
        SustainLoop(100, 104, crossfade_hops=8)
    with pytest.raises(ValueError, match="mode"):
        SustainLoop(100, 180, mode="pingpong")


def test_latency_report(make_engine):
    report = make_engine(output_sample_rate=48000).latency_report(256, prefill_hops=2)
    assert report.hop_ms == pytest.approx(16.0)
    assert report.block_ms == pytest.approx(256 / 48.0)
    assert report.ring_prefill_ms == pytest.approx(32.0 + 256 / 48.0)
    assert report.resampler_delay_ms == pytest.approx(95.5 / 48.0)
    assert report.total_ms == pytest.approx(report.block_ms + 16.0 + report.ring_prefill_ms
                                            + report.resampler_delay_ms)
    assert "total" in str(report)
    with pytest.raises(ValueError, match="block_size"):
        make_engine().latency_report(0)


def test_resampler_delay_matches_the_measured_impulse_delay(make_engine):
    """The reported delay is how late a 16 kHz click leaves the resampler in a stream.

    Late = shift of the peak from its ideal output position + output frames still withheld
    (soxr aligns its output but holds the last frames back until more input arrives).
    """
    from nsynth_live.engine.resample import make_resampler

    for rate in (48000, 44100):
        resampler = make_resampler(input_sample_rate=16000, output_sample_rate=rate)
        impulse = np.zeros(256)
        impulse[100] = 1.0
        out = np.concatenate([resampler.process(impulse)] + [resampler.process(np.zeros(256))
                                                             for _ in range(6)])
        withheld = 7 * 256 * rate / 16000 - out.size
        late = int(np.argmax(out)) - 100 * rate / 16000 + withheld
        assert abs(late - resampler.delay_output_samples) <= 2, (rate, late)


class NonFiniteOnSomeSteps(AdditiveTestSynth):
    """The additive double, whose audio is ``value`` (NaN by default) on the given step calls (1-based)."""

    def __init__(self, bad_calls, value=np.nan):
        super().__init__()
        self.bad_calls = set(bad_calls)
        self.value = value

    def step(self, *args, **kwargs):
        audio, state = super().step(*args, **kwargs)
        if self.step_calls in self.bad_calls:
            audio = audio.copy()
            audio[0, 100:110] = self.value  # a few samples of one voice
        return audio, state


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_voice_with_nonfinite_audio_is_cut_and_the_others_play_on(value):
    preroll = 13  # AdditiveTestSynth's pre-roll steps: step call 13 + k is audible hop k (1-based)
    synth = NonFiniteOnSomeSteps({preroll + 5}, value)  # row 0: the first note's voice
    engine = Engine(synth, "default", output_sample_rate=48000)
    engine.post(NoteOn(60, 100))
    engine.post(NoteOn(64, 100))
    blocks = [engine.render_hop() for _ in range(40)]
    audio = np.concatenate(blocks)
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0
    assert (engine.nonfinite_voices, engine.nonfinite_hops) == (1, 0)
    assert engine.active_voice_count == 1  # the broken voice is gone, the other one sounds
    assert windowed_rms(np.concatenate(blocks[6:])[:, 0], 768).min() > 0.01
    assert engine._bus.limiter_gain == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_hop_whose_mix_is_not_finite_is_muted_and_counted(make_engine, value):
    engine = make_engine()
    mono = np.full(engine.hop_length_samples, 0.5)
    mono[7] = value
    assert np.array_equal(engine._mute_nonfinite(mono), np.zeros_like(mono)) and engine.nonfinite_hops == 1


def test_nonfinite_warning_is_rate_limited(caplog):
    preroll = 13
    bad_hops = [1, 2, 3, 70, 71, 200]
    synth = NonFiniteOnSomeSteps(set())
    engine = Engine(synth, "default", output_sample_rate=16000)
    clock = [0.0]
    engine._clock = lambda: clock[0]
    with caplog.at_level(logging.WARNING, logger="nsynth_live.engine.engine"):
        for hop in range(1, 230):
            clock[0] = hop * HOP_SECONDS  # s, a real-time clock
            if hop in bad_hops:  # a fresh voice whose first audible step is broken
                engine.post(NoteOn(60, 100))
                synth.bad_calls = {synth.step_calls + preroll + 1}
            engine.render_hop()
    warnings = [r.getMessage() for r in caplog.records if "NaN / inf" in r.getMessage()]
    # hop 1 (t = 0.016 s) warns; 2 and 3 within the second wait; 70 (1.12 s) reports 3; 71 waits;
    # 200 (3.2 s) reports the one left
    assert engine.nonfinite_voices == 6
    assert len(warnings) == 3, warnings
    assert warnings[0].startswith("NaN / inf model output: 1 since") and "1 voice(s) cut" in warnings[0]
    assert warnings[1].startswith("NaN / inf model output: 3 since") and "4 voice(s) cut" in warnings[1]
    assert warnings[2].startswith("NaN / inf model output: 2 since") and "6 voice(s) cut" in warnings[2]


def test_finite_hops_pass_the_guard_untouched(make_engine):
    engine = make_engine()
    mono = np.linspace(-2.0, 2.0, engine.hop_length_samples)
    assert engine._mute_nonfinite(mono) is mono and engine.nonfinite_hops == 0
