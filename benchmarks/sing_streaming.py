#!/usr/bin/env python3
"""Speed of the streaming SING step (ONNX Runtime, CPU) against the real-time budget.

One step renders one 256-sample hop (16 ms at 16 kHz) for a batch of voices. Prints, per batch size:
median / p99 step time, the share of the 16-ms hop budget used, and seconds of audio per second
(per voice, times voices). Also the cost of a note-on pre-roll (13 steps for one voice).

    python benchmarks/sing_streaming.py [--model models/sing_default.onnx] [--threads 1]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nsynth_live.runtime.sing_onnx import load_synth  # noqa: E402


def time_steps(synth, voices: int, steps: int) -> np.ndarray:
    spec = synth.spec
    emb = np.stack([synth.instrument_embedding(spec.instrument_names[i % len(spec.instrument_names)]) for i in range(voices)])
    pitch = np.full(voices, 60)
    velocity = np.full(voices, 100.0, np.float32)
    state = synth.new_state(voices)
    seconds = []
    for t in range(steps):
        started = time.perf_counter()
        _, state = synth.step(emb, pitch, velocity, np.full(voices, t % spec.time_steps), state)
        seconds.append(time.perf_counter() - started)
    return np.asarray(seconds[5:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(Path(__file__).resolve().parents[1] / "models" / "sing_default.onnx"))
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    synth = load_synth(args.model, intra_op_threads=args.threads)
    hop_seconds = synth.spec.hop_length_samples / synth.spec.sample_rate
    print(f"model {args.model}, providers {synth.providers}, {args.threads} thread(s), hop {hop_seconds * 1e3:.1f} ms")
    print(f"{'voices':>6} {'median ms':>10} {'p99 ms':>8} {'% of hop':>9} {'audio s/s per voice':>20} {'audio s/s total':>16}")
    for voices in (1, 4, 8, 16, 32, 64, 128):
        s = time_steps(synth, voices, args.steps)
        median, p99 = np.median(s), np.percentile(s, 99)
        print(f"{voices:>6} {median * 1e3:>10.2f} {p99 * 1e3:>8.2f} {100 * median / hop_seconds:>8.1f}% "
              f"{hop_seconds / median:>20.1f} {voices * hop_seconds / median:>16.1f}")
    preroll = time_steps(synth, 1, synth.spec.preroll_steps + 5)
    print(f"note-on pre-roll ({len(preroll)} steps, 1 voice): {preroll.sum() * 1e3:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
