"""The contract between a streaming neural synthesizer and the live engine.

A streaming synth generates audio one hop at a time for a batch of voices. The engine owns one
batched state (a dict of arrays whose axis 0 is the voice slot) and calls :meth:`StreamingSynth.step`
once per hop for the voices that sound. Stepping is deterministic: the same inputs and state give
the same output, whatever the batch size.

Timeline of a note (SING, Defossez et al. 2018, section 3; ``docs/model.md``):
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


# ---------------------------------------------------------------------------------------------
# Replay: the state a voice would have now with another instrument embedding (the engine's morph)
# ---------------------------------------------------------------------------------------------
# A synth may offer a faster ``replay(instrument_embedding, pitch_midi, velocity, time_index,
# start_state) -> state`` with the same meaning as :func:`replay_by_stepping` and a tuple
# ``replay_state_keys`` naming the parts of the state it needs at the window's start (SING's ONNX
# replay graph needs only the LSTM's; stepping needs all of them).


def replay_state_keys(synth) -> tuple[str, ...]:
    """The state keys ``synth``'s replay needs at the start of its window (every key by default)."""
    keys = getattr(synth, "replay_state_keys", None)
    return tuple(keys) if keys is not None else tuple(synth.new_state(1))


def replay_by_stepping(synth, instrument_embedding, pitch_midi, velocity, time_index, start_state) -> State:
    """Run frames ``time_index[:, 0] .. time_index[:, -1]`` of every voice with ``instrument_embedding``
    from ``start_state`` (the state before the first of them); the state before the frame after.

    Parameters
    ----------
    synth : StreamingSynth
    instrument_embedding : (voices, embedding_dims) float32
    pitch_midi : (voices,) int64
    velocity : (voices,) float32
    time_index : (voices, frames) int64
        Consecutive frame indices per voice.
    start_state : dict of arrays, axis 0 = voices
        Every key of ``synth.new_state``.

    Returns
    -------
    dict of arrays
        The state after the last frame (what :meth:`StreamingSynth.step` would carry on from).
    """
    state = {k: np.asarray(v) for k, v in start_state.items()}
    emb = np.ascontiguousarray(instrument_embedding, dtype=np.float32)
    pitch = np.asarray(pitch_midi, dtype=np.int64)
    vel = np.asarray(velocity, dtype=np.float32)
    for column in np.asarray(time_index, dtype=np.int64).T:
        _, state = synth.step(emb, pitch, vel, np.ascontiguousarray(column), state)
    return state


def replay(synth, instrument_embedding, pitch_midi, velocity, time_index, start_state) -> State:
    """``synth.replay`` when the synth has one, else :func:`replay_by_stepping`; both return every
    key of the state. ``start_state`` needs the keys of :func:`replay_state_keys`."""
    method = getattr(synth, "replay", None)
    if method is None:
        return replay_by_stepping(synth, instrument_embedding, pitch_midi, velocity, time_index, start_state)
    return method(instrument_embedding, pitch_midi, velocity, time_index, start_state)
