"""SFZ writer for a timbre-grid bank: one ``.sfz`` text file over the bank's WAVs.

The XY timbre pad is played with MIDI CC 12 (X) and CC 13 (Y), value 0..127 for 0..1 (the Kaoss Pad
convention). Grid column ``i`` of N sits at CC ``cc(i) = round(127 * i / (N - 1))`` (row ``j`` likewise
on CC 13), so the grid points fall on integer CC values and the crossfades meet exactly there.

Layouts (SFZ players start every region whose key, velocity and CC conditions match, even at zero
crossfade gain, so the layout sets the voices a note costs):

``"quad"`` (default)
    The pad is split into the (N-1) x (N-1) quads between grid points. At note-on, ``locc12/hicc12``
    and ``locc13/hicc13`` (disjoint integer ranges tiling 0..127: quad ``q`` holds
    ``cc(q) .. cc(q+1) - 1``, the last one up to 127) select the quad under the current CC values; its
    4 corner cells are crossfaded with ``xfin_/xfout_locc12/hicc12`` (and CC 13) over the quad's CC
    span with ``xf_cccurve=power`` (gains ``sqrt(t)`` and ``sqrt(1 - t)``; a cell's gain is the
    product of its X and Y gains). A note costs 4 voices and its timbre follows CC 12/13 continuously
    while held, within the quad where it started. Limitation: moving past that quad's edge clamps
    the timbre at the edge until the next note-on.
``"nearest"``
    One region per cell, gated by the CC ranges nearest to it (Open NSynth Super's device): 1 voice
    per note, the cell fixed at note-on, no morphing while held.
``"full"``
    Every cell crossfaded over the whole pad (a cell of column ``i`` fades in over
    ``cc(i-1)..cc(i)`` and out over ``cc(i)..cc(i+1)``, no gating): N*N voices per note, morphing
    anywhere. Only sensible for small grids (3 x 3 = 9 voices).

Key mapping: root ``r`` covers keys ``r .. next_root - 1``; the lowest root also covers down to key 0,
the highest up to 127 (every key plays the nearest root at or below it, transposed up). Velocity
layers: layer ``v`` covers ``previous_layer + 1 .. v``; the lowest layer starts at 1, the highest
reaches 127; inside a layer the gain is ``velocity / layer`` up to 1 (:func:`velocity_curve_opcodes`). Loops come from the bank index (``loop_mode=loop_continuous``; the SFZ ``loop_end``
is inclusive, the index's exclusive); ``ampeg_release`` is 0.3 s because the SFZ v1 default
(0.001 s) clicks.

Source: sfzformat.com opcode reference (``xfin_loccN``, ``xf_cccurve``, ``loccN``, ``set_ccN``,
``label_ccN``, ``loop_mode``); ``docs/formats.md`` ("SFZ banks", "SFZ XY grids").
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from nsynth_live.data.bank_index import BankIndex, BankSample
from nsynth_live.fileio import atomic_write_bytes

SFZ_LAYOUTS = ("quad", "nearest", "full")
X_CC = 12  # MIDI CC of the pad's X axis (Kaoss Pad convention)
Y_CC = 13  # MIDI CC of the pad's Y axis
CC_MAX = 127  # largest 7-bit controller value
MIDI_KEY_MAX = 127
MIDI_VELOCITY_MIN = 1  # velocity 0 is a note-off
MIDI_VELOCITY_MAX = 127
DEFAULT_CC_VALUE = 64  # initial CC 12/13 (pad centre) set in <control> with set_ccN
RELEASE_SECONDS = 0.3  # ampeg_release, s (the SFZ v1 default 0.001 s clicks)
_UNSAFE_PATH_CHARACTERS = set("=<>\n\r\t\\")  # would break SFZ parsing (or are not POSIX separators)


def grid_cc_values(grid_size: int) -> list[int]:
    """CC value of every grid column (or row): ``round(127 * i / (N - 1))``, rounding halves up.

    Returns
    -------
    list of int
        N values from 0 to 127 (``[64]`` for a single-cell grid).

    Raises
    ------
    ValueError
        If ``grid_size`` < 1 or > 128 (two grid points would share a CC value).
    """
    if not 1 <= grid_size <= CC_MAX + 1:
        raise ValueError(
            f"grid_size must be 1..{CC_MAX + 1} to give every grid point its own CC value, got {grid_size}")
    if grid_size == 1:
        return [DEFAULT_CC_VALUE]
    return [int(math.floor(CC_MAX * i / (grid_size - 1) + 0.5)) for i in range(grid_size)]


def quad_cc_ranges(grid_size: int) -> list[tuple[int, int]]:
    """Inclusive CC ranges selecting each of the N-1 quads along one axis at note-on.

    Quad ``q`` (between grid points ``q`` and ``q+1``) holds ``cc(q) .. cc(q+1) - 1``; the last quad
    also holds 127. The ranges are disjoint and tile 0..127.

    Raises
    ------
    ValueError
        If ``grid_size`` < 2 (a single cell has no quads).
    """
    if grid_size < 2:
        raise ValueError(f"quads need a grid of at least 2 x 2, got grid_size {grid_size}")
    cc = grid_cc_values(grid_size)
    return [(cc[q], cc[q + 1] - 1 if q < grid_size - 2 else CC_MAX) for q in range(grid_size - 1)]


def nearest_cc_ranges(grid_size: int) -> list[tuple[int, int]]:
    """Inclusive CC ranges where each grid point is the nearest (ties go to the higher point).

    Returns
    -------
    list of (lo, hi)
        N disjoint ranges tiling 0..127 (``[(0, 127)]`` for one cell).
    """
    if grid_size == 1:
        return [(0, CC_MAX)]
    cc = grid_cc_values(grid_size)
    bounds = [0] + [math.ceil((cc[i] + cc[i + 1]) / 2) for i in range(grid_size - 1)] + [CC_MAX + 1]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(grid_size)]


def key_ranges(pitches) -> list[tuple[int, int, int]]:
    """``(lokey, hikey, root)`` per root: root ``r`` covers ``r .. next_root - 1``; the lowest root also
    covers down to 0 and the highest up to 127.

    Raises
    ------
    ValueError
        If the roots are empty, not strictly ascending, or outside 0..127.
    """
    roots = [int(p) for p in pitches]
    if not roots or any(b <= a for a, b in zip(roots, roots[1:])) or not 0 <= roots[0] <= roots[-1] <= MIDI_KEY_MAX:
        raise ValueError(f"root keys must be strictly ascending MIDI notes 0..{MIDI_KEY_MAX}, got {roots}")
    ranges = []
    for k, root in enumerate(roots):
        lokey = 0 if k == 0 else root
        hikey = MIDI_KEY_MAX if k == len(roots) - 1 else roots[k + 1] - 1
        ranges.append((lokey, hikey, root))
    return ranges


def velocity_ranges(velocities) -> list[tuple[int, int, int]]:
    """``(lovel, hivel, layer)`` per velocity layer: layer ``v`` covers ``previous + 1 .. v``; the lowest
    layer starts at 1, the highest reaches 127.

    Raises
    ------
    ValueError
        If the layers are empty, not strictly ascending, or outside 1..127.
    """
    layers = [int(v) for v in velocities]
    if (not layers or any(b <= a for a, b in zip(layers, layers[1:]))
            or not MIDI_VELOCITY_MIN <= layers[0] <= layers[-1] <= MIDI_VELOCITY_MAX):
        raise ValueError(
            f"velocity layers must be strictly ascending in {MIDI_VELOCITY_MIN}..{MIDI_VELOCITY_MAX}, got {layers}")
    ranges = []
    for k, layer in enumerate(layers):
        lovel = MIDI_VELOCITY_MIN if k == 0 else layers[k - 1] + 1
        hivel = MIDI_VELOCITY_MAX if k == len(layers) - 1 else layer
        ranges.append((lovel, hivel, layer))
    return ranges


def velocity_curve_opcodes(lovel: int, layer: int) -> str:
    """``amp_velcurve_N`` points of one velocity layer: gain ``velocity / layer``, at most 1.

    The layer's sample was rendered at velocity ``layer``, so its level already holds the velocity;
    inside the layer the gain falls linearly to ``lovel / layer`` at its lowest velocity (about 6 dB
    per halving), and velocities above the layer (the top layer up to 127) play it at unity. The SFZ
    default (``amp_veltrack=100`` on the curve ``(velocity / 127) ** 2``) would apply the velocity a
    second time. sfizz interpolates linearly between the points and ends the curve at 127 -> 1. The
    live bank player (:mod:`nsynth_live.runtime.bank_player`) applies the same gain.
    """
    if lovel >= layer:
        return f"amp_velcurve_{layer}=1"
    return f"amp_velcurve_{lovel}={lovel / layer:.6f} amp_velcurve_{layer}=1"


def _check_layout(layout: str) -> None:
    if layout not in SFZ_LAYOUTS:
        raise ValueError(f"unknown SFZ layout {layout!r}; choose one of {', '.join(SFZ_LAYOUTS)}")


def sfz_voice_cost(index: BankIndex, layout: str = "quad") -> int:
    """Regions (voices) an SFZ player starts per note-on for a bank written with ``layout``.

    Velocity layers and key ranges are disjoint, so one note matches one (root, layer) group:
    ``"quad"`` 4 (1 for a single-cell bank), ``"nearest"`` 1, ``"full"`` N*N.

    Raises
    ------
    ValueError
        On an unknown layout.
    """
    _check_layout(layout)
    n = index.grid_size
    if layout == "nearest" or n == 1:
        return 1
    return 4 if layout == "quad" else n * n


def _axis_crossfade(cc: int, lo: int, hi: int, fade_in: bool) -> dict[str, int]:
    kind = "xfin" if fade_in else "xfout"
    return {f"{kind}_locc{cc}": lo, f"{kind}_hicc{cc}": hi}


def _cell_opcodes(index: BankIndex, layout: str) -> list[tuple[int, int, dict[str, int]]]:
    """``(i, j, CC opcodes)`` of every region of one (root, layer) group."""
    n = index.grid_size
    if n == 1:
        return [(0, 0, {})]
    cc = grid_cc_values(n)
    regions = []
    if layout == "quad":
        gates = quad_cc_ranges(n)
        for qy in range(n - 1):
            for qx in range(n - 1):
                for cy in (0, 1):
                    for cx in (0, 1):
                        opcodes = {f"locc{X_CC}": gates[qx][0], f"hicc{X_CC}": gates[qx][1],
                                   f"locc{Y_CC}": gates[qy][0], f"hicc{Y_CC}": gates[qy][1]}
                        opcodes |= _axis_crossfade(X_CC, cc[qx], cc[qx + 1], fade_in=cx == 1)
                        opcodes |= _axis_crossfade(Y_CC, cc[qy], cc[qy + 1], fade_in=cy == 1)
                        regions.append((qx + cx, qy + cy, opcodes))
    elif layout == "nearest":
        gates = nearest_cc_ranges(n)
        for j in range(n):
            for i in range(n):
                regions.append((i, j, {f"locc{X_CC}": gates[i][0], f"hicc{X_CC}": gates[i][1],
                                       f"locc{Y_CC}": gates[j][0], f"hicc{Y_CC}": gates[j][1]}))
    else:  # full
        for j in range(n):
            for i in range(n):
                opcodes: dict[str, int] = {}
                for axis_cc, k in ((X_CC, i), (Y_CC, j)):
                    if k > 0:
                        opcodes |= _axis_crossfade(axis_cc, cc[k - 1], cc[k], fade_in=True)
                    if k < n - 1:
                        opcodes |= _axis_crossfade(axis_cc, cc[k], cc[k + 1], fade_in=False)
                regions.append((i, j, opcodes))
    return regions


def _loop_opcodes(sample: BankSample) -> str:
    if sample.has_loop:
        # SFZ loop_end is the last frame played (inclusive); the index stores it exclusive
        return f"loop_mode=loop_continuous loop_start={sample.loop_start} loop_end={sample.loop_end - 1}"
    return "loop_mode=no_loop"


def _check_sample_path(path: str) -> str:
    if not path or any(c in _UNSAFE_PATH_CHARACTERS for c in path) or path != path.strip():
        raise ValueError(
            f"sample path {path!r} cannot be written to SFZ (no '=', '<', '>', backslashes, tabs, newlines "
            "or surrounding spaces); rename the sample")
    return path


def sfz_text(index: BankIndex, *, layout: str = "quad") -> str:
    """The ``.sfz`` text of a bank (see the module docstring for the layouts and mappings).

    Parameters
    ----------
    index : BankIndex
        The bank; sample paths are written as they are in the index (POSIX, relative to the bank
        folder, where the ``.sfz`` goes).
    layout : {"quad", "nearest", "full"}

    Returns
    -------
    str
        Comments giving the layout, voice cost and CC mapping, then ``<control>``, ``<global>``, one
        ``<group>`` per (root, velocity layer) and its ``<region>`` lines.

    Raises
    ------
    ValueError
        On an unknown layout, bad roots or layers, or a sample path SFZ cannot hold.
    BankFormatError
        If the index is inconsistent.
    """
    _check_layout(layout)
    index.check()
    n = index.grid_size
    cost = sfz_voice_cost(index, layout)
    cells = _cell_opcodes(index, layout)
    lines = [
        f"// nsynth-live bank {index.name!r}: {n} x {n} timbre grid ({index.grid_scheme}), corners "
        + ", ".join(index.corners),
        f"// layout={layout}: {len(cells)} regions per (root, velocity layer); voice cost {cost} per note-on",
        f"// X = CC {X_CC}, Y = CC {Y_CC} (0..127 = 0..1); grid CC values: "
        + " ".join(str(v) for v in grid_cc_values(n)),
    ]
    if layout == "quad" and n > 1:
        lines.append("// the quad under CC 12/13 at note-on plays; moving past its edge clamps until the next note")
    elif layout == "nearest" and n > 1:
        lines.append("// the nearest cell at note-on plays; held notes do not morph")
    lines += [
        "",
        "<control>",
        f"set_cc{X_CC}={DEFAULT_CC_VALUE} set_cc{Y_CC}={DEFAULT_CC_VALUE}",
        f"label_cc{X_CC}=X",
        f"label_cc{Y_CC}=Y",
        "",
        "<global>",
        f"ampeg_release={RELEASE_SECONDS:g}" + (" xf_cccurve=power" if layout in ("quad", "full") else ""),
    ]
    for lokey, hikey, root in key_ranges(index.pitches):
        for lovel, hivel, layer in velocity_ranges(index.velocities):
            lines += ["", f"<group> lokey={lokey} hikey={hikey} pitch_keycenter={root} lovel={lovel} hivel={hivel} "
                      + velocity_curve_opcodes(lovel, layer)]
            for i, j, opcodes in cells:
                sample = index.sample(i, j, root, layer)
                cc_text = " ".join(f"{key}={value}" for key, value in opcodes.items())
                fields = [f"<region> {_loop_opcodes(sample)}"] + ([cc_text] if cc_text else [])
                # sample= last: its value may hold spaces and runs to the end of the line
                fields.append(f"sample={_check_sample_path(sample.path)}")
                lines.append(" ".join(fields))
    return "\n".join(lines) + "\n"


def write_sfz(
    bank_dir: str | os.PathLike, index: BankIndex, *, layout: str = "quad", overwrite: bool = False
) -> Path:
    """Write ``<bank_dir>/<index.name>.sfz`` atomically (:func:`sfz_text`).

    Parameters
    ----------
    bank_dir : path
        The bank folder (holds ``bank.json`` and the samples the index names).
    index : BankIndex
    layout : {"quad", "nearest", "full"}
        See the module docstring; ``sfz_voice_cost`` gives the voices per note.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path
        The ``.sfz`` written.

    Raises
    ------
    FileExistsError
        If the file exists and ``overwrite`` is False.
    FileNotFoundError
        If a sample the index names is missing from ``bank_dir``.
    ValueError
        On an unknown layout, a bank name that is not a plain file name, or a path SFZ cannot hold.
    """
    bank_dir = Path(bank_dir)
    check_bank_files(bank_dir, index)
    text = sfz_text(index, layout=layout)
    return atomic_write_bytes(bank_dir / f"{index.name}.sfz", text.encode("utf-8"), overwrite=overwrite)


def check_bank_files(bank_dir: Path, index: BankIndex) -> None:
    """Before a sampler file is written: the bank's name is a plain file stem and every sample exists.

    Raises
    ------
    ValueError
        If the bank name is not a plain file name (it is the stem of the files written).
    FileNotFoundError
        If samples the index names are missing from ``bank_dir`` (counted, the first named).
    """
    if not index.name or Path(index.name).name != index.name or index.name in (".", ".."):
        raise ValueError(f"bank name {index.name!r} must be a plain file name (it is the sampler file's stem)")
    missing = sorted({s.path for s in index.samples.values() if not (Path(bank_dir) / s.path).is_file()})
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} samples of bank {index.name!r} are missing from {bank_dir} (first: {missing[0]}); "
            "render the bank first")
