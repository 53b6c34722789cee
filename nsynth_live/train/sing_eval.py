"""Evaluation of generated SING notes: pitch accuracy and the decoder's hop-rate buzz."""

from __future__ import annotations

import math

import numpy as np
import torch

from nsynth_live.functional.midi import cents_between, midi_to_hz
from nsynth_live.models.sing import Sing

#: Held part of a note that the f0 and the modulation are measured on, seconds (NSynth notes are held 3 s).
HELD_SECONDS = (0.1, 2.5)
#: Window of the RMS envelope whose modulation at the hop rate is measured, samples (2 ms at 16 kHz).
ENVELOPE_WINDOW_SAMPLES = 32
#: Octave bands of the per-band figures: (lowest, highest) MIDI note number.
PITCH_BANDS = ((36, 47), (48, 59), (60, 71), (72, 84))


def hop_rate_modulation_depth(audio: np.ndarray, *, sample_rate: int, hop_length_samples: int) -> float:
    """Amplitude modulation of a note at its frame rate, ``sample_rate / hop_length_samples``.

    A frame-based decoder whose overlapping frames do not join in phase makes each note's loudness
    swell and dip once per hop: a buzz at 62.5 Hz for SING (hop 256 at 16 kHz). The depth is the
    amplitude of the RMS envelope's (2-ms window) component at that rate over the envelope's mean,
    both Hann-weighted over the whole note so that a steady low tone's own beating (its harmonics
    are f0 apart, 65.4 Hz at MIDI 36) does not leak in. A tone with 10% amplitude modulation at the
    hop rate reads 0.097 (the window's averaging takes 3%); a steady tone reads below 0.01.

    Parameters
    ----------
    audio : numpy.ndarray, shape (time,), float
    sample_rate, hop_length_samples : int

    Returns
    -------
    float
        >= 0; 0.0 for silence.

    Raises
    ------
    ValueError
        If ``audio`` is not 1-D or is shorter than four hops.
    """
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 1 or audio.shape[0] < 4 * hop_length_samples:
        raise ValueError(f"audio must be 1-D with >= {4 * hop_length_samples} samples, got shape {audio.shape}")
    envelope = np.sqrt(np.convolve(audio ** 2, np.ones(ENVELOPE_WINDOW_SAMPLES) / ENVELOPE_WINDOW_SAMPLES,
                                   mode="valid"))
    weights = np.hanning(envelope.shape[0])
    mean = float(np.sum(weights * envelope))
    if mean <= 0.0:
        return 0.0
    phase = 2.0 * np.pi * np.arange(envelope.shape[0]) / hop_length_samples
    return float(2.0 * abs(np.sum(weights * envelope * np.exp(-1j * phase))) / mean)


def _f0_or_nan(audio: np.ndarray, *, sample_rate: int) -> float:
    from nsynth_live.functional.pitch import NoStablePitchError, estimate_f0_hz  # noqa: PLC0415

    try:
        return float(estimate_f0_hz(audio, sample_rate=sample_rate))
    except NoStablePitchError:
        return float("nan")


def _shares(errors: np.ndarray) -> dict:
    return {"notes": int(errors.shape[0]), "median_abs_cents": float(np.median(errors)) if errors.size else None,
            "share_within_50_cents": float(np.mean(errors <= 50.0)) if errors.size else None}


@torch.no_grad()
def pitch_accuracy(sing: Sing, notes, *, pitch_min_midi: int, pitch_max_midi: int) -> dict:
    """Pitch error and hop-rate buzz of generated notes, against the MIDI pitch and the original notes.

    Each note is generated from its (instrument, pitch, velocity) and measured over its held part
    (0.1-2.5 s) with ``estimate_f0_hz``. A generated note without a stable pitch counts as a miss
    (infinite error).

    Parameters
    ----------
    sing : Sing
    notes : NoteTensors
        ``pitch``, ``velocity``, ``instrument`` (``(notes,)`` int64) and ``audio`` (``(notes, time)``
        float32, the originals); notes outside ``[pitch_min_midi, pitch_max_midi]`` are skipped.
    pitch_min_midi, pitch_max_midi : int

    Returns
    -------
    dict
        ``notes``, ``unpitched``, ``median_abs_cents`` and ``share_within_50_cents`` against the
        MIDI pitch; ``vs_original``: the same against each original's own f0 (a SoundFont sample
        may sound off its MIDI pitch; originals without a stable pitch are left out and counted in
        ``originals_unpitched``), in all and per octave band (``bands``, keyed ``"36-47"`` ..);
        ``hop_rate_modulation``: per band, the median :func:`hop_rate_modulation_depth` of the
        generated notes and of the originals.
    """
    sing.eval()
    sr = sing.config.sample_rate
    hop = sing.config.hop_length_samples
    held = slice(int(HELD_SECONDS[0] * sr), int(HELD_SECONDS[1] * sr))
    keep = [(i, int(p)) for i, p in enumerate(notes.pitch.tolist()) if pitch_min_midi <= p <= pitch_max_midi]
    vs_midi, vs_original, pitches, depths = [], [], [], []
    originals_unpitched = 0
    for start in range(0, len(keep), 64):
        chunk = keep[start:start + 64]
        idx = torch.tensor([i for i, _ in chunk])
        audio = sing.generate(sing.instrument_embedding(notes.instrument[idx]), notes.pitch[idx],
                              notes.velocity[idx]).numpy()
        for row, (i, pitch) in zip(audio, chunk):
            original = notes.audio[i].numpy()
            f0 = _f0_or_nan(row[held], sample_rate=sr)
            f0_original = _f0_or_nan(original[held], sample_rate=sr)
            vs_midi.append(abs(float(cents_between(f0, midi_to_hz(pitch)))) if math.isfinite(f0) else math.inf)
            if math.isfinite(f0_original):
                vs_original.append((pitch, abs(float(cents_between(f0, f0_original))) if math.isfinite(f0) else math.inf))
            else:
                originals_unpitched += 1
            pitches.append(pitch)
            depths.append((hop_rate_modulation_depth(row[held], sample_rate=sr, hop_length_samples=hop),
                           hop_rate_modulation_depth(original[held], sample_rate=sr, hop_length_samples=hop)))
    vs_midi = np.asarray(vs_midi)
    bands, modulation = {}, {}
    for low, high in PITCH_BANDS:
        name = f"{low}-{high}"
        bands[name] = _shares(np.asarray([e for p, e in vs_original if low <= p <= high]))
        in_band = [d for p, d in zip(pitches, depths) if low <= p <= high]
        modulation[name] = {"notes": len(in_band),
                            "generated_median": float(np.median([g for g, _ in in_band])) if in_band else None,
                            "original_median": float(np.median([o for _, o in in_band])) if in_band else None}
    return {
        "notes": int(len(vs_midi)),
        "unpitched": int(np.isinf(vs_midi).sum()),
        "median_abs_cents": float(np.median(vs_midi)) if vs_midi.size else None,
        "share_within_50_cents": float(np.mean(vs_midi <= 50.0)) if vs_midi.size else None,
        "vs_original": {**_shares(np.asarray([e for _, e in vs_original])),
                        "originals_unpitched": originals_unpitched, "bands": bands},
        "hop_rate_modulation": modulation,
    }
