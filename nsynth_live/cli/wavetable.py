"""``nsynth-wavetable`` (``export/wavetable.py``): a wavetable for Serum, Vital or Surge.

A thin layer over :mod:`nsynth_live.export.wavetable`, :mod:`nsynth_live.export.timbre_path` and
:mod:`nsynth_live.export.wavetable_formats`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nsynth_live.cli._help import fail, make_parser
from nsynth_live.constants import DEFAULT_MODEL_FILE

DEFAULT_MODEL_PATH = Path(__file__).resolve().parents[2] / "models" / DEFAULT_MODEL_FILE  # in the repository

DESCRIPTION = """\
Export a wavetable for Serum, Vital or Surge from a note (a WAV file) or from a path across a
preset's timbre pad (rendered with the SING model): single-cycle frames cut at the note's own pitch.

Writes OUT (Serum .wav, Vital .vitaltable or Surge .wt, by --format or OUT's suffix) and a picture
of the table next to it (OUT with the suffix .png), each under a temporary name and renamed when
complete. Existing files are not overwritten without --force. Nothing to resume (seconds of work): a
killed run leaves no partial file, and the next run removes the temporary files it left.
"""

EPILOG = """\
Examples (python export/wavetable.py takes the same arguments):
  From a recorded or rendered note:
    nsynth-wavetable --from-wav note.wav --frames 64 --format serum --interpolation 2 -o table.wav
  Along a path across a preset's timbre pad (needs the SING model and presets):
    nsynth-wavetable --preset default --path "0,0 0.5,0 1,0 1,1" --pitch 48 -o path.vitaltable
"""


def build_parser() -> argparse.ArgumentParser:
    from nsynth_live.export.wavetable import MAX_WAVETABLE_FRAMES
    from nsynth_live.export.wavetable_formats import WAVETABLE_FORMATS

    parser = make_parser(DESCRIPTION, EPILOG)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--from-wav", type=Path, metavar="NOTE.wav", help="a mono (or mixed-down) pitched note")
    source.add_argument("--preset", metavar="P", help="preset whose four corner instruments span the pad")
    parser.add_argument("--path", metavar='"x0,y0 x1,y1 ..."', help="pad points in 0..1, one frame each (--preset)")
    parser.add_argument("--pitch", type=int, metavar="MIDI", help="MIDI note rendered along the path (--preset)")
    parser.add_argument("--velocity", type=int, default=100, help="MIDI velocity 1..127 (--preset; default 100)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH,
                        help="SING ONNX model (--preset; default: models/sing_v3.onnx)")
    parser.add_argument(
        "--frames", type=int, default=64, metavar="N",
        help=f"frames cut from the note, 1..{MAX_WAVETABLE_FRAMES} (--from-wav; default 64; with --preset the "
        "table has one frame per path point)",
    )
    parser.add_argument("--periods-per-frame", type=int, default=4, help="source periods fitted per frame (default 4)")
    parser.add_argument("--start-seconds", type=float, help="use the note from here (--from-wav; default: automatic)")
    parser.add_argument("--end-seconds", type=float, help="use the note up to here (--from-wav; default: automatic)")
    parser.add_argument("--format", choices=WAVETABLE_FORMATS,
                        help="table format (default: from OUT's suffix, else serum)")
    parser.add_argument(
        "--interpolation", type=int, default=0, choices=range(5), metavar="0-4",
        help="Serum interpolation digit: 0 none, 1 linear crossfade, 2-4 spectral morph (default 0)",
    )
    parser.add_argument("--name", help="table name stored in Vital tables (default: output file stem)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="the wavetable file to write")
    parser.add_argument("--force", action="store_true", help="overwrite OUT and its picture if they exist")
    return parser


def _table_format(args) -> str:
    from nsynth_live.export.wavetable_formats import WAVETABLE_SUFFIXES

    if args.format:
        return args.format
    for name, suffix in WAVETABLE_SUFFIXES.items():
        if args.output.suffix.lower() == suffix:
            return name
    return "serum"


def _read_note(path: Path):
    import numpy as np
    import soundfile

    try:
        audio, sample_rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise SystemExit(f"error: cannot read {path}: {error}") from error
    if audio.shape[1] > 1:
        print(f"note: {path} has {audio.shape[1]} channels; mixing them down to mono", file=sys.stderr)
    return np.mean(audio, axis=1), sample_rate


def _load_preset_synth(preset: str, model_path: Path):
    """The SING streaming synth and the preset's corner embeddings (order (0,0), (1,0), (0,1), (1,1)).

    Raises
    ------
    ValueError
        ``PresetError`` for an unknown or invalid preset (listing the valid ones, or naming the corner
        the model does not know), ``ModelFileError`` for a missing or unreadable model.
    """
    import numpy as np

    from nsynth_live.presets import check_preset_instruments, load_preset
    from nsynth_live.runtime.sing_onnx import load_synth

    settings = load_preset(preset)
    synth = load_synth(model_path)
    check_preset_instruments(settings, synth.spec.instrument_names)
    return synth, np.stack([synth.instrument_embedding(name) for name in settings.corners])


def main(argv=None) -> int:
    """Run the command line; returns the process exit status (0 success, 1 no stable pitch, 2 usage or refused)."""
    parser = build_parser()
    args = parser.parse_args(argv)

    import numpy as np

    from nsynth_live.export.wavetable import MAX_WAVETABLE_FRAMES, WavetableConfig, extract_wavetable
    from nsynth_live.export.wavetable_formats import write_wavetable
    from nsynth_live.export.wavetable_plot import save_wavetable_png
    from nsynth_live.fileio import remove_stale_temporaries
    from nsynth_live.functional.pitch import DEFAULT_FMAX_HZ, NoStablePitchError

    if not 1 <= args.frames <= MAX_WAVETABLE_FRAMES:
        parser.error(f"--frames {args.frames} is outside 1..{MAX_WAVETABLE_FRAMES} (Serum's limit of 256 frames)")
    if args.preset is not None and (args.path is None or args.pitch is None):
        parser.error("--preset needs --path \"x0,y0 x1,y1 ...\" and --pitch MIDI")
    if args.preset is None and (args.path is not None or args.pitch is not None):
        parser.error("--path and --pitch go with --preset; a WAV note carries its own pitch")
    table_format = _table_format(args)
    output = args.output
    picture = output.with_suffix(".png")
    if not output.parent.is_dir():
        parser.error(f"output folder {output.parent} does not exist; create it first")
    for existing in (output, picture):
        if existing.exists() and not args.force:
            return fail(f"{existing} already exists; pass --force to replace it", 2)
    remove_stale_temporaries(output.parent, names=[output.name, picture.name])  # a killed run's

    try:
        if args.from_wav is not None:
            audio, sample_rate = _read_note(args.from_wav)
            config = WavetableConfig(
                n_frames=args.frames,
                periods_per_frame=args.periods_per_frame,
                fmax_hz=min(DEFAULT_FMAX_HZ, sample_rate / 4),
                start_seconds=args.start_seconds,
                end_seconds=args.end_seconds,
            )
            table = extract_wavetable(audio, sample_rate=sample_rate, config=config)
            source = f"{args.from_wav.name}"
        else:
            from nsynth_live.export.timbre_path import TimbrePathConfig, parse_xy_path, timbre_path_wavetable

            path_xy = parse_xy_path(args.path)
            synth, corners = _load_preset_synth(args.preset, args.model)
            table = timbre_path_wavetable(
                synth, corner_embeddings=corners, path_xy=path_xy, pitch_midi=args.pitch, velocity=args.velocity,
                config=TimbrePathConfig(periods_per_frame=args.periods_per_frame),
            )
            source = f"preset {args.preset}, MIDI {args.pitch}, {path_xy.shape[0]} pad points"
    except NoStablePitchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    name = args.name or output.stem
    write_wavetable(
        output, table.frames, table_format=table_format, name=name, interpolation=args.interpolation,
        overwrite=args.force,
    )
    save_wavetable_png(
        picture, table.frames, title=f"{name}: {source}, f0 {float(table.f0_hz.mean()):.2f} Hz", overwrite=args.force
    )
    from nsynth_live.functional.midi import hz_to_midi

    median_f0 = float(np.median(table.f0_hz))
    nearest = int(round(float(hz_to_midi(median_f0))))
    cents = 100.0 * (float(hz_to_midi(median_f0)) - nearest)
    print(
        f"wrote {output} ({table_format}, {table.frames.shape[0]} frames x {table.frames.shape[1]} samples) and "
        f"{picture}; source f0 median {median_f0:.3f} Hz (MIDI {nearest} {cents:+.1f} cents), "
        f"frames {table.f0_hz.min():.3f}-{table.f0_hz.max():.3f} Hz"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
