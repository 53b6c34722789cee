"""A rendered bank played as a streaming synth: the live engine plays it like the model.

:class:`BankPlayer` implements :class:`~nsynth_live.runtime.protocol.StreamingSynth`, so the engine
(voices, sustain pedal, release, XY morph ramp, resampling to the device) needs no special case:

* Its "instrument embedding" is the XY position: the instruments are the pad's corners, named
  :data:`BANK_CORNER_NAMES`, whose embeddings are their coordinates (0,0), (1,0), (0,1), (1,1).
  The engine blends corners bilinearly, and the bilinear blend of the corners' coordinates at
  (x, y) is (x, y) itself: the engine hands the player the XY position of every voice, every hop.
* A key between roots plays the highest root at or below it, read faster by ``2 ** (semitones / 12)``
  (4-point Hermite interpolation), as the SFZ maps it; keys below the lowest root play it slower.
* The velocity layer is the lowest layer at or above the velocity (the SFZ's ``lovel/hivel``); the
  level then follows the velocity by ``min(velocity / layer velocity, 1)`` (6 dB per halving), the
  gain the SFZ's ``amp_velcurve`` points give (:func:`nsynth_live.export.sfz.velocity_curve_opcodes`).
* A held note's timbre crossfades between the four cells around XY with bilinear gains, and a gain
  per voice and hop keeps the mix's power at the weighted sum of the four cells' powers whether the
  cells are in phase, uncorrelated or partly cancelling (measured per hop, ramped across it: no
  zipper, no level dip between cells). Broadband: it cannot undo a notch where two cells cancel at
  one frequency only.
* Past its sustain loop's end a sample repeats the loop (``smpl`` loop, zero-crossing aligned), held
  or released, as an SFZ ``loop_continuous`` region: the engine's release envelope ends the note.
  The player is a pure function of ``time_index`` (plus the ramped gain), so its state is tiny.

Memory: each sample is kept up to its loop end (the rest is never played) as int16 scaled to its own
peak (quantisation ~96 dB below each sample's peak): about 280 MB for a 9 x 9 grid x 13 roots of
4-s 48-kHz notes.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from nsynth_live.data.bank_index import BankFormatError, BankIndex, load_bank_index
from nsynth_live.presets import BANK_CORNER_NAMES  # the pad's corners (0,0), (1,0), (0,1), (1,1)
from nsynth_live.runtime.protocol import State, StreamSpec

_CORNER_XY = np.array([(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)], dtype=np.float32)
HOP_SECONDS = 0.016  # s per step: the engine's event quantum, as SING's 256 samples at 16 kHz
MAX_NOTE_SECONDS = 600.0  # s a held note may sound (the time table's length)
MAX_NORM_GAIN = 2.0  # cap of the power-preserving gain (+6 dB when cells cancel)
_GUARD_FRAMES = 3  # frames after each sample's playable end in the table (Hermite reads 2 ahead)


class BankPlayer:
    """Play a bank folder written by ``export/render_bank.py`` (see the module docstring).

    Parameters
    ----------
    bank_dir : path
        Folder with ``bank.json`` and ``samples/``.

    Raises
    ------
    BankFormatError
        If the folder is not a bank, its version is unknown, or a sample is missing, unreadable, of
        another rate or shorter than the index says.
    """

    def __init__(self, bank_dir: str | os.PathLike):
        import soundfile  # noqa: PLC0415

        self.bank_dir = Path(bank_dir)
        index: BankIndex = load_bank_index(self.bank_dir)
        self.index = index
        sr = index.sample_rate
        hop = int(round(HOP_SECONDS * sr))
        # One int16 table with every sample back to back, each as [1 zero, audio[:end], 3 guard frames]:
        # the guard frames repeat the loop's first frames (zeros without a loop), so the 4 taps of the
        # Hermite reader at any position in [0, end) are contiguous. Per sample: offset of audio[0],
        # playable length, loop, scale.
        keys = sorted(index.samples)
        self._sample_row = {key: row for row, key in enumerate(keys)}
        pieces, offsets, lengths, loops, scales = [], [], [], [], []
        offset = 0
        for key in keys:
            sample = index.samples[key]
            path = self.bank_dir / sample.path
            try:
                audio, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
            except (RuntimeError, OSError, soundfile.LibsndfileError) as error:
                raise BankFormatError(f"bank sample {path} is unreadable: {error}") from error
            if file_rate != sr or audio.shape[0] < sample.frames:
                raise BankFormatError(
                    f"bank sample {path}: {audio.shape[0]} frames at {file_rate} Hz, bank.json says "
                    f"{sample.frames} at {sr} Hz; render the bank again")
            audio = audio.mean(axis=1)
            end = sample.loop_end if sample.has_loop else audio.shape[0]
            audio = audio[:end]
            peak = float(np.max(np.abs(audio))) if audio.size else 0.0
            scale = peak / 32767.0 if peak > 0 else 1.0
            codes = np.round(audio / scale).astype(np.int16)
            guard = (codes[sample.loop_start : sample.loop_start + _GUARD_FRAMES] if sample.has_loop
                     else np.zeros(0, np.int16))
            guard = np.concatenate([guard, np.zeros(_GUARD_FRAMES - guard.size, np.int16)])
            pieces += [np.zeros(1, np.int16), codes, guard]
            offsets.append(offset + 1)
            lengths.append(end)
            loops.append((sample.loop_start, sample.loop_end) if sample.has_loop else (end, end))
            scales.append(scale)
            offset += 1 + end + _GUARD_FRAMES
        self._table = np.concatenate(pieces)
        self._offset = np.array(offsets, dtype=np.int64)
        self._length = np.array(lengths, dtype=np.int64)
        self._loop = np.array(loops, dtype=np.int64)
        self._scale = np.array(scales, dtype=np.float32)
        n = index.grid_size
        self._n = n
        self._pitches = np.array(index.pitches, dtype=np.int64)
        self._velocities = np.array(index.velocities, dtype=np.int64)
        # row of (cell i, cell j, root index, layer index) in the sample table
        self._rows = np.empty((n, n, len(index.pitches), len(index.velocities)), dtype=np.int64)
        for i in range(n):
            for j in range(n):
                for p, pitch in enumerate(index.pitches):
                    for v, velocity in enumerate(index.velocities):
                        sound = index.cells[f"{i},{j}"]
                        self._rows[i, j, p, v] = self._sample_row[f"{sound}/{pitch}/{velocity}"]
        self.spec = StreamSpec(  # every key plays (a root transposed), as the SFZ maps keys 0..127
            sample_rate=sr, hop_length_samples=hop, preroll_steps=0,
            time_steps=int(math.ceil(MAX_NOTE_SECONDS * sr / hop)), embedding_dims=2,
            pitch_min_midi=0, pitch_max_midi=127, instrument_names=BANK_CORNER_NAMES)
        self._hop_offsets = np.arange(hop, dtype=np.float64)
        self._taps = np.arange(-1, 3, dtype=np.int64)  # Hermite taps around the read position
        self._ramp = np.arange(1, hop + 1, dtype=np.float64) / hop

    @property
    def memory_bytes(self) -> int:
        """Bytes held by the sample table."""
        return int(self._table.nbytes)

    def instrument_embedding(self, name: str) -> np.ndarray:
        """The pad coordinates of corner ``name`` (one of :data:`BANK_CORNER_NAMES`), shape (2,) float32."""
        try:
            return _CORNER_XY[BANK_CORNER_NAMES.index(name)].copy()
        except ValueError:
            raise KeyError(f"unknown corner {name!r}; a bank's corners are {', '.join(BANK_CORNER_NAMES)}") from None

    def new_state(self, n_voices: int) -> State:
        """``norm``: the power-preserving gain of each voice's last hop (0 before its first)."""
        return {"norm": np.zeros((n_voices,), dtype=np.float64)}

    def _cells(self, xy: np.ndarray):
        """Four cells around each voice's XY and their bilinear weights: rows (v, 4) ints, (v, 4) weights."""
        n = self._n
        if n == 1:
            zeros = np.zeros((xy.shape[0], 4), dtype=np.int64)
            weights = np.zeros((xy.shape[0], 4))
            weights[:, 0] = 1.0
            return zeros, zeros, weights
        f = np.clip(xy.astype(np.float64), 0.0, 1.0) * (n - 1)
        i0 = np.minimum(np.floor(f).astype(np.int64), n - 2)
        u = f - i0  # (v, 2) position inside the quad
        ci = np.stack([i0[:, 0], i0[:, 0] + 1, i0[:, 0], i0[:, 0] + 1], axis=1)
        cj = np.stack([i0[:, 1], i0[:, 1], i0[:, 1] + 1, i0[:, 1] + 1], axis=1)
        ux, uy = u[:, 0], u[:, 1]
        weights = np.stack([(1 - ux) * (1 - uy), ux * (1 - uy), (1 - ux) * uy, ux * uy], axis=1)
        return ci, cj, weights

    def _read(self, rows: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Hermite-interpolated samples of table rows at fractional positions.

        ``rows`` (voices, 4) sample rows, ``positions`` (voices, hop) source frames (the same for the
        4 cells of a voice) -> (voices, 4, hop) float64. A position past a loop's end wraps into the
        loop; past the end of a sample without a loop it reads silence.
        """
        base = np.floor(positions).astype(np.int64)  # (v, hop)
        frac = (positions - base)[:, None, :, None]  # (v, 1, hop, 1)
        loop_start, loop_end = self._loop[rows, 0][..., None], self._loop[rows, 1][..., None]  # (v, 4, 1)
        span = loop_end - loop_start
        index = np.broadcast_to(base[:, None, :], (*rows.shape, base.shape[1]))  # (v, 4, hop)
        index = np.where((index >= loop_end) & (span > 0),
                         loop_start + (index - loop_start) % np.maximum(span, 1), index)
        playing = index < self._length[rows][..., None]
        start = self._offset[rows][..., None] + np.where(playing, index, 0)
        x = self._table[start[..., None] + self._taps].astype(np.float64)  # (v, 4, hop, 4 taps)
        xm1, x0, x1, x2 = x[..., 0], x[..., 1], x[..., 2], x[..., 3]
        f = frac[..., 0]
        c1 = 0.5 * (x1 - xm1)
        c2 = xm1 - 2.5 * x0 + 2.0 * x1 - 0.5 * x2
        c3 = 0.5 * (x2 - xm1) + 1.5 * (x0 - x1)
        out = ((c3 * f + c2) * f + c1) * f + x0
        return np.where(playing, out, 0.0) * self._scale[rows][..., None]

    def step(self, instrument_embedding, pitch_midi, velocity, time_index, state):
        """One hop for every voice; see ``StreamingSynth.step``. ``instrument_embedding`` is (voices, 2) XY."""
        xy = np.asarray(instrument_embedding, dtype=np.float64).reshape(-1, 2)
        pitch = np.asarray(pitch_midi, dtype=np.int64)
        vel = np.asarray(velocity, dtype=np.float64)
        t = np.asarray(time_index, dtype=np.int64)
        voices = xy.shape[0]
        hop = self.spec.hop_length_samples
        root = np.clip(np.searchsorted(self._pitches, pitch, side="right") - 1, 0, len(self._pitches) - 1)
        layer = np.minimum(np.searchsorted(self._velocities, vel, side="left"), len(self._velocities) - 1)
        ratio = 2.0 ** ((pitch - self._pitches[root]) / 12.0)  # playback speed of the root's sample
        gain = np.minimum(vel / self._velocities[layer], 1.0)
        ci, cj, weights = self._cells(xy)
        rows = self._rows[ci, cj, root[:, None], layer[:, None]]  # (v, 4)
        positions = (t[:, None] * hop + self._hop_offsets[None, :]) * ratio[:, None]  # (v, hop) in source frames
        cells = self._read(rows, positions)
        mixed = np.einsum("vc,vch->vh", weights, cells)
        target = np.einsum("vc,vc->v", weights, np.einsum("vch,vch->vc", cells, cells))
        power = np.einsum("vh,vh->v", mixed, mixed)
        norm = np.where(target <= 1e-20, 1.0, np.sqrt(target / np.maximum(power, target / MAX_NORM_GAIN ** 2)))
        previous = np.asarray(state["norm"], dtype=np.float64)
        previous = np.where(previous > 0, previous, norm)
        ramp = previous[:, None] + (norm - previous)[:, None] * self._ramp[None, :]
        audio = (mixed * ramp * gain[:, None]).astype(np.float32)
        return audio, {"norm": norm}


def load_bank_player(bank_dir: str | os.PathLike) -> BankPlayer:
    """Open a bank folder for playing (see :class:`BankPlayer`)."""
    return BankPlayer(bank_dir)
