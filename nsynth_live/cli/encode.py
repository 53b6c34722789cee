"""``nsynth-encode`` (``export/encode.py``): audio files -> NSynth WaveNet encodings (.npy)."""

from __future__ import annotations

import sys

from nsynth_live.cli._help import fail, make_parser

DESCRIPTION = """\
Encode audio files with the NSynth WaveNet autoencoder's encoder: one encoding per input, a float32
array of shape [frames, dims] (16 dims and 512 samples a frame for Magenta's model), the input read as
mono at the model's 16 kHz. Needs torch: pip install -e '.[train]'.

Writes OUT_DIR/<name>.npy and its sidecar OUT_DIR/<name>.json (the length before padding), keeping
the inputs' subfolders. Each file is written under a temporary name and renamed when complete.

Resumes: encodings that already exist are skipped (never overwritten), so after an interruption (even
kill -9) the same command encodes only the rest and removes the temporary files the killed run left;
--force re-encodes and overwrites them.
"""

EPILOG = """\
Example (python export/encode.py takes the same arguments):
  nsynth-encode notes/ extra.wav --out-dir encodings/ --checkpoint models/wavenet_magenta.pt
"""


def build_parser():
    parser = make_parser(DESCRIPTION, EPILOG)
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="audio files (.wav .flac .aiff .ogg) and/or folders, searched recursively")
    parser.add_argument("--out-dir", required=True, metavar="OUT_DIR", help="folder for the .npy encodings")
    parser.add_argument("--checkpoint", required=True, metavar="CK.pt",
                        help="nsynth-live WaveNet checkpoint (.pt; nsynth-convert-magenta makes one)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where the encoder runs (default: auto, cuda if available)")
    parser.add_argument("--force", action="store_true", help="re-encode inputs whose .npy already exists")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv=None) -> int:
    """Run the command; returns the exit status (0 done, 1 torch missing, 2 bad input or checkpoint)."""
    args = build_parser().parse_args(argv)
    from nsynth_live.extras import require_torch

    try:
        require_torch("encoding with the WaveNet")
    except ImportError as error:
        return fail(str(error), 1)
    from nsynth_live.models.wavenet_ae import WaveNetAutoencoder
    from nsynth_live.runtime.wavenet_files import encode_files

    try:
        model = WaveNetAutoencoder.load(args.checkpoint)
        written = encode_files(args.inputs, args.out_dir, model=model, device=args.device, force=args.force,
                               progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as error:
        return fail(str(error), 2)
    print(f"wrote {len(written)} encodings to {args.out_dir}"
          + ("" if written or args.force else " (every one was there already; --force re-encodes them)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
