"""The sustain loop: held notes sound on past the model's note length (SING: 265 frames, 4.2 s).

A held note plays time steps ``0 ..``; when it reaches ``loop_end_index`` while still held (key or
pedal), a second stream restarts from the state snapshotted at ``loop_start_index`` and the two are
crossfaded over ``crossfade_hops`` hops by :func:`crossfade_norm`'s constant-power rule; the second
stream then becomes the voice. The loop ends before the model's learned release, which is a
property of the model: NSynth notes are released at 3 s (``NSYNTH_NOTE_OFF_SECONDS``), and SING's
decoder (kernel 9 frames) starts reacting 4 frames earlier (``decoder_half_kernel_frames`` of the
model's :class:`~nsynth_live.runtime.protocol.StreamSpec`). Policy in ``docs/engine.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nsynth_live.constants import NSYNTH_NOTE_OFF_SECONDS
from nsynth_live.runtime.protocol import StreamSpec

DEFAULT_LOOP_FRAMES = 64  # frames (~1 s at 16 kHz / 256) of the sustain loop
DEFAULT_LOOP_CROSSFADE_HOPS = 8  # hops (128 ms) of equal-power crossfade at each loop


@dataclass(frozen=True)
class SustainLoop:
    """Time-index loop that keeps held notes sounding past the model's note length.

    Attributes
    ----------
    loop_start_index : int
        Time index where the replayed stream restarts (state snapshot taken before this step).
    loop_end_index : int
        Time index at which a held voice starts the crossfade back to ``loop_start_index``.
    crossfade_hops : int
        Length of the equal-power crossfade, in hops.
    mode : {"crossfade", "hold"}
        ``"crossfade"``: replay ``[loop_start_index, loop_end_index)`` with a crossfade at each
        turn (default). ``"hold"``: keep feeding ``time_index = loop_end_index`` while the note
        is held (the LSTM runs on with constant conditioning; no second stream).
    """

    loop_start_index: int
    loop_end_index: int
    crossfade_hops: int = DEFAULT_LOOP_CROSSFADE_HOPS
    mode: str = "crossfade"

    def __post_init__(self):
        for name in ("loop_start_index", "loop_end_index", "crossfade_hops"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an int, got {value!r}")
        if self.mode not in ("crossfade", "hold"):
            raise ValueError(f"mode must be 'crossfade' or 'hold', got {self.mode!r}")
        if self.crossfade_hops < 1:
            raise ValueError(f"crossfade_hops must be >= 1, got {self.crossfade_hops}")
        if self.loop_end_index - self.loop_start_index < self.crossfade_hops:
            raise ValueError(
                f"the loop [{self.loop_start_index}, {self.loop_end_index}) must be at least "
                f"crossfade_hops={self.crossfade_hops} frames long")

    @classmethod
    def for_spec(cls, spec: StreamSpec, *, mode: str = "crossfade") -> "SustainLoop":
        """Default loop: ends before the model's learned release, ~1 s long.

        The release starts at the NSynth note-off (3 s, ``preroll + 187`` frames) minus the
        decoder's half kernel (4 frames): ~196 for SING. The loop's crossfade must end there.
        """
        note_off_index = spec.preroll_steps + int(
            NSYNTH_NOTE_OFF_SECONDS * spec.sample_rate / spec.hop_length_samples)
        release_index = min(note_off_index - spec.decoder_half_kernel_frames, spec.time_steps)
        crossfade = DEFAULT_LOOP_CROSSFADE_HOPS
        loop_end = release_index - crossfade
        loop_start = max(spec.preroll_steps, loop_end - DEFAULT_LOOP_FRAMES)
        return cls(loop_start_index=loop_start, loop_end_index=loop_end, crossfade_hops=crossfade,
                   mode=mode)

    def check(self, spec: StreamSpec) -> None:
        """Raise ValueError if the loop does not fit the model's time table."""
        if self.loop_start_index < spec.preroll_steps or (
                self.loop_end_index + self.crossfade_hops > spec.time_steps):
            raise ValueError(
                f"sustain loop {self} does not fit the model: need loop_start_index >= "
                f"preroll_steps={spec.preroll_steps} and loop_end_index + crossfade_hops <= "
                f"time_steps={spec.time_steps}")


def crossfade_norm(outgoing: np.ndarray, incoming: np.ndarray, u: float) -> float:
    """Gain that keeps a linear crossfade at constant power whatever the streams' correlation.

    With gains ``(1-u) k`` and ``u k`` the mix power is
    ``k^2 ((1-u)^2 Po + u^2 Pi + 2 u (1-u) C)`` (``C`` the streams' cross power); ``k`` makes it
    ``(1-u) Po + u Pi``. Identical streams give k = 1 (a linear fade), uncorrelated ones the
    equal-power curve; anti-phase streams are capped at +6 dB. Measured per hop and ramped.
    """
    p_out = float(np.dot(outgoing, outgoing))
    p_in = float(np.dot(incoming, incoming))
    cross = float(np.dot(outgoing, incoming))
    target = (1.0 - u) * p_out + u * p_in
    mixed = (1.0 - u) ** 2 * p_out + u ** 2 * p_in + 2.0 * u * (1.0 - u) * cross
    if target <= 1e-20:
        return 1.0
    if mixed <= target / 4.0:
        return 2.0
    return math.sqrt(target / mixed)
