#!/usr/bin/env python3
"""How fast and how cleanly the timbre follows XY: the crossfaded replay morph against the ramp alone.

Offline renders with the default SING model (the same engine code as live), 48 kHz, notes at
velocity 100, XY moved by MIDI CC 12/13 as a controller would. For each morph mode:

* **jump** (0,0) -> (1,1) one second into held notes: time until 50% and 90% of the spectral change
  is done (``nsynth_live.functional.timbre_change``: log spectra against renders held at either end);
  the lowest 10-ms level in the 100 ms after the jump against the quieter of the two held renders
  (a dip), and the largest sample step there against the held renders' (a click);
* **sweep** (0,0) -> (1,1) in 0.5 s, one CC step per hop: the lag between the commanded position and
  the position whose held render the sound is closest to, frame by frame (static renders at 26
  positions along the path, interpolated), median and 90th percentile;
* **cost**: render time of the sweep per hop, and the replay alone (``synth.replay`` of 12 frames)
  for 1, 4, 8 and 16 voices at once.

    python benchmarks/morph.py [--notes 60] [--notes 48,55,64,72]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nsynth_live.engine import Engine, EngineConfig  # noqa: E402
from nsynth_live.engine.events import ControlChange, NoteOn  # noqa: E402
from nsynth_live.functional.timbre_change import change_done, log_spectra, time_to_reach  # noqa: E402
from nsynth_live.runtime.sing_onnx import load_synth  # noqa: E402
from tests.engine.signal_checks import windowed_rms  # noqa: E402

SR = 48000
JUMP_SECONDS = 1.0
TOTAL_SECONDS = 1.6
SWEEP_SECONDS = 0.5


def render(synth, mode, notes, xy_at_hop, hops):
    """Render ``hops`` hops; ``xy_at_hop(h)`` gives the CC 12/13 values to send before hop h (or None)."""
    engine = Engine(synth, "default", output_sample_rate=SR, config=EngineConfig(morph_mode=mode))
    first = xy_at_hop(-1)
    engine.post(ControlChange(12, first[0]))
    engine.post(ControlChange(13, first[1]))
    for _ in range(3):  # the start position settles before the notes
        engine.render_hop()
    for note in notes:
        engine.post(NoteOn(note, 100))
    out, seconds = [], 0.0
    for h in range(hops):
        xy = xy_at_hop(h)
        if xy is not None:
            engine.post(ControlChange(12, xy[0]))
            engine.post(ControlChange(13, xy[1]))
        started = time.perf_counter()
        out.append(engine.render_hop()[:, 0].astype(np.float64))
        seconds += time.perf_counter() - started
    return np.concatenate(out), engine, seconds


def jump_figures(synth, mode, notes):
    hop_seconds = synth.spec.hop_length_samples / synth.spec.sample_rate
    hops = int(TOTAL_SECONDS / hop_seconds)
    jump_hop = int(JUMP_SECONDS / hop_seconds)
    start = jump_hop * hop_seconds
    source, _, _ = render(synth, mode, notes, lambda h: (0, 0) if h < 0 else None, hops)
    target, _, _ = render(synth, mode, notes, lambda h: (127, 127) if h < 0 else None, hops)
    audio, engine, _ = render(synth, mode, notes, lambda h: (0, 0) if h < 0 else ((127, 127) if h == jump_hop else None), hops)
    done, times = change_done(audio, source, target, sample_rate=SR)
    half = time_to_reach(done, times, start_seconds=start, fraction=0.5)
    most = time_to_reach(done, times, start_seconds=start, fraction=0.9)
    window = SR // 100
    region = slice(int(start * SR) // window, int((start + 0.1) * SR) // window)
    level = windowed_rms(audio, window)[region]
    floor = np.minimum(windowed_rms(source, window), windowed_rms(target, window))[region]
    dip_db = float(20 * np.log10(np.min(level / floor)))
    around = slice(int(start * SR), int((start + 0.1) * SR))
    step = np.max(np.abs(np.diff(audio[around])))
    held_step = max(np.max(np.abs(np.diff(source[around]))), np.max(np.abs(np.diff(target[around]))))
    return half, most, dip_db, step / held_step, engine.morph_replays


def sweep_figures(synth, mode, notes, positions=26):
    hop_seconds = synth.spec.hop_length_samples / synth.spec.sample_rate
    hops = int(TOTAL_SECONDS / hop_seconds)
    start_hop = int(JUMP_SECONDS / hop_seconds)
    sweep_hops = int(round(SWEEP_SECONDS / hop_seconds))

    def commanded(h):  # CC value sent before hop h during the sweep
        u = min(max((h - start_hop + 1) / sweep_hops, 0.0), 1.0)
        return int(round(127 * u))

    audio, engine, seconds = render(
        synth, mode, notes, lambda h: (0, 0) if h < 0 else ((commanded(h),) * 2 if start_hop <= h < start_hop + sweep_hops else None),
        hops)
    statics = []
    grid = np.linspace(0, 127, positions)
    for value in grid:
        v = int(round(value))
        statics.append(log_spectra(render(synth, mode, notes, lambda h, v=v: (v, v) if h < 0 else None, hops)[0],
                                   sample_rate=SR)[0])
    spectra, times = log_spectra(audio, sample_rate=SR)
    statics = np.stack(statics)  # (positions, frames, bins)
    distance = np.abs(statics - spectra[None]).mean(axis=2)  # (positions, frames)
    lags = []
    start = start_hop * hop_seconds
    for f in np.flatnonzero((times > start + 0.1) & (times < start + SWEEP_SECONDS - 0.05)):
        k = int(np.argmin(distance[:, f]))
        if 0 < k < positions - 1:  # parabolic refinement between grid positions
            a, b, c = distance[k - 1:k + 2, f]
            k = k + 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) > 0 else k
        heard = float(np.interp(k, np.arange(positions), grid))  # CC value the sound is at
        # the time the commanded CC value was heard-worthy: hop start where it was sent
        sent_at = start + (heard / 127.0) * sweep_hops * hop_seconds - hop_seconds
        lags.append(times[f] - sent_at)
    return float(np.median(lags)), float(np.percentile(lags, 90)), seconds / hops, engine.morph_replays


def replay_cost(synth, voices: int, frames: int = 12, repeats: int = 20) -> float:
    """Median seconds of one ``synth.replay`` of ``frames`` frames for ``voices`` voices."""
    spec = synth.spec
    emb = np.repeat(synth.instrument_embedding(spec.instrument_names[0])[None], voices, axis=0)
    pitch = np.full(voices, 60, np.int64)
    velocity = np.full(voices, 100.0, np.float32)
    state = synth.new_state(voices)
    time_index = np.tile(np.arange(100, 100 + frames, dtype=np.int64), (voices, 1))
    seconds = []
    for _ in range(repeats + 2):
        started = time.perf_counter()
        synth.replay(emb, pitch, velocity, time_index, state)
        seconds.append(time.perf_counter() - started)
    return float(np.median(seconds[2:]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notes", action="append", default=None,
                        help="comma-separated MIDI notes held together (repeatable; default: 60 and a 4-note chord)")
    parser.add_argument("--model", default=str(Path(__file__).resolve().parents[1] / "models" / "sing_default.onnx"))
    args = parser.parse_args()
    synth = load_synth(args.model)
    print(f"model {args.model}, replay graph {'yes' if synth.replay_session is not None else 'no (stepping)'}; "
          f"CPU {platform.processor() or platform.machine()}; 48 kHz")
    for text in args.notes or ["60", "48,55,64,72"]:
        notes = [int(n) for n in text.split(",")]
        print(f"\nnotes {notes}")
        print(f"{'mode':>7} {'jump 50%':>9} {'jump 90%':>9} {'dip dB':>7} {'step x':>7} "
              f"{'sweep lag med':>14} {'p90':>6} {'ms/hop':>7} {'replays':>8}")
        cost = {}
        for mode in ("ramp", "replay"):
            half, most, dip, step, _ = jump_figures(synth, mode, notes)
            lag, lag90, per_hop, replays = sweep_figures(synth, mode, notes)
            cost[mode] = (per_hop, replays)
            print(f"{mode:>7} {half * 1e3:>7.1f}ms {most * 1e3:>7.1f}ms {dip:>7.2f} {step:>7.2f} "
                  f"{lag * 1e3:>12.1f}ms {lag90 * 1e3:>4.0f}ms {per_hop * 1e3:>7.2f} {replays:>8}")
        hops = int(TOTAL_SECONDS / (synth.spec.hop_length_samples / synth.spec.sample_rate))
        extra = (cost["replay"][0] - cost["ramp"][0]) * hops
        if cost["replay"][1]:
            print(f"replay cost: {extra * 1e3:.1f} ms over the sweep, {extra / cost['replay'][1] * 1e3:.2f} ms "
                  f"per replayed voice ({cost['replay'][1]} replays)")
    print("\nreplay of 12 frames (the morph's extra work per voice, besides 2 hops of a second stream):")
    for voices in (1, 4, 8, 16):
        cost = replay_cost(synth, voices)
        print(f"  {voices:>2} voices: {cost * 1e3:6.2f} ms ({cost / voices * 1e3:.2f} ms per voice)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
