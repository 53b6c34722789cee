"""Decode ``[frames, 16]`` .npy encodings to 16 kHz WAV files with the NSynth WaveNet decoder.

Usage::

    python export/decode.py encodings/ --out-dir audio/ --checkpoint wavenet.pt --batch-size 256 --device cuda

Batched; finished WAVs are skipped so a killed run resumes (``--force`` regenerates them).
"""

from __future__ import annotations

import argparse
import sys

DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def main(argv=None) -> int:
    from nsynth_live.extras import require_torch

    try:
        require_torch("decoding with the WaveNet")
    except ImportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    import torch

    from nsynth_live.models.wavenet_ae import WaveNetAutoencoder
    from nsynth_live.runtime.wavenet_files import decode_files
    from nsynth_live.runtime.wavenet_generate import WaveNetGenerator, resolve_device

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", help=".npy files and/or folders (searched recursively)")
    parser.add_argument("--out-dir", required=True, help="folder for the WAV files")
    parser.add_argument("--checkpoint", required=True, help="nsynth-live WaveNet checkpoint (.pt)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--dtype", default="auto", choices=("auto",) + tuple(DTYPES),
                        help="compute precision (auto: bfloat16 on cuda, float32 on cpu)")
    parser.add_argument("--batch-size", type=int, default=16, help="notes generated together (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1)")
    parser.add_argument("--no-cuda-graph", action="store_true", help="step eagerly on cuda")
    parser.add_argument("--force", action="store_true", help="regenerate notes whose WAV already exists")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
        dtype_name = args.dtype if args.dtype != "auto" else ("bfloat16" if device.type == "cuda" else "float32")
        model = WaveNetAutoencoder.load(args.checkpoint)
        generator = WaveNetGenerator(model.decoder, device=device, dtype=getattr(torch, DTYPES[dtype_name]),
                                     use_cuda_graph=not args.no_cuda_graph)
        written = decode_files(args.inputs, args.out_dir, generator=generator, batch_size=args.batch_size,
                               seed=args.seed, temperature=args.temperature, force=args.force,
                               progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} WAV files to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
