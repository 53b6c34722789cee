"""Measure wavetable extraction and f0 estimation speed; prints a small report (no pass/fail).

Run from the repository root::

    python benchmarks/bench_wavetable.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def band_limited_saw(f0_hz: float, *, sample_rate: int, duration_seconds: float):
    import numpy as np

    t = np.arange(int(duration_seconds * sample_rate)) / sample_rate
    n_harmonics = int(np.ceil(sample_rate / 2 / f0_hz)) - 1
    h = np.arange(1, n_harmonics + 1)
    x = np.zeros_like(t)
    for k in h:  # one harmonic at a time keeps memory small
        x += np.sin(2 * np.pi * k * f0_hz * t) / k
    return 0.3 * x / np.abs(x).max()


def main() -> None:
    from nsynth_live.export.wavetable import WavetableConfig, extract_wavetable
    from nsynth_live.functional.midi import midi_to_hz
    from nsynth_live.functional.pitch import estimate_f0_hz

    print(f"{'case':48s} {'seconds':>8s}")
    for sample_rate, pitch_midi, n_frames in [(16_000, 36, 256), (16_000, 60, 256), (16_000, 84, 256), (44_100, 36, 256)]:
        x = band_limited_saw(float(midi_to_hz(pitch_midi)), sample_rate=sample_rate, duration_seconds=4.0)
        start = time.perf_counter()
        estimate_f0_hz(x, sample_rate=sample_rate)
        f0_seconds = time.perf_counter() - start
        start = time.perf_counter()
        extract_wavetable(x, sample_rate=sample_rate, config=WavetableConfig(n_frames=n_frames))
        table_seconds = time.perf_counter() - start
        print(f"{f'estimate_f0_hz, 4 s note, {sample_rate} Hz, MIDI {pitch_midi}':48s} {f0_seconds:8.3f}")
        print(f"{f'extract_wavetable {n_frames} frames, {sample_rate} Hz, MIDI {pitch_midi}':48s} {table_seconds:8.3f}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
