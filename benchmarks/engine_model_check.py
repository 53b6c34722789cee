"""Listen to a model through the engine by measuring: pitch, level, NaN, long notes, morph.

Usage (from the repository root)::

    python benchmarks/engine_model_check.py                        # models/sing_default.onnx
    python benchmarks/engine_model_check.py --model PATH.onnx --out-dir /tmp/check

Writes a small MIDI file (4 single notes, then a C-major chord held 7 s, longer than the model's
265 frames) to ``--out-dir`` (default: a fresh temporary folder), renders it offline with the live
engine (``render_midi_file``, the same ``render_hop`` as the live path) for both sustain policies
(crossfade loop and held time index), writes the WAVs there and prints, per render: NaN count,
peak, RMS; per single note: its f0 and its strongest spectral peak vs the MIDI pitch (cents), the
peak flagged when it sits on the 62.5-Hz frame-rate grid and off the note's harmonics; for the held
chord: 50-ms RMS min / median and the largest sample jump vs the steady part; the level after the
release. Then a morph check: XY (0,0) -> (1,1) during a held note, the spectral-centroid trajectory
(10 % and 90 % times after the event) and the largest sample jump around it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NOTES = [(48, 0.0, 1.0), (60, 1.2, 2.2), (69, 2.4, 3.4), (76, 3.6, 4.6)]  # (pitch, on s, off s)
CHORD = [(60, 5.0, 12.0), (64, 5.0, 12.0), (67, 5.0, 12.0)]


def write_test_midi(path: Path) -> Path:
    import mido

    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))  # 960 ticks per second
    timeline = []
    for pitch, on, off in NOTES + CHORD:
        timeline += [(on, mido.Message("note_on", note=pitch, velocity=100)),
                     (off, mido.Message("note_off", note=pitch, velocity=0))]
    now = 0.0
    for at, message in sorted(timeline, key=lambda item: item[0]):
        message.time = int(round((at - now) * 960))
        track.append(message)
        now = at
    midi.save(str(path))
    return path


def peak_frequency_hz(signal, sample_rate, *, min_hz=40.0):
    x = np.asarray(signal, np.float64) - np.mean(signal)
    n_fft = 1 << int(np.ceil(np.log2(len(x) * 4)))
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n_fft)) + 1e-20
    low = int(min_hz * n_fft / sample_rate)
    k = low + int(np.argmax(spectrum[low:-1]))
    a, b, c = np.log(spectrum[k - 1:k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * sample_rate / n_fft


def windowed_rms(x, window):
    n = len(x) // window
    return np.sqrt(np.mean(np.asarray(x[: n * window], np.float64).reshape(n, window) ** 2, axis=1))


def max_jump(x):
    return float(np.max(np.abs(np.diff(np.asarray(x, np.float64)))))


def centroid_hz(segment, sample_rate):
    power = np.abs(np.fft.rfft(segment * np.hanning(len(segment)))) ** 2
    return float((power * np.fft.rfftfreq(len(segment), 1 / sample_rate)).sum() / power.sum())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "sing_default.onnx")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args(argv)

    from nsynth_live.engine import Engine, EngineConfig, NoteOn, SetXY, SustainLoop
    from nsynth_live.functional.midi import cents_between, midi_to_hz
    from nsynth_live.functional.pitch import estimate_f0_hz_or_nan
    from nsynth_live.render.offline import render_midi_file
    from nsynth_live.runtime.sing_onnx import load_synth

    out_dir = args.out_dir or Path(tempfile.mkdtemp(prefix="engine_model_check_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    synth = load_synth(args.model)
    spec = synth.spec
    print(f"model {args.model}: pitch {spec.pitch_min_midi}..{spec.pitch_max_midi}, "
          f"{spec.time_steps} frames, {len(spec.instrument_names)} instruments, providers {synth.providers}")
    midi_path = write_test_midi(out_dir / "engine_check.mid")
    rate = 48000
    for mode in ("crossfade", "hold"):
        engine = Engine(synth, args.preset, output_sample_rate=rate,
                        config=EngineConfig(sustain_loop=SustainLoop.for_spec(spec, mode=mode)))
        wav = out_dir / f"engine_check_{mode}.wav"
        audio = render_midi_file(engine, midi_path, output_path=wav, tail_seconds=1.5, force=True)
        y = audio[:, 0].astype(np.float64)
        print(f"--- sustain {mode} ({wav}): {len(y) / rate:.2f} s, NaN {int(np.isnan(y).sum())}, "
              f"peak {np.abs(y).max():.3f}, RMS {np.sqrt(np.mean(y ** 2)):.4f}")
        frame_rate_hz = spec.sample_rate / spec.hop_length_samples  # 62.5 Hz
        for pitch, on, off in NOTES:
            segment = y[int((on + 0.1) * rate):int((off - 0.05) * rate)]
            peak = peak_frequency_hz(segment, rate)
            f0 = estimate_f0_hz_or_nan(segment, sample_rate=rate)
            # a strongest partial on a multiple of the frame rate and off the note's harmonics is the
            # decoder repeating a frame's waveform (nsynth_live.train.sing_eval.frame_line_energy_share)
            reference = f0 if np.isfinite(f0) else midi_to_hz(pitch)
            harmonic = max(1, round(peak / reference))
            locked = (abs(peak - frame_rate_hz * round(peak / frame_rate_hz)) < 0.3
                      and abs(cents_between(peak, harmonic * reference)) > 20)
            print(f"  note {pitch}: {midi_to_hz(pitch):7.2f} Hz expected, f0 {f0:7.2f} Hz "
                  f"({cents_between(f0, midi_to_hz(pitch)):+.0f} cents), strongest peak {peak:7.2f} Hz"
                  + (f" (on the {frame_rate_hz:g}-Hz frame-rate grid, not a harmonic)" if locked else "")
                  + f", RMS {np.sqrt(np.mean(segment ** 2)):.4f}")
        held = y[int(5.3 * rate):int(12.0 * rate)]
        rms = windowed_rms(held, rate // 20)
        print(f"  chord held 5.3-12 s: 50-ms RMS median {np.median(rms):.4f}, min {rms.min():.4f} "
              f"(min/median {rms.min() / np.median(rms):.2f}); max jump {max_jump(held):.4f} "
              f"(first 2 s: {max_jump(held[:2 * rate]):.4f})")
        print("  50-ms RMS every 0.25 s:", np.round(rms[::5], 3).tolist())
        tail = y[int(13.0 * rate):]
        print(f"  after the release (13 s ->): RMS {np.sqrt(np.mean(tail ** 2)):.2e}, "
              f"voices left {engine.active_voice_count}")

    engine = Engine(synth, args.preset, output_sample_rate=16000)
    engine.post(SetXY(0.0, 0.0))
    engine.post(NoteOn(60, 100))
    y = np.concatenate([engine.render_hop()[:, 0] for _ in range(int(1.5 / 0.016))])
    switch = len(y)
    engine.post(SetXY(1.0, 1.0))
    y = np.concatenate([y] + [engine.render_hop()[:, 0] for _ in range(int(1.0 / 0.016))])
    window, step = 512, 128
    starts = range(switch - 8000, switch + 8000, step)
    c = np.array([centroid_hz(y[i:i + window], 16000) for i in starts])
    t_ms = (np.array(list(starts)) + window / 2 - switch) / 16.0
    before, after = np.median(c[t_ms < -50]), np.median(c[t_ms > 300])
    fraction = (c - before) / (after - before) if after != before else np.zeros_like(c)
    t10 = t_ms[np.argmax((fraction > 0.1) & (t_ms > -100))]
    t90 = t_ms[np.argmax((fraction > 0.9) & (t_ms > 0))]
    print(f"morph (0,0)->(1,1) on a held C4: centroid {before:.0f} -> {after:.0f} Hz, 10 % at {t10:.0f} ms, "
          f"90 % at {t90:.0f} ms after the event ({window}-sample windows); max jump around it "
          f"{max_jump(y[switch - 1600:switch + 3200]):.4f} vs before {max_jump(y[switch - 9600:switch - 1600]):.4f}")


if __name__ == "__main__":
    main()
