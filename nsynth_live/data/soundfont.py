"""Render an NSynth-format dataset from a SoundFont (SF2/SF3) with FluidSynth.

Each note follows the NSynth protocol (Engel et al. 2017, section 3): 4 s at 16 kHz mono, note-on at
0 s, note-off at 3 s, dry (reverb and chorus off). Chosen General MIDI programs are mapped to NSynth
family/source names. Rendering is deterministic: one fresh synthesizer per instrument renders its
notes in a fixed order, so an instrument is always rendered whole (that is also the unit of resume).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np

from nsynth_live.constants import (
    NSYNTH_FAMILIES,
    NSYNTH_NOTE_OFF_SECONDS,
    NSYNTH_NOTE_SAMPLES,
    NSYNTH_SAMPLE_RATE,
    NSYNTH_SOURCES,
    NSYNTH_VELOCITIES,
)
from nsynth_live.data.nsynth import (
    AUDIO_DIR,
    AUDIO_FORMATS,
    EXAMPLES_JSON,
    NSynthNote,
    make_instrument_str,
    make_note_str,
    write_audio_atomic,
    write_examples_json,
)
from nsynth_live.fileio import (
    atomic_write_bytes, is_temporary_name, remove_stale_temporaries, sha256_of_file, write_json_atomic,
)

logger = logging.getLogger(__name__)

DEBIAN_GM_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"  # Debian package fluid-soundfont-gm
MANIFEST_JSON = "manifest.json"
MANIFEST_FORMAT_VERSION = 1
DONE_MARKER = "DONE"


@dataclass(frozen=True)
class GMInstrument:
    """A General MIDI program and the NSynth family/source it stands for.

    ``program`` is 0-based (GM 1 "Acoustic Grand Piano" is 0).
    """

    program: int
    family: str
    source: str
    gm_name: str

    def __post_init__(self):
        if not 0 <= self.program <= 127:
            raise ValueError(f"GM program must be 0..127 (0-based), got {self.program}")
        if self.family not in NSYNTH_FAMILIES:
            raise ValueError(f"family {self.family!r} is not one of {NSYNTH_FAMILIES}")
        if self.source not in NSYNTH_SOURCES:
            raise ValueError(f"source {self.source!r} is not one of {NSYNTH_SOURCES}")


# 20 GM programs over all 11 NSynth families; the index in this tuple is the instrument number.
DEFAULT_GM_INSTRUMENTS: tuple[GMInstrument, ...] = (
    GMInstrument(0, "keyboard", "acoustic", "Acoustic Grand Piano"),
    GMInstrument(4, "keyboard", "electronic", "Electric Piano 1"),
    GMInstrument(11, "mallet", "acoustic", "Vibraphone"),
    GMInstrument(12, "mallet", "acoustic", "Marimba"),
    GMInstrument(16, "organ", "electronic", "Drawbar Organ"),
    GMInstrument(19, "organ", "acoustic", "Church Organ"),
    GMInstrument(24, "guitar", "acoustic", "Acoustic Guitar (nylon)"),
    GMInstrument(27, "guitar", "electronic", "Electric Guitar (clean)"),
    GMInstrument(32, "bass", "acoustic", "Acoustic Bass"),
    GMInstrument(38, "bass", "synthetic", "Synth Bass 1"),
    GMInstrument(40, "string", "acoustic", "Violin"),
    GMInstrument(48, "string", "acoustic", "String Ensemble 1"),
    GMInstrument(56, "brass", "acoustic", "Trumpet"),
    GMInstrument(60, "brass", "acoustic", "French Horn"),
    GMInstrument(65, "reed", "acoustic", "Alto Sax"),
    GMInstrument(71, "reed", "acoustic", "Clarinet"),
    GMInstrument(73, "flute", "acoustic", "Flute"),
    GMInstrument(80, "synth_lead", "synthetic", "Lead 1 (square)"),
    GMInstrument(81, "synth_lead", "synthetic", "Lead 2 (sawtooth)"),
    GMInstrument(52, "vocal", "acoustic", "Choir Aahs"),
)


@dataclass(frozen=True)
class SoundFontDatasetConfig:
    """What to render.

    Attributes
    ----------
    soundfont_path : str
        SF2/SF3 file.
    instruments : tuple of GMInstrument
        Programs to render; instrument number = index.
    pitch_min_midi, pitch_max_midi : int
        Inclusive MIDI note range.
    velocities : tuple of int
        MIDI velocities, a subset of NSynth's {25, 50, 75, 100, 127}.
    sample_rate : int
        Hz (16000 as NSynth).
    note_samples : int
        Samples per note (64000 = 4 s).
    note_off_seconds : float
        When the key is released (3 s as NSynth).
    gain : float
        FluidSynth master gain (``synth.gain``) while rendering.
    instrument_peak_dbfs : float
        Each instrument's notes are scaled together so that its loudest note peaks here. Velocity
        dynamics inside an instrument are kept, and every instrument is equally loud. (SoundFont
        renders are quiet - FluidR3 peaks near -5 dBFS at gain 1 and velocity-25 notes near
        -40 dBFS - and on quiet targets SING's log(1 + |STFT|^2) loss has a vanishing gradient
        around silence: a model trained on them collapses to silence.)
    silence_threshold_dbfs : float
        Notes whose peak is below this are dropped (outside a preset's key range).
    audio_format : str
        ``"wav"`` (NSynth's) or ``"flac"`` (16-bit too, lossless, about half the size: the 48-kHz
        set of model v3, :data:`FULL_BAND_DATASET`).
    """

    soundfont_path: str = DEBIAN_GM_SOUNDFONT
    instruments: tuple[GMInstrument, ...] = DEFAULT_GM_INSTRUMENTS
    pitch_min_midi: int = 36
    pitch_max_midi: int = 84
    velocities: tuple[int, ...] = NSYNTH_VELOCITIES
    sample_rate: int = NSYNTH_SAMPLE_RATE
    note_samples: int = NSYNTH_NOTE_SAMPLES
    note_off_seconds: float = NSYNTH_NOTE_OFF_SECONDS
    gain: float = 1.0
    instrument_peak_dbfs: float = -1.0
    silence_threshold_dbfs: float = -50.0
    audio_format: str = "wav"

    def __post_init__(self):
        if self.audio_format not in AUDIO_FORMATS:
            raise ValueError(f"audio_format must be one of {AUDIO_FORMATS}, got {self.audio_format!r}")
        if self.sample_rate < 8000 or self.note_samples <= 0:
            raise ValueError(f"sample_rate must be >= 8000 Hz and note_samples > 0, got {self.sample_rate}, "
                             f"{self.note_samples}")
        if not 0 < self.note_off_seconds * self.sample_rate < self.note_samples:
            raise ValueError(f"note_off_seconds ({self.note_off_seconds}) must fall inside the note "
                             f"({self.note_samples / self.sample_rate:g} s)")
        if not 0 <= self.pitch_min_midi <= self.pitch_max_midi <= 127:
            raise ValueError(
                f"pitch range must satisfy 0 <= min <= max <= 127, got {self.pitch_min_midi}..{self.pitch_max_midi}"
            )
        bad = [v for v in self.velocities if v not in NSYNTH_VELOCITIES]
        if bad or not self.velocities:
            raise ValueError(f"velocities must be a non-empty subset of {NSYNTH_VELOCITIES}, got {self.velocities}")
        if not self.instruments:
            raise ValueError("at least one instrument is needed")
        if not -40.0 <= self.instrument_peak_dbfs <= 0.0:
            raise ValueError(f"instrument_peak_dbfs must be in [-40, 0] dBFS, got {self.instrument_peak_dbfs}")
        if not 0 < self.note_off_seconds * self.sample_rate < self.note_samples:
            raise ValueError(
                f"note_off_seconds={self.note_off_seconds} must fall inside the note "
                f"({self.note_samples / self.sample_rate} s)"
            )

    def instrument_str(self, index: int) -> str:
        inst = self.instruments[index]
        return make_instrument_str(inst.family, inst.source, index)


FULL_BAND_SAMPLE_RATE = 48_000  # Hz: model v3's training set (full band, no 8-kHz ceiling)
# The NSynth protocol (4-s notes, released at 3 s, same instruments, pitches and velocities) at 48 kHz,
# stored as 16-bit FLAC (about 0.9 GB for the 4894 notes, against 1.8 GB as WAV).
FULL_BAND_DATASET = SoundFontDatasetConfig(sample_rate=FULL_BAND_SAMPLE_RATE,
                                           note_samples=4 * FULL_BAND_SAMPLE_RATE, audio_format="flac")


def _require_fluidsynth():
    try:
        import fluidsynth  # noqa: PLC0415 - optional native library, imported where needed
    except (ImportError, OSError) as exc:  # OSError: libfluidsynth missing
        raise RuntimeError(
            "pyfluidsynth could not load FluidSynth: install the Debian packages 'fluidsynth "
            "libfluidsynth3' and the PyPI package 'pyfluidsynth'"
        ) from exc
    return fluidsynth


def render_instrument_notes(
    config: SoundFontDatasetConfig, index: int
) -> list[tuple[int, int, np.ndarray]]:
    """Render every (pitch, velocity) note of one instrument.

    Returns
    -------
    list of (pitch_midi, velocity, audio)
        ``audio`` has shape ``(note_samples,)``, float32 in [-1, 1]. Silent notes are included;
        the caller filters them.

    Raises
    ------
    FileNotFoundError
        If the SoundFont does not exist.
    RuntimeError
        If FluidSynth cannot load the SoundFont or select the program.
    """
    fluidsynth = _require_fluidsynth()
    if not Path(config.soundfont_path).is_file():
        raise FileNotFoundError(
            f"SoundFont {config.soundfont_path} not found: install Debian 'fluid-soundfont-gm' or pass another SF2/SF3"
        )
    inst = config.instruments[index]
    synth = fluidsynth.Synth(
        gain=config.gain,
        samplerate=float(config.sample_rate),
        **{"synth.reverb.active": 0, "synth.chorus.active": 0},
    )
    try:
        sfid = synth.sfload(config.soundfont_path)
        if sfid < 0:
            raise RuntimeError(f"FluidSynth could not load the SoundFont {config.soundfont_path}")
        bank = 128 if inst.family == "drums" else 0
        if synth.program_select(0, sfid, bank, inst.program) != 0:
            raise RuntimeError(f"SoundFont {config.soundfont_path} has no program {inst.program} in bank {bank}")
        note_off_samples = int(round(config.note_off_seconds * config.sample_rate))
        flush_samples = config.sample_rate  # 1 s of silence between notes empties every voice
        notes = []
        for pitch in range(config.pitch_min_midi, config.pitch_max_midi + 1):
            for velocity in config.velocities:
                synth.noteon(0, pitch, velocity)
                held = synth.get_samples(note_off_samples)
                synth.noteoff(0, pitch)
                released = synth.get_samples(config.note_samples - note_off_samples)
                stereo = np.concatenate([held, released]).reshape(-1, 2).astype(np.float32) / 32768.0
                notes.append((pitch, velocity, stereo.mean(axis=1)))
                synth.all_sounds_off(0)
                synth.get_samples(flush_samples)
        return notes
    finally:
        synth.delete()


DATASET_NAMES = frozenset({AUDIO_DIR, EXAMPLES_JSON, MANIFEST_JSON, DONE_MARKER})  # what a dataset folder holds


def build_soundfont_dataset(
    config: SoundFontDatasetConfig,
    out_dir: str | os.PathLike,
    *,
    progress: Callable[[int, int], None] | None = None,
    force: bool = False,
) -> list[NSynthNote]:
    """Render ``config`` into ``out_dir`` in the NSynth json/wav layout.

    Writes ``audio/<note_str>.wav`` (16-bit PCM, atomically), ``examples.json``, ``manifest.json``
    (format version, SoundFont file name and sha256, config, counts) and finally a ``DONE`` marker.
    An interrupted build resumes: instruments whose notes are all present (per the partial manifest)
    are not rendered again, and the temporary files of the interrupted writes are removed.

    Parameters
    ----------
    progress : callable(done_instruments, total_instruments), optional
    force : bool
        Start over: the dataset files in ``out_dir`` (``audio/*.wav``, ``examples.json``,
        ``manifest.json``, ``DONE``), complete or not, of any config, are deleted first.

    Returns
    -------
    list of NSynthNote
        The notes kept (silent ones are dropped), sorted by ``note_str``.

    Raises
    ------
    ValueError
        If ``out_dir`` holds a manifest of a different SoundFont or config (and ``force`` is False).
    FileExistsError
        If ``out_dir`` holds a complete dataset (its ``DONE`` marker), or files that are not a
        dataset's, and ``force`` is False (the message names ``--force``).
    """
    out = Path(out_dir)
    soundfont_sha256 = sha256_of_file(config.soundfont_path)
    config_json = json.loads(json.dumps(asdict(config)))  # tuples -> lists, as read back
    manifest_path = out / MANIFEST_JSON
    if out.is_dir() and not manifest_path.is_file():
        # a folder that is not a dataset is never written into, with or without --force
        foreign = sorted(p.name for p in out.iterdir() if p.name not in DATASET_NAMES and not is_temporary_name(p.name))
        if foreign:
            raise FileExistsError(f"{out} exists and is not a dataset (it holds {', '.join(foreign[:3])}"
                                  f"{'...' if len(foreign) > 3 else ''}); choose another folder")
    if force:
        _delete_dataset_files(out)
    elif out.is_dir():
        if manifest_path.is_file():
            previous = json.loads(manifest_path.read_text())
            if previous.get("soundfont_sha256") != soundfont_sha256 or _with_defaults(previous.get("config")) != config_json:
                raise ValueError(f"{out} holds a dataset of another SoundFont or config: choose an empty folder, "
                                 "delete it or pass --force to replace it")
        if (out / DONE_MARKER).is_file():
            raise FileExistsError(f"{out} already holds a complete dataset ({DONE_MARKER}); pass --force to "
                                  "build it again")
    out.mkdir(parents=True, exist_ok=True)
    (out / DONE_MARKER).unlink(missing_ok=True)
    remove_stale_temporaries(out)  # left by a killed build (this job owns the folder)
    remove_stale_temporaries(out / AUDIO_DIR)
    manifest = {
        "format_version": MANIFEST_FORMAT_VERSION,
        "soundfont_name": Path(config.soundfont_path).name,
        "soundfont_sha256": soundfont_sha256,
        "config": config_json,
        "instruments": {},
    }
    if manifest_path.is_file():
        manifest["instruments"] = json.loads(manifest_path.read_text()).get("instruments", {})

    threshold = 10.0 ** (config.silence_threshold_dbfs / 20.0)
    all_notes: list[NSynthNote] = []
    note_counter = 0
    for index, inst in enumerate(config.instruments):
        instrument_str = config.instrument_str(index)
        done = manifest["instruments"].get(instrument_str)
        suffix = f".{config.audio_format}"
        if done is None or not all((out / AUDIO_DIR / f"{k}{suffix}").is_file() for k in done["kept"]):
            kept, dropped = [], []
            rendered = render_instrument_notes(config, index)
            peak = max(float(np.max(np.abs(audio))) for _, _, audio in rendered)
            # Silence is judged on the raw render; normalisation must not lift a silent note.
            instrument_gain = 10.0 ** (config.instrument_peak_dbfs / 20.0) / max(peak, 1e-9)
            for pitch, velocity, audio in rendered:
                note_str = make_note_str(instrument_str, pitch, velocity)
                if float(np.max(np.abs(audio))) < threshold:
                    dropped.append(note_str)
                    continue
                audio = audio * instrument_gain
                write_audio_atomic(out / AUDIO_DIR / f"{note_str}{suffix}", audio, sample_rate=config.sample_rate,
                                   audio_format=config.audio_format)
                kept.append(note_str)
            if dropped:
                logger.info("%s (%s): dropped %d silent notes", instrument_str, inst.gm_name, len(dropped))
            done = {"gm_program": inst.program, "gm_name": inst.gm_name, "kept": kept, "dropped": dropped,
                    "gain_db": round(20.0 * float(np.log10(instrument_gain)), 3)}
            manifest["instruments"][instrument_str] = done
            write_json_atomic(manifest_path, manifest)
        for note_str in done["kept"]:
            _, pitch, velocity = note_str.rsplit("-", 2)
            all_notes.append(
                NSynthNote(
                    note=note_counter, note_str=note_str, instrument=index, instrument_str=instrument_str,
                    pitch=int(pitch), velocity=int(velocity), sample_rate=config.sample_rate,
                    qualities=(0,) * 10, qualities_str=(),
                    instrument_family=NSYNTH_FAMILIES.index(inst.family), instrument_family_str=inst.family,
                    instrument_source=NSYNTH_SOURCES.index(inst.source), instrument_source_str=inst.source,
                    extra={"gm_program": inst.program, "gm_name": inst.gm_name},
                )
            )
            note_counter += 1
        if progress is not None:
            progress(index + 1, len(config.instruments))
    manifest["note_count"] = len(all_notes)
    write_json_atomic(manifest_path, manifest)
    write_examples_json(out, all_notes)
    atomic_write_bytes(out / DONE_MARKER, b"complete\n", overwrite=True)
    return sorted(all_notes, key=lambda n: n.note_str)


def _with_defaults(config_json):
    """A manifest's config with the fields added since it was written at their defaults (a dataset
    rendered before ``audio_format`` existed is the same dataset as one with ``audio_format="wav"``)."""
    if not isinstance(config_json, dict):
        return config_json
    defaults = {}
    for field in fields(SoundFontDatasetConfig):
        if field.name not in config_json and field.default is not MISSING:
            defaults[field.name] = json.loads(json.dumps(field.default))
    return defaults | config_json


def _delete_dataset_files(out: Path) -> None:
    """What :func:`build_soundfont_dataset` writes in ``out`` (other files stay), temporaries included;
    only in a dataset's folder (one with its manifest)."""
    if not out.is_dir() or not (out / MANIFEST_JSON).is_file():
        return
    for name in (DONE_MARKER, MANIFEST_JSON, EXAMPLES_JSON):
        (out / name).unlink(missing_ok=True)
    remove_stale_temporaries(out)
    audio = out / AUDIO_DIR
    if audio.is_dir():
        for audio_format in AUDIO_FORMATS:
            for path in audio.glob(f"*.{audio_format}"):
                path.unlink(missing_ok=True)
        remove_stale_temporaries(audio)
