"""``nsynth-train-v3`` (``export/train_v3.py``): train model v3 (harmonic-plus-noise SING at 48 kHz) and export it.

The recipe itself is :mod:`nsynth_live.train.v3_recipe`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from nsynth_live.cli._help import fail, make_parser

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_SUFFIXES = (".pt", ".onnx", ".replay.onnx", ".report.json", ".md")  # what the recipe writes per NAME
RECIPE_STEPS = 4000  # optimiser steps of the shipped model (about 50 minutes on the 2-core CPU)

DESCRIPTION = """\
Train model v3 from scratch with one command, and export it: SING's sequence generator (an LSTM over
instrument, pitch, velocity and time) driving a harmonic-plus-noise synthesiser at each note's exact
MIDI pitch, at 48 kHz. Renders the 48-kHz SoundFont dataset if it is not there yet (as
nsynth-build-dataset --sample-rate 48000 --format flac does), trains, evaluates on the held-out
pitches and exports the model for the live instrument. Needs torch: pip install -e '.[train]'. About
50 minutes on the 2-core CPU with the default steps and --threads 1 (measured; use --threads 1
when anything else runs on the machine: two oversubscribed threads were 20x slower).

Writes DATA (the dataset, when missing), RUN_DIR/train_state.pt (every 100 steps) and, at the end,
MODELS_DIR/NAME.pt (checkpoint), NAME.onnx and NAME.replay.onnx (what run_live.py plays),
NAME.report.json and NAME.md (the report, with the files' sha256); each file under a temporary name,
renamed when complete.

Resumes: after an interruption (even kill -9) the same command continues from RUN_DIR's last saved
step (and the dataset from its last instrument), and removes the temporary files the killed run left;
a RUN_DIR of another model config is refused. Existing model files NAME.* in MODELS_DIR are not
overwritten without --force, checked before training starts.
"""

EPILOG = """\
Examples (python export/train_v3.py takes the same arguments):
  nsynth-train-v3 --force                 re-train the shipped model v3 (replaces models/sing_v3.*)
  nsynth-train-v3 --name mine --run-dir runs/mine --steps 20 --data data/small-48k
                                          a smoke test of the recipe, written to models/mine.*
"""


def build_parser():
    parser = make_parser(DESCRIPTION, EPILOG)
    parser.add_argument("--data", default=str(REPO_ROOT / "data" / "nsynth-sf-48k"), metavar="DATA",
                        help="48-kHz NSynth-format dataset folder; rendered from the GM SoundFont if absent "
                             "(default: data/nsynth-sf-48k in the repository)")
    parser.add_argument("--run-dir", default=str(REPO_ROOT / "runs" / "sing_v3"), metavar="RUN_DIR",
                        help="where the training state goes; rerun to resume (default: runs/sing_v3 in the repository)")
    parser.add_argument("--models-dir", default=str(REPO_ROOT / "models"), metavar="MODELS_DIR",
                        help="where the model files go (default: models/ in the repository)")
    parser.add_argument("--name", default="sing_v3", help="model file stem (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=RECIPE_STEPS, metavar="N",
                        help="optimiser steps in all (default: %(default)s); raising it on a finished run trains on")
    parser.add_argument("--no-inharmonicity", action="store_true",
                        help="strictly harmonic partials (no learned stiff-string stretch): the ablation's other "
                             "candidate")
    parser.add_argument("--threads", type=int, default=2, metavar="N", help="torch threads (default: %(default)s)")
    parser.add_argument("--skip-measures", action="store_true",
                        help="leave the SoundFont comparison (tuning, level, bandwidth, identity) out of the report")
    parser.add_argument("--force", action="store_true",
                        help="overwrite the model files MODELS_DIR/NAME.* if they exist (the run folder always resumes)")
    return parser


def model_files(models_dir, name: str) -> list[Path]:
    """The files the recipe writes in ``models_dir`` for model ``name``."""
    return [Path(models_dir) / f"{name}{suffix}" for suffix in MODEL_SUFFIXES]


def main(argv=None) -> int:
    """Run the command; returns the exit status (0 done, 1 torch missing or refused, 2 bad dataset or run folder)."""
    args = build_parser().parse_args(argv)
    if args.steps < 1 or args.threads < 1:
        return fail("--steps and --threads must be >= 1", 2)
    existing = [path for path in model_files(args.models_dir, args.name) if path.exists()]
    if existing and not args.force:
        return fail(f"{existing[0]} exists; pass --force to overwrite it, or another --name or --models-dir", 1)
    from nsynth_live.extras import require_torch

    try:
        require_torch("training model v3")
    except ImportError as error:
        return fail(str(error), 1)
    from nsynth_live.models.checkpoint import CheckpointError
    from nsynth_live.train.v3_recipe import run

    try:
        return run(args)
    except (FileExistsError, CheckpointError, ValueError) as error:
        return fail(str(error), 2)


if __name__ == "__main__":
    sys.exit(main())
