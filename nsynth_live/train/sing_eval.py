"""Evaluation of generated SING notes: pitch accuracy against the MIDI pitch."""

from __future__ import annotations

import numpy as np
import torch

from nsynth_live.functional.midi import cents_between, midi_to_hz
from nsynth_live.models.sing import Sing


@torch.no_grad()
def pitch_accuracy(sing: Sing, notes, *, pitch_min_midi: int, pitch_max_midi: int) -> dict:
    """Median absolute pitch error (cents) and share within 50 cents of generated notes.

    ``notes`` is a ``NoteTensors``; notes outside ``[pitch_min_midi, pitch_max_midi]`` are skipped.
    The f0 of each generated note is estimated over its held part (0.1-2.5 s). A note without a
    stable pitch counts as a miss (its error is infinite).
    """
    from nsynth_live.functional.pitch import NoStablePitchError, estimate_f0_hz  # noqa: PLC0415

    sing.eval()
    sr = sing.config.sample_rate
    keep = [(i, int(p)) for i, p in enumerate(notes.pitch.tolist()) if pitch_min_midi <= p <= pitch_max_midi]
    errors = []
    unpitched = 0
    for start in range(0, len(keep), 64):
        chunk = keep[start:start + 64]
        idx = torch.tensor([i for i, _ in chunk])
        audio = sing.generate(sing.instrument_embedding(notes.instrument[idx]), notes.pitch[idx], notes.velocity[idx]).numpy()
        for row, (_, pitch) in zip(audio, chunk):
            segment = row[int(0.1 * sr):int(2.5 * sr)]
            try:
                f0 = estimate_f0_hz(segment, sample_rate=sr)
                errors.append(abs(float(cents_between(f0, midi_to_hz(pitch)))))
            except NoStablePitchError:
                unpitched += 1
                errors.append(float("inf"))
    errors = np.asarray(errors)
    return {
        "notes": int(len(errors)),
        "unpitched": unpitched,
        "median_abs_cents": float(np.median(errors)),
        "share_within_50_cents": float(np.mean(errors <= 50.0)),
    }
