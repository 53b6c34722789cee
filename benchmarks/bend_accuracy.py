#!/usr/bin/env python3
"""How exact pitch bend is on the default model, in cents, measured from the audio.

Each note is held for 40 hops (0.64 s), then bent fully up (+2 semitones, RPN 0's default range) for
40 hops. The bent audio's f0 (``nsynth_live.functional.pitch.refine_f0_hz``) is compared with the f0
of the same note unbent over the model frames the bent voice read (a voice bent up reads its model
stream faster), so the model's own pitch drift within a note cancels out; and, for contrast, over the
same time after note-on.

    python benchmarks/bend_accuracy.py [--notes 48 57 64 72]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nsynth_live.engine import Engine  # noqa: E402
from nsynth_live.engine.events import NoteOn, PitchBend  # noqa: E402
from nsynth_live.functional.midi import cents_between, midi_to_hz  # noqa: E402
from nsynth_live.functional.pitch import refine_f0_hz  # noqa: E402
from nsynth_live.runtime.sing_onnx import load_synth  # noqa: E402

SR = 48000
HOLD, BENT, SKIP = 40, 40, 5  # hops before the bend, bent hops, bent hops skipped (the bend settles)


def hops(engine, count):
    return np.concatenate([engine.render_hop()[:, 0] for _ in range(count)]).astype(np.float64)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notes", type=int, nargs="+", default=[48, 57, 64, 72])
    parser.add_argument("--model", default=str(Path(__file__).resolve().parents[1] / "models" / "sing_default.onnx"))
    args = parser.parse_args()
    synth = load_synth(args.model)
    ratio = 2.0 ** (2.0 / 12.0)
    frame = 768  # output frames per hop at 48 kHz
    print(f"{'MIDI':>5} {'same model frames':>18} {'same time':>10}   (cents; +200 expected)")
    for pitch in args.notes:
        bent_engine = Engine(synth, "default", output_sample_rate=SR)
        bent_engine.post(NoteOn(pitch, 100))
        hops(bent_engine, HOLD)
        bent_engine.post(PitchBend(16383))
        bent = hops(bent_engine, BENT)[SKIP * frame:]
        plain_engine = Engine(synth, "default", output_sample_rate=SR)
        plain_engine.post(NoteOn(pitch, 100))
        plain = hops(plain_engine, HOLD + int(np.ceil(BENT * ratio)) + 2)
        read_from, read_to = HOLD + SKIP * ratio, HOLD + BENT * ratio  # model frames the bent hops read
        same_frames = plain[int(read_from * frame):int(read_to * frame)]
        same_time = plain[(HOLD + SKIP) * frame:(HOLD + BENT) * frame]
        f0 = float(midi_to_hz(pitch))
        bent_f0 = refine_f0_hz(bent, sample_rate=SR, f0_hz=f0 * ratio)
        print(f"{pitch:>5} {cents_between(bent_f0, refine_f0_hz(same_frames, sample_rate=SR, f0_hz=f0)):>18.2f} "
              f"{cents_between(bent_f0, refine_f0_hz(same_time, sample_rate=SR, f0_hz=f0)):>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
