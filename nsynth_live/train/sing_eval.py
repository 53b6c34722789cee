"""Evaluation of generated SING notes: pitch accuracy and the decoder's frame-rate artefacts."""

from __future__ import annotations

import math

import numpy as np
import torch

from nsynth_live.functional.midi import cents_between, midi_to_hz
from nsynth_live.functional.pitch import estimate_f0_hz_or_nan
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


def frame_line_energy_share(audio: np.ndarray, *, f0_hz: float, sample_rate: int, hop_length_samples: int,
                            line_tolerance_hz: float = 0.6, harmonic_clearance_hz: float = 2.0) -> float:
    """Share of a note's energy on exact multiples of the frame rate that are not its harmonics.

    A sinusoid at ``k * sample_rate / hop_length_samples`` (62.5 Hz for SING) completes whole cycles
    in every hop, so a frame-based decoder can emit the same waveform in each frame to make it. A
    decoder trained on spectral magnitudes drifts there: the note's fundamental or a partial comes
    out at such a line instead of at a harmonic of its pitch (MIDI 48, 130.8 Hz, with its
    fundamental at 125.0 Hz), a rough, out-of-tune component. Measured on a Hann-windowed spectrum
    of the whole input (0.42-Hz bins over 2.4 s); bins within ``harmonic_clearance_hz`` of a
    harmonic of ``f0_hz`` are not counted. Recorded notes measure about 0.001.

    Parameters
    ----------
    audio : numpy.ndarray, shape (time,), float
        The held part of one note (a second or more, so that lines and harmonics separate).
    f0_hz : float
        The note's fundamental, Hz.
    sample_rate, hop_length_samples : int
    line_tolerance_hz, harmonic_clearance_hz : float

    Returns
    -------
    float
        In [0, 1]; 0.0 for silence.

    Raises
    ------
    ValueError
        If ``audio`` is not 1-D or is shorter than four hops, or ``f0_hz`` is not a positive number.
    """
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 1 or audio.shape[0] < 4 * hop_length_samples:
        raise ValueError(f"audio must be 1-D with >= {4 * hop_length_samples} samples, got shape {audio.shape}")
    if not (math.isfinite(f0_hz) and f0_hz > 0):
        raise ValueError(f"f0_hz must be a positive number, got {f0_hz}")
    audio = audio - audio.mean()
    n_fft = 4 * audio.shape[0]  # zero-padded: bins a quarter of the resolution apart
    power = np.abs(np.fft.rfft(audio * np.hanning(audio.shape[0]), n_fft)) ** 2
    total = power.sum()
    if total <= 0.0:
        return 0.0
    frequency = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    rate = sample_rate / hop_length_samples
    line = np.round(frequency / rate)
    on_line = (line >= 1) & (np.abs(frequency - line * rate) < line_tolerance_hz)
    harmonic = np.maximum(1, np.round(frequency / f0_hz))
    on_harmonic = np.abs(frequency - harmonic * f0_hz) < harmonic_clearance_hz
    return float(power[on_line & ~on_harmonic].sum() / total)


def _shares(errors: np.ndarray) -> dict:
    return {"notes": int(errors.shape[0]), "median_abs_cents": float(np.median(errors)) if errors.size else None,
            "share_within_50_cents": float(np.mean(errors <= 50.0)) if errors.size else None}


@torch.no_grad()
def pitch_accuracy(sing: Sing, notes, *, pitch_min_midi: int, pitch_max_midi: int) -> dict:
    """Pitch error and frame-rate artefacts of generated notes, against the MIDI pitch and the originals.

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
        ``hop_rate_modulation`` and ``frame_line_energy_share``: per band, the median
        :func:`hop_rate_modulation_depth` and :func:`frame_line_energy_share` of the generated
        notes and of the originals.
    """
    sing.eval()
    sr = sing.config.sample_rate
    hop = sing.config.hop_length_samples
    held = slice(int(HELD_SECONDS[0] * sr), int(HELD_SECONDS[1] * sr))
    keep = [(i, int(p)) for i, p in enumerate(notes.pitch.tolist()) if pitch_min_midi <= p <= pitch_max_midi]
    vs_midi, vs_original, pitches, depths, lines = [], [], [], [], []
    originals_unpitched = 0
    for start in range(0, len(keep), 64):
        chunk = keep[start:start + 64]
        idx = torch.tensor([i for i, _ in chunk])
        audio = sing.generate(sing.instrument_embedding(notes.instrument[idx]), notes.pitch[idx],
                              notes.velocity[idx]).numpy()
        for row, (i, pitch) in zip(audio, chunk):
            original = notes.audio[i].numpy()
            f0 = estimate_f0_hz_or_nan(row[held], sample_rate=sr)
            f0_original = estimate_f0_hz_or_nan(original[held], sample_rate=sr)
            vs_midi.append(abs(float(cents_between(f0, midi_to_hz(pitch)))) if math.isfinite(f0) else math.inf)
            if math.isfinite(f0_original):
                vs_original.append((pitch, abs(float(cents_between(f0, f0_original))) if math.isfinite(f0) else math.inf))
            else:
                originals_unpitched += 1
            pitches.append(pitch)
            depths.append((hop_rate_modulation_depth(row[held], sample_rate=sr, hop_length_samples=hop),
                           hop_rate_modulation_depth(original[held], sample_rate=sr, hop_length_samples=hop)))
            # the note's own f0 where it has one: its harmonics are then not taken for lines
            lines.append((
                frame_line_energy_share(row[held], f0_hz=f0 if math.isfinite(f0) else midi_to_hz(pitch),
                                        sample_rate=sr, hop_length_samples=hop),
                frame_line_energy_share(original[held], sample_rate=sr, hop_length_samples=hop,
                                        f0_hz=f0_original if math.isfinite(f0_original) else midi_to_hz(pitch))))
    vs_midi = np.asarray(vs_midi)
    bands, modulation, frame_lines = {}, {}, {}
    for low, high in PITCH_BANDS:
        name = f"{low}-{high}"
        bands[name] = _shares(np.asarray([e for p, e in vs_original if low <= p <= high]))
        for table, measures in ((modulation, depths), (frame_lines, lines)):
            in_band = [m for p, m in zip(pitches, measures) if low <= p <= high]
            table[name] = {"notes": len(in_band),
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
        "frame_line_energy_share": frame_lines,
    }
