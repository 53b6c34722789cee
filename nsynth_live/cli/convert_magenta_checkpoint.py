"""``nsynth-convert-magenta`` (``export/convert_magenta_checkpoint.py``): Magenta's NSynth WaveNet
checkpoint (TF1) -> an nsynth-live checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

from nsynth_live.cli._help import fail, make_parser

DESCRIPTION = """\
Convert Magenta's released NSynth WaveNet checkpoint (TensorFlow 1) into an nsynth-live WaveNet
checkpoint, which nsynth-encode, nsynth-decode and nsynth-render-bank --backend wavenet read. Needs torch and TensorFlow:
pip install -e '.[train,tf]'.

Writes OUT (a .pt file) under a temporary name in its folder and renames it when complete. An
existing OUT is not overwritten without --force. Nothing to resume (one file, a minute at most): a
killed run leaves no partial OUT, and the next run removes the temporary file it left.
"""

EPILOG = """\
Example (python export/convert_magenta_checkpoint.py takes the same arguments):
  nsynth-convert-magenta wavenet-ckpt/model.ckpt-200000 models/wavenet_magenta.pt
"""


def build_parser():
    from nsynth_live.models.wavenet_configs import WAVENET_CONFIGS

    parser = make_parser(DESCRIPTION, EPILOG)
    parser.add_argument("prefix", metavar="PREFIX", help="TF checkpoint prefix, e.g. wavenet-ckpt/model.ckpt-200000")
    parser.add_argument("out", metavar="OUT", type=Path, help="the nsynth-live checkpoint to write (.pt)")
    parser.add_argument("--config", default="magenta", choices=sorted(WAVENET_CONFIGS),
                        help="model size of the checkpoint (default: magenta = h512_bo16)")
    parser.add_argument("--use-ema", action="store_true",
                        help="use the ExponentialMovingAverage shadow weights instead of the raw ones")
    parser.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    return parser


def main(argv=None) -> int:
    """Run the command; returns the exit status (0 done, 1 torch missing, 2 refused or unreadable)."""
    args = build_parser().parse_args(argv)
    if args.out.exists() and not args.force:
        return fail(f"{args.out} exists; pass --force to overwrite it", 2)
    from nsynth_live.extras import require_torch

    try:
        require_torch("converting a Magenta checkpoint")
    except ImportError as error:
        return fail(str(error), 1)
    from nsynth_live.fileio import remove_stale_temporaries
    from nsynth_live.models.checkpoint import sha256_of_file
    from nsynth_live.models.magenta_convert import convert_magenta_checkpoint
    from nsynth_live.models.wavenet_configs import WAVENET_CONFIGS

    remove_stale_temporaries(args.out.parent, names=[args.out.name])  # a killed run's
    try:
        path = convert_magenta_checkpoint(args.prefix, args.out, config=WAVENET_CONFIGS[args.config],
                                          use_ema=args.use_ema, force=args.force)
    except (FileNotFoundError, FileExistsError, ValueError, ImportError) as error:
        return fail(str(error), 2)
    print(f"wrote {path} (sha256 {sha256_of_file(path)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
