"""``nsynth-convert-sing`` (``export/convert_sing_checkpoint.py``): SING's published weights
(facebookresearch/SING, ``sing.th``) -> an nsynth-live SING checkpoint, and optionally its ONNX files."""

from __future__ import annotations

import sys
from pathlib import Path

from nsynth_live.cli._help import fail, make_parser

DESCRIPTION = """\
Convert the pretrained SING model published by its authors (facebookresearch/SING, sing.th from
https://dl.fbaipublicfiles.com/sing/sing.th) into an nsynth-live SING checkpoint. Also reads a
model trained with their code (sing.train --output) and their training checkpoints (sing.torch).
Their classes are not imported: the file is read with an unpickler that refuses anything but
model state. Needs torch: pip install -e '.[train]'.

Writes OUT (an nsynth-live SING checkpoint, .pt, read by nsynth_live.models.checkpoint.load_sing) and, with
--onnx MODEL.onnx, MODEL.onnx and MODEL.replay.onnx (what run_live.py plays). Each file is written
under a temporary name in its folder and renamed when complete. Existing output files are not
overwritten without --force (checked before anything is read). Nothing to resume (a few files, a
minute at most): a killed run leaves no partial output, and the next run removes the temporary
files it left.

The instrument table's rows are NSynth instrument ids; --nsynth-metadata names them after NSynth's
examples.json (their repository ships it as sing/nsynth/examples.json.gz) and gives the ONNX file
the trained pitch range. Without it the rows are named instrument_0000, instrument_0001, ...
"""

EPILOG = """\
Example (python export/convert_sing_checkpoint.py takes the same arguments):
  nsynth-convert-sing sing.th models/sing_published.pt --onnx models/sing_published.onnx \\
      --nsynth-metadata nsynth-train/examples.json
"""


def build_parser():
    parser = make_parser(DESCRIPTION, EPILOG)
    parser.add_argument("model", metavar="SING_TH", type=Path,
                        help="the authors' file: sing.th, a SING state dict or their training checkpoint")
    parser.add_argument("out", metavar="OUT", type=Path, help="the nsynth-live checkpoint to write (.pt)")
    parser.add_argument("--onnx", metavar="MODEL_ONNX", type=Path, default=None,
                        help="also export the streaming model to MODEL_ONNX and its replay graph next to it "
                             "(MODEL.replay.onnx); needs the onnx package")
    parser.add_argument("--nsynth-metadata", metavar="EXAMPLES_JSON", type=Path, default=None,
                        help="NSynth examples.json or examples.json.gz the model was trained on: names the "
                             "instrument rows and sets the ONNX pitch range (default: placeholder names, MIDI 21-108)")
    parser.add_argument("--force", action="store_true", help="overwrite OUT and the ONNX files if they exist")
    return parser


def _outputs(args) -> list[Path]:
    outputs = [args.out]
    if args.onnx is not None:
        from nsynth_live.runtime.sing_onnx import replay_path

        outputs += [args.onnx, Path(replay_path(args.onnx))]
    return outputs


def main(argv=None) -> int:
    """Run the command; returns the exit status (0 done, 1 torch missing, 2 refused or unreadable)."""
    args = build_parser().parse_args(argv)
    outputs = _outputs(args)
    existing = [path for path in outputs if path.exists()]
    if existing and not args.force:
        return fail(f"{existing[0]} exists; pass --force to overwrite it", 2)
    if Path(args.model).resolve() in set(map(Path.resolve, outputs)):
        return fail(f"an output names the input {args.model}: write the converted model elsewhere", 2)
    if len(set(map(Path.resolve, outputs))) != len(outputs):
        return fail(f"OUT and --onnx name the same file ({args.out}); give the ONNX file a .onnx name", 2)
    from nsynth_live.extras import require_torch

    try:
        require_torch("converting SING's published weights")
    except ImportError as error:
        return fail(str(error), 1)
    from nsynth_live.fileio import remove_stale_temporaries, sha256_of_file
    from nsynth_live.models.checkpoint import save_sing
    from nsynth_live.models.sing_convert import PUBLISHED_SHA256, convert_sing_checkpoint, onnx_pitch_range

    for path in outputs:  # a killed run's
        remove_stale_temporaries(path.parent, names=[path.name])
    try:
        sing, names = convert_sing_checkpoint(args.model, nsynth_metadata=args.nsynth_metadata)
        pitch_range = onnx_pitch_range(sing.config, args.nsynth_metadata) if args.onnx is not None else None
    except (FileNotFoundError, ValueError) as error:
        return fail(str(error), 2)
    source_sha256 = sha256_of_file(args.model)
    published = "the published sing.th" if source_sha256 == PUBLISHED_SHA256 else "not the published sing.th"
    print(f"read {args.model} (sha256 {source_sha256}, {published}): {sing.config.num_instruments} instruments, "
          f"{sing.config.num_pitches} pitches, {sing.config.conv_channels} channels, "
          f"LSTM {sing.config.lstm_layers} x {sing.config.lstm_hidden}")
    path = save_sing(sing, names, args.out)
    print(f"wrote {path} (sha256 {sha256_of_file(path)})")
    if args.onnx is not None:
        try:
            from nsynth_live.runtime.sing_export import export_sing_onnx
        except ImportError as error:
            return fail(f"exporting ONNX needs torch and onnx: {error}", 1)
        export_sing_onnx(sing, names, args.onnx, pitch_min_midi=pitch_range[0], pitch_max_midi=pitch_range[1])
        print(f"wrote {args.onnx} and {outputs[2]} (MIDI {pitch_range[0]}-{pitch_range[1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
