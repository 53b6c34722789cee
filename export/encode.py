"""Encode audio files with the NSynth WaveNet autoencoder: one ``[frames, 16]`` .npy per input.

Usage::

    python export/encode.py notes/ extra.wav --out-dir encodings/ --checkpoint wavenet.pt

Existing outputs are skipped (a killed run resumes); ``--force`` re-encodes them.
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    from nsynth_live.extras import require_torch

    try:
        require_torch("encoding with the WaveNet")
    except ImportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    from nsynth_live.models.wavenet_ae import WaveNetAutoencoder
    from nsynth_live.runtime.wavenet_files import encode_files

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", help="audio files and/or folders (searched recursively)")
    parser.add_argument("--out-dir", required=True, help="folder for the .npy encodings")
    parser.add_argument("--checkpoint", required=True, help="nsynth-live WaveNet checkpoint (.pt)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--force", action="store_true", help="re-encode inputs whose .npy already exists")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    try:
        model = WaveNetAutoencoder.load(args.checkpoint)
        written = encode_files(args.inputs, args.out_dir, model=model, device=args.device, force=args.force,
                               progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} encodings to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
