"""``nsynth-add-instrument`` (``export/add_instrument.py``): add an instrument of one's own to model v3.

The work is :mod:`nsynth_live.train.add_instrument`; this module only parses, reports and maps errors
to exit statuses.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from nsynth_live.cli._help import fail, make_parser

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPO_ROOT / "models" / "sing_v3.onnx"
DEFAULT_MINUTES = 15.0  # wall-clock budget of the fit on 2 CPU cores
DEFAULT_STEPS = 1000  # optimiser steps at most (the budget usually ends the fit first on 2 cores)
PROGRESS_EVERY_SECONDS = 15.0  # a progress line at most this often
SOUNDFONT_SUFFIXES = (".sf2", ".sf3")

DESCRIPTION = """\
Teach model v3 a new instrument from your own notes, without retraining it: the model stays frozen and
only a new 16-number instrument embedding is learned (Adam, from the mean of the trained instruments,
on random crops with the training's multi-resolution spectral loss), on the CPU within a time budget
(15 minutes by default). Needs torch: pip install -e '.[train]'.

SOURCE is a folder of single notes (WAV, FLAC, OGG, AIFF, MP3; any sample rate, mono or stereo; one
note per file, pitch from the name as C4, F#3, Bb2, 060, note60 or NSynth's name-060-100, else
estimated from the audio; velocity from v100, vel100 or pp..fff, else 100), or an SF2/SF3 SoundFont
with --preset NAME (rendered like the training set: MIDI 36-84 every 3 semitones at velocities 50, 100
and 127). Notes outside the model's MIDI range are dropped with a notice. See docs/instruments.md.

Writes the model with NAME added: MODEL.onnx (a copy whose metadata lists NAME and its embedding; the
graph and weights are unchanged), MODEL.replay.onnx (copied) and MODEL.pt (the instrument table with
one more row), in place by default, or OUT.onnx, OUT.replay.onnx and OUT.pt with --out. Each file is
written under a temporary name and renamed when all are complete; temporaries left by a killed run are
removed by the next run. Does not resume: an interrupted fit starts again from the beginning, and
nothing is written before it ends.

Overwrites: an instrument NAME added earlier only with --force, never one the model was trained on;
existing OUT files only with --force.
"""

EPILOG = """\
Examples (python export/add_instrument.py takes the same arguments):
  nsynth-add-instrument ~/samples/my_cello --name my_cello
                                   learn my_cello from a folder, add it to models/sing_v3.*
  nsynth-add-instrument /usr/share/sounds/sf2/FluidR3_GM.sf2 --list
                                   list the SoundFont's presets (bank:program name)
  nsynth-add-instrument /usr/share/sounds/sf2/FluidR3_GM.sf2 --preset Oboe --name oboe --out /tmp/v3_plus.onnx
                                   render and learn a SoundFont preset, write a new model
"""


def build_parser():
    parser = make_parser(DESCRIPTION, EPILOG)
    parser.add_argument("source", metavar="SOURCE",
                        help="folder of note files, or an SF2/SF3 SoundFont (with --preset or --list)")
    parser.add_argument("--name", metavar="NAME",
                        help="name of the new instrument: letters, digits, _ and - (required unless --list)")
    parser.add_argument("--preset", metavar="PRESET",
                        help="the SoundFont preset to learn: its name (any case, or a unique part of it) or "
                             "bank:program, as --list prints them")
    parser.add_argument("--list", action="store_true",
                        help="print the SoundFont's presets (bank:program name) and exit; writes nothing")
    parser.add_argument("--model", default=str(DEFAULT_MODEL), metavar="MODEL.onnx",
                        help="model v3 to extend; its .pt checkpoint must be next to it "
                             "(default: models/sing_v3.onnx in the repository)")
    parser.add_argument("--out", metavar="OUT.onnx",
                        help="write the extended model here (with OUT.replay.onnx and OUT.pt) instead of "
                             "replacing MODEL in place")
    parser.add_argument("--force", action="store_true",
                        help="replace an instrument NAME added earlier, or overwrite existing OUT files")
    parser.add_argument("--minutes", type=float, default=DEFAULT_MINUTES, metavar="M",
                        help="wall-clock budget of the fit in minutes (default: %(default)g)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, metavar="N",
                        help="optimiser steps at most; the fit ends at whichever of --steps and --minutes "
                             "comes first (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=8, metavar="N",
                        help="notes per step (default: %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=0.05, metavar="LR",
                        help="Adam's initial step size, decayed tenfold over the fit (default: %(default)g)")
    parser.add_argument("--init", choices=("mean", "best"), default="mean",
                        help="start from the mean of the trained instruments' embeddings, or from the best of the "
                             "mean and each trained instrument on your notes (about 20 more loss measurements) "
                             "(default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, metavar="N", help="torch threads (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the random crops (default: %(default)s)")
    return parser


def _list_presets(source: Path) -> int:
    from nsynth_live.train.add_instrument import list_soundfont_presets

    for bank, program, name in list_soundfont_presets(source):
        print(f"{bank:3d}:{program:<3d} {name}")
    return 0


def main(argv=None) -> int:
    """Run the command; returns the exit status (0 done, 1 refused or torch missing, 2 bad input)."""
    args = build_parser().parse_args(argv)
    from nsynth_live.train.add_instrument import AddInstrumentError, AddInstrumentRefused

    source = Path(args.source)
    is_soundfont = source.suffix.lower() in SOUNDFONT_SUFFIXES
    try:
        if args.list:
            if not is_soundfont:
                return fail(f"--list needs an SF2/SF3 SoundFont, got {source}", 2)
            return _list_presets(source)
        if args.name is None:
            return fail("--name NAME is required (the new instrument's name)", 2)
        if args.steps < 0 or args.minutes <= 0 or args.threads < 1 or args.batch_size < 1:
            return fail("--steps must be >= 0; --minutes, --threads and --batch-size > 0", 2)
        if is_soundfont and args.preset is None:
            return fail(f"{source} is a SoundFont: choose a preset with --preset NAME (--list shows them)", 2)
        if args.preset is not None and not is_soundfont:
            return fail(f"--preset needs an SF2/SF3 SoundFont as SOURCE, got {source}", 2)
        return _run(args, source, is_soundfont)
    except AddInstrumentRefused as error:
        return fail(str(error), 1)
    except AddInstrumentError as error:
        return fail(str(error), 2)
    except (RuntimeError, OSError, ValueError) as error:  # FluidSynth missing, unreadable files, a bad model
        return fail(str(error), 2)


def _run(args, source: Path, is_soundfont: bool) -> int:
    from nsynth_live.extras import require_torch

    try:
        require_torch("adding an instrument")
    except ImportError as error:
        return fail(str(error), 1)
    import torch

    from nsynth_live.models.checkpoint import CheckpointError, load_sing
    from nsynth_live.models.sing_harmonic import SingHarmonic
    from nsynth_live.train import add_instrument as lib

    started = time.monotonic()
    model_path = Path(args.model)
    lib.check_can_add(model_path, args.out, args.name, force=args.force)  # refuse before the fit
    try:
        model, names = load_sing(lib.checkpoint_path(model_path))
    except CheckpointError as error:
        return fail(str(error), 2)
    if not isinstance(model, SingHarmonic):
        return fail(f"{lib.checkpoint_path(model_path)} is a SING v1/v2 model; adding instruments needs model v3 "
                    "(nsynth-train-v3)", 2)
    cfg = model.config
    pitch_range = lib.model_pitch_range(model_path)
    if is_soundfont:
        presets = lib.list_soundfont_presets(source)
        bank, program, preset_name = lib.find_soundfont_preset(presets, args.preset)
        pitches = lib.preset_pitches_midi(*pitch_range)
        print(f"rendering {source.name} preset {bank}:{program} {preset_name!r}: {len(pitches)} pitches x "
              f"{len(lib.PRESET_VELOCITIES)} velocities at {cfg.sample_rate} Hz")
        notes = lib.render_soundfont_preset(source, bank=bank, program=program, sample_rate=cfg.sample_rate,
                                            note_samples=cfg.note_samples, pitches_midi=pitches)
    else:
        notes = lib.load_note_folder(source, sample_rate=cfg.sample_rate, note_samples=cfg.note_samples,
                                     pitch_min_midi=pitch_range[0], pitch_max_midi=pitch_range[1],
                                     notice=lambda line: print(f"notice: {line}"))
    pitches_used = sorted({p for p, _, _ in notes})
    print(f"{len(notes)} notes, MIDI {pitches_used[0]}-{pitches_used[-1]} ({len(pitches_used)} pitches), velocities "
          f"{sorted({v for _, v, _ in notes})}; model {model_path.name} ({len(names)} instruments, {cfg.sample_rate} Hz)")
    torch.set_num_threads(args.threads)
    budget_minutes = max(0.1, args.minutes - (time.monotonic() - started) / 60.0)
    last = [time.monotonic()]

    def progress(state: dict) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_SECONDS or "eval_loss" in state:
            last[0] = now
            measured = f"  evaluation loss {state['eval_loss']:.4f}" if "eval_loss" in state else ""
            print(f"step {state['step']}/{state['steps']}  crop loss {state['loss']:.4f}{measured}  "
                  f"{state['elapsed_seconds']:.0f} s", flush=True)

    print(f"fitting the embedding of {args.name!r}: at most {args.steps} steps or {budget_minutes:.1f} minutes",
          flush=True)
    embedding, report = lib.fit_instrument_embedding(model, notes, steps=args.steps, minutes=budget_minutes,
                                                     batch_size=args.batch_size, learning_rate=args.learning_rate,
                                                     init=args.init, seed=args.seed, progress=progress,
                                                     trained_rows=lib.trained_instrument_rows(model_path))
    start = ("the mean of the trained instruments" if report["init"] == "mean"
             else names[int(report["init"].split()[1])])
    print(f"loss {report['loss_before']:.4f} before ({start}) -> {report['loss_after']:.4f} after (best of "
          f"{report['steps']} steps, at step {report['best_step']}; {report['seconds']:.0f} s, stopped by "
          f"{report['stopped_by']}); closest trained instrument: {names[report['nearest_trained_row']]}")
    if report["radius_limited"]:
        print(f"notice: the embedding reached the edge of the region the trained instruments span "
              f"({lib.EMBEDDING_RADIUS_FACTOR:g} x their largest distance from their mean): these notes are unlike "
              "anything the model was trained on, expect an approximation")
    written = lib.add_instrument_to_model(model_path, args.out, args.name, embedding, force=args.force)
    for kind in ("onnx", "replay", "checkpoint"):
        if kind in written:
            print(f"wrote {written[kind]}")
    print(f"done in {time.monotonic() - started:.0f} s: play it with --model {written['onnx']} and the instrument "
          f"name {args.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
