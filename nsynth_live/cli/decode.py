"""``nsynth-decode`` (``export/decode.py``): NSynth WaveNet encodings (.npy) -> 16 kHz WAV files."""

from __future__ import annotations

import sys

from nsynth_live.cli._help import fail, make_parser

DTYPES = ("float32", "bfloat16", "float16")

DESCRIPTION = """\
Decode NSynth WaveNet encodings (.npy arrays of shape [frames, dims], as nsynth-encode or Magenta
write them) to audio with the WaveNet decoder, sample by sample, many notes in a batch. Needs torch:
pip install -e '.[train]'; a GPU makes it hundreds of times faster.

Writes OUT_DIR/<name>.wav (16-bit mono at the model's 16 kHz, trimmed to the encoded length), keeping
the inputs' subfolders. Each WAV is written under a temporary name and renamed when its batch is done.

Resumes: WAVs that already exist are skipped (never overwritten), so after an interruption (even
kill -9) the same command generates only the missing notes, with the same audio as an uninterrupted
run, and removes the temporary files the killed run left; --force regenerates and overwrites them.
"""

EPILOG = """\
Example (python export/decode.py takes the same arguments):
  nsynth-decode encodings/ --out-dir audio/ --checkpoint models/wavenet_magenta.pt --batch-size 256 --device cuda
"""


def build_parser():
    parser = make_parser(DESCRIPTION, EPILOG)
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help=".npy files and/or folders, searched recursively")
    parser.add_argument("--out-dir", required=True, metavar="OUT_DIR", help="folder for the WAV files")
    parser.add_argument("--checkpoint", required=True, metavar="CK.pt",
                        help="nsynth-live WaveNet checkpoint (.pt; nsynth-convert-magenta makes one)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where the decoder runs (default: auto, cuda if available)")
    parser.add_argument("--dtype", default="auto", choices=("auto",) + DTYPES,
                        help="compute precision (default: auto, bfloat16 on cuda, float32 on cpu)")
    parser.add_argument("--batch-size", type=int, default=16, metavar="N",
                        help="notes generated together (default: 16; hundreds on a GPU)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default: 1)")
    parser.add_argument("--no-cuda-graph", action="store_true", help="on cuda, step eagerly instead of a CUDA graph")
    parser.add_argument("--force", action="store_true", help="regenerate notes whose WAV already exists")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return parser


def main(argv=None) -> int:
    """Run the command; returns the exit status (0 done, 1 torch missing, 2 bad input or checkpoint)."""
    args = build_parser().parse_args(argv)
    from nsynth_live.extras import require_torch

    try:
        require_torch("decoding with the WaveNet")
    except ImportError as error:
        return fail(str(error), 1)
    import torch

    from nsynth_live.models.wavenet_ae import WaveNetAutoencoder
    from nsynth_live.runtime.wavenet_files import decode_files
    from nsynth_live.runtime.wavenet_generate import WaveNetGenerator, resolve_device

    try:
        device = resolve_device(args.device)
        dtype_name = args.dtype if args.dtype != "auto" else ("bfloat16" if device.type == "cuda" else "float32")
        model = WaveNetAutoencoder.load(args.checkpoint)
        generator = WaveNetGenerator(model.decoder, device=device, dtype=getattr(torch, dtype_name),
                                     use_cuda_graph=not args.no_cuda_graph)
        written = decode_files(args.inputs, args.out_dir, generator=generator, batch_size=args.batch_size,
                               seed=args.seed, temperature=args.temperature, force=args.force,
                               progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as error:
        return fail(str(error), 2)
    print(f"wrote {len(written)} WAV files to {args.out_dir}"
          + ("" if written or args.force else " (every one was there already; --force regenerates them)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
