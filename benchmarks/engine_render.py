"""Measure the engine's per-hop cost and print its latency report.

Usage (from the repository root)::

    python benchmarks/engine_render.py                       # models/sing_default.onnx
    python benchmarks/engine_render.py --model PATH.onnx
    python benchmarks/engine_render.py --test-double         # engine overhead only (additive
                                                             # test synth from tests/, no model)

Prints, for 1, 4, 8 and 16 held voices: the mean / p99 / max time of ``render_hop`` (one 16 ms
hop), the real-time factor (hop duration / mean time), the cost of a note-on hop (pre-roll of
``preroll_steps`` batched steps), and the latency report for a few device block sizes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def load(args):
    if args.test_double:
        from tests.engine.additive_synth import AdditiveTestSynth

        return AdditiveTestSynth(), "additive test double (engine overhead only)"
    from nsynth_live.runtime.sing_onnx import load_synth

    return load_synth(args.model), str(args.model)


def percentile_ms(samples, q):
    return 1000.0 * float(np.percentile(samples, q))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "sing_default.onnx")
    parser.add_argument("--test-double", action="store_true")
    parser.add_argument("--sample-rate", type=int, default=48000)
    parser.add_argument("--hops", type=int, default=200, help="hops measured per voice count")
    args = parser.parse_args(argv)

    from nsynth_live.engine import Engine, NoteOn

    synth, label = load(args)
    print(f"synth: {label}")
    print(f"output {args.sample_rate} Hz, hop {synth.spec.hop_length_samples} samples at "
          f"{synth.spec.sample_rate} Hz = {1000 * synth.spec.hop_length_samples / synth.spec.sample_rate:.1f} ms")
    hop_seconds = synth.spec.hop_length_samples / synth.spec.sample_rate
    print(f"{'voices':>6} {'note-on hop ms':>15} {'mean ms':>8} {'p99 ms':>7} {'max ms':>7} {'x real time':>11}")
    for voices in (1, 4, 8, 16):
        engine = Engine(synth, "default", output_sample_rate=args.sample_rate, max_voices=16)
        keys = list(range(48, 48 + voices))
        for key in keys:
            engine.post(NoteOn(key, 100))
        start = time.perf_counter()
        engine.render_hop()  # pre-roll of every voice + first step
        note_on_seconds = time.perf_counter() - start
        times = []
        for _ in range(args.hops):
            start = time.perf_counter()
            engine.render_hop()
            times.append(time.perf_counter() - start)
        times = np.array(times)
        print(f"{voices:>6} {1000 * note_on_seconds:>15.2f} {1000 * times.mean():>8.2f} "
              f"{percentile_ms(times, 99):>7.2f} {1000 * times.max():>7.2f} "
              f"{hop_seconds / times.mean():>11.1f}")
    engine = Engine(synth, "default", output_sample_rate=args.sample_rate)
    for block_size in (128, 256, 512, 1024):
        print(engine.latency_report(block_size, prefill_hops=2))


if __name__ == "__main__":
    main()
