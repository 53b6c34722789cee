"""RealtimeRunner driven by a fake callback loop (no audio device)."""

import threading
import time

import numpy as np
import pytest

from nsynth_live.engine import Engine, NoteOff, NoteOn, RealtimeRunner
from tests.engine.signal_checks import render_hops


def scripted_engine(synth, output_sample_rate):
    engine = Engine(synth, "default", output_sample_rate=output_sample_rate)
    engine.post(NoteOn(60, 100))
    engine.post(NoteOn(67, 80))
    return engine


@pytest.mark.parametrize("output_sample_rate", [48000, 44100])
@pytest.mark.parametrize("block_sizes", [[256], [1, 65, 193, 1000], [4096]])
def test_callback_output_equals_direct_rendering_for_awkward_blocks(synth, output_sample_rate,
                                                                    block_sizes):
    reference = render_hops(scripted_engine(synth, output_sample_rate), 60)
    engine = scripted_engine(type(synth)(), output_sample_rate)
    runner = RealtimeRunner(engine, block_size=max(block_sizes), prefill_hops=2)
    out, i = [], 0
    total = 0
    while total < len(reference):
        frames = min(block_sizes[i % len(block_sizes)], len(reference) - total)
        i += 1
        runner.pump()  # what the inference thread does between callbacks
        block = np.full((frames, engine.channels), np.nan, dtype=np.float32)
        runner.audio_callback(block, frames, None, 0)
        out.append(block)
        total += frames
    assert runner.underrun_count == 0 and runner.xrun_count == 0
    np.testing.assert_array_equal(np.concatenate(out), reference)


def test_starved_callback_zero_fills_and_counts_underruns(synth):
    engine = scripted_engine(synth, 48000)
    runner = RealtimeRunner(engine, block_size=256, prefill_hops=1)
    block = np.full((256, 2), np.nan, dtype=np.float32)
    runner.audio_callback(block, 256, None, 0)  # nothing rendered yet
    assert runner.underrun_count == 1 and np.all(block == 0.0)
    runner.pump()
    assert runner.fill_frames >= 768 + 256
    for _ in range(3):  # consume 768 of >= 1024 queued frames
        runner.audio_callback(block, 256, None, 0)
    assert runner.underrun_count == 1
    for _ in range(4):  # no pump: the ring runs dry inside a block
        runner.audio_callback(block, 256, None, 0)
    assert runner.underrun_count >= 2 and np.all(np.isfinite(block))
    assert block[-1, 0] == 0.0


def test_status_flags_count_as_xruns_and_errors_give_silence(synth):
    runner = RealtimeRunner(scripted_engine(synth, 48000), block_size=256)
    runner.pump()
    block = np.zeros((256, 2), dtype=np.float32)
    runner.audio_callback(block, 256, None, 1)  # e.g. sd.CallbackFlags with output_underflow
    runner.audio_callback(block, 256, None, 0)
    assert runner.xrun_count == 1
    bad = np.zeros((256, 3), dtype=np.float32)  # wrong channel count: shape mismatch inside
    runner.audio_callback(bad, 256, None, 0)
    assert runner.callback_error_count == 1 and np.all(bad == 0.0)


def test_render_errors_queue_silence_and_are_counted(synth):
    engine = scripted_engine(synth, 48000)

    def broken():
        raise RuntimeError("model exploded")

    engine.render_hop = broken
    runner = RealtimeRunner(engine, block_size=256, prefill_hops=1)
    runner.pump()
    assert runner.render_error_count >= 1 and runner.fill_frames >= 256


def test_inference_thread_keeps_up_with_a_real_time_callback(synth):
    """A fake device clock calls back every block; the thread must keep the ring fed."""
    engine = Engine(synth, "default", output_sample_rate=48000)
    runner = RealtimeRunner(engine, block_size=512, prefill_hops=4)
    runner.start()
    try:
        block = np.zeros((512, 2), dtype=np.float32)
        out = []
        period = 512 / 48000
        next_time = time.perf_counter()
        for i in range(int(0.6 / period)):
            if i == 5:
                engine.post(NoteOn(69, 100))  # from another thread than the renderer
            runner.audio_callback(block, 512, None, 0)
            out.append(block.copy())
            next_time += period
            time.sleep(max(0.0, next_time - time.perf_counter()))
    finally:
        runner.stop()
    assert runner.underrun_count == 0 and runner.callback_error_count == 0
    audio = np.concatenate(out)[:, 0]
    assert np.max(np.abs(audio)) > 0.01
    onset = int(np.argmax(np.abs(audio) > 1e-3))
    sounding = np.abs(audio[onset:])
    sounding = sounding[: len(sounding) // 96 * 96].reshape(-1, 96)  # 2 ms windows
    assert sounding.max(axis=1).min() > 1e-3  # continuous: no gap of silence


def test_runner_latency_report_uses_its_block_and_prefill(synth):
    runner = RealtimeRunner(scripted_engine(synth, 48000), block_size=512, prefill_hops=3)
    report = runner.latency_report()
    assert report.block_size == 512 and report.ring_prefill_ms == pytest.approx(48.0 + 512 / 48.0)
    assert runner.target_fill_frames == 3 * 768 + 512


def test_invalid_runner_arguments(synth):
    engine = scripted_engine(synth, 48000)
    with pytest.raises(ValueError, match="block_size"):
        RealtimeRunner(engine, block_size=0)
    with pytest.raises(ValueError, match="prefill_hops"):
        RealtimeRunner(engine, block_size=256, prefill_hops=-1)
