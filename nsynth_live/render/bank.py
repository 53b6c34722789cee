"""Render a timbre grid into a multisample bank: work items, manifest, resume, local workers, Ray.

One work item is one note: (sound of a grid cell, root key, velocity layer). Items are cut into
fixed *chunks* of ``batch_size`` notes over the whole bank, always the same for the same settings;
a chunk is rendered in one batched call of the backend (:mod:`nsynth_live.render.sources`), then
each note is finished (resampled to the output rate, sustain loop found, 24-bit WAV with a ``smpl``
chunk encoded) by the same worker. Workers return WAV bytes; only this process writes files, so a
worker on another machine (Ray) needs no shared filesystem.

Resume (``kill -9`` at any moment, then the same command):

* ``manifest.json`` (written atomically before the first note) holds the settings and the model's
  description (backend, sha256). A resumed job with other settings is refused, naming each
  difference (:class:`BankJobError`).
* ``manifest.notes.jsonl`` gets one line per finished note, appended and fsynced *after* its WAV
  was renamed into place (a WAV is written to a temporary file and renamed, so no truncated WAV ever
  has a line). On resume, a torn last line is cut off, every listed WAV is checked (size and
  sha256), stale temporary files are removed, and the chunks holding a missing note are rendered
  again whole: a resumed bank is byte-identical to an uninterrupted one.
* ``bank.json`` is written last, after the SFZ and other formats: its presence means the bank is
  complete. An existing complete bank is not overwritten without ``force``.

Local workers are processes (``spawn``: ONNX Runtime and torch sessions are built inside each; a
WaveNet job on ``cuda``/``auto`` that sees several GPUs gives each worker its own, ``cuda:k``);
``ray_address`` runs the same chunks as Ray tasks (Ray schedules them; there is no scheduler of our
own). Ray's facts: ``ray.init(address=...)`` joins a cluster, ``ray.init()`` with ``"local"`` starts
one on this machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from nsynth_live.data.bank_index import (
    BANK_INDEX_NAME,
    SAMPLES_DIR,
    BankIndex,
    BankSample,
)
from nsynth_live.fileio import atomic_write_bytes, write_json_atomic
from nsynth_live.functional.midi import midi_to_hz
from nsynth_live.render.grid import GRID_SCHEMES, grid_sounds
from nsynth_live.render.sources import SourceSpec, make_renderer

logger = logging.getLogger(__name__)

MANIFEST_FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
NOTES_LOG_NAME = "manifest.notes.jsonl"
BANK_FORMATS = ("sfz", "decent", "ons")
ONS_GRID_SIZE = 9  # Open NSynth Super's device plays a 9 x 9 grid only
LOCK_NAME = ".render_bank.lock"  # held (flock) while a job writes the folder
LOOP_SEARCH_START_SECONDS = 0.5  # s after the note's start: past the attack of NSynth-like notes
LOOP_END_GUARD_SECONDS = 0.25  # s before the key is released in the model's note (its release starts there)
MIN_LOOP_SECONDS = 0.25  # s, shortest sustain loop searched
LOOP_CROSSFADE_SECONDS = 0.05  # s of the loop's end blended into what precedes its start (bake_loop_crossfade)
END_FADE_SECONDS = 0.005  # s, linear fade at the very end of each sample (no click if a player reaches it)
_LOG_FIELDS = ("key", "file", "frames", "loop_start", "loop_end", "peak", "bytes", "sha256")
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


class BankJobError(RuntimeError):
    """A bank job cannot start or resume (the message says why and what to do)."""


@dataclass(frozen=True)
class BankSettings:
    """What a bank is made of (all of it recorded in the manifest and ``bank.json``).

    Attributes
    ----------
    name : str
        Bank name: letters, digits, ``_`` and ``-`` (file stem of the ``.sfz`` and the WAVs).
    grid_size : int
        N of the N x N grid (1..33; 9 as Open NSynth Super).
    grid_scheme : str
        ``"bilinear"`` or ``"ons"`` (:mod:`nsynth_live.render.grid`).
    pitches : tuple of int
        Root keys rendered, MIDI note numbers, ascending and distinct.
    velocities : tuple of int
        Velocity layers, 1..127, ascending and distinct.
    sample_rate : int
        Hz of the written WAVs (48000 default).
    formats : tuple of str
        Sampler formats written besides ``bank.json``: ``sfz``, ``decent``, ``ons``.
    sfz_layout : str
        ``"quad"`` (4 voices per note, continuous XY within the note's quad), ``"nearest"`` (1 voice,
        the cell fixed at note-on) or ``"full"`` (N * N voices, continuous everywhere).
    plots : bool
        Write the corner rainbowgrams and the grid map.
    """

    name: str
    grid_size: int = 9
    grid_scheme: str = "bilinear"
    pitches: tuple[int, ...] = tuple(range(36, 85, 4))
    velocities: tuple[int, ...] = (100,)
    sample_rate: int = 48_000
    formats: tuple[str, ...] = ("sfz",)
    sfz_layout: str = "quad"
    plots: bool = True

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or not set(self.name) <= _NAME_CHARS or len(self.name) > 64:
            raise ValueError(f"bank name must be 1-64 letters, digits, '_' or '-', got {self.name!r}")
        if self.grid_scheme not in GRID_SCHEMES:
            raise ValueError(f"grid scheme must be one of {', '.join(GRID_SCHEMES)}, got {self.grid_scheme!r}")
        for what, values, low in (("pitches", self.pitches, 0), ("velocities", self.velocities, 1)):
            values = tuple(int(v) for v in values)
            if not values or list(values) != sorted(set(values)) or values[0] < low or values[-1] > 127:
                raise ValueError(f"{what} must be distinct, ascending, in {low}..127, got {list(values)}")
            object.__setattr__(self, what, values)
        if not isinstance(self.sample_rate, (int, np.integer)) or not 8_000 <= self.sample_rate <= 192_000:
            raise ValueError(f"sample_rate must be an integer in 8000..192000 Hz, got {self.sample_rate!r}")
        unknown = [f for f in self.formats if f not in BANK_FORMATS]
        if unknown:
            raise ValueError(f"unknown bank format(s) {unknown}; choose from {', '.join(BANK_FORMATS)}")
        object.__setattr__(self, "formats", tuple(dict.fromkeys(self.formats)))
        if self.sfz_layout not in ("quad", "nearest", "full"):
            raise ValueError(f"sfz_layout must be 'quad', 'nearest' or 'full', got {self.sfz_layout!r}")
        grid_sounds(self.grid_size, ("a", "b", "c", "d"), scheme=self.grid_scheme)  # validates grid_size
        if "ons" in self.formats and self.grid_size != ONS_GRID_SIZE:
            raise ValueError(f"the Open NSynth Super format needs a {ONS_GRID_SIZE}x{ONS_GRID_SIZE} grid (its device's), "
                             f"got {self.grid_size}; use --grid {ONS_GRID_SIZE} or leave 'ons' out of --formats")


@dataclass(frozen=True)
class WorkItem:
    """One note of the bank."""

    sound: int  # index into GridSounds.sound_weights
    sound_key: str  # x{i}y{j} of the sound's first cell
    pitch_midi: int
    velocity: int
    weights: tuple[float, float, float, float]

    @property
    def key(self) -> str:
        return f"{self.sound_key}/{self.pitch_midi}/{self.velocity}"

    def file_name(self, bank_name: str) -> str:
        """``<bank>_<sound>_<midi:03d>_v<vel:03d>.wav`` (MIDI numbers, not note names)."""
        return f"{bank_name}_{self.sound_key}_{self.pitch_midi:03d}_v{self.velocity:03d}.wav"


@dataclass
class BankResult:
    """What a job did (for the CLI to print)."""

    out_dir: Path
    notes_total: int
    notes_rendered: int
    notes_resumed: int
    seconds: float
    audio_seconds: float
    files: list[Path] = field(default_factory=list)
    clipped_notes: int = 0
    loops_found: int = 0

    @property
    def notes_per_second(self) -> float:
        return self.notes_rendered / self.seconds if self.seconds > 0 else float("nan")


def work_items(settings: BankSettings, corners: Sequence[str]) -> list[WorkItem]:
    """Every note of the bank, in a fixed order (root, then velocity, then sound)."""
    sounds = grid_sounds(settings.grid_size, corners, scheme=settings.grid_scheme)
    return [
        WorkItem(sound=s, sound_key=sounds.sound_key(s), pitch_midi=p, velocity=v,
                 weights=tuple(float(w) for w in sounds.sound_weights[s]))
        for p in settings.pitches for v in settings.velocities for s in range(len(sounds.sound_cells))
    ]


def chunk_items(items: Sequence[WorkItem], batch_size: int) -> list[list[WorkItem]]:
    """Fixed chunks of ``batch_size`` items (the last may be shorter)."""
    return [list(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]


# ---------------------------------------------------------------------------- one note, finished
def finish_note(audio, *, model_sample_rate: int, sample_rate: int, pitch_midi: int, hold_seconds: float):
    """Turn a rendered note into the bank's sample: resampled, faded at its end, with a sustain loop.

    Parameters
    ----------
    audio : (time,) float32
        The note at ``model_sample_rate``.
    model_sample_rate, sample_rate : int
        Hz in and out (soxr, very high quality, when they differ).
    pitch_midi : int
        The note's MIDI number (its f0 guides the loop search).
    hold_seconds : float
        Seconds the key is held in the model's note; the loop lies in
        ``[LOOP_SEARCH_START_SECONDS, hold_seconds - LOOP_END_GUARD_SECONDS]``.

    Returns
    -------
    audio : (time,) float32 at ``sample_rate``, its loop's last 50 ms crossfaded into what precedes
        the loop start (:func:`~nsynth_live.export.sample_loop.bake_loop_crossfade`)
    loop : LoopPoints or None
        None when the note has no steady part to loop (silent, unpitched, too short); its
        ``seam_db`` is the seam as played after the crossfade.
    """
    from nsynth_live.export.sample_loop import bake_loop_crossfade, find_sustain_loop  # noqa: PLC0415

    x = np.asarray(audio, dtype=np.float64)
    if sample_rate != model_sample_rate:
        import soxr  # noqa: PLC0415

        x = soxr.resample(x, model_sample_rate, sample_rate, quality="VHQ")
    fade = min(len(x), max(1, int(round(END_FADE_SECONDS * sample_rate))))
    x[-fade:] *= np.linspace(1.0, 0.0, fade)
    loop = None
    try:
        loop = find_sustain_loop(
            x, sample_rate=sample_rate, f0_hz=float(midi_to_hz(pitch_midi)),
            search_start_seconds=LOOP_SEARCH_START_SECONDS,
            search_end_seconds=min(hold_seconds - LOOP_END_GUARD_SECONDS, len(x) / sample_rate),
            min_loop_seconds=MIN_LOOP_SECONDS)
    except ValueError as error:
        logger.info("MIDI %d: no sustain loop (%s)", pitch_midi, error)
    if loop is not None:  # the loop's end blended into what precedes its start: a seamless wrap
        x, seam_db = bake_loop_crossfade(x, loop, sample_rate=sample_rate, f0_hz=float(midi_to_hz(pitch_midi)),
                                         crossfade_seconds=LOOP_CROSSFADE_SECONDS)
        loop = dataclasses.replace(loop, seam_db=seam_db)
    return x.astype(np.float32), loop


def note_wav_bytes(audio, *, sample_rate: int, pitch_midi: int, loop) -> bytes:
    """24-bit PCM WAV with a ``smpl`` chunk (root key and, if any, the sustain loop)."""
    from nsynth_live.export.riff import pcm24_wav_bytes, smpl_payload  # noqa: PLC0415

    start, end = (loop.start, loop.end) if loop is not None else (0, 0)
    smpl = smpl_payload(sample_rate=sample_rate, root_key=pitch_midi, loop_start=start, loop_end=end)
    return pcm24_wav_bytes(audio, sample_rate=sample_rate, extra_chunks=[(b"smpl", smpl)])


# ---------------------------------------------------------------------------- workers
_WORKER_RENDERER = None
_WORKER_DEVICE = None  # "cuda:k" given to this worker process by _init_worker, else None


def _init_worker(devices) -> None:
    """Process-pool initializer: take one device from the shared queue (one GPU per worker)."""
    global _WORKER_DEVICE
    _WORKER_DEVICE = devices.get()


def _worker_devices(source: SourceSpec, workers: int) -> list[str] | None:
    """One ``cuda:k`` per local worker when a WaveNet job on ``auto``/``cuda`` sees several GPUs."""
    if source.backend != "wavenet" or source.device not in ("auto", "cuda") or workers < 2:
        return None
    import torch  # noqa: PLC0415

    count = torch.cuda.device_count()
    return [f"cuda:{k % count}" for k in range(workers)] if count > 1 else None


def _worker_renderer(spec: SourceSpec):
    global _WORKER_RENDERER  # one model per worker process, built on its first chunk
    if _WORKER_RENDERER is None or _WORKER_RENDERER[0] != spec:
        _WORKER_RENDERER = (spec, make_renderer(spec))
    return _WORKER_RENDERER[1]


def render_chunk(spec: SourceSpec, items: Sequence[WorkItem], *, bank_name: str, sample_rate: int) -> list[dict]:
    """Render and finish one chunk of notes (runs in a worker).

    Returns
    -------
    list of dict
        Per item: ``key``, ``file`` (name), ``wav`` (bytes), ``frames``, ``loop_start``, ``loop_end``,
        ``seam_db``, ``peak``.
    """
    if _WORKER_DEVICE is not None:
        spec = dataclasses.replace(spec, device=_WORKER_DEVICE)
    renderer = _worker_renderer(spec)
    weights = np.array([it.weights for it in items], dtype=np.float64)
    pitches = np.array([it.pitch_midi for it in items], dtype=np.int64)
    velocities = np.array([it.velocity for it in items], dtype=np.int64)
    audio = renderer.render(weights, pitches, velocities)
    out = []
    for item, note in zip(items, audio):
        finished, loop = finish_note(note, model_sample_rate=renderer.sample_rate, sample_rate=sample_rate,
                                     pitch_midi=item.pitch_midi, hold_seconds=renderer.hold_seconds)
        out.append({
            "key": item.key, "file": item.file_name(bank_name),
            "wav": note_wav_bytes(finished, sample_rate=sample_rate, pitch_midi=item.pitch_midi, loop=loop),
            "frames": int(finished.shape[0]),
            "loop_start": int(loop.start) if loop else 0, "loop_end": int(loop.end) if loop else 0,
            "seam_db": float(loop.seam_db) if loop else None,
            "peak": float(np.max(np.abs(finished))) if finished.size else 0.0,
        })
    return out


def _ray_render_chunk(spec, items, bank_name, sample_rate):
    return render_chunk(spec, items, bank_name=bank_name, sample_rate=sample_rate)


# ---------------------------------------------------------------------------- manifest
def _manifest_settings(settings: BankSettings, spec: SourceSpec, described: dict) -> dict:
    return {
        "format_version": MANIFEST_FORMAT_VERSION,
        "bank": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(settings).items()
                 if k not in ("formats", "plots", "sfz_layout")},
        # the batches decide which notes are rendered together (and, for the WaveNet on a GPU or in
        # bf16, the rounding), the device the arithmetic: both stay fixed for a byte-identical resume
        "source": {**spec.settings(), "batch_size": int(spec.batch_size),
                   **({"device": spec.device} if spec.backend == "wavenet" else {})},
        "model": {k: v for k, v in described.items() if k != "model_path"},
    }


def _differences(old, new, prefix="") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    if old != new:
        return [f"{prefix.rstrip('.')}: {json.dumps(old)} in the manifest, {json.dumps(new)} now"]
    return []


def _read_notes_log(path: Path) -> dict[str, dict]:
    """Finished notes from the log; a torn last line (kill mid-append) is cut off the file."""
    if not path.exists():
        return {}
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        with open(path, "r+b") as stream:
            stream.truncate(len(complete))
    done = {}
    for number, line in enumerate(complete.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict) or not all(k in entry for k in _LOG_FIELDS):
                raise ValueError("missing fields")
        except ValueError as error:
            logger.warning("%s line %d is damaged (%s): its note is rendered again", path, number, error)
            continue
        done[entry["key"]] = entry
    return done


def _verified(out_dir: Path, done: dict[str, dict]) -> dict[str, dict]:
    """Entries whose WAV exists with the recorded size and sha256 (others are rendered again)."""
    kept = {}
    for key, entry in done.items():
        path = out_dir / SAMPLES_DIR / entry["file"]
        try:
            data = path.read_bytes()
        except OSError:
            logger.warning("%s is listed in the manifest but missing: rendering it again", path)
            continue
        if len(data) != entry["bytes"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            logger.warning("%s does not match the manifest (size or sha256): rendering it again", path)
            continue
        kept[key] = entry
    return kept


def _remove_stale_temporaries(folder: Path) -> None:
    if folder.is_dir():
        for stale in folder.glob(".*.tmp"):
            stale.unlink(missing_ok=True)


# ---------------------------------------------------------------------------- the job
def render_bank(
    out_dir: str | os.PathLike,
    *,
    settings: BankSettings,
    source: SourceSpec,
    workers: int = 1,
    ray_address: str | None = None,
    force: bool = False,
    progress: bool = True,
    announce: Callable[[str], None] = print,
    max_chunks: int | None = None,
) -> BankResult:
    """Render (or resume) a bank into ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Bank folder: ``<name>.sfz`` (etc.), ``samples/``, ``bank.json``, ``manifest*``, PNGs.
    settings : BankSettings
    source : SourceSpec
        Backend, model and corners.
    workers : int
        Local worker processes (1: render in this process).
    ray_address : str or None
        Run the chunks as Ray tasks on this cluster (``"local"`` starts one here with ``workers``
        CPUs); ``2 * workers`` chunks are then kept in flight, each task taking one CPU, and one GPU
        when ``source.device`` is ``cuda``.
    force : bool
        Start over: an existing bank or manifest in ``out_dir`` is replaced.
    progress : bool
        Show a tqdm bar (notes, notes/s, ETA).
    announce : callable
        Receives one-line messages for the user (what will be done, how long it may take).
    max_chunks : int or None
        Stop after this many chunks (tests of resume; the job is then incomplete).

    Returns
    -------
    BankResult

    Raises
    ------
    BankJobError
        If ``out_dir`` holds a complete bank and ``force`` is False, the manifest's settings
        differ from these (each difference named), or the manifest is unreadable.
    SourceError
        For an unknown corner or unusable model (raised before any file is written).
    """
    out_dir = Path(out_dir)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    manifest_path = out_dir / MANIFEST_NAME
    if (out_dir / BANK_INDEX_NAME).exists() and not force:
        raise BankJobError(f"{out_dir} already holds a complete bank ({BANK_INDEX_NAME}); pass --force to render it again")

    renderer = make_renderer(source)  # fails here, before any file, on a bad corner or model
    described = renderer.describe()
    low, high = renderer.pitch_min_midi, renderer.pitch_max_midi
    outside = [p for p in settings.pitches if not low <= p <= high]
    if outside:
        raise BankJobError(f"pitches {outside} are outside the model's range {low}..{high}; choose pitches inside it")
    wanted = _manifest_settings(settings, source, described)

    if not force and not manifest_path.exists() and out_dir.is_dir() and any(
            not _is_our_leftover(p) for p in out_dir.iterdir()):
        raise BankJobError(f"{out_dir} exists and is not an unfinished bank of ours; pass --force or choose another folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = _lock_folder(out_dir)
    try:
        _remove_stale_temporaries(out_dir)
        return _render_locked(out_dir, settings=settings, source=source, renderer=renderer, described=described,
                              wanted=wanted, workers=workers, ray_address=ray_address, force=force,
                              progress=progress, announce=announce, max_chunks=max_chunks)
    finally:
        _unlock_folder(lock)


def _is_our_leftover(path: Path) -> bool:
    """A temporary file of an atomic write (``.<name>.<random>.tmp``) or the job lock."""
    return path.name == LOCK_NAME or (path.name.startswith(".") and path.name.endswith(".tmp") and path.is_file())


def _lock_folder(out_dir: Path):
    """Hold an exclusive ``flock`` on the folder's lock file (released by the kernel if the job dies)."""
    import fcntl  # noqa: PLC0415

    stream = open(out_dir / LOCK_NAME, "a")
    try:
        fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        stream.close()
        raise BankJobError(f"another job is rendering into {out_dir}; wait for it to end or choose another folder") from None
    return stream


def _unlock_folder(stream) -> None:
    Path(stream.name).unlink(missing_ok=True)
    stream.close()  # closing releases the flock


def _render_locked(out_dir: Path, *, settings, source, renderer, described, wanted, workers, ray_address, force,
                   progress, announce, max_chunks) -> BankResult:
    """The job once the folder is checked and locked (see :func:`render_bank`)."""
    manifest_path = out_dir / MANIFEST_NAME
    notes_log = out_dir / NOTES_LOG_NAME
    samples_dir = out_dir / SAMPLES_DIR
    if force:  # in this order: a kill in between leaves an unfinished bank that resumes
        (out_dir / BANK_INDEX_NAME).unlink(missing_ok=True)
        notes_log.unlink(missing_ok=True)
        if manifest_path.exists() and samples_dir.is_dir():  # a bank of ours: its old notes go too
            for old in samples_dir.glob("*.wav"):
                old.unlink()
        manifest_path.unlink(missing_ok=True)
    done: dict[str, dict] = {}
    if manifest_path.exists():
        try:
            recorded = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise BankJobError(f"{manifest_path} is unreadable ({error}); pass --force to start over") from error
        if recorded.get("format_version") != MANIFEST_FORMAT_VERSION:
            raise BankJobError(
                f"{manifest_path} has format_version {recorded.get('format_version')!r}, this nsynth-live writes "
                f"{MANIFEST_FORMAT_VERSION}; pass --force to start over")
        differences = _differences(recorded, wanted)
        if differences:
            raise BankJobError(
                f"{out_dir} holds an unfinished bank with other settings; resume it with the same command, or "
                "pass --force to start over. Differences:\n  " + "\n  ".join(differences))
        done = _verified(out_dir, _read_notes_log(notes_log))
    else:
        write_json_atomic(manifest_path, wanted)
    _remove_stale_temporaries(samples_dir)
    samples_dir.mkdir(parents=True, exist_ok=True)

    items = work_items(settings, source.corners)
    chunks = chunk_items(items, source.batch_size)
    todo = [c for c in chunks if any(it.key not in done for it in c)]
    if max_chunks is not None:
        todo = todo[:max_chunks]
    n_todo = sum(1 for c in todo for it in c if it.key not in done)
    note_seconds = renderer.note_samples / renderer.sample_rate
    announce(
        f"bank {settings.name!r}: {len(items)} notes ({settings.grid_size}x{settings.grid_size} grid, "
        f"{len(items) // (len(settings.pitches) * len(settings.velocities))} distinct sounds x "
        f"{len(settings.pitches)} roots x {len(settings.velocities)} velocity layers), {len(done)} already done, "
        f"{n_todo} to render with {described['backend']} on "
        f"{'Ray' if ray_address else f'{workers} worker(s)'}")
    estimate = renderer.estimate_seconds(n_todo) if n_todo else None
    if estimate is not None:
        announce(f"projected time: {estimate / 60:.1f} min ({n_todo * note_seconds / estimate:.3f} s of audio per second)")

    started = time.perf_counter()
    log_stream = open(notes_log, "ab")
    bar = None
    if progress:
        from tqdm.auto import tqdm  # noqa: PLC0415

        bar = tqdm(total=len(items), initial=len(done), unit="note", desc=settings.name, smoothing=0.1)
    rendered = 0

    def record(results: list[dict]) -> None:
        nonlocal rendered
        for entry in results:
            if entry["key"] in done:
                continue  # rendered again only because its chunk had a missing note
            wav = entry.pop("wav")
            atomic_write_bytes(samples_dir / entry["file"], wav, overwrite=True)
            entry["bytes"] = len(wav)
            entry["sha256"] = hashlib.sha256(wav).hexdigest()
            log_stream.write((json.dumps(entry) + "\n").encode("utf-8"))
            log_stream.flush()
            os.fsync(log_stream.fileno())
            done[entry["key"]] = entry
            rendered += 1
            if bar is not None:
                bar.update(1)

    try:
        if workers == 1 and ray_address is None:
            global _WORKER_RENDERER
            _WORKER_RENDERER = (source, renderer)
            for chunk in todo:
                record(render_chunk(source, chunk, bank_name=settings.name, sample_rate=settings.sample_rate))
        elif ray_address is not None:
            del renderer
            _run_ray(todo, source, settings, ray_address, workers, record)
        else:
            del renderer
            _run_processes(todo, source, settings, workers, record)
    finally:
        log_stream.close()
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - started

    result = BankResult(out_dir=out_dir, notes_total=len(items), notes_rendered=rendered,
                        notes_resumed=len(done) - rendered, seconds=elapsed,
                        audio_seconds=rendered * note_seconds)
    result.clipped_notes = sum(1 for e in done.values() if e["peak"] >= 1.0)
    result.loops_found = sum(1 for e in done.values() if e["loop_end"] > e["loop_start"])
    if len(done) < len(items):
        return result  # stopped early (max_chunks): the bank is not complete
    index = bank_index(settings, source, described, items, done)
    result.files = write_bank_files(out_dir, index, settings)
    return result


def _run_processes(todo, source, settings, workers, record) -> None:
    import multiprocessing  # noqa: PLC0415
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait  # noqa: PLC0415

    context = multiprocessing.get_context("spawn")
    devices = _worker_devices(source, workers)
    options = {}
    if devices:  # one GPU per worker process
        queue = context.Queue()
        for device in devices:
            queue.put(device)
        options = {"initializer": _init_worker, "initargs": (queue,)}
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, **options) as pool:
        pending = set()
        queue = list(todo)
        while queue or pending:
            while queue and len(pending) < 2 * workers:
                pending.add(pool.submit(render_chunk, source, queue.pop(0), bank_name=settings.name,
                                        sample_rate=settings.sample_rate))
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                record(future.result())


def _run_ray(todo, source, settings, address, workers, record) -> None:
    try:
        import ray  # noqa: PLC0415
    except ImportError as error:
        raise BankJobError("--ray needs Ray: pip install 'nsynth-live[ray]'") from error
    started_here = not ray.is_initialized()
    if started_here:
        if address == "local":
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    try:
        # Ray gives each task its own GPU (CUDA_VISIBLE_DEVICES) when the job runs on CUDA
        remote = ray.remote(num_cpus=1, num_gpus=1 if source.device.startswith("cuda") else 0)(_ray_render_chunk)
        queue = list(todo)
        pending = []
        in_flight = max(2 * workers, 2)
        while queue or pending:
            while queue and len(pending) < in_flight:
                pending.append(remote.remote(source, queue.pop(0), settings.name, settings.sample_rate))
            finished, pending = ray.wait(pending, num_returns=1)
            for ref in finished:
                record(ray.get(ref))
    finally:
        if started_here:
            ray.shutdown()


# ---------------------------------------------------------------------------- index and formats
def bank_index(settings: BankSettings, source: SourceSpec, described: dict, items, done) -> BankIndex:
    """The :class:`BankIndex` of a finished job."""
    sounds = grid_sounds(settings.grid_size, source.corners, scheme=settings.grid_scheme)
    n = settings.grid_size
    cells = {f"{c % n},{c // n}": sounds.sound_key(int(s)) for c, s in enumerate(sounds.sound_of_cell)}
    samples = {}
    for item in items:
        entry = done[item.key]
        samples[item.key] = BankSample(
            path=f"{SAMPLES_DIR}/{entry['file']}", pitch_midi=item.pitch_midi, velocity=item.velocity,
            weights=item.weights, loop_start=entry["loop_start"], loop_end=entry["loop_end"], frames=entry["frames"])
    return BankIndex(
        name=settings.name, sample_rate=settings.sample_rate, grid_size=n, grid_scheme=settings.grid_scheme,
        corners=tuple(source.corners), pitches=settings.pitches, velocities=settings.velocities, cells=cells,
        samples=samples, source={**source.settings(), **described})


def write_bank_files(out_dir: Path, index: BankIndex, settings: BankSettings) -> list[Path]:
    """Write the sampler formats, the pictures, then ``bank.json`` (last: it marks the bank complete)."""
    files = []
    if "sfz" in settings.formats:
        from nsynth_live.export.sfz import write_sfz  # noqa: PLC0415

        files.append(write_sfz(out_dir, index, layout=settings.sfz_layout, overwrite=True))
    if "decent" in settings.formats:
        from nsynth_live.export.sampler_formats import write_decent_sampler  # noqa: PLC0415

        files.append(write_decent_sampler(out_dir, index, overwrite=True))
    if "ons" in settings.formats:
        from nsynth_live.export.sampler_formats import write_ons_bins  # noqa: PLC0415

        files.extend(write_ons_bins(out_dir, index, overwrite=True))
    if settings.plots:
        files.extend(_write_pictures(out_dir, index))
    files.append(write_json_atomic(out_dir / BANK_INDEX_NAME, index.to_json()))
    return files


def _write_pictures(out_dir: Path, index: BankIndex) -> list[Path]:
    import soundfile  # noqa: PLC0415

    from nsynth_live.export.rainbowgram import save_bank_pictures  # noqa: PLC0415

    pitch = index.pitches[len(index.pitches) // 2]
    velocity = index.velocities[-1]
    n = index.grid_size
    cache: dict[str, np.ndarray] = {}

    def audio_of(i, j):
        path = index.sample(i, j, pitch, velocity).path
        if path not in cache:
            cache[path] = soundfile.read(str(out_dir / path), dtype="float32")[0]
        return cache[path]

    cells = {(i, j): audio_of(i, j) for i in range(n) for j in range(n)}
    last = n - 1
    corner_cells = ((0, 0), (last, 0), (0, last), (last, last))
    corner_audio, named = {}, {}
    for name, (i, j), position in zip(index.corners, corner_cells, ("x0y0", "x1y0", "x0y1", "x1y1")):
        label = Path(name).stem if ("/" in name or "." in name) else name
        if named.get(label, name) != name:
            label = f"{label}_{position}"  # two different files with one stem
        named[label] = name
        corner_audio.setdefault(label, cells[(i, j)])  # a sound at two corners is drawn once
    return list(save_bank_pictures(out_dir, corner_audio=corner_audio, cells=cells, sample_rate=index.sample_rate,
                                   grid_size=n, overwrite=True))
