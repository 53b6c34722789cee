"""``nsynth-train`` (``export/train_sing.py``): train the default SING model from scratch and export it.

The recipe itself is :mod:`nsynth_live.train.sing_recipe`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nsynth_live.cli._help import fail, make_parser

REPO_ROOT = Path(__file__).resolve().parents[2]
# SING's 1024-sample STFT plus 4096- and 8192-sample ones that resolve the pitch of low notes (see
# nsynth_live.functional.spectral.multi_resolution_spectral_loss and sing_recipe).
RECIPE_SPECTRAL_N_FFTS = (1024, 4096, 8192)
MODEL_SUFFIXES = (".pt", ".onnx", ".replay.onnx", ".report.json", ".md")  # what the recipe writes per NAME

DESCRIPTION = """\
Train the default SING model from scratch with one command, and export it: renders the SoundFont
dataset if it is not there yet (as nsynth-build-dataset does), trains SING's three stages, evaluates
on the held-out pitches and exports the model for the live instrument. Needs torch:
pip install -e '.[train]'. About 25 minutes on 2 CPU cores.

Writes DATA (the dataset, when missing), RUN_DIR/train_state.pt (after every epoch) and, at the end,
MODELS_DIR/NAME.pt (checkpoint), NAME.onnx and NAME.replay.onnx (what run_live.py plays),
NAME.report.json and NAME.md (the report); each file under a temporary name, renamed when complete.

Resumes: after an interruption (even kill -9) the same command continues from RUN_DIR's last epoch
(and the dataset from its last instrument), and removes the temporary files the killed run left; a
RUN_DIR of other settings is refused. Existing model files NAME.* in MODELS_DIR (the shipped
models/sing_default.* included) are not overwritten without --force, checked before training starts.
"""

EPILOG = """\
Examples (python export/train_sing.py takes the same arguments):
  nsynth-train --force                  re-train the shipped default model (replaces models/sing_default.*)
  nsynth-train --name mine --run-dir runs/mine --quick
                                       a smoke test of the recipe, written to models/mine.*
"""


def _window_lengths(text: str) -> tuple[int, ...]:
    try:
        lengths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated integers wanted, got {text!r}") from None
    if any(n < 4 for n in lengths):
        raise argparse.ArgumentTypeError(f"window lengths must be >= 4 samples, got {text!r}")
    return lengths


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(DESCRIPTION, EPILOG)
    parser.add_argument("--data", default=str(REPO_ROOT / "data" / "nsynth-sf"), metavar="DATA",
                        help="NSynth-format dataset folder; rendered from the GM SoundFont if absent "
                             "(default: data/nsynth-sf in the repository)")
    parser.add_argument("--run-dir", default=str(REPO_ROOT / "runs" / "sing_default"), metavar="RUN_DIR",
                        help="where training checkpoints go; rerun to resume (default: runs/sing_default in the "
                             "repository)")
    parser.add_argument("--models-dir", default=str(REPO_ROOT / "models"), metavar="MODELS_DIR",
                        help="where the model files go (default: models/ in the repository)")
    parser.add_argument("--name", default="sing_default", help="model file stem (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="1 epoch per stage: a smoke test of the recipe, not a model")
    parser.add_argument("--threads", type=int, default=2, metavar="N", help="torch threads (default: %(default)s)")
    parser.add_argument("--end-to-end-epochs", type=int, default=None, metavar="N",
                        help="stage-3 epochs (default: the recipe's); raising it on a finished run trains the extra "
                             "epochs")
    parser.add_argument("--spectral-n-ffts", type=_window_lengths, default=RECIPE_SPECTRAL_N_FFTS, metavar="LIST",
                        help="comma-separated STFT window lengths in samples of the training loss (1024: SING's "
                             f"alone; default: {','.join(map(str, RECIPE_SPECTRAL_N_FFTS))})")
    parser.add_argument("--export-replay", action="store_true",
                        help="only write MODELS_DIR/NAME.replay.onnx (the morph's replay graph) from the trained "
                        "NAME.pt and exit")
    parser.add_argument("--force", action="store_true",
                        help="overwrite the model files MODELS_DIR/NAME.* if they exist (the run folder always "
                             "resumes)")
    return parser


def model_files(models_dir, name: str) -> list[Path]:
    """The files the recipe writes in ``models_dir`` for model ``name``."""
    return [Path(models_dir) / f"{name}{suffix}" for suffix in MODEL_SUFFIXES]


def main(argv=None) -> int:
    """Run the command; returns the exit status (0 done, 1 torch missing or refused, 2 bad dataset folder)."""
    args = build_parser().parse_args(argv)
    targets = model_files(args.models_dir, args.name)
    if args.export_replay:
        targets = [Path(args.models_dir) / f"{args.name}.replay.onnx"]
    existing = [path for path in targets if path.exists()]
    if existing and not args.force:
        return fail(f"{existing[0]} exists; pass --force to overwrite it, or another --name or --models-dir", 1)
    from nsynth_live.extras import require_torch

    try:
        require_torch("training SING")
    except ImportError as error:
        return fail(str(error), 1)
    from nsynth_live.train.sing_recipe import run

    try:
        return run(args)
    except FileExistsError as error:  # the dataset folder holds something else
        return fail(str(error), 2)


if __name__ == "__main__":
    sys.exit(main())
