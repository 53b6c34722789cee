"""Measure a model's notes against the SoundFont notes it was trained on (issue 17, model v3).

Usage (from the repository root)::

    python benchmarks/model_measures.py                                  # models/sing_default.onnx, preset corners
    python benchmarks/model_measures.py --all-instruments --json /tmp/measures.json
    python benchmarks/model_measures.py --instruments organ_acoustic_005 --pitches 48,60,72

A thin command line over nsynth_live.train.model_measures (measure_model, format_report); the
measures themselves are nsynth_live.functional.measures, defined in docs/measures.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_MODEL = ROOT / "models" / "sing_default.onnx"
DEFAULT_PRESET = "default"


def parse_pitches(text: str) -> list[int]:
    """``"36-84"``, ``"48,60,72"`` or a mix (``"36-47,60"``) -> sorted MIDI note numbers."""
    pitches: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                low, high = (int(p) for p in part.split("-", 1))
                if low > high:
                    raise ValueError
                pitches.update(range(low, high + 1))
            else:
                pitches.add(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a list of MIDI notes: write e.g. 36-84 or 48,60,72") from None
    return sorted(pitches)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=(
            "Render a model's notes and the same notes from FluidSynth (the SoundFont the model was trained "
            "on) and print, per instrument and overall: tuning, partial deviations, level spread, held-note "
            "level range, energy above 8 kHz, off-harmonic energy share, SING's spectral loss at 16 kHz, and "
            "how many of the model's instruments are nearest their own source. Writes nothing unless --json "
            "is given (then one JSON file, refused if it exists unless --force); does not resume."),
    )
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL,
                        help="streaming SING .onnx file (default: models/sing_default.onnx)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--instruments", nargs="+", metavar="NAME",
                       help="model instrument names, e.g. organ_acoustic_005 (default: the corners of "
                            "presets/default.toml)")
    which.add_argument("--all-instruments", action="store_true", help="measure every instrument of the model")
    parser.add_argument("--pitches", type=parse_pitches, default=None,
                        help="MIDI notes, e.g. 36-84 or 48,60,72 (default: every semitone of the model's range)")
    parser.add_argument("--velocity", type=int, default=100,
                        help="MIDI velocity of every note, one of the dataset's 25, 50, 75, 100, 127 (default 100)")
    parser.add_argument("--soundfont", default=None,
                        help="SoundFont the model was trained on (default: the Debian FluidR3_GM.sf2)")
    parser.add_argument("--no-identity", action="store_true",
                        help="skip the identity figure (it renders 3 notes of every instrument of the model)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write every figure to this JSON file")
    parser.add_argument("--force", action="store_true", help="overwrite the --json file if it exists")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.json is not None and args.json.exists() and not args.force:
        print(f"error: {args.json} exists; pass --force to overwrite it", file=sys.stderr)
        return 2

    from nsynth_live.data.soundfont import DEBIAN_GM_SOUNDFONT
    from nsynth_live.fileio import write_json_atomic
    from nsynth_live.presets import load_preset
    from nsynth_live.runtime.sing_onnx import load_synth
    from nsynth_live.train.model_measures import format_report, measure_model

    synth = load_synth(args.model)
    spec = synth.spec
    if args.all_instruments:
        instruments = list(spec.instrument_names)
    elif args.instruments:
        instruments = list(args.instruments)
    else:
        instruments = list(load_preset(DEFAULT_PRESET).corners)
    pitches = args.pitches or list(range(spec.pitch_min_midi, spec.pitch_max_midi + 1))
    started = time.perf_counter()
    try:
        result = measure_model(
            synth, instruments, pitches, args.velocity,
            soundfont_path=args.soundfont or DEBIAN_GM_SOUNDFONT,
            identity_instruments=[] if args.no_identity else None,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result["command"] = {"model": str(args.model), "argv": sys.argv[1:] if argv is None else list(argv),
                         "seconds": round(time.perf_counter() - started, 1)}
    print(f"model: {args.model}")
    print(format_report(result))
    if args.json is not None:
        write_json_atomic(args.json, result)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
