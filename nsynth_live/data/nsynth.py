"""Reader and writer of the NSynth dataset's json/wav release.

Layout (NSynth dataset page; ``docs/model.md`` "NSynth dataset layout"): a split folder holds
``examples.json`` (a dict keyed by ``note_str``) and ``audio/<note_str>.wav`` (16-bit PCM, 16 kHz mono,
64000 samples). ``note_str`` = ``<instrument_str>-<pitch:03d>-<velocity:03d>``; ``instrument_str`` =
``<family>_<source>_<nnn>``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
import soundfile as sf

from nsynth_live.fileio import atomic_output, write_json_atomic
from nsynth_live.constants import (
    NSYNTH_FAMILIES,
    NSYNTH_QUALITIES,
    NSYNTH_SAMPLE_RATE,
    NSYNTH_SOURCES,
)

EXAMPLES_JSON = "examples.json"
AUDIO_DIR = "audio"
REQUIRED_FIELDS = (
    "note", "note_str", "instrument", "instrument_str", "pitch", "velocity", "sample_rate",
    "qualities", "qualities_str", "instrument_family", "instrument_family_str",
    "instrument_source", "instrument_source_str",
)
_NOTE_STR_RE = re.compile(r"^[a-z_]+_[a-z]+_\d{3}-\d{3}-\d{3}$")


class NSynthFormatError(ValueError):
    """An NSynth folder or one of its notes does not follow the json/wav layout."""


@dataclass(frozen=True)
class NSynthNote:
    """Metadata of one NSynth note (the fields of ``examples.json``).

    ``extra`` keeps fields beyond the official ones (for example the GM program of a SoundFont note).
    """

    note: int
    note_str: str
    instrument: int
    instrument_str: str
    pitch: int
    velocity: int
    sample_rate: int
    qualities: tuple[int, ...]
    qualities_str: tuple[str, ...]
    instrument_family: int
    instrument_family_str: str
    instrument_source: int
    instrument_source_str: str
    extra: Mapping[str, object] | None = None

    @classmethod
    def from_json(cls, key: str, fields: Mapping[str, object]) -> "NSynthNote":
        """Build a note from its ``examples.json`` entry.

        Raises
        ------
        NSynthFormatError
            If a required field is missing or the key and ``note_str`` disagree.
        """
        missing = [name for name in REQUIRED_FIELDS if name not in fields]
        if missing:
            raise NSynthFormatError(f"note {key!r}: missing field(s) {missing} in {EXAMPLES_JSON}")
        if fields["note_str"] != key:
            raise NSynthFormatError(f"note {key!r}: note_str is {fields['note_str']!r}, expected the key")
        extra = {k: v for k, v in fields.items() if k not in REQUIRED_FIELDS}
        return cls(
            note=int(fields["note"]),
            note_str=str(fields["note_str"]),
            instrument=int(fields["instrument"]),
            instrument_str=str(fields["instrument_str"]),
            pitch=int(fields["pitch"]),
            velocity=int(fields["velocity"]),
            sample_rate=int(fields["sample_rate"]),
            qualities=tuple(int(q) for q in fields["qualities"]),
            qualities_str=tuple(str(q) for q in fields["qualities_str"]),
            instrument_family=int(fields["instrument_family"]),
            instrument_family_str=str(fields["instrument_family_str"]),
            instrument_source=int(fields["instrument_source"]),
            instrument_source_str=str(fields["instrument_source_str"]),
            extra=extra or None,
        )

    def to_json(self) -> dict:
        """The note's ``examples.json`` entry (official fields first, then ``extra``)."""
        out = {
            "note": self.note, "note_str": self.note_str, "instrument": self.instrument,
            "instrument_str": self.instrument_str, "pitch": self.pitch, "velocity": self.velocity,
            "sample_rate": self.sample_rate, "qualities": list(self.qualities),
            "qualities_str": list(self.qualities_str), "instrument_family": self.instrument_family,
            "instrument_family_str": self.instrument_family_str,
            "instrument_source": self.instrument_source,
            "instrument_source_str": self.instrument_source_str,
        }
        out.update(self.extra or {})
        return out


def make_note_str(instrument_str: str, pitch_midi: int, velocity: int) -> str:
    """``<instrument_str>-<pitch:03d>-<velocity:03d>``, the NSynth note key."""
    return f"{instrument_str}-{pitch_midi:03d}-{velocity:03d}"


def make_instrument_str(family: str, source: str, index: int) -> str:
    """``<family>_<source>_<nnn>``.

    Raises
    ------
    ValueError
        If ``family`` or ``source`` is not an NSynth name or ``index`` is outside 0..999.
    """
    if family not in NSYNTH_FAMILIES:
        raise ValueError(f"family {family!r} is not an NSynth family; choose one of {NSYNTH_FAMILIES}")
    if source not in NSYNTH_SOURCES:
        raise ValueError(f"source {source!r} is not an NSynth source; choose one of {NSYNTH_SOURCES}")
    if not 0 <= index <= 999:
        raise ValueError(f"instrument index must be 0..999, got {index}")
    return f"{family}_{source}_{index:03d}"


def qualities_to_str(qualities: Sequence[int]) -> tuple[str, ...]:
    """Names of the qualities set in a 10-element 0/1 vector (NSynth order)."""
    return tuple(name for name, q in zip(NSYNTH_QUALITIES, qualities) if q)


class NSynthDataset:
    """Read access to one split of the NSynth json/wav release (or a folder written like it).

    Parameters
    ----------
    root : path
        Folder holding ``examples.json`` and ``audio/``.

    Raises
    ------
    FileNotFoundError
        If ``examples.json`` is missing.
    NSynthFormatError
        If ``examples.json`` is not a JSON object of notes with the NSynth fields.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        path = self.root / EXAMPLES_JSON
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: an NSynth split folder holds {EXAMPLES_JSON} and {AUDIO_DIR}/")
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise NSynthFormatError(f"{path} is not valid JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise NSynthFormatError(f"{path} must hold a JSON object keyed by note_str, got {type(raw).__name__}")
        self.notes: list[NSynthNote] = [NSynthNote.from_json(k, v) for k, v in sorted(raw.items())]
        self._index = {n.note_str: i for i, n in enumerate(self.notes)}

    def __len__(self) -> int:
        return len(self.notes)

    def __iter__(self) -> Iterator[NSynthNote]:
        return iter(self.notes)

    def __contains__(self, note_str: str) -> bool:
        return note_str in self._index

    def note(self, note_str: str) -> NSynthNote:
        """Metadata of one note. KeyError naming the note if absent."""
        try:
            return self.notes[self._index[note_str]]
        except KeyError:
            raise KeyError(f"note {note_str!r} is not in {self.root / EXAMPLES_JSON}") from None

    def audio_path(self, note_str: str) -> Path:
        """``audio/<note_str>.wav``, or ``.flac`` where only that exists (datasets rendered with
        ``audio_format="flac"``, e.g. at 48 kHz)."""
        wav = self.root / AUDIO_DIR / f"{note_str}.wav"
        if wav.is_file():
            return wav
        flac = wav.with_suffix(".flac")
        return flac if flac.is_file() else wav

    def load_audio(self, note_str: str) -> np.ndarray:
        """The note's waveform.

        Returns
        -------
        numpy.ndarray
            Shape ``(time,)``, float32 in [-1, 1], at 16 kHz (64000 samples in the real dataset).

        Raises
        ------
        NSynthFormatError
            If the file is not mono or not at the note's sample rate.
        """
        path = self.audio_path(note_str)
        audio, sample_rate = sf.read(path, dtype="float32", always_2d=True)
        if audio.shape[1] != 1:
            raise NSynthFormatError(f"{path}: NSynth audio is mono, found {audio.shape[1]} channels")
        expected = self.note(note_str).sample_rate
        if sample_rate != expected:
            raise NSynthFormatError(f"{path}: sample rate {sample_rate} Hz, examples.json says {expected} Hz")
        return audio[:, 0]

    def instruments(self) -> list[str]:
        """Sorted distinct ``instrument_str`` values."""
        return sorted({n.instrument_str for n in self.notes})


AUDIO_FORMATS = ("wav", "flac")  # what a dataset's audio/ may hold: 16-bit PCM either way


def write_audio_atomic(path: str | os.PathLike, audio: np.ndarray, *, sample_rate: int = NSYNTH_SAMPLE_RATE,
                       audio_format: str = "wav") -> None:
    """Write a mono 16-bit PCM WAV (or FLAC: lossless, about half the size) atomically (see
    :func:`nsynth_live.fileio.atomic_output`).

    Parameters
    ----------
    audio : numpy.ndarray
        Shape ``(time,)``, float in [-1, 1] or int16.
    audio_format : str
        ``"wav"`` or ``"flac"``; ``path``'s suffix should match.

    Raises
    ------
    ValueError
        If ``audio_format`` is not one of :data:`AUDIO_FORMATS`.
    """
    if audio_format not in AUDIO_FORMATS:
        raise ValueError(f"audio_format must be one of {AUDIO_FORMATS}, got {audio_format!r}")
    with atomic_output(path, suffix=f".{audio_format}.tmp") as temporary:
        sf.write(temporary, audio, sample_rate, subtype="PCM_16", format=audio_format.upper())


def write_examples_json(root: str | os.PathLike, notes: Sequence[NSynthNote]) -> None:
    """Write ``examples.json`` for ``notes`` (keyed by ``note_str``), atomically."""
    write_json_atomic(Path(root) / EXAMPLES_JSON, {n.note_str: n.to_json() for n in notes})

