"""The timbre morph: the instrument embedding moves linearly to a new target over a few hops.

XY and preset changes set a new target (the bilinear blend of the preset's four corner
embeddings); the embedding every voice is conditioned on ramps there in ``hops`` equal steps, one
per hop, and lands exactly on it. The model's own state (SING's LSTM, the decoder's 9-frame
context) then follows more slowly (``docs/engine.md``).
"""

from __future__ import annotations

import numpy as np


class EmbeddingMorph:
    """A linear ramp of an embedding toward its target, one step per hop.

    Parameters
    ----------
    initial : (dims,) float
        The starting embedding (also the first target).
    hops : int
        Hops a move takes (>= 1).

    Attributes
    ----------
    embedding : (dims,) float64
        Where the ramp is.
    target : (dims,) float64
        Where it is going.
    """

    def __init__(self, initial, *, hops: int) -> None:
        if isinstance(hops, bool) or not isinstance(hops, int) or hops < 1:
            raise ValueError(f"hops must be an int >= 1, got {hops!r}")
        self.hops = hops
        self.embedding = np.asarray(initial, dtype=np.float64).copy()
        self.target = self.embedding.copy()
        self._step = np.zeros_like(self.embedding)
        self._left = 0

    def retarget(self, target) -> None:
        """Head for ``target`` from where the ramp is now, in ``hops`` steps."""
        self.target = np.asarray(target, dtype=np.float64).copy()
        self._step = (self.target - self.embedding) / self.hops
        self._left = self.hops

    def advance(self) -> np.ndarray:
        """One hop's step; the embedding to condition this hop on, ``(dims,)`` float32."""
        if self._left > 0:
            self.embedding = self.embedding + self._step
            self._left -= 1
            if self._left == 0:
                self.embedding = self.target.copy()
        return self.embedding.astype(np.float32)
