"""Attack cache: every key's first hops at the current timbre, ready for the audio callback.

Why: a note rendered by the inference thread is heard only after the audio already queued ahead of
the device (two 16-ms hops plus a block) and the hop it waited for: 40-55 ms. The model is
deterministic given (timbre, pitch, velocity, time), so a note's first hops can be rendered before
the key is pressed. The audio callback plays a note-on's cached attack from the very next block,
at the event's frame, while the inference thread continues the same voice from the cached stream
state at the sample where the attack hands over (``docs/running.md``, "Latency").

One cache holds, for each model pitch and each velocity layer (a row):

* ``attack[row]``: the note's first ``handoff_hops + 1`` hops exactly as the engine would mix them
  (the engine's attack ramp on hop 0; pre-roll done), the last hop multiplied by a falling ramp
  ``1 - n / hop``, then resampled to the device rate by a fresh copy of the engine's own resampler
  with its filter tail kept. Index 0 is where the note's first model sample enters the resampler,
  so the sound starts ``delay_frames`` later, as it would in the engine's stream.
* ``state``: the stream state after ``handoff_hops`` note hops (``time_index`` =
  ``preroll_steps + handoff_hops``).

The engine continues the voice from ``state`` with a rising ramp ``n / hop`` over its first hop, so
attack + continuation add up to the uncached voice: exactly for integer rate ratios (16 -> 48 kHz,
the resampler is linear and time-invariant and the note starts on a multiple of the ratio), within
a sub-sample misalignment hidden by the one-hop crossfade otherwise (44.1 kHz).

Velocity is quantised to ``velocity_layers`` layers (16 by default: 8, 16, ..., 120, 127): every
layer of every pitch is rendered in one batch; a note plays at its nearest layer.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from nsynth_live.engine.resample import PolyphaseUpsampler, make_resampler
from nsynth_live.runtime.notes import preroll
from nsynth_live.runtime.protocol import State, StreamingSynth

DEFAULT_VELOCITY_LAYERS = 16


class CacheBuildAborted(Exception):
    """``between_batches`` asked :func:`build_attack_cache` to stop (the timbre moved on)."""


def layer_velocities(layers: int = DEFAULT_VELOCITY_LAYERS) -> np.ndarray:
    """Velocity of each layer: ``round(127 * (i + 1) / layers)``, ``(layers,)`` float32, 1..127.

    Raises
    ------
    ValueError
        If ``layers`` is not an int in [1, 127].
    """
    if isinstance(layers, bool) or not isinstance(layers, int) or not 1 <= layers <= 127:
        raise ValueError(f"velocity layers must be an int in [1, 127], got {layers!r}")
    return np.round(127.0 * np.arange(1, layers + 1) / layers).astype(np.float32)


@dataclass(frozen=True, eq=False)
class AttackCache:
    """Cached attacks and continuation states at one instrument embedding (read-only once built).

    Attributes
    ----------
    embedding : (embedding_dims,) float32
        The timbre the rows were rendered at.
    pitches : (P,) int64
        Model pitches, consecutive (``spec.pitch_min_midi .. spec.pitch_max_midi``).
    velocities : (L,) float32
        Velocity layers.
    attack : (P * L, frames) float32
        Mono, pre-master, at the device rate; row ``p * L + l``.
    state : dict of str to (P * L, ...) arrays
        Stream state after ``handoff_hops`` note hops.
    handoff_hops : int
        Note hops the attack plays alone; the continuation starts at note hop ``handoff_hops``.
    time_index : int
        ``preroll_steps + handoff_hops``: the continuation's first time index.
    ratio : float
        Device rate / model rate.
    integer_ratio : int or None
        ``ratio`` when it is an integer (then note starts fall on multiples of it).
    delay_frames : int
        The resampler's delay, rounded: the note sounds this many frames after index 0.
    hop_length_samples : int
        Model samples per hop.
    cache_id : int
        Set by the runner: which cache a note came from when the callback runs in another process.
    """

    embedding: np.ndarray
    pitches: np.ndarray
    velocities: np.ndarray
    attack: np.ndarray
    state: dict
    handoff_hops: int
    time_index: int
    ratio: float
    integer_ratio: int | None
    delay_frames: int
    hop_length_samples: int
    cache_id: int = 0

    def row(self, pitch_midi: int, velocity: float) -> int:
        """Row of a model pitch at its nearest velocity layer.

        Raises
        ------
        KeyError
            If ``pitch_midi`` is not cached.
        """
        index = int(pitch_midi) - int(self.pitches[0])
        if not 0 <= index < self.pitches.size:
            raise KeyError(f"pitch {pitch_midi} is not in the attack cache "
                           f"({int(self.pitches[0])}..{int(self.pitches[-1])})")
        layer = int(np.argmin(np.abs(self.velocities - float(velocity))))
        return index * self.velocities.size + layer

    def state_row(self, row: int) -> State:
        """The continuation state of one row, ``{name: (1, ...)}`` (views, not copies)."""
        return {k: v[row:row + 1] for k, v in self.state.items()}

    @property
    def handoff_frames(self) -> float:
        """Device frames from the attack's index 0 to the hand-over (``handoff_hops`` hops)."""
        return self.handoff_hops * self.hop_length_samples * self.ratio

    def note_start_frame(self, onset_frame: int) -> int:
        """Frame for the attack's index 0 so that the note sounds at ``onset_frame`` (or up to
        ``integer_ratio - 1`` frames later, so that the note starts on a whole model sample)."""
        start = int(onset_frame) - self.delay_frames
        if self.integer_ratio:
            start = -(-start // self.integer_ratio) * self.integer_ratio
        return start


def build_attack_cache(
    synth: StreamingSynth,
    embedding,
    *,
    output_sample_rate: int,
    handoff_hops: int,
    attack_seconds: float,
    velocity_layers: int = DEFAULT_VELOCITY_LAYERS,
    rows_per_batch: int = 256,
    between_batches: Callable[[float], bool] | None = None,
) -> AttackCache:
    """Render the attack cache of every model pitch and velocity layer at ``embedding``.

    Parameters
    ----------
    synth : StreamingSynth
        The engine's model (its ``step`` may be called from this thread while another runs).
    embedding : (embedding_dims,) float
        The instrument embedding (the engine's XY blend).
    output_sample_rate : int
        Device rate, Hz.
    handoff_hops : int
        Hops the attack covers before the hand-over (>= 0); the runner sizes it so that the
        inference thread always receives the note before its hand-over hop.
    attack_seconds : float
        The engine's attack ramp (``EngineConfig.attack_seconds``), applied to hop 0 as it does.
    velocity_layers : int
        See :func:`layer_velocities`.
    rows_per_batch : int
        Voices per model batch (also bounds ONNX Runtime's working memory).
    between_batches : callable, optional
        ``between_batches(seconds)`` is called after each batch with the seconds it took; it may
        sleep (to leave the CPU to the inference thread) and returns False to abort.

    Returns
    -------
    AttackCache

    Raises
    ------
    ValueError
        If ``handoff_hops`` would run past the model's time table, or arguments are invalid.
    CacheBuildAborted
        If ``between_batches`` returned False.

    Notes
    -----
    Cost: ``P * L`` voices x ``preroll_steps + handoff_hops + 1`` steps; 784 rows x 19 steps take
    about 1.2 s of one core for the default model (2-core AMD EPYC).
    """
    spec = synth.spec
    if isinstance(handoff_hops, bool) or not isinstance(handoff_hops, int) or handoff_hops < 0:
        raise ValueError(f"handoff_hops must be an int >= 0, got {handoff_hops!r}")
    if spec.preroll_steps + handoff_hops + 1 > spec.time_steps:
        raise ValueError(f"handoff_hops={handoff_hops} runs past the model's {spec.time_steps} time steps")
    if not attack_seconds > 0:
        raise ValueError(f"attack_seconds must be > 0, got {attack_seconds!r}")
    embedding = np.asarray(embedding, dtype=np.float32).reshape(-1)
    pitches = np.arange(spec.pitch_min_midi, spec.pitch_max_midi + 1, dtype=np.int64)
    velocities = layer_velocities(velocity_layers)
    rows = pitches.size * velocities.size
    row_pitch = np.repeat(pitches, velocities.size)
    row_velocity = np.tile(velocities, pitches.size)
    hop = spec.hop_length_samples
    n = np.arange(1, hop + 1, dtype=np.float64)
    attack_env = np.minimum(n / (attack_seconds * spec.sample_rate), 1.0)
    fade_out = 1.0 - n / hop

    audio16 = np.zeros((rows, (handoff_hops + 1) * hop), dtype=np.float64)
    states: dict[str, np.ndarray] | None = None
    for begin in range(0, rows, rows_per_batch):
        batch_started = time.perf_counter()
        end = min(rows, begin + rows_per_batch)
        count = end - begin
        emb = np.repeat(embedding[None, :], count, axis=0)
        pitch, velocity = row_pitch[begin:end], row_velocity[begin:end]
        state = preroll(synth, instrument_embeddings=emb, pitch_midi=pitch, velocity=velocity,
                        state=synth.new_state(count))
        for k in range(handoff_hops + 1):
            if k == handoff_hops:
                if states is None:
                    states = {name: np.zeros((rows,) + v.shape[1:], dtype=v.dtype) for name, v in state.items()}
                for name, v in state.items():
                    states[name][begin:end] = v
            times = np.full(count, spec.preroll_steps + k, dtype=np.int64)
            out, state = synth.step(emb, pitch, velocity, times, state)
            audio16[begin:end, k * hop:(k + 1) * hop] = np.asarray(out, dtype=np.float64)
        if between_batches is not None and not between_batches(time.perf_counter() - batch_started):
            raise CacheBuildAborted(f"stopped after {end} of {rows} rows")
    audio16[:, :hop] *= attack_env
    audio16[:, handoff_hops * hop:] *= fade_out

    ratio = output_sample_rate / spec.sample_rate
    integer_ratio = int(round(ratio)) if abs(ratio - round(ratio)) < 1e-9 else None
    probe = make_resampler(input_sample_rate=spec.sample_rate, output_sample_rate=output_sample_rate)
    delay = float(probe.delay_output_samples)
    if integer_ratio:
        taps = probe.n_taps if isinstance(probe, PolyphaseUpsampler) else 0
        tail = int(math.ceil(taps / integer_ratio)) + 1
        padded = np.concatenate([audio16, np.zeros((rows, tail))], axis=1)
        attack = np.empty((rows, padded.shape[1] * integer_ratio), dtype=np.float32)
        for r in range(rows):  # a fresh resampler per row: the note alone, from silence
            resampler = make_resampler(input_sample_rate=spec.sample_rate, output_sample_rate=output_sample_rate)
            attack[r] = resampler.process(padded[r])
    else:
        import soxr

        # soxr's one-shot resample is aligned (no delay); shift it by the stream's delay
        shift = int(round(delay))
        first = soxr.resample(audio16[0].astype(np.float32), spec.sample_rate, output_sample_rate, quality="LQ")
        tail_frames = int(math.ceil(ratio * 64))
        attack = np.zeros((rows, shift + first.size + tail_frames), dtype=np.float32)
        for r in range(rows):
            padded = np.concatenate([audio16[r], np.zeros(64)]).astype(np.float32)
            y = soxr.resample(padded, spec.sample_rate, output_sample_rate, quality="LQ")
            attack[r, shift:shift + y.size] = y[:attack.shape[1] - shift]
    return AttackCache(
        embedding=embedding.copy(), pitches=pitches, velocities=velocities, attack=attack,
        state=states or {}, handoff_hops=handoff_hops, time_index=spec.preroll_steps + handoff_hops,
        ratio=ratio, integer_ratio=integer_ratio, delay_frames=int(round(delay)), hop_length_samples=hop,
    )
