"""Versioned TOML presets: the four corner instruments of the timbre XY pad, and the envelope.

A preset file ``presets/<name>.toml`` (format version 1)::

    format_version = 1
    name = "default"                  # must equal the file name without .toml
    description = "..."               # optional
    corners = ["organ_acoustic_005",  # (x, y) = (0, 0)
               "string_acoustic_011", # (1, 0)
               "flute_acoustic_016",  # (0, 1)
               "reed_acoustic_015"]   # (1, 1)
    xy = [0.5, 0.5]                   # start position, each in [0, 1]
    release_seconds = 0.5             # release time to -60 dB after note-off
    gain_db = -6.0                    # master gain
    width = 1.0                       # stereo spread of the keys, 0 (mono) .. 1 (docs/engine.md)

    [controls]                        # optional; these are the defaults (docs/midi.md)
    x_cc = 12                         # controller that moves X (0..31: 14-bit with CC x_cc + 32)
    y_cc = 13                         # controller that moves Y (CC 45 is its LSB)
    mod_wheel = "brightness"          # CC 1: "x", "y", "brightness", "gain" or "none"
    aftertouch = "none"               # channel pressure: the same choices
    bend_range = 2.0                  # pitch bend range in semitones until an RPN 0 changes it

A preset may name a bank rendered by ``export/render_bank.py`` instead of corner instruments::

    bank = "../out/banks/default"     # a bank folder, relative to the presets directory (or absolute)

Such a preset plays that bank (``run_live.py --preset P``, as ``--bank``); its corners are then the
pad's own (``corners`` may be left out) and ``xy``, ``release_seconds`` and ``gain_db`` apply as usual.
The bank is opened when the instrument starts: a preset change while playing switches release and gain
(as with the model), never the model or bank.

Corner names are NSynth ``instrument_str`` names; :func:`check_preset_instruments` validates them
against a model's instrument list (the engine does so when it loads a preset).

Preset names are plain identifiers (letters, digits, ``_`` and ``-``): a name never reaches the
filesystem outside the presets directory.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

PRESET_FORMAT_VERSION = 1
DEFAULT_PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"
DEFAULT_PRESET_NAME = "default"
_NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")
RELEASE_SECONDS_RANGE = (0.01, 4.0)  # s
CONTROL_TARGETS = ("x", "y", "brightness", "gain", "none")
BEND_RANGE_MAX_SEMITONES = 24.0  # the per-voice resampler reads at most 4x faster (engine.pitch_bend)
# controllers an XY mapping may not take: bank select, data entry, volume, their LSBs, the pedals,
# (N)RPN selection and the channel mode messages (MIDI 1.0 spec, table III)
_RESERVED_CCS = frozenset({0, 6, 7, 32, 38, 39, 64, 65, 66, 67, 96, 97, 98, 99, 100, 101}) | frozenset(range(120, 128))
GAIN_DB_RANGE = (-60.0, 12.0)  # dB
CORNER_ORDER = ((0, 0), (1, 0), (0, 1), (1, 1))  # (x, y) of corners[0..3]
BANK_CORNER_NAMES = ("x0y0", "x1y0", "x0y1", "x1y1")  # a bank's corners: the pad's own (runtime.bank_player)


class PresetError(ValueError):
    """A preset is unknown, refused, unreadable or invalid (the message says which and why)."""


def _is_number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


@dataclass(frozen=True)
class Controls:
    """How a preset maps MIDI controllers (``[controls]`` in its file; ``docs/midi.md``).

    Attributes
    ----------
    x_cc, y_cc : int
        Controllers that move the pad's X and Y (0..127 -> 0..1), or -1 for none. A controller
        0..31 is read as 14 bits once its LSB (``cc + 32``: CC 44 and 45 for the defaults 12 and
        13) has been received.
    mod_wheel, aftertouch : str
        What CC 1 and channel pressure drive: ``"x"``, ``"y"``, ``"brightness"`` (a high shelf
        up to +12 dB), ``"gain"`` (up to +6 dB) or ``"none"``.
    bend_range : float
        Pitch bend range in semitones (0..24) until an RPN 0 message sets a channel's own.

    Raises
    ------
    PresetError
        A controller that is reserved, out of range or used twice; an unknown target.
    """

    x_cc: int = 12
    y_cc: int = 13
    mod_wheel: str = "brightness"
    aftertouch: str = "none"
    bend_range: float = 2.0

    def __post_init__(self):
        for name in ("x_cc", "y_cc"):
            cc = getattr(self, name)
            if isinstance(cc, bool) or not isinstance(cc, int) or not (cc == -1 or 1 <= cc <= 119) \
                    or cc in _RESERVED_CCS or 32 <= cc <= 63:
                raise PresetError(f"controls.{name} must be -1 (none) or a controller 1..31 or 64..119 (32..63 are "
                                  f"the LSBs of 0..31) other than {sorted(c for c in _RESERVED_CCS if c < 120)}, "
                                  f"got {cc!r}")
        if self.x_cc == self.y_cc and self.x_cc != -1:
            raise PresetError(f"controls.x_cc and controls.y_cc are both {self.x_cc}")
        for name in ("mod_wheel", "aftertouch"):
            if getattr(self, name) not in CONTROL_TARGETS:
                raise PresetError(f"controls.{name} must be one of {', '.join(CONTROL_TARGETS)}, "
                                  f"got {getattr(self, name)!r}")
        if 1 in (self.x_cc, self.y_cc) and self.mod_wheel != "none":
            raise PresetError("controls: CC 1 is the mod wheel; set mod_wheel = \"none\" to use it for x_cc or y_cc")
        if not _is_number(self.bend_range) or not 0.0 <= self.bend_range <= BEND_RANGE_MAX_SEMITONES:
            raise PresetError(f"controls.bend_range must be in [0, {BEND_RANGE_MAX_SEMITONES:g}] semitones, "
                              f"got {self.bend_range!r}")
        object.__setattr__(self, "bend_range", float(self.bend_range))


@dataclass(frozen=True)
class Preset:
    """One timbre preset.

    Attributes
    ----------
    name : str
        Plain identifier, equal to the file name without ``.toml``.
    corners : tuple of 4 str
        NSynth ``instrument_str`` at (x, y) = (0, 0), (1, 0), (0, 1), (1, 1).
    xy : tuple of 2 float
        Start position of the XY pad, each in [0, 1].
    release_seconds : float
        Time for a released note to fall by 60 dB, in s (0.01..4).
    gain_db : float
        Master gain in dB (-60..12).
    width : float
        Stereo spread of the keys, 0 (every voice in the centre) .. 1 (MIDI 36 at pan -0.5, MIDI 84
        at +0.5; ``engine.voices.key_pan``).
    description : str
        Free text.
    bank : str
        Absolute path of the bank folder the preset plays ("" when it plays the model).
    controls : Controls
        MIDI controller mapping.
    """

    name: str
    corners: tuple[str, str, str, str]
    xy: tuple[float, float] = (0.5, 0.5)
    release_seconds: float = 0.5
    gain_db: float = -6.0
    description: str = ""
    bank: str = ""
    controls: Controls = Controls()
    width: float = 1.0

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME_PATTERN.fullmatch(self.name):
            raise PresetError(f"preset name must be a plain identifier, got {self.name!r}")
        corners = self.corners
        if (not isinstance(corners, (tuple, list)) or len(corners) != 4
                or not all(isinstance(c, str) and c for c in corners)):
            raise PresetError(
                f"preset {self.name!r}: corners must be 4 instrument names in the order "
                f"(x,y) = (0,0), (1,0), (0,1), (1,1), got {corners!r}")
        object.__setattr__(self, "corners", tuple(corners))
        xy = self.xy
        if (not isinstance(xy, (tuple, list)) or len(xy) != 2
                or not all(_is_number(v) and 0.0 <= v <= 1.0 for v in xy)):
            raise PresetError(f"preset {self.name!r}: xy must be two numbers in [0, 1], got {xy!r}")
        object.__setattr__(self, "xy", (float(xy[0]), float(xy[1])))
        low, high = RELEASE_SECONDS_RANGE
        if not _is_number(self.release_seconds) or not low <= self.release_seconds <= high:
            raise PresetError(f"preset {self.name!r}: release_seconds must be in [{low}, {high}] s, "
                              f"got {self.release_seconds!r}")
        low, high = GAIN_DB_RANGE
        if not _is_number(self.gain_db) or not low <= self.gain_db <= high:
            raise PresetError(f"preset {self.name!r}: gain_db must be in [{low}, {high}] dB, "
                              f"got {self.gain_db!r}")
        if not _is_number(self.width) or not 0.0 <= self.width <= 1.0:
            raise PresetError(f"preset {self.name!r}: width must be in [0, 1], got {self.width!r}")
        object.__setattr__(self, "width", float(self.width))
        if not isinstance(self.description, str):
            raise PresetError(f"preset {self.name!r}: description must be a string")
        if not isinstance(self.bank, str):
            raise PresetError(f"preset {self.name!r}: bank must be the path of a bank folder, got {self.bank!r}")
        if not isinstance(self.controls, Controls):
            raise PresetError(f"preset {self.name!r}: controls must be a Controls, got {self.controls!r}")


def _preset_files(presets_dir: Path | str) -> list[str]:
    """Names of the files ``<name>.toml`` in ``presets_dir`` with a valid name, sorted."""
    directory = Path(presets_dir)
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.toml") if _NAME_PATTERN.fullmatch(p.stem))


def preset_problems(*, presets_dir: Path | str = DEFAULT_PRESETS_DIR) -> dict[str, str]:
    """The preset files of ``presets_dir`` that cannot be loaded: ``{name: why}`` (a TOML error,
    an invalid field, a link that leads outside the folder...), each reason on one line."""
    problems = {}
    for name in _preset_files(presets_dir):
        if not (Path(presets_dir) / f"{name}.toml").is_file():
            problems[name] = "not a readable file (a broken link?)"
            continue
        try:
            load_preset(name, presets_dir=presets_dir)
        except PresetError as error:
            problems[name] = " ".join(str(error).split())
    return problems


def list_presets(*, presets_dir: Path | str = DEFAULT_PRESETS_DIR) -> list[str]:
    """Names of the presets in ``presets_dir`` that load (files ``<name>.toml`` with a valid name,
    valid TOML and fields, inside the folder: a link out of it is refused), sorted. Program change
    N selects the N-th of them. Files that do not load are left out (:func:`preset_problems`)."""
    problems = preset_problems(presets_dir=presets_dir)
    return [name for name in _preset_files(presets_dir) if name not in problems]


def _valid_list(presets_dir: Path | str) -> str:
    """``"a, b, c"`` of the loadable presets, and the broken ones named with their problem."""
    problems = preset_problems(presets_dir=presets_dir)
    text = ", ".join(n for n in _preset_files(presets_dir) if n not in problems) or "(none)"
    if problems:
        text += "; left out, they do not load: " + "; ".join(f"{n} ({why})" for n, why in problems.items())
    return text


def preset_path(name: str, *, presets_dir: Path | str = DEFAULT_PRESETS_DIR) -> Path:
    """The file of preset ``name``, refusing any name that is not a plain identifier.

    Raises
    ------
    PresetError
        If ``name`` contains anything but letters, digits, ``_`` and ``-`` (``/``, ``..``, an
        absolute path, NUL, ...), or resolves outside ``presets_dir`` (a symlink).
    """
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        raise PresetError(
            f"preset name {name!r} refused: a preset name is a plain identifier (letters, digits, "
            f"'_' and '-', at most 64 characters); valid presets: {_valid_list(presets_dir)}")
    directory = Path(presets_dir).resolve()
    path = (directory / f"{name}.toml").resolve()
    if path.parent != directory:
        raise PresetError(f"preset {name!r} resolves to {path}, outside the presets directory "
                          f"{directory}; refused")
    return path


def load_preset(name: str, *, presets_dir: Path | str = DEFAULT_PRESETS_DIR) -> Preset:
    """Read and validate preset ``presets_dir/<name>.toml``.

    Raises
    ------
    PresetError
        Unknown preset (the message lists the valid ones), refused name, unreadable or corrupt
        TOML, unknown ``format_version``, or invalid fields (the message names the file).
    """
    path = preset_path(name, presets_dir=presets_dir)
    if not path.is_file():
        raise PresetError(f"unknown preset {name!r}; valid presets in {Path(presets_dir)}: {_valid_list(presets_dir)}")
    # each file version is parsed once (a flood of preset changes, or of unknown names whose message
    # lists the valid presets, costs a stat per file)
    try:
        stat = path.stat()
    except OSError as error:
        raise PresetError(f"cannot read preset file {path}: {error}") from error
    key = (str(path), name, stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size)
    cached = _LOADED.get(key)
    if cached is None:
        try:
            cached = _read_preset(name, path)
        except PresetError as error:
            if isinstance(error.__cause__, OSError):  # unreadable now (permissions): not cached
                raise
            cached = error
        if len(_LOADED) >= _LOADED_MAX:
            _LOADED.clear()
        _LOADED[key] = cached
    if isinstance(cached, PresetError):
        raise PresetError(str(cached))
    return cached


_LOADED: dict = {}  # (path, name, dev, inode, mtime_ns, ctime_ns, size) -> Preset or the PresetError it raised
_LOADED_MAX = 1024


def _read_preset(name: str, path: Path) -> Preset:
    """Parse and validate the preset file ``path`` (of preset ``name``); see :func:`load_preset`."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise PresetError(f"preset file {path} is not valid TOML: {error}") from error
    except OSError as error:
        raise PresetError(f"cannot read preset file {path}: {error}") from error
    version = data.get("format_version")
    if version != PRESET_FORMAT_VERSION:
        raise PresetError(f"preset file {path} has format_version {version!r}; this version of "
                          f"nsynth-live reads format_version {PRESET_FORMAT_VERSION} only")
    known = {"format_version", "name", "description", "corners", "xy", "release_seconds", "gain_db", "bank",
             "controls", "width"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise PresetError(f"preset file {path}: unknown keys {unknown}; valid keys: {sorted(known)}")
    if data.get("name") != name:
        raise PresetError(f"preset file {path}: name = {data.get('name')!r} must equal the file "
                          f"name {name!r}")
    bank = data.get("bank", "")
    if bank != "" and (not isinstance(bank, str) or not bank.strip()):
        raise PresetError(f"preset file {path}: bank must be the path of a bank folder, got {bank!r}")
    if bank:
        bank = str((path.parent / bank).resolve())
    if "corners" not in data and not bank:
        raise PresetError(f"preset file {path}: missing 'corners' (4 instrument names) or 'bank' (a bank folder)")
    corners = data.get("corners", BANK_CORNER_NAMES)
    table = data.get("controls", {})
    if not isinstance(table, dict):
        raise PresetError(f"preset file {path}: controls must be a table ([controls]), got {table!r}")
    fields = {f.name for f in dataclasses.fields(Controls)}
    unknown = sorted(set(table) - fields)
    if unknown:
        raise PresetError(f"preset file {path}: unknown keys in [controls] {unknown}; valid keys: {sorted(fields)}")
    try:
        controls = Controls(**table)
        return Preset(
            name=name,
            corners=corners,
            bank=bank,
            xy=data.get("xy", (0.5, 0.5)),
            release_seconds=data.get("release_seconds", 0.5),
            gain_db=data.get("gain_db", -6.0),
            description=data.get("description", ""),
            controls=controls,
            width=data.get("width", 1.0),
        )
    except PresetError as error:
        raise PresetError(f"preset file {path}: {error}") from error


def check_preset_instruments(preset: Preset, instrument_names) -> None:
    """Check that every corner of ``preset`` is one of a model's ``instrument_names``.

    Raises
    ------
    PresetError
        Naming the unknown corner(s) and listing the valid instruments.
    """
    valid = tuple(instrument_names)
    missing = [c for c in preset.corners if c not in valid]
    if missing:
        raise PresetError(f"preset {preset.name!r}: corner instrument(s) {missing} not in the "
                          f"model; valid instruments: {', '.join(valid)}")
