"""The one-command recipe behind ``nsynth-train`` (``export/train_sing.py``): dataset -> 3 stages ->
evaluation -> export."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import platform
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from nsynth_live.cli.train_sing import RECIPE_SPECTRAL_N_FFTS, REPO_ROOT, build_parser, model_files  # noqa: F401
from nsynth_live.fileio import atomic_write_bytes, remove_stale_temporaries, write_json_atomic
from nsynth_live.data.soundfont import DONE_MARKER, SoundFontDatasetConfig, build_soundfont_dataset
from nsynth_live.models.checkpoint import save_sing
from nsynth_live.models.sing_configs import SING_DEFAULT
from nsynth_live.train.sing import NoteTensors, SingTrainConfig, SingTrainer

logger = logging.getLogger(__name__)

SING_PAPER_HELDOUT_SPECTRAL_LOSS = 0.051  # SING paper, Table 1 (spectral loss, test, pitch completion)
SING_PAPER_AUTOENCODER_SPECTRAL_LOSS = 0.032  # SING paper, Table 1 (autoencoder, test)
# RECIPE_SPECTRAL_N_FFTS (defined with the command's parser, which needs no torch): SING's 1024-sample
# STFT plus 4096- and 8192-sample ones that resolve the pitch of low notes (see
# nsynth_live.functional.spectral.multi_resolution_spectral_loss). Measured on the held-out notes,
# within 50 cents of the originals' f0: 49% with 1024 alone (model v1), 71% with 1024 and 4096,
# 78% with all three (models/sing_default.md).


def parse_args(argv=None) -> argparse.Namespace:
    """The command line of ``nsynth-train`` (:func:`nsynth_live.cli.train_sing.build_parser`)."""
    return build_parser().parse_args(argv)


def export_replay_only(models: Path, name: str) -> int:
    """Write ``models/<name>.replay.onnx`` from ``models/<name>.pt`` (a model exported before the
    replay graph existed); the step graph ``<name>.onnx`` is left as it is."""
    from nsynth_live.models.checkpoint import load_sing  # noqa: PLC0415
    from nsynth_live.runtime.sing_export import export_sing_replay_onnx  # noqa: PLC0415
    from nsynth_live.runtime.sing_onnx import replay_path  # noqa: PLC0415

    checkpoint = models / f"{name}.pt"
    if not checkpoint.is_file():
        print(f"error: {checkpoint} does not exist: train the model first (python export/train_sing.py)",
              file=sys.stderr)
        return 1
    sing, _ = load_sing(checkpoint)
    target = replay_path(models / f"{name}.onnx")
    export_sing_replay_onnx(sing, target)
    print(f"wrote {target}")
    return 0


def main(argv=None) -> int:
    """``nsynth-train``: parse ``argv`` and :func:`run` (refusing to overwrite model files without --force)."""
    from nsynth_live.cli.train_sing import main as command  # noqa: PLC0415

    return command(argv)


def run(args: argparse.Namespace) -> int:
    """Build the dataset if missing, train (or resume) the three stages, evaluate and export.

    ``args`` as :func:`parse_args` returns them; overwriting existing model files was checked by the
    command (``--force``). Returns the exit status.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    remove_stale_temporaries(args.models_dir, names=[path.name for path in model_files(args.models_dir, args.name)])
    remove_stale_temporaries(args.run_dir, names=["train_state.pt"])  # a killed run's (the trainer writes it)
    if args.export_replay:
        return export_replay_only(Path(args.models_dir), args.name)
    wall_start = time.monotonic()
    data = Path(args.data)
    if not (data / DONE_MARKER).is_file():
        logger.info("rendering the SoundFont dataset into %s", data)
        build_soundfont_dataset(SoundFontDatasetConfig(), data)
    train_config = SingTrainConfig(threads=args.threads, spectral_n_ffts=args.spectral_n_ffts)
    if args.end_to_end_epochs is not None:
        train_config = replace(train_config, end_to_end_epochs=args.end_to_end_epochs)
    if args.quick:
        train_config = replace(train_config, autoencoder_epochs=1, sequence_epochs=1, end_to_end_epochs=1)
    trainer = SingTrainer(dataset_dir=data, run_dir=args.run_dir, model_config=SING_DEFAULT, train_config=train_config)
    trainer.run()

    models = Path(args.models_dir)
    checkpoint_path = models / f"{args.name}.pt"
    onnx_path = models / f"{args.name}.onnx"
    save_sing(trainer.sing, trainer.instrument_names, checkpoint_path)
    from nsynth_live.runtime.sing_export import export_sing_onnx  # noqa: PLC0415

    export_sing_onnx(trainer.sing, trainer.instrument_names, onnx_path)

    from nsynth_live.train.sing_eval import pitch_accuracy  # noqa: PLC0415

    heldout = NoteTensors(trainer.dataset, trainer.heldout_indices, trainer.instrument_names)
    losses = trainer.spectral_losses(heldout)
    train_sample = NoteTensors(trainer.dataset, trainer.train_indices[:: max(1, len(trainer.train_indices) // 500)],
                               trainer.instrument_names)
    train_losses = trainer.spectral_losses(train_sample)
    pitch = pitch_accuracy(trainer.sing, heldout, pitch_min_midi=36, pitch_max_midi=84)
    report = {
        "command": "python export/train_sing.py" + (" --force" if args.force else "")
        + (" --quick" if args.quick else "")
        + (f" --end-to-end-epochs {args.end_to_end_epochs}" if args.end_to_end_epochs is not None else "")
        + (f" --spectral-n-ffts {','.join(map(str, train_config.spectral_n_ffts))}"
           if train_config.spectral_n_ffts != RECIPE_SPECTRAL_N_FFTS else ""),
        "training_seconds": round(trainer.elapsed_seconds, 1),
        "command_wall_seconds_this_invocation": round(time.monotonic() - wall_start, 1),
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads",
        "dataset": trainer.dataset_summary(),
        "dataset_manifest": json.loads((data / "manifest.json").read_text()) | {"instruments": "see manifest"},
        "model_config": SING_DEFAULT.to_dict(),
        "train_config": asdict(train_config),
        "heldout_spectral_loss": losses,
        "train_spectral_loss_sample": train_losses,
        "pitch_accuracy_heldout": pitch,
        "history": trainer.history,
        "files": {p.name: p.stat().st_size for p in (checkpoint_path, onnx_path)},
    }
    write_json_atomic(models / f"{args.name}.report.json", report)
    atomic_write_bytes(models / f"{args.name}.md", render_report(report).encode("utf-8"), overwrite=True)
    logger.info("wrote %s, %s and the report", checkpoint_path, onnx_path)
    return 0


def render_report(r: dict) -> str:
    d, loss, p = r["dataset"], r["heldout_spectral_loss"], r["pitch_accuracy_heldout"]
    mc, tc = r["model_config"], r["train_config"]
    vo = p["vs_original"]
    band_rows = "\n".join(
        f"| {name} | {band['notes']} | {100 * band['share_within_50_cents']:.0f}% | {band['median_abs_cents']:.1f} | "
        + " | ".join(f"{p[measure][name]['generated_median']:.3f} / {p[measure][name]['original_median']:.3f}"
                     for measure in ("frame_line_energy_share", "hop_rate_modulation")) + " |"
        for name, band in vo["bands"].items() if band["notes"]
    )
    lengths = [str(n) for n in tc["spectral_n_ffts"]]
    windows = ", ".join(lengths[:-1]) + " and " + lengths[-1] if len(lengths) > 1 else lengths[0]
    hours = r["training_seconds"] / 3600
    return f"""# Default SING model (`sing_default`)

Reproduce: `{r['command']}` (renders the dataset if missing, trains the three stages, resumes from
`runs/sing_default/train_state.pt` if interrupted, evaluates, exports). Machine: {r['machine']}.

## Training
- Wall time of the three stages: {r['training_seconds']:.0f} s ({hours:.2f} h).
- Dataset: {d['notes']} notes rendered from {r['dataset_manifest']['soundfont_name']}
  (sha256 `{r['dataset_manifest']['soundfont_sha256'][:16]}...`), {d['instruments']} GM instruments over
  {len(d['families'])} NSynth families ({', '.join(d['families'])}); MIDI 36-84, velocities 25/50/75/100/127.
  Pitch-completion split (SING section 4): {d['train_notes']} training notes, {d['heldout_notes']} held out
  (10% of each instrument's pitches, all velocities).
- Model: decoder {mc['conv_channels']} channels, LSTM {mc['lstm_layers']} x {mc['lstm_hidden']}, embeddings
  {mc['embedding_dims']} (the paper: 4096 channels, 3 x 1024).
- Recipe: autoencoder {tc['autoencoder_epochs']} epochs, LSTM {tc['sequence_epochs']} epochs (truncated BPTT
  {tc['tbptt_frames']} frames), end to end {tc['end_to_end_epochs']} epochs; Adam lr {tc['learning_rate']},
  batch {tc['batch_size']} (the paper: 50 / 50 / 20 epochs of 289k notes, lr 3e-4, batch 256).

## Held-out notes (never seen in training)
| | ours | SING paper (NSynth) |
|---|---|---|
| spectral loss, SING | {loss['sing']:.4f} | {SING_PAPER_HELDOUT_SPECTRAL_LOSS} |
| spectral loss, autoencoder (upper bound) | {loss['autoencoder']:.4f} | {SING_PAPER_AUTOENCODER_SPECTRAL_LOSS} |
| spectral loss, SING, training notes (sample) | {r['train_spectral_loss_sample']['sing']:.4f} | 0.039 |
| spectral loss of silence (a floor: an all-zero output) | {loss['silence']:.4f} | - |

Stages 1 and 3 train on the MSE of the log spectrograms (SING's code default; with the paper's L1 our
autoencoder collapsed to silence on these sparse SoundFont spectra), averaged over STFT windows of
{windows} samples. SING's loss has the 1024-sample window alone, whose 15.6-Hz bins hardly see the
pitch of a low note (a semitone is 3.9 Hz at MIDI 36); a 4096-sample window resolves 3.9 Hz and an
8192-sample one 2 Hz. The autoencoder, trained only {tc['autoencoder_epochs']} epochs on 1-s crops, is not
an upper bound here under L1 ({loss['autoencoder']:.4f}, silence {loss['silence']:.4f}): SING's end-to-end
stage brings the held-out L1 below it.

Pitch of the generated held-out notes, MIDI 36-84 (f0 of each note's held part, 0.1-2.5 s; {p['notes']} notes,
{p['unpitched']} without a stable pitch counted as misses):
- against the MIDI pitch: median absolute error {p['median_abs_cents']:.1f} cents; {100 * p['share_within_50_cents']:.1f}% within 50 cents;
- against each original note's own f0 ({vo['notes']} notes; {vo['originals_unpitched']} originals without a stable pitch left
  out; a few SoundFont samples sound an octave off their MIDI pitch): median {vo['median_abs_cents']:.1f} cents;
  {100 * vo['share_within_50_cents']:.1f}% within 50 cents.

By octave, against the originals, with two artefacts of the frame-based decoder (medians, generated /
originals): frame lines (`frame_line_energy_share`: the share of a note's energy on exact multiples of
62.5 Hz, the 256-sample hop rate, away from its harmonics, where a partial locks instead of following the
pitch) and buzz (`hop_rate_modulation_depth`: amplitude modulation at 62.5 Hz).

| MIDI | notes | within 50 cents | median error, cents | frame lines | buzz |
|---|---|---|---|---|---|
{band_rows}

The losses are not directly comparable with the paper's: our notes are SoundFont renders (cleaner and
more regular than NSynth's recordings), our loudness scale differs, and the model is ~15x smaller.
"""
