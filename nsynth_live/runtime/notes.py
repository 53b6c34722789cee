"""Render whole notes by stepping a streaming synth: the one pre-roll loop of the offline tools.

The wavetable path exporter (:mod:`nsynth_live.export.timbre_path`), the bank renderer
(:mod:`nsynth_live.render.sources`) and :meth:`SingOnnxSynth.render_note` all render notes here. The
live engine steps its voices hop by hop itself (events arrive between hops) and pre-rolls new voices
with :func:`preroll`, the same loop.

Timeline (protocol of :mod:`nsynth_live.runtime.protocol`; SING, Defossez et al. 2018, section 3):
``state = synth.new_state(voices)``; steps ``0 .. preroll_steps - 1`` are run and their audio
discarded; then ``n_note_steps`` steps with ``time_index = preroll_steps + k`` give note samples
``[k * hop, (k + 1) * hop)``.
"""

from __future__ import annotations

import numpy as np

from nsynth_live.runtime.protocol import State, StreamingSynth, replay_by_stepping


def preroll(synth: StreamingSynth, *, instrument_embeddings, pitch_midi, velocity, state: State) -> State:
    """Run a note's pre-roll: steps ``0 .. preroll_steps - 1`` from ``state``, their audio discarded.

    Parameters
    ----------
    synth : StreamingSynth
    instrument_embeddings : (voices, embedding_dims) float32
    pitch_midi : (voices,) int64
    velocity : (voices,) float32
    state : dict of arrays, axis 0 = voices
        A fresh state (``synth.new_state(voices)`` or rows copied from it).

    Returns
    -------
    State
        The state at ``time_index = preroll_steps``, where the note's first audible hop starts.
    """
    voices = np.shape(instrument_embeddings)[0]
    time_index = np.tile(np.arange(synth.spec.preroll_steps, dtype=np.int64), (voices, 1))
    return replay_by_stepping(synth, instrument_embeddings, pitch_midi, velocity, time_index, state)


def render_notes(
    synth: StreamingSynth,
    *,
    instrument_embeddings,
    pitch_midi,
    velocity,
    n_note_steps: int,
    max_voices_per_batch: int = 16,
) -> np.ndarray:
    """Render one note per embedding, in batches of voices.

    Parameters
    ----------
    synth : StreamingSynth
    instrument_embeddings : (notes, embedding_dims) float32
    pitch_midi : int or (notes,) int
        MIDI note numbers within ``synth.spec.pitch_min_midi .. pitch_max_midi`` (one for all
        notes, or one per note).
    velocity : float or (notes,) float
        MIDI velocities 1..127 (one for all notes, or one per note).
    n_note_steps : int
        Audible hops per note; ``preroll_steps + n_note_steps <= spec.time_steps``.
    max_voices_per_batch : int
        Notes stepped together as the voices of one batched state (the protocol guarantees the
        same output whatever the batch size).

    Returns
    -------
    (notes, n_note_steps * hop_length_samples) float32
        Audio at ``synth.spec.sample_rate``.

    Raises
    ------
    ValueError
        Pitch or velocity out of range, mismatched lengths, wrong embedding size, or a note longer
        than the model's time table.
    """
    spec = synth.spec
    embeddings = np.asarray(instrument_embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[1] != spec.embedding_dims:
        raise ValueError(
            f"instrument_embeddings must have shape (notes, {spec.embedding_dims}), got {embeddings.shape}"
        )
    n_notes = embeddings.shape[0]
    pitches = np.broadcast_to(np.asarray(pitch_midi), (n_notes,)).astype(np.int64)
    velocities = np.broadcast_to(np.asarray(velocity, dtype=np.float64), (n_notes,)).astype(np.float32)
    bad_pitch = pitches[(pitches < spec.pitch_min_midi) | (pitches > spec.pitch_max_midi)]
    if bad_pitch.size:
        raise ValueError(
            f"pitch_midi={int(bad_pitch[0])} is outside the model's range {spec.pitch_min_midi}..{spec.pitch_max_midi}; "
            "pick a pitch inside it"
        )
    bad_velocity = velocities[~((velocities >= 1) & (velocities <= 127))]
    if bad_velocity.size:
        raise ValueError(f"velocity must be in 1..127, got {float(bad_velocity[0])!r}")
    if not isinstance(n_note_steps, (int, np.integer)) or n_note_steps < 1 or (
            spec.preroll_steps + n_note_steps > spec.time_steps):
        raise ValueError(
            f"a note of {n_note_steps} steps after {spec.preroll_steps} pre-roll steps does not fit the model's "
            f"{spec.time_steps} time steps; render a shorter note"
        )
    if not isinstance(max_voices_per_batch, (int, np.integer)) or max_voices_per_batch < 1:
        raise ValueError(f"max_voices_per_batch must be a positive integer, got {max_voices_per_batch!r}")
    hop = spec.hop_length_samples
    audio = np.zeros((n_notes, n_note_steps * hop), dtype=np.float32)
    for first in range(0, n_notes, max_voices_per_batch):
        rows = slice(first, first + max_voices_per_batch)
        batch = embeddings[rows]
        voices = batch.shape[0]
        state = preroll(synth, instrument_embeddings=batch, pitch_midi=pitches[rows], velocity=velocities[rows],
                        state=synth.new_state(voices))
        for k in range(n_note_steps):
            time_index = np.full(voices, spec.preroll_steps + k, dtype=np.int64)
            hop_audio, state = synth.step(batch, pitches[rows], velocities[rows], time_index, state)
            audio[rows, k * hop : (k + 1) * hop] = hop_audio
    return audio
