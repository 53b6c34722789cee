"""Pitch accuracy and frame-rate artefacts of generated notes (nsynth_live.train.sing_eval), on known tones."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nsynth_live.functional.midi import midi_to_hz
from nsynth_live.train.sing_eval import frame_line_energy_share, hop_rate_modulation_depth, pitch_accuracy

SAMPLE_RATE = 16000
HOP = 256
SECONDS = 2.6


def _tone(f0_hz, *, modulation=0.0, seconds=SECONDS):
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tone = sum(np.sin(2 * np.pi * k * f0_hz * t) / k for k in range(1, 6))
    return (0.2 * tone * (1.0 + modulation * np.sin(2 * np.pi * SAMPLE_RATE / HOP * t))).astype(np.float32)


class ToneModel:
    """Stands in for a Sing: each note is a harmonic tone at its MIDI pitch, detuned and buzzing as asked."""

    def __init__(self, *, detune_cents=0.0, modulation=0.0, noise_pitches=()):
        self.config = SimpleNamespace(sample_rate=SAMPLE_RATE, hop_length_samples=HOP)
        self.detune_cents, self.modulation, self.noise_pitches = detune_cents, modulation, set(noise_pitches)

    def eval(self):
        return self

    def instrument_embedding(self, instrument):
        return instrument

    def generate(self, embedding, pitch, velocity):
        rows = []
        for p in pitch.tolist():
            if p in self.noise_pitches:
                rows.append(np.random.default_rng(p).normal(scale=0.1, size=int(SECONDS * SAMPLE_RATE)).astype(np.float32))
            else:
                rows.append(_tone(midi_to_hz(p) * 2 ** (self.detune_cents / 1200), modulation=self.modulation))
        return torch.from_numpy(np.stack(rows))


def _notes(pitches, *, original_octave_down=()):
    audio = [_tone(midi_to_hz(p) / (2 if p in original_octave_down else 1)) for p in pitches]
    return SimpleNamespace(pitch=torch.tensor(pitches), velocity=torch.full((len(pitches),), 100),
                           instrument=torch.zeros(len(pitches), dtype=torch.int64), audio=torch.from_numpy(np.stack(audio)))


def test_hop_rate_modulation_depth_reads_the_modulation():
    assert hop_rate_modulation_depth(_tone(65.41, modulation=0.1), sample_rate=SAMPLE_RATE,
                                     hop_length_samples=HOP) == pytest.approx(0.097, abs=0.003)
    for f0 in (55.0, 65.41, 73.42, 130.81, 440.0):  # a steady tone, low ones included, does not read as buzz
        assert hop_rate_modulation_depth(_tone(f0), sample_rate=SAMPLE_RATE, hop_length_samples=HOP) < 0.01
    assert hop_rate_modulation_depth(np.zeros(4096), sample_rate=SAMPLE_RATE, hop_length_samples=HOP) == 0.0
    with pytest.raises(ValueError, match=">= 1024 samples"):
        hop_rate_modulation_depth(np.zeros(1000), sample_rate=SAMPLE_RATE, hop_length_samples=HOP)


def _partials(frequencies_hz, seconds=2.4):
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate(frequencies_hz, start=1))


def test_frame_line_energy_share_finds_partials_locked_to_the_hop_rate():
    def share(audio, f0_hz):
        return frame_line_energy_share(audio, f0_hz=f0_hz, sample_rate=SAMPLE_RATE, hop_length_samples=HOP)

    f0 = midi_to_hz(48)  # 130.81 Hz
    harmonics = [k * f0 for k in range(1, 6)]
    assert share(_partials(harmonics), f0) < 0.005
    # the fundamental comes out at 125.0 Hz (2 x 62.5), the rest in tune: the fundamental's share
    fundamental_share = 1 / sum(1 / k ** 2 for k in range(1, 6))
    assert share(_partials([125.0] + harmonics[1:]), f0) == pytest.approx(fundamental_share, abs=0.02)
    # MIDI 54 (185.0 Hz) played at 187.5 Hz, 3 x 62.5: every partial is on a line
    assert share(_partials([k * 187.5 for k in range(1, 6)]), midi_to_hz(54)) > 0.95
    assert share(np.zeros(4096), f0) == 0.0
    with pytest.raises(ValueError, match="f0_hz"):
        share(_partials(harmonics), float("nan"))
    with pytest.raises(ValueError, match=">= 1024 samples"):
        share(np.zeros(100), f0)


def test_pitch_accuracy_against_the_midi_pitch_and_the_originals():
    notes = _notes([38, 45, 52, 64, 76], original_octave_down=(45,))
    in_tune = pitch_accuracy(ToneModel(), notes, pitch_min_midi=36, pitch_max_midi=84)
    assert in_tune["notes"] == 5 and in_tune["unpitched"] == 0 and in_tune["share_within_50_cents"] == 1.0
    assert in_tune["median_abs_cents"] < 3
    # the original of MIDI 45 sounds an octave down: against it, the generated note is 1200 cents off
    assert in_tune["vs_original"]["share_within_50_cents"] == pytest.approx(4 / 5)
    assert in_tune["vs_original"]["bands"]["36-47"] == {"notes": 2, "median_abs_cents": pytest.approx(600, abs=3),
                                                        "share_within_50_cents": 0.5}
    assert in_tune["hop_rate_modulation"]["36-47"]["generated_median"] < 0.01
    assert in_tune["frame_line_energy_share"]["36-47"]["generated_median"] < 0.01

    sharp = pitch_accuracy(ToneModel(detune_cents=30.0), notes, pitch_min_midi=36, pitch_max_midi=84)
    assert sharp["median_abs_cents"] == pytest.approx(30, abs=3) and sharp["share_within_50_cents"] == 1.0
    flat_quarter_tone = pitch_accuracy(ToneModel(detune_cents=-60.0), notes, pitch_min_midi=36, pitch_max_midi=84)
    assert flat_quarter_tone["share_within_50_cents"] == 0.0

    buzzing = pitch_accuracy(ToneModel(modulation=0.3, noise_pitches=(64,)), notes, pitch_min_midi=40, pitch_max_midi=84)
    assert buzzing["notes"] == 4 and buzzing["unpitched"] == 1  # MIDI 38 is outside the range; 64 is noise
    assert buzzing["share_within_50_cents"] == pytest.approx(3 / 4)
    modulation = buzzing["hop_rate_modulation"]["48-59"]
    assert modulation["generated_median"] == pytest.approx(0.29, abs=0.01) and modulation["original_median"] < 0.01
    assert buzzing["hop_rate_modulation"]["36-47"]["notes"] == 1


def test_the_model_report_renders_the_pitch_and_buzz_table():
    from dataclasses import asdict

    from nsynth_live.models.sing_configs import SING_DEFAULT
    from nsynth_live.train.sing import SingTrainConfig
    from nsynth_live.train.sing_recipe import RECIPE_SPECTRAL_N_FFTS, render_report

    pitch = pitch_accuracy(ToneModel(modulation=0.2), _notes([40, 52, 64, 76]), pitch_min_midi=36, pitch_max_midi=84)
    report = {
        "command": "python export/train_sing.py", "machine": "test", "training_seconds": 3600.0,
        "dataset": {"notes": 8, "train_notes": 4, "heldout_notes": 4, "instruments": 2, "families": ["bass", "organ"]},
        "dataset_manifest": {"soundfont_name": "FluidR3_GM.sf2", "soundfont_sha256": "0123456789abcdef" * 4},
        "model_config": SING_DEFAULT.to_dict(),
        "train_config": asdict(SingTrainConfig(spectral_n_ffts=RECIPE_SPECTRAL_N_FFTS)),
        "heldout_spectral_loss": {"sing": 0.07, "autoencoder": 0.09, "silence": 0.09},
        "train_spectral_loss_sample": {"sing": 0.06},
        "pitch_accuracy_heldout": pitch,
    }
    text = render_report(report)
    assert "1024, 4096 and 8192 samples" in text and "(0.0900, silence 0.0900)" in text
    assert "| 36-47 | 1 | 100% |" in text and "| 72-84 | 1 | 100% |" in text
    row = next(line for line in text.splitlines() if line.startswith("| 48-59 |"))
    lines, buzz = (cell.split(" / ") for cell in row.split("|")[5:7])
    assert float(lines[0]) < 0.01 and float(lines[1]) < 0.01
    assert float(buzz[0]) == pytest.approx(0.194, abs=0.01) and float(buzz[1]) < 0.01
