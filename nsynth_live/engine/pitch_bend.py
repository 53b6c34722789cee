"""Pitch bend by resampling each voice's audio: a per-voice variable-rate reader.

The model is conditioned on whole MIDI pitches (SING's pitch embedding has one row per MIDI note),
so a bend cannot be asked of the model exactly: a pitch between two rows is not a pitch the model
learned, and its output would not be in tune to the cent. Instead each voice's model audio is read
at a rate ``r = 2 ** (semitones / 12)``, as a sampler plays a sample faster or slower. A voice bent
up consumes its model stream faster (more than one model step in some hops); one bent down, slower
(no step in some hops). The pitch is then exact by construction, and the timbre's formants move
with the bend, as they do on a sampler or a tape.

The rate ramps linearly over each hop from the last hop's to the new one (no zipper steps). Samples
between the model's are interpolated with a 4-point cubic (Catmull-Rom): at whole positions (no bend
ever applied) it returns the model's samples unchanged, bit for bit; when a bend
returns to the centre, the read position is brought back onto a whole sample within one hop. The cubic is not a band-limited
interpolator: bending up moves content near the model's Nyquist (8 kHz) above it, where it folds
back; the model's output has little energy there (``docs/midi.md``).
"""

from __future__ import annotations

import numpy as np

MAX_RATIO = 4.0  # +24 semitones (presets.BEND_RANGE_MAX_SEMITONES)
MIN_RATIO = 0.25


class VoiceResampler:
    """Model audio in, bent audio out, for every voice slot.

    Parameters
    ----------
    n_slots : int
        Voice slots.
    hop : int
        Samples per hop (model and output rates are the same here: the model's).

    Attributes
    ----------
    buffer : (n_slots, capacity) float64
        Model samples not yet read, after one sample of history (the cubic reads one behind).
    count : (n_slots,) int64
        Valid samples in each row.
    position : (n_slots,) float64
        Where the next output sample reads, in ``buffer`` samples.
    ratio : (n_slots,) float64
        Read rate at the end of the last hop (1 = no bend).
    """

    def __init__(self, n_slots: int, hop: int) -> None:
        self.hop = hop
        capacity = int(hop * (MAX_RATIO + 2)) + 32
        self.buffer = np.zeros((n_slots, capacity), dtype=np.float64)
        self.count = np.ones(n_slots, dtype=np.int64)
        self.position = np.ones(n_slots, dtype=np.float64)
        self.ratio = np.ones(n_slots, dtype=np.float64)
        self._ramp = np.arange(1, hop + 1, dtype=np.float64) / hop

    def start(self, slot: int, ratio: float) -> None:
        """A new note in ``slot``: an empty stream (one silent sample of history), read at ``ratio``."""
        self.buffer[slot, 0] = 0.0
        self.count[slot] = 1
        self.position[slot] = 1.0
        self.ratio[slot] = float(np.clip(ratio, MIN_RATIO, MAX_RATIO))

    def plan(self, slots: np.ndarray, ratio: np.ndarray) -> np.ndarray:
        """Read positions of the next hop, ``(len(slots), hop + 1)`` float64: the hop's samples,
        then where the hop after it starts. The rate ramps from each slot's last one to ``ratio``."""
        r0 = self.ratio[slots]
        r1 = np.clip(np.asarray(ratio, dtype=np.float64), MIN_RATIO, MAX_RATIO)
        rates = r0[:, None] + (r1 - r0)[:, None] * self._ramp[None, :]
        # back at no bend with a fractional read position (after a bend): read a hop's worth of
        # samples slightly faster or slower (at most half a sample per hop, 3.4 cents for 16 ms) so
        # the position lands on a whole sample and the voice passes unfiltered again
        position = self.position[slots]
        drift = np.round(position) - position
        settle = (r0 == 1.0) & (r1 == 1.0) & (drift != 0.0)
        if settle.any():
            rates[settle] = 1.0 + (drift[settle] / self.hop)[:, None]
        positions = np.empty((slots.size, self.hop + 1), dtype=np.float64)
        positions[:, 0] = self.position[slots]
        np.cumsum(rates, axis=1, out=positions[:, 1:])
        positions[:, 1:] += self.position[slots][:, None]
        self._planned_ratio = r1
        return positions

    def lacking(self, slots: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Bool mask over ``slots``: the voice needs another model step before the hop can be read
        (a fractional position reads two samples ahead; a whole one only its own)."""
        read = positions[:, :-1]
        whole = np.floor(read)
        need = np.max(whole + 2.0 * (read > whole), axis=1).astype(np.int64)
        return need >= self.count[slots]

    def append(self, slots: np.ndarray, audio: np.ndarray) -> None:
        """Add one model step's ``(len(slots), hop)`` audio to each slot's stream."""
        columns = self.count[slots][:, None] + np.arange(self.hop)
        self.buffer[slots[:, None], columns] = audio
        self.count[slots] += self.hop

    def read(self, slots: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """The hop's ``(len(slots), hop)`` bent audio; consumes what it read (keeps one sample of
        history) and takes the planned rates as the slots' own."""
        read = positions[:, :-1]
        whole = np.floor(read)
        t = read - whole
        capacity = self.buffer.shape[1]
        base = slots[:, None] * capacity + whole.astype(np.int64)
        flat = self.buffer.reshape(-1)
        y0 = flat[base]
        if not t.any():
            out = y0
        else:
            ym1 = flat[base - 1]
            y1 = flat[np.minimum(base + 1, slots[:, None] * capacity + capacity - 1)]
            y2 = flat[np.minimum(base + 2, slots[:, None] * capacity + capacity - 1)]
            # Catmull-Rom cubic; t = 0 gives y0 exactly
            out = y0 + 0.5 * t * (y1 - ym1 + t * (2.0 * ym1 - 5.0 * y0 + 4.0 * y1 - y2
                                                   + t * (3.0 * (y0 - y1) + y2 - ym1)))
        end = positions[:, -1]
        snapped = np.round(end)
        end = np.where(np.abs(end - snapped) < 1e-9, snapped, end)  # rounding error of the cumulative sum
        drop = np.floor(end).astype(np.int64) - 1  # keep one sample before the next read
        for row, slot in enumerate(slots):
            k = int(drop[row])
            if k > 0:
                n = int(self.count[slot]) - k
                self.buffer[slot, :n] = self.buffer[slot, k:k + n]
                self.count[slot] = n
                end[row] -= k
        self.position[slots] = end
        self.ratio[slots] = self._planned_ratio
        return out
