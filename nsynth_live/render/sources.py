"""Note renderers of a bank: one interface over every backend that turns grid cells into notes.

A *note renderer* takes a batch of notes, each given by the weights of the four corner sounds at a
grid cell, a MIDI note number and a velocity, and returns their audio at its own sample rate. The
bank job (:mod:`nsynth_live.render.bank`) knows nothing else about a backend: it builds renderers
from a picklable :class:`SourceSpec` inside each worker process (an ONNX Runtime session or a
torch model cannot cross a process boundary), and records :meth:`NoteRenderer.describe` in the
bank's manifest so a resumed job can refuse a different model.

Backends:

* ``sing`` (:class:`SingNoteRenderer`): the streaming SING model; each corner is an instrument of
  the model, a cell's instrument embedding is the weighted sum of the corners' (SING section 3: the
  instrument embedding is a 16-dim vector looked up per instrument; blending vectors is how the XY
  pad makes new timbres).
* ``wavenet`` (:mod:`nsynth_live.render.wavenet_source`): the NSynth WaveNet autoencoder; corners
  are encoded at each pitch and the cells' embeddings mixed frame by frame (Engel et al. 2017,
  section 5).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from nsynth_live.fileio import sha256_of_file

N_CORNERS = 4  # corners in the order (x, y) = (0, 0), (1, 0), (0, 1), (1, 1)
BACKENDS = ("sing", "wavenet")


class SourceError(ValueError):
    """A corner, model or setting of a bank source is unusable (the message says which and why)."""


@dataclass(frozen=True)
class SourceSpec:
    """Everything a worker needs to build a note renderer (picklable, JSON-able).

    Attributes
    ----------
    backend : str
        ``"sing"`` or ``"wavenet"``.
    model_path : str
        The model file: a streaming SING ``.onnx`` or a WaveNet checkpoint ``.pt``.
    corners : tuple of 4 str
        Corner sounds at (x, y) = (0, 0), (1, 0), (0, 1), (1, 1): instrument names of the model
        (``sing``), or instrument names of ``dataset_path`` / paths of audio files (``wavenet``).
    dataset_path : str
        NSynth-format dataset the ``wavenet`` corners are read from ("" when corners are files).
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda[:N]"`` (``wavenet``; ``sing`` runs on ONNX Runtime's CPU).
    precision : str
        ``"float32"``, ``"bfloat16"`` or ``"float16"`` (``wavenet`` generation).
    batch_size : int
        Notes rendered together by one call of the model.
    seed : int
        Sampling seed (``wavenet``); SING is deterministic.
    """

    backend: str
    model_path: str
    corners: tuple[str, str, str, str]
    dataset_path: str = ""
    device: str = "auto"
    precision: str = "float32"
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise SourceError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if len(self.corners) != N_CORNERS or not all(isinstance(c, str) and c for c in self.corners):
            raise SourceError(
                f"corners must be 4 names in the order (x,y) = (0,0), (1,0), (0,1), (1,1), got {self.corners!r}")
        object.__setattr__(self, "corners", tuple(self.corners))
        if not isinstance(self.batch_size, (int, np.integer)) or self.batch_size < 1:
            raise SourceError(f"batch_size must be a positive integer, got {self.batch_size!r}")

    def settings(self) -> dict:
        """The settings that change the audio (recorded in the manifest; compared on resume)."""
        return {
            "backend": self.backend,
            "corners": list(self.corners),
            "dataset_path": self.dataset_path,
            "precision": self.precision,
            "seed": int(self.seed),
        }


class NoteRenderer(Protocol):
    """What the bank job needs from a backend.

    Attributes
    ----------
    sample_rate : int
        Hz of the audio :meth:`render` returns.
    note_samples : int
        Samples of every rendered note (the model's whole note, release included).
    hold_seconds : float
        Seconds after the note's start at which the key is released in the model's notes (3 s
        for NSynth-trained models): a sustain loop must end before it.
    pitch_min_midi, pitch_max_midi : int
        MIDI note numbers the backend can render (inclusive).
    """

    sample_rate: int
    note_samples: int
    hold_seconds: float
    pitch_min_midi: int
    pitch_max_midi: int

    def describe(self) -> dict:
        """JSON-able facts of the model: ``backend``, ``model_sha256``, ``sample_rate`` and more."""

    def estimate_seconds(self, n_notes: int) -> float | None:
        """Projected wall time to render ``n_notes`` notes here, s (None when unknown)."""

    def render(self, corner_weights: np.ndarray, pitch_midi: np.ndarray, velocity: np.ndarray) -> np.ndarray:
        """Render a batch of notes.

        Parameters
        ----------
        corner_weights : (notes, 4) float64
            Weights of the corners (0,0), (1,0), (0,1), (1,1); non-negative, summing to 1.
        pitch_midi : (notes,) int64
            MIDI note numbers within ``pitch_min_midi .. pitch_max_midi``.
        velocity : (notes,) int64
            MIDI velocities 1..127.

        Returns
        -------
        (notes, note_samples) float32
            Audio at ``sample_rate``. The same inputs give the same audio whatever the batch.
        """


def make_renderer(spec: SourceSpec) -> NoteRenderer:
    """Build the note renderer a :class:`SourceSpec` names (in the calling process).

    Raises
    ------
    SourceError
        For an unknown corner, a missing or unreadable model, or a bad setting.
    """
    if spec.backend == "sing":
        return SingNoteRenderer(spec)
    from nsynth_live.extras import require_torch  # noqa: PLC0415

    try:
        require_torch("the wavenet backend")
    except ImportError as error:
        raise SourceError(str(error)) from error
    from nsynth_live.render.wavenet_source import WavenetNoteRenderer  # noqa: PLC0415 (torch-heavy)

    return WavenetNoteRenderer(spec)


class SingNoteRenderer:
    """The streaming SING model as a note renderer (see :class:`NoteRenderer`).

    Each cell's instrument embedding is ``corner_weights @ corner_embeddings``; notes are stepped
    in batches of ``spec.batch_size`` voices by :func:`nsynth_live.runtime.notes.render_notes`
    (pre-roll discarded), over the model's whole time table: 4.03 s for SING (3 s held, then its
    learned release).

    Raises
    ------
    SourceError
        If the model file cannot be opened, or a corner is not one of the model's instruments
        (the message lists the valid names).
    """

    def __init__(self, spec: SourceSpec):
        from nsynth_live.runtime.sing_onnx import ModelFileError, load_synth  # noqa: PLC0415

        try:
            self.synth = load_synth(spec.model_path, intra_op_threads=1)
        except ModelFileError as error:
            raise SourceError(str(error)) from error
        model_spec = self.synth.spec
        unknown = [c for c in spec.corners if c not in model_spec.instrument_names]
        if unknown:
            raise SourceError(
                f"corner(s) {', '.join(unknown)} not in the model {spec.model_path}; valid names: "
                f"{', '.join(sorted(model_spec.instrument_names))}")
        self.spec = spec
        self.corner_embeddings = np.stack([self.synth.instrument_embedding(c) for c in spec.corners]).astype(np.float64)
        self.sample_rate = model_spec.sample_rate
        self.n_note_steps = model_spec.time_steps - model_spec.preroll_steps
        self.note_samples = self.n_note_steps * model_spec.hop_length_samples
        from nsynth_live.constants import NSYNTH_NOTE_OFF_SECONDS  # noqa: PLC0415

        self.hold_seconds = NSYNTH_NOTE_OFF_SECONDS
        self.pitch_min_midi = model_spec.pitch_min_midi
        self.pitch_max_midi = model_spec.pitch_max_midi
        self._sha256 = sha256_of_file(spec.model_path)

    def describe(self) -> dict:
        return {
            "backend": "sing",
            "model_path": os.path.basename(self.spec.model_path),
            "model_sha256": self._sha256,
            "sample_rate": self.sample_rate,
            "note_samples": self.note_samples,
        }

    def estimate_seconds(self, n_notes: int) -> float | None:
        return None  # fast enough that the progress bar's ETA says it

    def render(self, corner_weights, pitch_midi, velocity) -> np.ndarray:
        from nsynth_live.runtime.notes import render_notes  # noqa: PLC0415

        weights = np.asarray(corner_weights, dtype=np.float64)
        if weights.ndim != 2 or weights.shape[1] != N_CORNERS:
            raise ValueError(f"corner_weights must have shape (notes, 4), got {weights.shape}")
        embeddings = (weights @ self.corner_embeddings).astype(np.float32)
        return render_notes(
            self.synth, instrument_embeddings=embeddings, pitch_midi=pitch_midi, velocity=velocity,
            n_note_steps=self.n_note_steps, max_voices_per_batch=self.spec.batch_size)
