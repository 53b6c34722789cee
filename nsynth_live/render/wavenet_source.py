"""The NSynth WaveNet autoencoder as a bank note renderer (backend ``wavenet``).

The NSynth way of making new timbres (Engel et al. 2017, section 5; Open NSynth Super's
``audio/workdir`` pipeline): each corner sound is encoded *at each pitch* (the embedding carries
pitch, so corners cannot be encoded once and transposed afterwards), a cell's embedding is the
weighted sum of the corners' embeddings frame by frame, and the WaveNet decoder samples a note from
it.

Corners
-------
A corner of :class:`~nsynth_live.render.sources.SourceSpec` is either

* an ``instrument_str`` of the NSynth-format dataset at ``spec.dataset_path``: for a wanted pitch the
  instrument's note at that pitch and the *nearest available velocity* is encoded. When the
  instrument has no note at that pitch, its note at the *nearest pitch it has* (ties: the lower) is
  transposed by resampling, by the nominal semitone ratio ``2 ** ((wanted - source) / 12)``;
* or the path of an audio file (WAV, FLAC, AIFF, OGG; any rate, mono or stereo: mixed down and
  resampled with a warning by :func:`~nsynth_live.runtime.wavenet_files.load_mono_audio`). Its f0 is
  estimated once (:func:`~nsynth_live.functional.pitch.estimate_f0_hz`; a silent, noisy or
  unpitched file is refused), and for each wanted pitch it is transposed by resampling (soxr) by
  ``midi_to_hz(wanted) / f0``.

A transposed corner is cropped or zero-padded to the note length (64000 samples = 4 s at 16 kHz,
NSynth's notes): transposing up shortens the sound (a 4-s file an octave up lasts 2 s, then
silence), transposing down slows its attack and cuts its end.

Velocity
--------
The WaveNet is not conditioned on velocity; its embeddings carry the loudness of what was encoded.
A dataset corner is the note of the nearest velocity layer the instrument has. A file corner is
encoded at a linear gain of ``velocity / 127`` (the file's own level stands for velocity 127), so its
velocity layers differ in loudness the way NSynth's do, and a cell mixing file and dataset corners
stays consistent (the gain goes into the embedding, not onto the output).

Determinism
-----------
Each note's sampling noise comes from its own ``torch.Generator``, seeded from a hash of
``(spec.seed, corner weights, pitch, velocity)`` (:func:`note_seed`), so a note's noise does not
depend on which other notes share its batch or on its row. :class:`WaveNetGenerator`'s own
:meth:`~nsynth_live.runtime.wavenet_generate.WaveNetGenerator.generate_codes` is called with
``row_seeds``: each row's noise is drawn from its own generator (the same Gumbel-max sampling step,
CUDA graph on CUDA).
Each corner note is encoded alone (batch 1), so an embedding does not depend on which other corner
notes were encoded in the same call either (a convolution over 4 notes rounded differently from one
over 1 in our tests). The same inputs then give the same audio whatever the batch wherever the
decoder's arithmetic of a row does not depend on the batch size: tested on CPU in float32 with a
tiny model, not measured for the Magenta-size one. On a GPU, or on CPU in bfloat16 (which uses
pre-packed oneDNN products up to 256 voices and ``addmm`` above), matmul kernels chosen for
different batch sizes may round differently, and a sampled note can take another branch after a
near-tie: bitwise reproduction there needs the same batches (the bank job forms its batches
deterministically).

Sampling is at temperature 1 (Magenta's plain categorical sampling).
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nsynth_live.constants import NSYNTH_NOTE_OFF_SECONDS, NSYNTH_NOTE_SAMPLES, NSYNTH_SAMPLE_RATE
from nsynth_live.functional.midi import midi_to_hz
from nsynth_live.fileio import sha256_of_file
from nsynth_live.render.sources import N_CORNERS, SourceError, SourceSpec

NSYNTH_NOTE_SECONDS = NSYNTH_NOTE_SAMPLES / NSYNTH_SAMPLE_RATE  # s, 4.0, NSynth dataset
MIDI_VELOCITY_MAX = 127  # MIDI 1.0: the loudest velocity; file corners are encoded at velocity / 127
MIDI_PITCH_MIN, MIDI_PITCH_MAX = 0, 127  # MIDI 1.0 note numbers
SAMPLING_TEMPERATURE = 1.0  # Magenta samples the softmax plainly
SEEDING_SCHEME = "per-note-sha256-v1"  # recorded by describe(): a change invalidates a resumed bank
ESTIMATE_WARMUP_STEPS = 4  # generator steps before the timed ones (lazy inits, CUDA graph capture)
ESTIMATE_TIMED_STEPS = 32  # generator steps timed by estimate_seconds
PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_WEIGHT_SUM_TOLERANCE = 1e-6


def note_seed(seed: int, corner_weights: np.ndarray, pitch_midi: int, velocity: int) -> int:
    """Sampling seed of one note: a hash of the bank seed and the note's inputs.

    Parameters
    ----------
    seed : int
        ``SourceSpec.seed``.
    corner_weights : (4,) float64
    pitch_midi, velocity : int

    Returns
    -------
    int
        In ``0 .. 2**63 - 1``; equal inputs give equal seeds, whatever batch the note is in.
    """
    weights = np.ascontiguousarray(np.asarray(corner_weights, dtype="<f8") + 0.0)  # + 0.0: -0.0 -> 0.0
    digest = hashlib.sha256(f"{int(seed)}|{int(pitch_midi)}|{int(velocity)}|".encode() + weights.tobytes()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def transpose_by_resampling(audio: np.ndarray, *, ratio: float, note_samples: int) -> np.ndarray:
    """Transpose a sound by ``ratio`` (frequency factor) by resampling, then crop/pad it.

    Playing the samples ``ratio`` times faster multiplies every frequency by ``ratio`` and divides
    the duration by it (soxr, high quality; above the Nyquist rate the content is filtered away).

    Parameters
    ----------
    audio : (time,) float32
    ratio : float
        > 0; 2 is an octave up.
    note_samples : int
        Length of the result; shorter results are zero-padded at the end.

    Returns
    -------
    (note_samples,) float32
    """
    import soxr  # noqa: PLC0415

    if not ratio > 0:
        raise ValueError(f"ratio must be > 0, got {ratio!r}")
    if ratio != 1.0:
        # Read as sampled at ratio * R and written at R: the same waveform, ratio times faster.
        audio = soxr.resample(np.asarray(audio, np.float32), float(ratio), 1.0, quality="HQ")
    out = np.zeros(note_samples, np.float32)
    n = min(note_samples, audio.shape[0])
    out[:n] = audio[:n]
    return out


@dataclass(frozen=True)
class _FileCorner:
    path: str
    sha256: str
    audio: np.ndarray  # (time,) float32 at the model's rate
    f0_hz: float


@dataclass(frozen=True)
class _DatasetCorner:
    instrument_str: str
    velocities_by_pitch: dict  # pitch_midi -> sorted tuple of velocities


class WavenetNoteRenderer:
    """The NSynth WaveNet autoencoder as a :class:`~nsynth_live.render.sources.NoteRenderer`.

    See the module docstring for how corners, velocity and seeds are handled.

    Parameters
    ----------
    spec : SourceSpec
        ``backend="wavenet"``; ``model_path`` is an nsynth-live WaveNet checkpoint (``.pt``, ours or
        converted from Magenta's by ``export/convert_magenta_checkpoint.py``); ``corners`` are audio
        files or, with ``dataset_path``, instrument names of that NSynth-format dataset.
    note_seconds : float
        Length of a rendered note, s (rounded up to whole encoder frames). Default 4 s, NSynth's
        notes; shorter is for tests and previews (``hold_seconds`` scales with it).
    progress : bool
        Show a tqdm bar over the samples of each generated batch.

    Attributes
    ----------
    sample_rate : int
        Hz of the model (16000 for NSynth models).
    note_samples : int
        ``frames * hop_length_samples`` (64000 for 4 s at 16 kHz with 512-sample frames).
    hold_seconds : float
        3.0 (NSynth notes are held 3 s, then released), scaled by ``note_seconds / 4``.
    pitch_min_midi, pitch_max_midi : int
        0..127 when every corner is a file: any pitch is reached by transposition, but a file moved
        far from its own pitch sounds like a tape played at the wrong speed (and above a few octaves
        up its content lies beyond 8 kHz and is filtered away). With dataset corners: the pitches
        every dataset corner's instrument spans (gaps inside are filled by transposing the nearest
        note).

    Raises
    ------
    SourceError
        If the checkpoint is missing, corrupt or not a WaveNet autoencoder; the device or precision
        is not usable; a corner is neither a readable audio file nor (with ``dataset_path``) an
        instrument of the dataset; a file corner is silent, noisy or unpitched; or the dataset
        corners share no pitch.
    """

    def __init__(self, spec: SourceSpec, *, note_seconds: float = NSYNTH_NOTE_SECONDS, progress: bool = False):
        from nsynth_live.models.wavenet_ae import WaveNetAutoencoder  # noqa: PLC0415
        from nsynth_live.runtime.wavenet_generate import WaveNetGenerator  # noqa: PLC0415

        if spec.backend != "wavenet":
            raise SourceError(f"WavenetNoteRenderer needs backend 'wavenet', got {spec.backend!r}")
        if spec.precision not in PRECISIONS:
            raise SourceError(f"precision must be one of {', '.join(PRECISIONS)}, got {spec.precision!r}")
        if not note_seconds > 0:
            raise SourceError(f"note_seconds must be > 0, got {note_seconds!r}")
        self.spec = spec
        self.progress = progress
        self.device = _resolve_device(spec.device)
        try:
            model = WaveNetAutoencoder.load(spec.model_path)
        except FileNotFoundError:
            raise SourceError(
                f"WaveNet checkpoint {spec.model_path!r} does not exist; train one with export/train_wavenet.py "
                "or convert Magenta's with export/convert_magenta_checkpoint.py") from None
        except ValueError as error:
            raise SourceError(
                f"{spec.model_path!r} is not a usable WaveNet autoencoder checkpoint ({error}); pass a .pt written "
                "by export/train_wavenet.py or export/convert_magenta_checkpoint.py") from error
        self.config = model.config
        self._model_sha256 = sha256_of_file(spec.model_path)
        hop = self.config.hop_length_samples
        self.sample_rate = int(self.config.sample_rate)
        self.frames = max(1, math.ceil(round(note_seconds * self.sample_rate) / hop))
        self.note_samples = self.frames * hop
        self.hold_seconds = NSYNTH_NOTE_OFF_SECONDS * min(1.0, note_seconds / NSYNTH_NOTE_SECONDS)
        self._encoder_model = model.float().to(self.device).eval()
        try:
            self.generator = WaveNetGenerator(model.decoder, device=self.device, dtype=PRECISIONS[spec.precision])
        except ValueError as error:
            raise SourceError(f"cannot generate with precision {spec.precision} on {self.device}: {error}") from error

        self._dataset = None
        self._corners = [self._load_corner(index, name) for index, name in enumerate(spec.corners)]
        self.pitch_min_midi, self.pitch_max_midi = self._pitch_range()
        self._embedding_cache: dict[tuple, np.ndarray] = {}  # (corner, pitch, velocity key) -> (frames, dims)
        self._seconds_per_step: float | None = None

    # ------------------------------------------------------------------ corners
    def _load_corner(self, index: int, name: str):
        if self.spec.dataset_path:
            self._load_dataset()
            if name in self._instrument_notes:
                return _DatasetCorner(name, self._instrument_notes[name])
        path = Path(name)
        if not path.is_file():
            where = (f"an instrument_str of {self.spec.dataset_path} (e.g. "
                     f"{', '.join(sorted(self._instrument_notes)[:5])})" if self.spec.dataset_path
                     else "an audio file (set dataset_path to use NSynth instrument names)")
            raise SourceError(f"corner {index} {name!r} is neither an existing file nor {where}")
        from nsynth_live.functional.pitch import estimate_f0_hz  # noqa: PLC0415
        from nsynth_live.runtime.wavenet_files import load_mono_audio  # noqa: PLC0415

        try:
            audio = load_mono_audio(path, sample_rate=self.sample_rate)
        except Exception as error:  # soundfile raises its own error types for unreadable files
            raise SourceError(f"corner {index}: cannot read audio file {name!r} ({error}); give a WAV, FLAC, "
                              "AIFF or OGG file") from error
        try:
            f0_hz = estimate_f0_hz(audio, sample_rate=self.sample_rate)
        except ValueError as error:  # NoStablePitchError for silence, noise, chords
            raise SourceError(f"corner {index}: audio file {name!r} has no usable pitch ({error}); a file corner "
                              "must be one sustained pitched note, which is transposed to every key") from error
        return _FileCorner(str(path), sha256_of_file(path), audio, f0_hz)

    def _load_dataset(self):
        if self._dataset is None:
            from nsynth_live.data.nsynth import NSynthDataset  # noqa: PLC0415

            try:
                self._dataset = NSynthDataset(self.spec.dataset_path)
            except (FileNotFoundError, ValueError) as error:
                raise SourceError(f"dataset_path {self.spec.dataset_path!r} is not an NSynth-format split folder "
                                  f"({error}); give the folder holding examples.json and audio/") from error
            notes: dict[str, dict[int, list[int]]] = {}
            for note in self._dataset:
                notes.setdefault(note.instrument_str, {}).setdefault(note.pitch, []).append(note.velocity)
            self._instrument_notes = {
                name: {pitch: tuple(sorted(v)) for pitch, v in by_pitch.items()} for name, by_pitch in notes.items()}
        return self._dataset

    def _pitch_range(self) -> tuple[int, int]:
        low, high = MIDI_PITCH_MIN, MIDI_PITCH_MAX
        for corner in self._corners:
            if isinstance(corner, _DatasetCorner):
                low = max(low, min(corner.velocities_by_pitch))
                high = min(high, max(corner.velocities_by_pitch))
        if low > high:
            spans = ", ".join(f"{c.instrument_str} {min(c.velocities_by_pitch)}-{max(c.velocities_by_pitch)}"
                              for c in self._corners if isinstance(c, _DatasetCorner))
            raise SourceError(f"the dataset corners share no pitch ({spans}); choose instruments whose ranges overlap")
        return low, high

    def _corner_key(self, corner_index: int, pitch_midi: int, velocity: int) -> tuple:
        """Cache key: the file corner's velocity, or the dataset velocity layer chosen."""
        corner = self._corners[corner_index]
        if isinstance(corner, _FileCorner):
            return (corner_index, pitch_midi, velocity)
        source_pitch = _nearest(sorted(corner.velocities_by_pitch), pitch_midi)
        source_velocity = _nearest(corner.velocities_by_pitch[source_pitch], velocity)
        return (corner_index, pitch_midi, source_pitch, source_velocity)

    def _corner_audio(self, key: tuple) -> np.ndarray:
        """(note_samples,) float32: the sound the encoder reads for one cache key."""
        corner = self._corners[key[0]]
        if isinstance(corner, _FileCorner):
            _, pitch, velocity = key
            ratio = float(midi_to_hz(pitch)) / corner.f0_hz
            gain = velocity / MIDI_VELOCITY_MAX
            return gain * transpose_by_resampling(corner.audio, ratio=ratio, note_samples=self.note_samples)
        from nsynth_live.data.nsynth import make_note_str  # noqa: PLC0415

        _, pitch, source_pitch, source_velocity = key
        note_str = make_note_str(corner.instrument_str, source_pitch, source_velocity)
        try:
            audio = self._dataset.load_audio(note_str)
        except (OSError, RuntimeError, ValueError) as error:  # missing file, LibsndfileError, NSynthFormatError
            raise SourceError(f"cannot read the note {note_str} of {self.spec.dataset_path} ({error}); "
                              "check the dataset's audio/ folder") from error
        file_rate = self._dataset.note(note_str).sample_rate
        if file_rate != self.sample_rate:
            import soxr  # noqa: PLC0415

            audio = soxr.resample(audio, file_rate, self.sample_rate, quality="HQ").astype(np.float32)
        ratio = 2.0 ** ((pitch - source_pitch) / 12.0)
        return transpose_by_resampling(audio, ratio=ratio, note_samples=self.note_samples)

    def _encode_missing(self, keys) -> None:
        # One note per forward pass: a convolution's rounding can depend on the batch size, and an
        # embedding must not depend on which other corner notes happened to be encoded with it.
        for key in sorted({k for k in keys if k not in self._embedding_cache}):
            audio = torch.from_numpy(self._corner_audio(key))[None].to(self.device)  # (1, note_samples)
            with torch.inference_mode():
                self._embedding_cache[key] = self._encoder_model.encode(audio)[0].float().cpu().numpy()  # (frames, dims)

    # ------------------------------------------------------------------ public
    def describe(self) -> dict:
        """JSON-able facts of the model and corners (recorded in a bank's manifest).

        Returns
        -------
        dict
            ``backend``, ``model_path`` (file name), ``model_sha256``, ``sample_rate``, ``note_samples``,
            ``hop_length_samples``, ``sampling`` (the seeding scheme and temperature), and ``corners``:
            per corner ``{"kind": "file", "name", "sha256", "f0_hz"}`` or ``{"kind": "nsynth", "name"}``.
        """
        corners = []
        for corner in self._corners:
            if isinstance(corner, _FileCorner):
                corners.append({"kind": "file", "name": os.path.basename(corner.path), "sha256": corner.sha256,
                                "f0_hz": round(corner.f0_hz, 4)})
            else:
                corners.append({"kind": "nsynth", "name": corner.instrument_str})
        return {
            "backend": "wavenet",
            "model_path": os.path.basename(self.spec.model_path),
            "model_sha256": self._model_sha256,
            "sample_rate": self.sample_rate,
            "note_samples": self.note_samples,
            "hop_length_samples": self.config.hop_length_samples,
            "sampling": {"seeding": SEEDING_SCHEME, "temperature": SAMPLING_TEMPERATURE},
            "corners": corners,
        }

    def cell_embeddings(self, corner_weights, pitch_midi, velocity) -> np.ndarray:
        """The mixed embedding each note is decoded from (corners encoded on first use, then cached).

        ``e = sum_c w_c * e_c(pitch, velocity)`` frame by frame, in float64, rounded to float32 once;
        a corner of weight 0 is not encoded, so weights ``(1, 0, 0, 0)`` give corner 0's embedding
        exactly.

        Parameters
        ----------
        corner_weights : (notes, 4) float64
            Non-negative, summing to 1; corners (0,0), (1,0), (0,1), (1,1).
        pitch_midi : (notes,) int64
            Within ``pitch_min_midi .. pitch_max_midi``.
        velocity : (notes,) int64
            1..127.

        Returns
        -------
        (notes, frames, bottleneck_dims) float32

        Raises
        ------
        ValueError
            For a bad shape, negative or non-finite weights, weights not summing to 1, or a pitch or
            velocity out of range.
        """
        weights, pitch_midi, velocity = self._check_notes(corner_weights, pitch_midi, velocity)
        keys = [[self._corner_key(c, int(p), int(v)) if w[c] != 0 else None for c in range(N_CORNERS)]
                for w, p, v in zip(weights, pitch_midi, velocity)]
        self._encode_missing(k for row in keys for k in row if k is not None)
        out = np.zeros((len(weights), self.frames, self.config.bottleneck_dims), np.float64)
        for row, (w, row_keys) in enumerate(zip(weights, keys)):
            for c, key in enumerate(row_keys):
                if key is not None:
                    out[row] += w[c] * self._embedding_cache[key]
        return out.astype(np.float32)

    def render(self, corner_weights, pitch_midi, velocity) -> np.ndarray:
        """Render a batch of notes (see :class:`~nsynth_live.render.sources.NoteRenderer`).

        Notes with equal inputs are generated once; more than ``spec.batch_size`` distinct notes are
        generated in batches of that size. Each note's sampling noise is its own (:func:`note_seed`).

        Returns
        -------
        (notes, note_samples) float32
            Audio at ``sample_rate``, in (-1, 1).
        """
        from nsynth_live.functional.mu_law import mu_law_decode  # noqa: PLC0415

        weights, pitch_midi, velocity = self._check_notes(corner_weights, pitch_midi, velocity)
        seeds = [note_seed(self.spec.seed, w, p, v) for w, p, v in zip(weights, pitch_midi, velocity)]
        identities = [(w.tobytes(), int(p), int(v)) for w, p, v in zip(weights + 0.0, pitch_midi, velocity)]
        first_row: dict[tuple, int] = {}
        unique_rows = [first_row.setdefault(key, row) for row, key in enumerate(identities) if key not in first_row]
        out = np.empty((len(weights), self.note_samples), np.float32)
        for start in range(0, len(unique_rows), self.spec.batch_size):
            rows = unique_rows[start: start + self.spec.batch_size]
            embeddings = self.cell_embeddings(weights[rows], pitch_midi[rows], velocity[rows])
            codes = self._sample_codes(torch.from_numpy(embeddings), [seeds[r] for r in rows], self.note_samples)
            audio = mu_law_decode(codes.cpu()).numpy().astype(np.float32)
            for row, note_audio in zip(rows, audio):
                out[row] = note_audio
        for row, key in enumerate(identities):
            if first_row[key] != row:
                out[row] = out[first_row[key]]
        return out

    def estimate_seconds(self, n_notes: int) -> float:
        """Projected wall time to render ``n_notes`` notes here, s.

        Times ``ESTIMATE_TIMED_STEPS`` generator steps at ``spec.batch_size`` voices on this device
        (after ``ESTIMATE_WARMUP_STEPS`` untimed ones; measured once per renderer) and projects
        ``ceil(n_notes / batch_size) * note_samples`` steps. Encoding the corners is not counted
        (a forward pass per corner note, small next to sampling).
        """
        if n_notes <= 0:
            return 0.0
        if self._seconds_per_step is None:
            batch = self.spec.batch_size
            hop = self.config.hop_length_samples
            total = ESTIMATE_WARMUP_STEPS + ESTIMATE_TIMED_STEPS
            encodings = torch.zeros(batch, math.ceil(total / hop), self.config.bottleneck_dims)
            seeds = list(range(batch))
            elapsed = []
            for steps in (ESTIMATE_WARMUP_STEPS, total):
                begin = time.perf_counter()
                self._sample_codes(encodings, seeds, steps, progress=False)
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                elapsed.append(time.perf_counter() - begin)
            timed = elapsed[1] - elapsed[0]  # the fixed costs of a call (CUDA graph capture) cancel
            self._seconds_per_step = (timed / ESTIMATE_TIMED_STEPS if timed > 0
                                      else elapsed[1] / (ESTIMATE_WARMUP_STEPS + ESTIMATE_TIMED_STEPS))
        batches = math.ceil(n_notes / self.spec.batch_size)
        return batches * self.note_samples * self._seconds_per_step

    # ------------------------------------------------------------------ internals
    def _check_notes(self, corner_weights, pitch_midi, velocity):
        weights = np.asarray(corner_weights, dtype=np.float64)
        if weights.ndim != 2 or weights.shape[1] != N_CORNERS:
            raise ValueError(f"corner_weights must have shape (notes, 4), got {weights.shape}")
        pitch_midi = np.asarray(pitch_midi, dtype=np.int64).reshape(-1)
        velocity = np.asarray(velocity, dtype=np.int64).reshape(-1)
        if pitch_midi.shape[0] != weights.shape[0] or velocity.shape[0] != weights.shape[0]:
            raise ValueError(f"got {weights.shape[0]} corner weight rows, {pitch_midi.shape[0]} pitches and "
                             f"{velocity.shape[0]} velocities; give one of each per note")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError("corner_weights must be finite and non-negative")
        sums = weights.sum(axis=1)
        off = np.abs(sums - 1.0) > _WEIGHT_SUM_TOLERANCE
        if np.any(off):
            raise ValueError(f"each row of corner_weights must sum to 1, got sums {sums[off][:5].tolist()}")
        bad = pitch_midi[(pitch_midi < self.pitch_min_midi) | (pitch_midi > self.pitch_max_midi)]
        if bad.size:
            raise ValueError(f"pitch_midi {bad[:5].tolist()} outside this source's range "
                             f"{self.pitch_min_midi}..{self.pitch_max_midi}")
        bad = velocity[(velocity < 1) | (velocity > MIDI_VELOCITY_MAX)]
        if bad.size:
            raise ValueError(f"velocity {bad[:5].tolist()} outside 1..{MIDI_VELOCITY_MAX}")
        return weights, pitch_midi, velocity

    def _sample_codes(self, encodings: torch.Tensor, seeds: list[int], n_samples: int,
                      progress: bool | None = None) -> torch.Tensor:
        """``(batch, n_samples)`` int64 codes, each row's noise from its own seed (``row_seeds``)."""
        return self.generator.generate_codes(
            encodings, temperature=SAMPLING_TEMPERATURE, row_seeds=seeds, max_samples=n_samples,
            progress=self.progress if progress is None else progress)


def _nearest(values, target: int) -> int:
    """The value closest to ``target`` (ties: the lower)."""
    return min(values, key=lambda v: (abs(v - target), v))


def _resolve_device(device: str) -> torch.device:
    """``auto`` / ``cpu`` / ``cuda`` / ``cuda:N`` -> torch.device, or SourceError saying what to use."""
    from nsynth_live.runtime.wavenet_generate import resolve_device  # noqa: PLC0415

    if isinstance(device, str) and device.startswith("cuda:"):
        index = device.split(":", 1)[1]
        if not index.isdigit() or not torch.cuda.is_available() or int(index) >= torch.cuda.device_count():
            raise SourceError(f"device {device!r} is not available (torch sees {torch.cuda.device_count()} CUDA "
                              "devices); use 'auto', 'cpu' or an existing 'cuda:N'")
        return torch.device(device)
    try:
        return resolve_device(device)
    except ValueError as error:
        raise SourceError(str(error)) from error
