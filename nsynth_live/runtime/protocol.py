"""The contract between a streaming neural synthesizer and the live engine.

A streaming synth generates audio one hop at a time for a batch of voices. The engine owns one
batched state (a dict of arrays whose axis 0 is the voice slot) and calls :meth:`StreamingSynth.step`
once per hop for the voices that sound. Stepping is deterministic: the same inputs and state give
the same output, whatever the batch size.

Timeline of a note (SING, Defossez et al. 2018, section 3; ../shared/reference/sing.md):
steps ``0 .. preroll_steps - 1`` are run at note-on and their audio is discarded (the LSTM runs
ahead of playback to fill the decoder's look-ahead); step ``preroll_steps + k`` returns note
samples ``[k * hop, (k + 1) * hop)``. ``time_index`` must stay below ``time_steps``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol

import numpy as np


@dataclass(frozen=True)
class StreamSpec:
    """Static facts of a streaming synth.

    Attributes
    ----------
    sample_rate : int
        Hz of the generated audio (16000 for SING).
    hop_length_samples : int
        Samples returned by one step (256 for SING).
    preroll_steps : int
        Steps run at note-on before the first audible hop (13 for SING: 9 frames of dataset padding
        plus 4 frames of decoder look-ahead).
    time_steps : int
        Number of rows of the time table: the largest valid ``time_index`` is ``time_steps - 1``.
    embedding_dims : int
        Size of one instrument embedding.
    pitch_min_midi, pitch_max_midi : int
        MIDI note numbers the model was trained on (inclusive).
    instrument_names : tuple of str
        NSynth ``instrument_str`` of each instrument the model knows, in table order.
    decoder_half_kernel_frames : int
        Frames by which the decoder sees ahead (SING's 9-frame kernel: 4): its audio starts
        reacting to the note-off this many frames early, so the engine's sustain loop ends before
        that (:class:`nsynth_live.engine.sustain_loop.SustainLoop`).
    """

    sample_rate: int
    hop_length_samples: int
    preroll_steps: int
    time_steps: int
    embedding_dims: int
    pitch_min_midi: int
    pitch_max_midi: int
    instrument_names: tuple[str, ...]
    decoder_half_kernel_frames: int = 4


State = dict[str, np.ndarray]  # every array has the voice slot on axis 0


class StreamingSynth(Protocol):
    """What the engine needs from a model (implemented by ``nsynth_live.runtime.sing_onnx``)."""

    spec: StreamSpec

    def instrument_embedding(self, name: str) -> np.ndarray:
        """Embedding of one instrument, shape ``(embedding_dims,)``, float32. KeyError if unknown."""

    def new_state(self, n_voices: int) -> State:
        """Zeroed state for ``n_voices`` voices (a fresh note starts from it)."""

    def step(
        self,
        instrument_embedding: np.ndarray,
        pitch_midi: np.ndarray,
        velocity: np.ndarray,
        time_index: np.ndarray,
        state: Mapping[str, np.ndarray],
    ) -> tuple[np.ndarray, State]:
        """Advance every voice by one hop.

        Parameters
        ----------
        instrument_embedding : (voices, embedding_dims) float32
        pitch_midi : (voices,) int64, MIDI note numbers
        velocity : (voices,) float32, MIDI velocity 1..127
        time_index : (voices,) int64, frame index of this step in the note
        state : dict of arrays, axis 0 = voices

        Returns
        -------
        audio : (voices, hop_length_samples) float32 at ``spec.sample_rate``
        next_state : dict with the same keys and shapes as ``state``
        """
