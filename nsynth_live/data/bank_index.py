"""``bank.json``: the index of a multisample bank rendered from a timbre grid.

A bank has *cells* (grid positions of an N x N XY grid, column ``i`` along X, row ``j`` along Y),
*roots* (the MIDI keys rendered), *velocity layers* and one WAV per (cell, root, velocity layer).
Cells whose corner weights are equal share one WAV (rendered once). The index is what every bank
writer (SFZ, Decent Sampler, Open NSynth Super) and the live bank player read; it carries a
``format_version`` and readers refuse versions they do not know.

Grid coordinates: cell ``(i, j)`` sits at ``x = i / (N - 1)``, ``y = j / (N - 1)``; corner weights are
in the order (x, y) = (0, 0), (1, 0), (0, 1), (1, 1).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

BANK_FORMAT_VERSION = 1
BANK_INDEX_NAME = "bank.json"
SAMPLES_DIR = "samples"


class BankFormatError(ValueError):
    """A bank folder or ``bank.json`` is missing, corrupt or of a format version this code does not read."""


@dataclass(frozen=True)
class BankSample:
    """One rendered WAV of the bank.

    Attributes
    ----------
    path : str
        POSIX path of the WAV relative to the bank folder (``samples/<name>.wav``).
    pitch_midi : int
        Root key (MIDI note number rendered).
    velocity : int
        MIDI velocity rendered (1..127).
    weights : tuple of 4 float
        Corner weights of the sound.
    loop_start, loop_end : int
        Sustain loop in sample frames, ``loop_end`` exclusive; both 0 when the note has no loop.
    frames : int
        Length of the WAV in sample frames.
    """

    path: str
    pitch_midi: int
    velocity: int
    weights: tuple[float, float, float, float]
    loop_start: int = 0
    loop_end: int = 0
    frames: int = 0

    @property
    def has_loop(self) -> bool:
        return self.loop_end > self.loop_start


@dataclass(frozen=True)
class BankIndex:
    """The whole index of a bank (see the module docstring for the grid's coordinates).

    Attributes
    ----------
    name : str
        Bank name (file stem of the ``.sfz``; a plain identifier).
    sample_rate : int
        Hz of every WAV.
    grid_size : int
        N of the N x N grid (1 for a single-cell bank).
    grid_scheme : str
        ``"bilinear"`` or ``"ons"`` (Open NSynth Super's distance cones).
    corners : tuple of 4 str
        Corner sounds at (0, 0), (1, 0), (0, 1), (1, 1).
    pitches : tuple of int
        Root keys, ascending.
    velocities : tuple of int
        Velocity layers, ascending.
    cells : dict
        ``"i,j"`` -> the key of the cell's sound (cells with equal weights share a key, e.g. ``x0y4``).
    samples : dict
        ``"<sound key>/<pitch>/<velocity>"`` -> :class:`BankSample`.
    source : dict
        Backend facts: ``backend``, ``model_sha256``, model sample rate, settings.
    """

    name: str
    sample_rate: int
    grid_size: int
    grid_scheme: str
    corners: tuple[str, str, str, str]
    pitches: tuple[int, ...]
    velocities: tuple[int, ...]
    cells: dict[str, str]
    samples: dict[str, BankSample]
    source: dict = field(default_factory=dict)
    format_version: int = BANK_FORMAT_VERSION

    def cell_xy(self, i: int, j: int) -> tuple[float, float]:
        """Pad coordinates of cell (i, j), each in [0, 1]."""
        n = self.grid_size
        return (i / (n - 1), j / (n - 1)) if n > 1 else (0.5, 0.5)

    def sample(self, i: int, j: int, pitch_midi: int, velocity: int) -> BankSample:
        """The WAV of cell (i, j) at a root key and velocity layer.

        Raises
        ------
        KeyError
            If the bank has no such cell, root or layer (the message names it).
        """
        try:
            sound = self.cells[f"{i},{j}"]
            return self.samples[f"{sound}/{pitch_midi}/{velocity}"]
        except KeyError:
            raise KeyError(
                f"bank {self.name!r} has no sample for cell ({i}, {j}), MIDI {pitch_midi}, velocity {velocity}"
            ) from None

    def to_json(self) -> dict:
        data = asdict(self)
        data["samples"] = {key: asdict(s) for key, s in self.samples.items()}
        return data

    @classmethod
    def from_json(cls, data: dict, *, where: str = "bank.json") -> "BankIndex":
        """Parse a ``bank.json`` object.

        Raises
        ------
        BankFormatError
            On another format version or a missing / malformed field (naming it and ``where``).
        """
        if not isinstance(data, dict):
            raise BankFormatError(f"{where}: not a bank index (a JSON object was expected)")
        version = data.get("format_version")
        if version != BANK_FORMAT_VERSION:
            raise BankFormatError(
                f"{where}: bank format_version {version!r}; this nsynth-live reads version {BANK_FORMAT_VERSION}: "
                "render the bank again with this version (export/render_bank.py)")
        try:
            samples = {
                key: BankSample(
                    path=str(s["path"]), pitch_midi=int(s["pitch_midi"]), velocity=int(s["velocity"]),
                    weights=tuple(float(w) for w in s["weights"]), loop_start=int(s["loop_start"]),
                    loop_end=int(s["loop_end"]), frames=int(s["frames"]))
                for key, s in data["samples"].items()
            }
            index = cls(
                name=str(data["name"]), sample_rate=int(data["sample_rate"]), grid_size=int(data["grid_size"]),
                grid_scheme=str(data["grid_scheme"]), corners=tuple(str(c) for c in data["corners"]),
                pitches=tuple(int(p) for p in data["pitches"]), velocities=tuple(int(v) for v in data["velocities"]),
                cells={str(k): str(v) for k, v in data["cells"].items()}, samples=samples,
                source=dict(data.get("source", {})), format_version=int(version))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise BankFormatError(f"{where}: malformed bank index ({type(error).__name__}: {error})") from error
        index.check(where=where)
        return index

    def check(self, *, where: str = "bank.json") -> None:
        """Raise :class:`BankFormatError` if the index is inconsistent (every cell x root x layer has a
        sample; every sample path stays inside the bank folder)."""
        n = self.grid_size
        if n < 1 or self.sample_rate <= 0 or not self.pitches or not self.velocities:
            raise BankFormatError(f"{where}: grid_size, sample_rate, pitches and velocities must be non-empty/positive")
        if len(self.corners) != 4:
            raise BankFormatError(f"{where}: 4 corners expected, got {len(self.corners)}")
        for sample in self.samples.values():
            parts = Path(sample.path).parts
            if Path(sample.path).is_absolute() or ".." in parts or not parts:
                raise BankFormatError(f"{where}: sample path {sample.path!r} leaves the bank folder")
            if sample.frames < 1 or not (sample.loop_start == sample.loop_end == 0
                                         or 0 <= sample.loop_start < sample.loop_end <= sample.frames):
                raise BankFormatError(
                    f"{where}: sample {sample.path!r} has loop [{sample.loop_start}, {sample.loop_end}) outside "
                    f"its {sample.frames} frames")
        for i in range(n):
            for j in range(n):
                for pitch in self.pitches:
                    for velocity in self.velocities:
                        try:
                            self.sample(i, j, pitch, velocity)
                        except KeyError as error:
                            raise BankFormatError(f"{where}: {error.args[0]}") from None


def load_bank_index(bank_dir: str | os.PathLike) -> BankIndex:
    """Read ``<bank_dir>/bank.json``.

    Raises
    ------
    BankFormatError
        If the folder or file is missing, not JSON, of another format version, or inconsistent.
    """
    path = Path(bank_dir) / BANK_INDEX_NAME
    if not path.is_file():
        raise BankFormatError(
            f"{path} does not exist: {bank_dir} is not a bank folder (render one with export/render_bank.py)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BankFormatError(f"{path} is not readable JSON: {error}") from error
    return BankIndex.from_json(data, where=str(path))
