"""Convert Magenta's released NSynth WaveNet checkpoint (TF1) into an nsynth-live checkpoint.

Usage::

    python export/convert_magenta_checkpoint.py wavenet-ckpt/model.ckpt-200000 models/wavenet_magenta.pt

Needs TensorFlow: ``pip install nsynth-live[tf]``. See ``nsynth_live.models.magenta_convert``.
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    from nsynth_live.extras import require_torch

    try:
        require_torch("converting a Magenta checkpoint")
    except ImportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    from nsynth_live.models.magenta_convert import convert_magenta_checkpoint
    from nsynth_live.models.wavenet_configs import WAVENET_CONFIGS
    from nsynth_live.models.checkpoint import sha256_of_file

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefix", help="TF checkpoint prefix, e.g. wavenet-ckpt/model.ckpt-200000")
    parser.add_argument("out", help="output .pt checkpoint")
    parser.add_argument("--config", default="magenta", choices=sorted(WAVENET_CONFIGS),
                        help="model size of the checkpoint (default: magenta = h512_bo16)")
    parser.add_argument("--use-ema", action="store_true",
                        help="use the ExponentialMovingAverage shadow weights instead of the raw ones")
    parser.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    args = parser.parse_args(argv)
    try:
        path = convert_magenta_checkpoint(args.prefix, args.out, config=WAVENET_CONFIGS[args.config],
                                          use_ema=args.use_ema, force=args.force)
    except (FileNotFoundError, FileExistsError, ValueError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path} (sha256 {sha256_of_file(path)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
