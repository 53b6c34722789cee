"""A deterministic additive test double of the StreamingSynth protocol (tests only, never shipped).

Eight harmonics of the voice's pitch; the mix of harmonics 2..8 depends on the instrument
embedding (so XY morphs change the spectrum); amplitude follows velocity and a slow decay over
``time_index``, with a fast "learned release" after the NSynth note-off frame. Harmonic amplitudes
are interpolated per sample within a hop from the previous hop's (kept in the state), like the
overlap-add of a real decoder, and phases are continuous. ``time_index`` outside
``[0, time_steps)`` raises, so the engine cannot silently step past the model's time table.
"""

from __future__ import annotations

import numpy as np

from nsynth_live.functional.midi import midi_to_hz
from nsynth_live.runtime.protocol import StreamSpec

INSTRUMENT_NAMES = (
    "keyboard_acoustic_000", "keyboard_electronic_001", "mallet_acoustic_002", "mallet_acoustic_003",
    "organ_electronic_004", "organ_acoustic_005", "guitar_acoustic_006", "guitar_electronic_007",
    "bass_acoustic_008", "bass_synthetic_009", "string_acoustic_010", "string_acoustic_011",
    "brass_acoustic_012", "brass_acoustic_013", "reed_acoustic_014", "reed_acoustic_015",
    "flute_acoustic_016", "synth_lead_synthetic_017", "synth_lead_synthetic_018", "vocal_acoustic_019",
)
N_HARMONICS = 8
RELEASE_FRAME = 196  # time index where the double's "learned release" starts (as SING's ~196)


class AdditiveTestSynth:
    """Test double: ``spec`` like SING's (16 kHz, hop 256, pre-roll 13, 265 frames)."""

    def __init__(self, *, pitch_min_midi: int = 24, pitch_max_midi: int = 96, seed: int = 0):
        self.spec = StreamSpec(
            sample_rate=16000, hop_length_samples=256, preroll_steps=13, time_steps=265,
            embedding_dims=16, pitch_min_midi=pitch_min_midi, pitch_max_midi=pitch_max_midi,
            instrument_names=INSTRUMENT_NAMES)
        rng = np.random.default_rng(seed)
        self._embeddings = rng.normal(size=(len(INSTRUMENT_NAMES), 16)).astype(np.float32)
        self._mix = rng.normal(size=(16, N_HARMONICS - 1)) / 2.0
        self.step_calls = 0
        self.batch_sizes: list[int] = []

    def instrument_embedding(self, name: str) -> np.ndarray:
        return self._embeddings[INSTRUMENT_NAMES.index(name)].copy() if name in INSTRUMENT_NAMES \
            else self._raise(name)

    @staticmethod
    def _raise(name):
        raise KeyError(f"unknown instrument {name!r}")

    def new_state(self, n_voices: int) -> dict:
        return {"phase": np.zeros((n_voices, N_HARMONICS)),
                "amplitude": np.zeros((n_voices, N_HARMONICS))}

    def harmonic_weights(self, instrument_embedding: np.ndarray) -> np.ndarray:
        """(voices, N_HARMONICS) relative amplitudes; the fundamental is always 1."""
        upper = (1.0 + 0.9 * np.tanh(np.asarray(instrument_embedding, np.float64) @ self._mix))
        upper /= np.arange(2, N_HARMONICS + 1)
        return np.concatenate([np.ones((upper.shape[0], 1)), upper], axis=1)

    def time_envelope(self, time_index: np.ndarray) -> np.ndarray:
        frame = np.asarray(time_index, np.float64) - self.spec.preroll_steps  # audible frame
        env = np.where(frame < 0, 0.0, np.exp(-np.maximum(frame, 0) / 600.0))
        return env * np.where(time_index >= RELEASE_FRAME,
                              np.exp(-(time_index - RELEASE_FRAME) / 8.0), 1.0)

    def step(self, instrument_embedding, pitch_midi, velocity, time_index, state):
        spec = self.spec
        n = len(pitch_midi)
        assert instrument_embedding.shape == (n, spec.embedding_dims), instrument_embedding.shape
        assert instrument_embedding.dtype == np.float32
        assert pitch_midi.dtype == np.int64 and time_index.dtype == np.int64
        assert velocity.dtype == np.float32
        if np.any(time_index < 0) or np.any(time_index >= spec.time_steps):
            raise ValueError(f"time_index out of [0, {spec.time_steps}): {time_index}")
        self.step_calls += 1
        self.batch_sizes.append(n)
        hop = spec.hop_length_samples
        f0 = midi_to_hz(pitch_midi)[:, None] * np.arange(1, N_HARMONICS + 1)  # (n, H) Hz
        target = self.harmonic_weights(instrument_embedding)
        target = target * (f0 < 0.45 * spec.sample_rate)
        target = target * (0.25 * velocity[:, None] / 127.0) * self.time_envelope(time_index)[:, None]
        ramp = np.arange(1, hop + 1) / hop  # (hop,)
        amplitude = state["amplitude"][:, :, None] + (target - state["amplitude"])[:, :, None] * ramp
        omega = 2.0 * np.pi * f0 / spec.sample_rate  # rad / sample, (n, H)
        phase = state["phase"][:, :, None] + omega[:, :, None] * np.arange(1, hop + 1)
        audio = np.sum(amplitude * np.sin(phase), axis=1).astype(np.float32)
        next_state = {"phase": np.mod(phase[:, :, -1], 2.0 * np.pi), "amplitude": target}
        return audio, next_state
