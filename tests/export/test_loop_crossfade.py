"""bake_loop_crossfade: a loop whose end is blended into what precedes its start wraps seamlessly."""

import math

import numpy as np
import pytest

from nsynth_live.export.sample_loop import LoopPoints, bake_loop_crossfade, find_sustain_loop

SAMPLE_RATE = 48_000  # Hz
F0_HZ = 261.63  # Hz, C4


def drifting_note(seconds=2.0):
    """A harmonic note whose level falls 6 dB/s and whose 2nd harmonic fades in: no span repeats exactly."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    level = 10 ** (-6 * t / 20)
    return level * (0.5 * np.sin(2 * np.pi * F0_HZ * t) + 0.3 * (t / seconds) * np.sin(4 * np.pi * F0_HZ * t + 1.0))


def played_seam_db(audio, loop):
    """The seam as a sampler plays it: the loop's last half period then its first, against the note there."""
    half = math.ceil(SAMPLE_RATE / F0_HZ / 2)
    played = np.concatenate([audio[loop.end - half: loop.end], audio[loop.start: loop.start + half]])
    natural = audio[loop.start - half: loop.start + half]
    return 20 * math.log10(np.sqrt(np.mean((played - natural) ** 2)) / np.sqrt(np.mean(audio[loop.start: loop.end] ** 2)))


def test_the_baked_loop_wraps_as_the_note_itself_continues():
    note = drifting_note()
    loop = find_sustain_loop(note, sample_rate=SAMPLE_RATE, f0_hz=F0_HZ, search_start_seconds=0.3,
                             search_end_seconds=1.7)
    before = played_seam_db(note, loop)
    baked, seam_db = bake_loop_crossfade(note, loop, sample_rate=SAMPLE_RATE, f0_hz=F0_HZ)
    after = played_seam_db(baked, loop)
    assert after == pytest.approx(seam_db, abs=0.01)
    assert before > -30 and after < -45 and after < before - 20, (before, after)
    n = int(0.05 * SAMPLE_RATE)
    untouched = np.ones(note.size, bool)
    untouched[loop.end - n: loop.end] = False
    np.testing.assert_array_equal(baked[untouched], note[untouched])  # only the loop's last 50 ms change
    # the level across the blend stays between the two spans' levels (a period-aligned linear fade)
    blend_rms = np.sqrt(np.mean(baked[loop.end - n: loop.end] ** 2))
    spans = [np.sqrt(np.mean(note[a - n: a] ** 2)) for a in (loop.start, loop.end)]
    assert min(spans) * 0.97 <= blend_rms <= max(spans) * 1.03


def test_a_short_loop_or_one_at_the_start_shortens_the_blend_and_bad_input_is_refused():
    note = drifting_note(0.5)
    baked, _ = bake_loop_crossfade(note, LoopPoints(100, 300, 0.0, 1), sample_rate=SAMPLE_RATE, f0_hz=F0_HZ)
    changed = np.flatnonzero(baked != note)
    assert changed.min() >= 200 and changed.max() < 300  # half the loop at most
    with pytest.raises(ValueError, match="does not fit"):
        bake_loop_crossfade(note, LoopPoints(0, 300, 0.0, 1), sample_rate=SAMPLE_RATE, f0_hz=F0_HZ)
    with pytest.raises(ValueError, match="crossfade_seconds"):
        bake_loop_crossfade(note, LoopPoints(100, 300, 0.0, 1), sample_rate=SAMPLE_RATE, f0_hz=F0_HZ,
                            crossfade_seconds=0)
