"""``nsynth-render-bank`` (``export/render_bank.py``): a timbre grid as a multisample bank.

A thin layer over :mod:`nsynth_live.render.bank`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nsynth_live.cli._help import make_parser
from nsynth_live.constants import DEFAULT_MODEL_FILE

DEFAULT_MODEL_PATH = Path(__file__).resolve().parents[2] / "models" / DEFAULT_MODEL_FILE  # in the repository

DESCRIPTION = """\
Render a timbre grid into a multisample bank (SFZ, Decent Sampler, Open NSynth Super) with pictures.
Every cell of an N x N grid over the XY pad blends the four corner sounds; each cell is rendered at
each root key and velocity layer as a 24-bit WAV with its root key and a sustain loop, and written as
a bank any sampler plays. The grid is crossfaded on CC 12 (X) and CC 13 (Y).

Writes OUT_DIR/<name>.sfz (and .dspreset / .bin with --formats), OUT_DIR/samples/, OUT_DIR/bank.json,
the corner rainbowgrams and grid_map.png; every file under a temporary name, renamed when complete.

Resumes: after an interruption (even kill -9) the same command renders only what is missing and
removes the temporary files the killed run left; other settings are refused, naming each difference.
A complete bank (its bank.json) is not overwritten without --force, and a folder holding other files
is refused too.
"""

EPILOG = """\
Examples (python export/render_bank.py takes the same arguments):
  The default preset's corners on the shipped SING model, 9 x 9 grid, 13 roots (minutes on a CPU):
    nsynth-render-bank out/default_bank --preset default
  Your own corners, more roots, two velocity layers, all formats, two worker processes:
    nsynth-render-bank out/mine --corners keyboard_acoustic_000,reed_acoustic_000,organ_electronic_000,string_acoustic_000 \\
        --pitches 36:84:3 --velocities 64,112 --formats sfz,decent,ons --workers 2
  The NSynth WaveNet with your own WAV files as corners (a converted Magenta checkpoint, best on a GPU):
    nsynth-render-bank out/wn --backend wavenet --checkpoint wavenet.pt --corners a.wav,b.wav,c.wav,d.wav --device cuda
"""


def parse_midi_values(text: str, *, low: int, what: str) -> tuple[int, ...]:
    """``"36:84:4"`` (start:stop:step, stop included) or ``"36,48,60"`` -> ascending distinct ints.

    Raises
    ------
    argparse.ArgumentTypeError
        For another form, or values outside ``low..127``.
    """
    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] < 1):
                raise ValueError
            start, stop, step = parts[0], parts[1], parts[2] if len(parts) == 3 else 1
            values = list(range(start, stop + 1, step))
        else:
            values = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{what} must be START:STOP:STEP (e.g. 36:84:4) or a list (e.g. 36,48,60), got {text!r}") from None
    values = sorted(set(values))
    if not values or values[0] < low or values[-1] > 127:
        raise argparse.ArgumentTypeError(f"{what} must lie in {low}..127, got {text!r}")
    return tuple(values)


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(DESCRIPTION, EPILOG)
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="bank folder (created; resumed if unfinished)")
    corners = parser.add_mutually_exclusive_group(required=True)
    corners.add_argument("--preset", metavar="P", help="take the four corners from this preset (presets/P.toml)")
    corners.add_argument("--corners", metavar="A,B,C,D",
                         help="corners at (x,y) = (0,0),(1,0),(0,1),(1,1): model instruments (sing), dataset "
                              "instruments or audio files (wavenet)")
    parser.add_argument("--name", help="bank name (default: the preset's name or the folder's name)")
    parser.add_argument("--backend", choices=("sing", "wavenet"), default="sing", help="note renderer (default: sing)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH,
                        help="SING streaming .onnx (sing backend; default: models/sing_v3.onnx)")
    parser.add_argument("--checkpoint", type=Path, help="WaveNet autoencoder checkpoint .pt (wavenet backend)")
    parser.add_argument("--dataset", type=Path, help="NSynth-format dataset holding the wavenet corners' notes")
    parser.add_argument("--grid", type=int, default=9, metavar="N", help="N x N grid, 1..33 (default: 9)")
    parser.add_argument("--grid-scheme", choices=("bilinear", "ons"), default="bilinear",
                        help="corner weights: bilinear (as the live pad) or ons (Open NSynth Super's cones)")
    parser.add_argument("--pitches", default="36:84:4", metavar="SPEC",
                        help="root keys: START:STOP:STEP or a list (default: 36:84:4, 13 roots)")
    parser.add_argument("--velocities", default="100", metavar="SPEC", help="velocity layers (default: 100)")
    parser.add_argument("--sample-rate", type=int, default=48_000, metavar="HZ", help="WAV rate (default: 48000)")
    parser.add_argument("--formats", default="sfz", metavar="LIST",
                        help="comma list of sfz, decent, ons (default: sfz; bank.json always)")
    parser.add_argument("--sfz-layout", choices=("quad", "nearest", "full"), default="quad",
                        help="quad: 4 voices per note, XY crossfades within the note's quad; nearest: 1 voice, "
                             "cell fixed at note-on; full: N*N voices, crossfades anywhere (default: quad)")
    parser.add_argument("--no-plots", action="store_true", help="skip the rainbowgrams and grid map")
    parser.add_argument("--batch-size", type=int, default=128, metavar="N", help="notes per model call (default: 128)")
    parser.add_argument("--device", default="auto", help="wavenet: auto, cpu or cuda[:N] (default: auto)")
    parser.add_argument("--precision", choices=("float32", "bfloat16", "float16"), default=None,
                        help="wavenet generation precision (default: bfloat16 on CPU, float16 on CUDA)")
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="local worker processes (default: 1)")
    parser.add_argument("--ray", metavar="ADDRESS", help="run on a Ray cluster (ADDRESS, or 'local' to start one here)")
    parser.add_argument("--force", action="store_true", help="start over, replacing an existing bank or manifest")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv=None) -> int:
    """Run the command line; returns the exit status (0 done, 1 refused or failed, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        pitches = parse_midi_values(args.pitches, low=0, what="--pitches")
        velocities = parse_midi_values(args.velocities, low=1, what="--velocities")
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    if args.workers < 1 or args.batch_size < 1:
        parser.error("--workers and --batch-size must be positive integers")

    from nsynth_live.presets import PresetError, load_preset
    from nsynth_live.render.bank import BankJobError, BankSettings, render_bank
    from nsynth_live.render.sources import SourceError, SourceSpec

    if args.preset:
        try:
            preset = load_preset(args.preset)
        except PresetError as error:
            parser.error(str(error))
        if preset.bank:
            parser.error(f"preset {args.preset!r} plays the bank {preset.bank}, it has no corner instruments; "
                         "choose a preset with corners or pass --corners A,B,C,D")
        corners = preset.corners
    else:
        corners = tuple(c.strip() for c in args.corners.split(","))
        if len(corners) != 4 or not all(corners):
            parser.error(f"--corners needs 4 comma-separated names, got {args.corners!r}")
    device = args.device
    if args.backend == "wavenet":
        if args.checkpoint is None:
            parser.error("--backend wavenet needs --checkpoint CK.pt (a converted Magenta checkpoint or one of ours)")
        model_path = args.checkpoint
        if device == "auto":  # decided here: the manifest, Ray's GPU requests and the precision depend on it
            from nsynth_live.extras import torch_available

            device = "cpu"  # without torch the job stops below, saying what to install
            if torch_available():
                import torch

                device = "cuda" if torch.cuda.is_available() else "cpu"
        precision = args.precision or ("float16" if device.startswith("cuda") else "bfloat16")
    else:
        model_path, precision = args.model, args.precision or "float32"
    name = args.name or args.preset or args.out_dir.resolve().name
    name = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in name)[:64] or "bank"
    try:
        settings = BankSettings(
            name=name, grid_size=args.grid, grid_scheme=args.grid_scheme, pitches=pitches, velocities=velocities,
            sample_rate=args.sample_rate, formats=tuple(f.strip() for f in args.formats.split(",") if f.strip()),
            sfz_layout=args.sfz_layout, plots=not args.no_plots)
        source = SourceSpec(
            backend=args.backend, model_path=str(model_path), corners=corners,
            dataset_path=str(args.dataset) if args.dataset else "", device=device, precision=precision,
            batch_size=args.batch_size)
    except (ValueError, SourceError) as error:
        parser.error(str(error))

    try:
        result = render_bank(args.out_dir, settings=settings, source=source, workers=args.workers,
                             ray_address=args.ray, force=args.force, progress=not args.no_progress)
    except (BankJobError, SourceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # disk full, permissions: every finished note is kept
        print(f"error: {error}. Every note finished so far is kept in {args.out_dir}; fix the cause and run the "
              "same command again to resume", file=sys.stderr)
        return 1
    if result.notes_rendered:
        print(f"rendered {result.notes_rendered} notes in {result.seconds:.1f} s: {result.notes_per_second:.2f} notes/s, "
              f"{result.audio_seconds / result.seconds:.1f} s of audio per second")
    if result.notes_resumed:
        print(f"{result.notes_resumed} notes were already in the manifest (resumed)")
    print(f"sustain loops found in {result.loops_found} of {result.notes_total} notes; "
          f"{result.clipped_notes} notes reach full scale")
    for path in result.files:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
