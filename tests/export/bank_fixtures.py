"""A tiny synthetic timbre-grid bank written into a test's ``tmp_path``.

Cell (i, j) at pad position (x, y) plays a harmonic tone at its root's exact equal-tempered f0 with
partial amplitudes ``H1 = 0.3``, ``H2 = 0.3 * x`` (brightness follows X) and ``H3 = 0.2 * y``
(follows Y), all in sine phase, so the cells are phase-coherent and a crossfade of two cells has
``H2 / H1`` equal to the gain-weighted mean of their ``x``. Level scales with velocity / 127. The
envelope is a 5 ms raised-cosine attack, a slow 0.5 dB/s decay and a 20 ms fade at the end. Every
WAV is 24-bit PCM with a ``smpl`` chunk (root key, sustain loop from
:func:`~nsynth_live.export.sample_loop.find_sustain_loop` in 0.3 s .. 0.8 x the note).

Also two checking helpers for bank files: :func:`parse_sfz` (regions with inherited opcodes) and
:func:`tiles` (integer ranges covering 0..127 exactly once).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nsynth_live.data.bank_index import BANK_INDEX_NAME, SAMPLES_DIR, BankIndex, BankSample
from nsynth_live.export.riff import smpl_payload, write_pcm24_wav
from nsynth_live.export.sample_loop import find_sustain_loop
from nsynth_live.fileio import write_json_atomic

H1 = 0.3  # amplitude of the fundamental at velocity 127
H2_PER_X = 0.3  # amplitude of harmonic 2 per unit of x
H3_PER_Y = 0.2  # amplitude of harmonic 3 per unit of y
DECAY_DB_PER_SECOND = 0.5
ATTACK_SECONDS = 0.005
END_FADE_SECONDS = 0.02
LOOP_SEARCH_START_SECONDS = 0.3


def midi_to_hz(pitch_midi: float) -> float:
    """Equal-tempered frequency, A4 = MIDI 69 = 440 Hz."""
    return 440.0 * 2.0 ** ((pitch_midi - 69) / 12)


def synthetic_note(x: float, y: float, *, pitch_midi: int, velocity: int, sample_rate: int,
                   note_seconds: float) -> np.ndarray:
    """The note of a cell at pad position (x, y): (time,) float64 in [-1, 1)."""
    t = np.arange(int(round(note_seconds * sample_rate))) / sample_rate
    f0 = midi_to_hz(pitch_midi)
    tone = (H1 * np.sin(2 * np.pi * f0 * t) + H2_PER_X * x * np.sin(2 * np.pi * 2 * f0 * t)
            + H3_PER_Y * y * np.sin(2 * np.pi * 3 * f0 * t))
    envelope = 10.0 ** (-DECAY_DB_PER_SECOND * t / 20)
    attack = t < ATTACK_SECONDS
    envelope[attack] *= 0.5 - 0.5 * np.cos(np.pi * t[attack] / ATTACK_SECONDS)
    tail = t > t[-1] - END_FADE_SECONDS
    envelope[tail] *= np.linspace(1.0, 0.0, int(tail.sum()))
    return tone * envelope * (velocity / 127)


def bilinear_weights(x: float, y: float) -> tuple[float, float, float, float]:
    """Corner weights in the index's order (0, 0), (1, 0), (0, 1), (1, 1)."""
    return ((1 - x) * (1 - y), x * (1 - y), (1 - x) * y, x * y)


def make_synthetic_bank(
    bank_dir: Path,
    *,
    grid_size: int = 3,
    pitches: tuple[int, ...] = (60, 64),
    velocities: tuple[int, ...] = (100,),
    sample_rate: int = 48_000,
    note_seconds: float = 1.5,
    with_loops: bool = True,
    name: str = "synthetic",
) -> BankIndex:
    """Write the WAVs and ``bank.json`` of a synthetic bank into ``bank_dir`` and return its index."""
    bank_dir = Path(bank_dir)
    cells: dict[str, str] = {}
    samples: dict[str, BankSample] = {}
    probe = BankIndex(name=name, sample_rate=sample_rate, grid_size=grid_size, grid_scheme="bilinear",
                      corners=("a", "b", "c", "d"), pitches=tuple(pitches), velocities=tuple(velocities),
                      cells={}, samples={})
    for j in range(grid_size):
        for i in range(grid_size):
            x, y = probe.cell_xy(i, j)
            sound = f"c{i}_{j}"
            cells[f"{i},{j}"] = sound
            for pitch in pitches:
                for velocity in velocities:
                    audio = synthetic_note(x, y, pitch_midi=pitch, velocity=velocity, sample_rate=sample_rate,
                                           note_seconds=note_seconds)
                    loop_start = loop_end = 0
                    if with_loops:
                        loop = find_sustain_loop(
                            audio, sample_rate=sample_rate, f0_hz=midi_to_hz(pitch),
                            search_start_seconds=LOOP_SEARCH_START_SECONDS, search_end_seconds=0.8 * note_seconds)
                        loop_start, loop_end = loop.start, loop.end
                    relative = f"{SAMPLES_DIR}/{name}_{sound}_{pitch:03d}_v{velocity:03d}.wav"
                    smpl = smpl_payload(sample_rate=sample_rate, root_key=pitch,
                                        loop_start=loop_start, loop_end=loop_end)
                    write_pcm24_wav(bank_dir / relative, audio, sample_rate=sample_rate, extra_chunks=[(b"smpl", smpl)])
                    samples[f"{sound}/{pitch}/{velocity}"] = BankSample(
                        path=relative, pitch_midi=pitch, velocity=velocity, weights=bilinear_weights(x, y),
                        loop_start=loop_start, loop_end=loop_end, frames=audio.shape[0])
    index = BankIndex(name=name, sample_rate=sample_rate, grid_size=grid_size, grid_scheme="bilinear",
                      corners=("a", "b", "c", "d"), pitches=tuple(pitches), velocities=tuple(velocities),
                      cells=cells, samples=samples, source={"backend": "synthetic test tones"})
    index.check()
    write_json_atomic(bank_dir / BANK_INDEX_NAME, index.to_json())
    return index


def parse_sfz(text):
    """Regions of an SFZ text as dicts of opcodes, with <global> and <group> opcodes inherited."""
    text = re.sub(r"//[^\n]*", "", text)
    regions, scope, current = [], {"global": {}, "group": {}}, None
    for header, body in re.findall(r"<(\w+)>([^<]*)", text):
        opcodes = dict(re.findall(r"(\w+)=(\S+)", body))
        if header in ("global", "group"):
            scope[header] = opcodes
            if header == "global":
                scope["group"] = {}
        elif header == "region":
            regions.append({**scope["global"], **scope["group"], **opcodes})
        current = header
    assert current == "region"
    return regions


def tiles(ranges, lo=0, hi=127):
    """True if the inclusive integer ranges cover lo..hi exactly once."""
    covered = np.zeros(hi + 1, dtype=int)
    for a, b in ranges:
        covered[a : b + 1] += 1
    return bool(np.all(covered[lo:] == 1) and np.all(covered[:lo] == 0))
