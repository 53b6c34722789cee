"""``nsynth-train-wavenet`` (``export/train_wavenet.py``): train the NSynth WaveNet autoencoder, then
reconstruct held-out notes."""

from __future__ import annotations

import json
import math
import sys

from nsynth_live.cli._help import fail, make_parser
from nsynth_live.train.wavenet_defaults import (
    EVAL_FILE, MAGENTA_CROP_SAMPLES, MAGENTA_EMA_DECAY, RECONSTRUCTIONS_DIR, TRAINED_WEIGHTS,
)

DESCRIPTION = """\
Train the NSynth WaveNet autoencoder on an NSynth-format folder (examples.json + audio/), then
reconstruct held-out notes: their pitch error (f0 against the MIDI pitch, in cents), spectral distance
and harmonicity are printed, with the teacher-forced loss of the same notes by how much past the
decoder sees, and that of linear predictors fitted to each note. Needs torch: pip install -e '.[train]'.

Writes into RUN_DIR: train_state.pt (the raw and averaged weights, optimizer, step; every
--checkpoint-every steps, on Ctrl-C / SIGTERM and at the end), model.pt (the averaged weights, which
nsynth-encode and nsynth-decode read) and log.jsonl; with --evaluate, eval.json and
reconstructions/<note>.wav. Each file is written under a temporary name and renamed when complete.

Resumes: a RUN_DIR that holds train_state.pt continues training from it (--max-steps counts the steps
already done; --lr-scale, --checkpoint-every and --ema-decay may change, other settings are refused), and the temporary files of a killed run are
removed. The run folder's files are its own: every checkpoint and every evaluation overwrites the
previous ones (no --force needed; use another RUN_DIR to keep them).
"""

EPILOG = """\
Example (python export/train_wavenet.py takes the same arguments):
  nsynth-train-wavenet data/nsynth-sf --run-dir runs/wavenet_small --model small --max-minutes 40 \\
      --threads 1 --evaluate 4
"""


def build_parser():
    from nsynth_live.models.wavenet_configs import WAVENET_CONFIGS

    parser = make_parser(DESCRIPTION, EPILOG)
    parser.add_argument("dataset", metavar="DATASET", help="NSynth json/wav folder (examples.json + audio/)")
    parser.add_argument("--run-dir", required=True, metavar="RUN_DIR",
                        help="run folder (created; training resumes if it holds train_state.pt)")
    parser.add_argument("--model", default="small", choices=sorted(WAVENET_CONFIGS),
                        help="model size (default: small; magenta is Magenta's h512_bo16)")
    parser.add_argument("--batch-size", type=int, default=8, metavar="N",
                        help="crops per step (default: 8; Magenta: 32)")
    parser.add_argument("--crop-samples", type=int, default=MAGENTA_CROP_SAMPLES, metavar="N",
                        help="samples per training crop, a multiple of the model's hop "
                             "(default: %(default)s, Magenta's)")
    parser.add_argument("--lr-scale", type=float, default=1.0, metavar="X",
                        help="multiplies Magenta's learning-rate schedule (default: 1)")
    parser.add_argument("--max-steps", type=int, default=200_000, metavar="N",
                        help="stop after this many steps in all, earlier runs' included (default: 200000)")
    parser.add_argument("--max-minutes", type=float, default=None, metavar="M",
                        help="stop (after checkpointing) after this long (default: no limit)")
    parser.add_argument("--checkpoint-every", type=int, default=100, metavar="N",
                        help="steps between checkpoints (default: 100)")
    parser.add_argument("--holdout-fraction", type=float, default=0.02, metavar="F",
                        help="share of the notes kept out of training, for the evaluation (default: 0.02)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the held-out split, crops and sampling (default: 0)")
    parser.add_argument("--instruments", default="", metavar="LIST",
                        help="comma-separated instrument_str values to train on (default: every note)")
    parser.add_argument("--precision", default="float32", choices=("float32", "bfloat16"),
                        help="bfloat16: autocast forward/backward (1.7x faster per step on an AVX512-BF16 CPU; "
                             "default: float32)")
    parser.add_argument("--ema-decay", type=float, default=MAGENTA_EMA_DECAY, metavar="D",
                        help="decay of the moving average of the weights that model.pt holds "
                             f"(default {MAGENTA_EMA_DECAY}, Magenta's; 0: the raw weights)")
    parser.add_argument("--threads", type=int, default=None, metavar="N", help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where training runs (default: auto, cuda if available)")
    parser.add_argument("--evaluate", type=int, default=4, metavar="N",
                        help="held-out notes to reconstruct (default: 4; 0: none)")
    parser.add_argument("--evaluate-seconds", type=float, default=None, metavar="S",
                        help="reconstruct only the start of each note (default: the whole 4 s)")
    parser.add_argument("--evaluate-temperature", type=float, default=1.0, metavar="T",
                        help="sampling temperature (default: 1)")
    parser.add_argument("--evaluate-weights", default="ema", choices=TRAINED_WEIGHTS,
                        help="ema: the averaged weights (model.pt, default); raw: the optimizer's latest")
    parser.add_argument("--evaluate-only", action="store_true", help="skip training: evaluate RUN_DIR as it is")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return parser


def main(argv=None) -> int:
    """Run the command; returns the exit status (0 done, 1 torch missing, 2 bad data or settings, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    from nsynth_live.extras import require_torch

    try:
        require_torch("training the WaveNet")
    except ImportError as error:
        return fail(str(error), 1)
    import numpy as np
    import torch

    from nsynth_live.data.nsynth import NSynthDataset, write_audio_atomic, write_json_atomic
    from nsynth_live.functional.midi import midi_to_hz
    from nsynth_live.models.checkpoint import load_checkpoint
    from nsynth_live.fileio import remove_stale_temporaries
    from nsynth_live.train.wavenet import (
        TRAIN_STATE_FILE, WaveNetTrainConfig, evaluate_reconstructions, linear_prediction_losses, load_trained_model,
        loss_by_past_length, past_length_window_samples, teacher_forced_losses, train_wavenet,
    )

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        config = WaveNetTrainConfig(
            model=args.model, batch_size=args.batch_size, crop_samples=args.crop_samples,
            learning_rate_scale=args.lr_scale, max_steps=args.max_steps, checkpoint_every_steps=args.checkpoint_every,
            holdout_fraction=args.holdout_fraction, seed=args.seed,
            instruments=tuple(i for i in args.instruments.split(",") if i), precision=args.precision,
            ema_decay=args.ema_decay,
        )
        if not args.evaluate_only:
            result = train_wavenet(args.dataset, args.run_dir, config=config, device=args.device,
                                   max_wall_seconds=None if args.max_minutes is None else 60 * args.max_minutes,
                                   progress=not args.no_progress)
            last = result.losses[-1][1] if result.losses else float("nan")
            print(f"trained to step {result.step} ({result.stopped_by}, {result.seconds / 60:.1f} min this call); "
                  f"last logged loss {last:.3f} nats/sample")
        if args.evaluate > 0:
            from pathlib import Path

            run_dir = Path(args.run_dir)
            remove_stale_temporaries(run_dir, names=[EVAL_FILE])  # a killed evaluation's
            remove_stale_temporaries(run_dir / RECONSTRUCTIONS_DIR)
            state_extra = load_checkpoint(run_dir / TRAIN_STATE_FILE, model="wavenet_autoencoder")["extra"]
            held_out = state_extra["held_out_notes"]
            dataset = NSynthDataset(args.dataset)
            picks = [held_out[int(i)] for i in np.linspace(0, len(held_out) - 1, min(args.evaluate, len(held_out)))]
            model = load_trained_model(run_dir, weights=args.evaluate_weights)
            results = evaluate_reconstructions(model, dataset, picks, seed=args.seed,
                                               temperature=args.evaluate_temperature,
                                               duration_seconds=args.evaluate_seconds, progress=not args.no_progress)
            length = results[0]["audio"].shape[0]
            losses = by_past = None
            originals = torch.from_numpy(np.stack([dataset.load_audio(n)[:length] for n in picks]))
            if len(picks) >= 2:  # the same notes and samples, teacher-forced
                losses = teacher_forced_losses(model, originals)
            if length >= past_length_window_samples(model.config):
                by_past = loss_by_past_length(model, originals)
            rate = model.config.sample_rate
            for r, original in zip(results, originals.numpy()):
                # what a predictor fitted to the note gains from the sample one period back
                f0 = r["f0_original_hz"] if math.isfinite(r["f0_original_hz"]) else midi_to_hz(r["pitch_midi"])
                try:
                    r["linear_prediction_nats"] = linear_prediction_losses(original, period_samples=rate / f0)
                except ValueError:  # a note too short for its period's lags
                    r["linear_prediction_nats"] = None
            print(f"{'note':36} {'f0 orig':>8} {'f0 rec':>8} {'err cents':>9} {'LSD dB':>7} {'noise':>6} "
                  f"{'rms ratio':>9} {'SING dist':>9} {'harmonic':>8} {'orig':>5} {'noise':>5}"
                  + (f" {'TF nats':>8}" if losses is not None else ""))
            per_note_losses = losses.pop("true_per_note") if losses is not None else [None] * len(results)
            for r, note_loss in zip(results, per_note_losses):
                r["teacher_forced_loss_nats"] = note_loss
                write_audio_atomic(run_dir / RECONSTRUCTIONS_DIR / f"{r['note_str']}.wav", r.pop("audio"),
                                   sample_rate=model.config.sample_rate)
                print(f"{r['note_str']:36} {r['f0_original_hz']:8.1f} {r['f0_reconstruction_hz']:8.1f} "
                      f"{r['pitch_error_cents']:9.1f} {r['log_spectral_distance_db']:7.1f} "
                      f"{r['log_spectral_distance_db_noise']:6.1f} {r['rms_ratio']:9.2f} {r['spectral_distance']:9.3f} "
                      f"{r['harmonic_energy_ratio']:8.2f} {r['harmonic_energy_ratio_original']:5.2f} "
                      f"{r['harmonic_energy_ratio_noise']:5.2f}"
                      + (f" {r['teacher_forced_loss_nats']:8.2f}" if losses is not None else ""))
            errors = [abs(r["pitch_error_cents"]) for r in results]
            finite = [e for e in errors if math.isfinite(e)]
            summary = {
                "format_version": 2,
                "step": int(state_extra["step"]),
                "weights": args.evaluate_weights,
                "temperature": args.evaluate_temperature,
                "notes": results,
                "median_abs_pitch_error_cents": float(np.median(finite)) if finite else None,
                "within_50_cents": sum(e <= 50 for e in finite),
                "unpitched_reconstructions": sum(not math.isfinite(r["f0_reconstruction_hz"]) for r in results),
                "mean_spectral_distance": float(np.mean([r["spectral_distance"] for r in results])),
                "mean_log_spectral_distance_db": float(np.mean([r["log_spectral_distance_db"] for r in results])),
                "mean_log_spectral_distance_db_noise": float(np.mean([r["log_spectral_distance_db_noise"] for r in results])),
                "harmonic_at_least_half": sum(r["harmonic_energy_ratio"] >= 0.5 for r in results),
                "mean_harmonic_energy_ratio": float(np.mean([r["harmonic_energy_ratio"] for r in results])),
                "mean_harmonic_energy_ratio_original": float(np.mean([r["harmonic_energy_ratio_original"]
                                                                      for r in results])),
                "mean_harmonic_energy_ratio_noise": float(np.mean([r["harmonic_energy_ratio_noise"] for r in results])),
                "teacher_forced_loss_nats": losses,
                "teacher_forced_loss_by_past_samples": by_past,
            }
            write_json_atomic(run_dir / EVAL_FILE, json.loads(json.dumps(summary, default=float)))
            print(f"median |pitch error| {summary['median_abs_pitch_error_cents']} cents vs the originals' f0; "
                  f"{summary['within_50_cents']} of {len(results)} within 50 cents "
                  f"({summary['unpitched_reconstructions']} unpitched), mean log-spectral distance "
                  f"{summary['mean_log_spectral_distance_db']:.1f} dB (noise of equal RMS: "
                  f"{summary['mean_log_spectral_distance_db_noise']:.1f} dB)")
            print(f"harmonic energy at the original's f0: {summary['harmonic_at_least_half']} of {len(results)} "
                  f"reconstructions at least half harmonic, mean {summary['mean_harmonic_energy_ratio']:.2f} "
                  f"(originals {summary['mean_harmonic_energy_ratio_original']:.2f}, "
                  f"noise {summary['mean_harmonic_energy_ratio_noise']:.2f})")
            if losses is not None:
                print("teacher-forced loss on these notes, nats/sample: "
                      + ", ".join(f"{name} {value:.3f}" for name, value in losses.items()))
            bands = []  # (label, indices into results, description) per pitch band, low to high
            for low, high in ((0, 55), (55, 72), (72, 128)):
                band = [i for i, r in enumerate(results) if low <= r["pitch_midi"] < high]
                if band:
                    lo, hi = min(results[i]["pitch_midi"] for i in band), max(results[i]["pitch_midi"] for i in band)
                    bands.append((f"MIDI {lo}-{hi}", band,
                                  f"{len(band)} notes; period {rate / midi_to_hz(hi):.0f}-{rate / midi_to_hz(lo):.0f} samples"))
            if by_past is not None:
                # a pitched note's loss should drop once the decoder sees one period back
                edges = by_past["edges_samples"]
                print("teacher-forced loss (nats/sample) by the samples of past the decoder sees:")
                print(f"{'past':>14} " + " ".join(f"{f'{a}-{b - 1}':>8}" for a, b in zip(edges[:-1], edges[1:])))
                for label, band, about in bands:
                    print(f"{label:>14} " + " ".join(f"{v:8.2f}" for v in np.mean([by_past["per_note"][i] for i in band], axis=0))
                          + f"  ({about})")
            # the decoder's own gain from the same short past (32-63 samples) to its full receptive field
            short_bin = by_past["edges_samples"].index(32) if by_past and 32 in by_past["edges_samples"] else None
            print("linear predictors fitted to each note itself (a reference), nats/sample: 32 lags, and with 5 "
                  "lags around the period; their gain, and the decoder's from 32-63 samples of past to all:")
            print(f"{'':>14} {'32 lags':>8} {'+period':>8} {'gain':>8}" + (f" {'decoder':>8}" if short_bin is not None else ""))
            for label, band, about in bands:
                fitted = [results[i]["linear_prediction_nats"] for i in band if results[i]["linear_prediction_nats"]]
                if fitted:
                    short = np.mean([f["short_term"] for f in fitted])
                    both = np.mean([f["short_term_and_period"] for f in fitted])
                    decoder = (f" {np.mean([by_past['per_note'][i][short_bin] - by_past['per_note'][i][-1] for i in band]):8.2f}"
                               if short_bin is not None else "")
                    print(f"{label:>14} {short:8.2f} {both:8.2f} {short - both:8.2f}{decoder}  ({about})")
    except (FileNotFoundError, ValueError, FloatingPointError) as error:
        return fail(str(error), 2)
    except KeyboardInterrupt:
        print(f"interrupted: the run is checkpointed in {args.run_dir}; the same command resumes it", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
