"""The one-command recipe behind ``nsynth-train-v3`` (``export/train_v3.py``): 48-kHz dataset -> training ->
held-out evaluation -> export -> report."""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from nsynth_live.data.soundfont import DONE_MARKER, FULL_BAND_DATASET, build_soundfont_dataset
from nsynth_live.fileio import atomic_write_bytes, remove_stale_temporaries, sha256_of_file, write_json_atomic
from nsynth_live.functional.spectral import spectral_loss
from nsynth_live.models.checkpoint import save_sing
from nsynth_live.models.sing_configs import SING_V3, SING_V3_HARMONIC_ONLY
from nsynth_live.train.sing_harmonic import HarmonicTrainConfig, HarmonicTrainer, NoteSet, ddsp_spectral_loss

logger = logging.getLogger(__name__)

SING_PAPER_HELDOUT_SPECTRAL_LOSS = 0.051  # SING paper, Table 1 (spectral loss, test, pitch completion)
EVAL_BATCH = 8  # notes per evaluation batch (whole 4-s notes)
SING_LOSS_SAMPLE_RATE = 16_000  # Hz: SING's loss is defined on NSynth's 16-kHz notes


def heldout_losses(model, notes: NoteSet) -> dict:
    """Spectral losses of whole generated notes against the held-out originals.

    Returns
    -------
    dict
        ``sing_l1_16k``: SING's loss (l1 of ``log(1 + |STFT|^2)``, 1024-point STFT, hop 256; SING section
        3.3) after resampling both to 16 kHz (soxr), comparable with the paper's 0.051;
        ``sing_l1_full_band``: the same at the model's rate with the STFT scaled to the same duration
        (3072 points, hop 768 at 48 kHz); ``ddsp_multiscale``: the training loss; ``silence_sing_l1_16k``:
        the 16-kHz loss of an all-zero output (a floor).
    """
    import soxr  # noqa: PLC0415

    cfg = model.config
    scale = cfg.sample_rate // SING_LOSS_SAMPLE_RATE
    totals = {"sing_l1_16k": 0.0, "sing_l1_full_band": 0.0, "ddsp_multiscale": 0.0, "silence_sing_l1_16k": 0.0}
    count = 0
    model.eval()
    for start in range(0, len(notes), EVAL_BATCH):
        rows = torch.arange(start, min(start + EVAL_BATCH, len(notes)))
        with torch.no_grad():
            generated = model.generate(model.instrument_embedding(notes.instrument[rows]), notes.pitch[rows],
                                       notes.velocity[rows])
        target = notes.audio[rows, :cfg.note_samples].to(torch.float32) / 32768.0
        low_gen = torch.from_numpy(np.stack([soxr.resample(a, cfg.sample_rate, SING_LOSS_SAMPLE_RATE) for a in generated.numpy()]))
        low_tgt = torch.from_numpy(np.stack([soxr.resample(a, cfg.sample_rate, SING_LOSS_SAMPLE_RATE) for a in target.numpy()]))
        n = len(rows)
        totals["sing_l1_16k"] += n * float(spectral_loss(low_gen, low_tgt))
        totals["silence_sing_l1_16k"] += n * float(spectral_loss(torch.zeros_like(low_tgt), low_tgt))
        totals["sing_l1_full_band"] += n * float(spectral_loss(generated, target, n_fft=1024 * scale,
                                                               hop_length_samples=256 * scale))
        totals["ddsp_multiscale"] += n * float(ddsp_spectral_loss(generated, target))
        count += n
    return {key: round(value / max(count, 1), 5) for key, value in totals.items()}


def learned_inharmonicity(model) -> dict | None:
    """Median learned stiff-string coefficient ``B`` per instrument over MIDI 36-84, or None."""
    cfg = model.config
    if not cfg.inharmonicity:
        return None
    pitches = torch.arange(36, 85)
    result = {}
    with torch.no_grad():
        for row in range(cfg.num_instruments):
            emb = model.instrument_embedding(torch.full((len(pitches),), row))
            result[row] = float(model.inharmonicity(emb, pitches).median())
    return result


DEFAULT_PRESET_CORNERS = ("organ_acoustic_005", "string_acoustic_011", "flute_acoustic_016", "reed_acoustic_015")
MEASURE_PITCHES = tuple(range(36, 85))  # every semitone the model was trained on
MEASURE_VELOCITY = 100


def measure_for_report(onnx_path: Path, *, heldout_pitches: dict[str, list[int]]) -> dict:
    """:func:`~nsynth_live.train.model_measures.measure_model` of an exported model on the default
    preset's corners (every semitone 36-84, velocity 100, identity over all instruments), plus the
    same summary restricted to each corner's held-out pitches."""
    from nsynth_live.runtime.sing_onnx import load_synth  # noqa: PLC0415
    from nsynth_live.train.model_measures import _instrument_summary, measure_model  # noqa: PLC0415

    synth = load_synth(onnx_path)
    result = measure_model(synth, DEFAULT_PRESET_CORNERS, MEASURE_PITCHES, MEASURE_VELOCITY,
                           progress=lambda line: logger.info("measures: %s", line))
    held = [note for name, entry in result["instruments"].items() for note in entry["notes"]
            if note["pitch"] in heldout_pitches.get(name, ())]
    result["heldout_summary"] = _instrument_summary(held, harmonic=True) if held else None
    result["heldout_notes"] = len(held)
    from nsynth_live.train.model_measures import velocity_brightness  # noqa: PLC0415

    result["velocity_brightness"] = velocity_brightness(synth, DEFAULT_PRESET_CORNERS)
    return result


def render_measures_markdown(measures: dict) -> str:
    """The measures' tables (:func:`~nsynth_live.train.model_measures.format_report`) as a Markdown block."""
    from nsynth_live.train.model_measures import format_report  # noqa: PLC0415

    from nsynth_live.train.model_measures import _fmt  # noqa: PLC0415

    held = measures.get("heldout_summary")
    held_line = ""
    if held:
        m, src = held["model"], held["source"]
        held_line = (f"\nOn the corners' held-out pitches only ({measures['heldout_notes']} notes): in tune within "
                     f"20 cents {_fmt(m['tuning_share_within_20_cents'], '.0%')} (source "
                     f"{_fmt(src['tuning_share_within_20_cents'], '.0%')}), median |cents| "
                     f"{_fmt(m['tuning_median_abs_cents'])} (source {_fmt(src['tuning_median_abs_cents'])}).\n")
    from nsynth_live.train.model_measures import format_velocity_brightness  # noqa: PLC0415

    if measures.get("velocity_brightness"):
        held_line += ("\nVelocity against brightness (spectral centroid of 0.05-1 s) and level at MIDI 60, model / "
                      "source:\n\n```\n" + format_velocity_brightness(measures["velocity_brightness"]) + "\n```\n")
    return ("Default preset's corners, every semitone MIDI 36-84 at velocity 100, against FluidSynth playing "
            "the same SoundFont instruments at 48 kHz (`python benchmarks/model_measures.py --model ...`; "
            "definitions in `docs/measures.md`):\n\n```\n" + format_report(measures) + "\n```\n" + held_line)


def run(args: argparse.Namespace) -> int:
    """Build the dataset if missing, train (or resume), evaluate, export and write the report.

    ``args`` as :func:`nsynth_live.cli.train_v3.build_parser` returns them; overwriting model files was
    checked by the command. Returns the exit status.
    """
    from nsynth_live.cli.train_v3 import model_files  # noqa: PLC0415
    from nsynth_live.runtime.sing_export import export_sing_onnx  # noqa: PLC0415

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    models = Path(args.models_dir)
    remove_stale_temporaries(models, names=[path.name for path in model_files(models, args.name)])
    remove_stale_temporaries(args.run_dir, names=["train_state.pt"])
    wall_start = time.monotonic()
    data = Path(args.data)
    if not (data / DONE_MARKER).is_file():
        logger.info("rendering the 48-kHz SoundFont dataset into %s", data)
        build_soundfont_dataset(FULL_BAND_DATASET, data)
    model_config = SING_V3_HARMONIC_ONLY if args.no_inharmonicity else SING_V3
    train_config = HarmonicTrainConfig(steps=args.steps, threads=args.threads)
    trainer = HarmonicTrainer(dataset_dir=data, run_dir=args.run_dir, model_config=model_config,
                              train_config=train_config)
    if trainer.step < train_config.steps:
        notes = NoteSet(trainer.dataset, trainer.train_indices, trainer.instrument_names, model_config.note_samples,
                        model_config.sample_rate)
        trainer.run(notes=notes)
        del notes
    model = trainer.model.eval()

    models.mkdir(parents=True, exist_ok=True)
    checkpoint_path = models / f"{args.name}.pt"
    onnx_path = models / f"{args.name}.onnx"
    save_sing(model, trainer.instrument_names, checkpoint_path)
    export_sing_onnx(model, trainer.instrument_names, onnx_path, name=args.name)

    heldout = NoteSet(trainer.dataset, trainer.heldout_indices, trainer.instrument_names, model_config.note_samples,
                      model_config.sample_rate)
    losses = heldout_losses(model, heldout)
    measures = None
    if not args.skip_measures:
        held_pitches: dict[str, list[int]] = {}
        for note in heldout.notes:
            held_pitches.setdefault(note.instrument_str, []).append(note.pitch)
        measures = measure_for_report(onnx_path, heldout_pitches=held_pitches)
    files = {p.name: {"bytes": p.stat().st_size, "sha256": sha256_of_file(p)}
             for p in (checkpoint_path, onnx_path, onnx_path.with_name(f"{args.name}.replay.onnx"))}
    report = {
        "command": "python export/train_v3.py" + (" --force" if args.force else "")
        + (f" --steps {args.steps}" if args.steps != trainer.train_config.steps else "")
        + (" --no-inharmonicity" if args.no_inharmonicity else ""),
        "training_seconds": round(trainer.elapsed_seconds, 1),
        "command_wall_seconds_this_invocation": round(time.monotonic() - wall_start, 1),
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads",
        "dataset": {"notes": len(trainer.dataset), "train_notes": len(trainer.train_indices),
                    "heldout_notes": len(trainer.heldout_indices), "instruments": trainer.instrument_names,
                    "manifest": {k: v for k, v in json.loads((data / "manifest.json").read_text()).items()
                                 if k != "instruments"}},
        "model_config": model_config.to_dict(),
        "train_config": asdict(train_config),
        "heldout_losses": losses,
        "learned_inharmonicity_median": learned_inharmonicity(model),
        "measures": measures,
        "history": trainer.history,
        "files": files,
    }
    write_json_atomic(models / f"{args.name}.report.json", report)
    atomic_write_bytes(models / f"{args.name}.md", render_report(report).encode("utf-8"), overwrite=True)
    logger.info("wrote %s, %s and the report", checkpoint_path, onnx_path)
    return 0


def render_report(r: dict) -> str:
    """The Markdown report of a v3 training (``models/<name>.md``)."""
    mc, tc, loss, d = r["model_config"], r["train_config"], r["heldout_losses"], r["dataset"]
    files = "\n".join(f"| `{name}` | {f['bytes']} | `{f['sha256']}` |" for name, f in r["files"].items())
    history = r["history"]
    curve = ", ".join(f"{h['step']}: {h['loss']:.3f}" for h in history[:: max(1, len(history) // 8)])
    measures = r.get("measures")
    measures_md = render_measures_markdown(measures) if measures else "(not measured: --skip-measures)"
    inharm = r.get("learned_inharmonicity_median")
    inharm_md = ("; ".join(f"{d['instruments'][int(k)]}: {v:.1e}" for k, v in inharm.items())
                 if inharm else "none (strictly harmonic partials)")
    return f"""# Model v3 (`{mc['name']}`): harmonic-plus-noise SING at {mc['sample_rate'] // 1000} kHz

Reproduce: `{r['command']}` (renders the 48-kHz dataset if missing, trains, resumes from
`runs/sing_v3/train_state.pt` if interrupted, evaluates, exports). Machine: {r['machine']}.

## Files
| file | bytes | sha256 |
|---|---|---|
{files}

## Model
SING's sequence generator (LSTM {mc['lstm_layers']} x {mc['lstm_hidden']} over instrument {mc['instrument_dims']},
pitch {mc['pitch_dims']}, velocity {mc['velocity_dims']} and time {mc['time_dims']} embeddings) outputs, every
{mc['hop_length_samples']} samples ({1000 * mc['hop_length_samples'] / mc['sample_rate']:.1f} ms), the controls of a
harmonic-plus-noise synthesiser: a total amplitude, a distribution over {mc['n_harmonics']} partials at the
note's exact MIDI f0 (muted above 0.45 x the sample rate) and {mc['n_noise_bands']} noise-band gains.
Learned stiff-string stretch per (instrument, pitch): {"yes" if mc['inharmonicity'] else "no"}.
No pre-roll and no look-ahead: a note's first hop is its first {mc['hop_length_samples']} samples.

## Training
- {tc['steps']} steps of {tc['batch_size']} crops of {tc['crop_frames']} frames
  ({tc['crop_frames'] * mc['hop_length_samples'] / mc['sample_rate']:.2f} s; {100 * tc['attack_crop_share']:.0f}% at the
  note's start), Adam lr {tc['learning_rate']} decayed x{tc['lr_decay']}, truncated backpropagation
  {tc['gradient_frames_before']} frames before each crop; DDSP's multi-scale spectral loss (FFT
  {', '.join(map(str, tc['spectral_n_ffts']))}).
- Training time: {r['training_seconds']:.0f} s ({r['training_seconds'] / 3600:.2f} h); this invocation
  {r['command_wall_seconds_this_invocation']:.0f} s in all.
- Dataset: {d['notes']} notes at {mc['sample_rate']} Hz ({d['manifest']['soundfont_name']}), pitch-completion split:
  {d['train_notes']} training notes, {d['heldout_notes']} held out.
- Loss (mean over each 100 steps): {curve}.

## Held-out notes (whole notes, never seen in training)
| loss | v3 | SING paper (NSynth) |
|---|---|---|
| SING's spectral loss (l1, log(1 + power), 1024-point STFT) at 16 kHz | {loss['sing_l1_16k']:.4f} | {SING_PAPER_HELDOUT_SPECTRAL_LOSS} |
| the same of an all-zero output (a floor) | {loss['silence_sing_l1_16k']:.4f} | - |
| the same at 48 kHz (3072-point STFT, hop 768: the same durations) | {loss['sing_l1_full_band']:.4f} | - |
| DDSP multi-scale loss (the training loss) | {loss['ddsp_multiscale']:.4f} | - |

Learned stretch (median B over MIDI 36-84): {inharm_md}.

## Against the SoundFont
{measures_md}
"""
