"""Bank writers for samplers other than SFZ: Decent Sampler ``.dspreset`` and Open NSynth Super ``.bin``.

Decent Sampler (``write_decent_sampler``)
    One ``<group>`` per grid cell, tagged ``x<i>,y<j>``, holding that cell's sample for every
    (root, velocity layer) with the same key and velocity ranges as the SFZ writer
    (:func:`nsynth_live.export.sfz.key_ranges`, :func:`~nsynth_live.export.sfz.velocity_ranges`).
    Two knobs, "X" and "Y", drive the tag volumes (``TAG_VOLUME``): the X knob has one binding per
    column tag ``x<i>`` whose ``translation="table"`` is the equal-power triangle of column ``i``
    (``sqrt`` rise from grid point ``i - 1`` to ``i``, ``sqrt`` fall to ``i + 1``, sampled at 4 points
    per grid step; Decent Sampler interpolates linearly between them), the Y knob likewise for the row
    tags ``y<j>``. A group's gain is then the X gain of its column times the Y gain of its row, which
    is the SFZ ``"full"`` crossfade. This relies on Decent Sampler applying the volume of every tag
    a sample carries (the documented mic-level pattern: samples tagged ``note,mic1`` with one knob per
    tag); no Decent Sampler engine runs here to confirm it. Cost: every group starts a voice, so a note
    costs N*N voices (81 on a 9 x 9 grid). ``<midi>`` maps CC 12 and CC 13 to the two knobs.
    Source: DecentSampler Developers Guide (the groups, ui, midi and tags elements; Appendix B,
    bindings); loop ends are inclusive there ("Default: the file's length in samples minus 1").

Open NSynth Super (``write_ons_bins``)
    The device's pad file: raw little-endian int16, no header, ``[81 * n_pitches, 60000]``, row
    ``(j * 9 + i) * n_pitches + pitch_index`` (x fastest). The device plays the rows as 16 kHz audio
    (its ``settings.json``: ``nsynth.sampleRate`` 16000, ``length`` 60000, ``resolution`` 9, and the
    ``pitches`` list, which must match the bank's roots). Each note is cleaned as Open NSynth Super's
    pipeline does (``audio/workdir/05_clean_files.py``, ``utils.post_process``): resample to 16 kHz,
    repair single-sample clicks, peak-normalise to -12 dBFS, align to the onset (first sample above
    10 % of the peak within the first 0.25 s, minus 16 samples), crop / zero-pad to 60000 samples,
    8-sample linear fades in and out. Differences, on purpose: no MP3 round trip (the pipeline's lossy
    intermediate), one rounding to int16 at the end (the pipeline truncates twice).
    Source: ``docs/model.md`` ("Open NSynth Super grid pipeline");
    googlecreativelab/open-nsynth-super ``audio/workdir`` and ``app/open-nsynth`` for the 16 kHz rate,
    the click rule, the 0.25-s onset search and the file name.
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ElementTree
from collections import Counter
from pathlib import Path

import numpy as np

from nsynth_live.data.bank_index import BankIndex
from nsynth_live.export.sfz import RELEASE_SECONDS, X_CC, Y_CC, check_bank_files, key_ranges, velocity_ranges
from nsynth_live.fileio import atomic_output, atomic_write_bytes

DS_MIN_VERSION = "1.0.0"  # Decent Sampler version whose format features this writer uses
DS_TABLE_POINTS_PER_STEP = 4  # table points per grid step of an equal-power crossfade
DS_DEFAULT_KNOB_VALUE = 0.5  # X and Y knobs start at the pad centre

ONS_GRID_SIZE = 9  # Open NSynth Super: 9 x 9 grid (settings.json "resolution")
ONS_SAMPLE_RATE = 16_000  # Hz, the rows' rate (app settings.json "nsynth.sampleRate")
ONS_NOTE_SAMPLES = 60_000  # samples per row (settings.json "length"): 3.75 s at 16 kHz
ONS_PEAK_DBFS = -12.0  # peak level after normalisation (sox --norm=-12)
ONS_CLICK_JUMP = 1.0  # a sample-to-sample jump above this (full scale 1.0) twice in a row is a click
ONS_ONSET_THRESHOLD = 0.1  # onset: first sample above this fraction of the peak
ONS_ONSET_SEARCH_SECONDS = 0.25  # onset searched in the first 0.25 s
ONS_ONSET_LEAD_SAMPLES = 16  # rows start this many samples before the onset
ONS_FADE_SAMPLES = 8  # linear fade-in and fade-out length
ONS_PREFERRED_VELOCITY = 100  # the velocity layer exported (the device has one; velocity only scales gain)
INT16_MAX = 32767
_ONS_NAME = re.compile(r"^[A-Za-z0-9.-]+$")  # corner names usable in the device's "<nw>_<ne>_<se>_<sw>.bin"


# ----------------------------------------------------------------------------------------- Decent Sampler

def _equal_power_triangle(u: np.ndarray, k: int, n: int) -> np.ndarray:
    """Gain of grid column ``k`` of ``n`` at pad positions ``u`` in [0, 1]: sqrt rise / sqrt fall."""
    if n == 1:
        return np.ones_like(u)
    position = u * (n - 1) - k  # grid steps from column k
    gain = np.where(position <= 0, np.sqrt(np.clip(1 + position, 0, 1)), np.sqrt(np.clip(1 - position, 0, 1)))
    return gain


def ds_translation_table(k: int, grid_size: int) -> str:
    """``translationTable`` of the knob binding for column (or row) ``k``: ``"u,gain;u,gain;..."``.

    The equal-power triangle of grid point ``k`` sampled at ``4 * (N - 1) + 1`` knob positions ``u``
    in [0, 1] (gain 1 at ``u = k / (N - 1)``, 0 beyond the neighbouring grid points).

    Raises
    ------
    ValueError
        If ``k`` is not a grid index of ``grid_size``.
    """
    if not 0 <= k < grid_size:
        raise ValueError(f"grid index {k} outside 0..{grid_size - 1}")
    u = np.linspace(0.0, 1.0, DS_TABLE_POINTS_PER_STEP * max(grid_size - 1, 1) + 1)
    gain = _equal_power_triangle(u, k, grid_size)
    return ";".join(f"{a:.6g},{g:.6g}" for a, g in zip(u, gain))


def decent_sampler_xml(index: BankIndex) -> str:
    """The ``.dspreset`` XML of a bank (see the module docstring for the X/Y mapping).

    Returns
    -------
    str
        UTF-8 XML text with an XML declaration.

    Raises
    ------
    BankFormatError
        If the index is inconsistent.
    ValueError
        On bad roots or velocity layers.
    """
    index.check()
    n = index.grid_size
    root = ElementTree.Element("DecentSampler", minVersion=DS_MIN_VERSION)
    root.append(ElementTree.Comment(
        f" nsynth-live bank {index.name}: {n} x {n} timbre grid; X knob = CC {X_CC}, Y knob = CC {Y_CC}; "
        f"group (i, j) tagged x<i>,y<j>; tag volumes are equal-power triangles (gain = X gain * Y gain); "
        f"voice cost {n * n} per note "))
    ui = ElementTree.SubElement(root, "ui", width="812", height="375")
    tab = ElementTree.SubElement(ui, "tab", name="main")
    for axis, label, x_pos in (("x", "X", "300"), ("y", "Y", "420")):
        knob = ElementTree.SubElement(
            tab, "labeled-knob", x=x_pos, y="100", width="90", label=label, type="float", minValue="0",
            maxValue="1", value=f"{DS_DEFAULT_KNOB_VALUE:g}", textSize="16")
        for k in range(n):
            ElementTree.SubElement(
                knob, "binding", type="amp", level="tag", identifier=f"{axis}{k}", parameter="TAG_VOLUME",
                translation="table", translationTable=ds_translation_table(k, n))
    groups = ElementTree.SubElement(root, "groups", attack="0", decay="0", sustain="1",
                                    release=f"{RELEASE_SECONDS:g}")
    keys = key_ranges(index.pitches)
    layers = velocity_ranges(index.velocities)
    for j in range(n):
        for i in range(n):
            group = ElementTree.SubElement(groups, "group", name=f"cell {i},{j}", tags=f"x{i},y{j}")
            for lokey, hikey, pitch in keys:
                for lovel, hivel, velocity in layers:
                    sample = index.sample(i, j, pitch, velocity)
                    attributes = {
                        "path": sample.path, "rootNote": str(pitch), "loNote": str(lokey), "hiNote": str(hikey),
                        "loVel": str(lovel), "hiVel": str(hivel), "loopEnabled": "true" if sample.has_loop else "false"}
                    if sample.has_loop:
                        # Decent Sampler's loopEnd is the last frame of the loop (inclusive)
                        attributes |= {"loopStart": str(sample.loop_start), "loopEnd": str(sample.loop_end - 1)}
                    ElementTree.SubElement(group, "sample", attributes)
    midi = ElementTree.SubElement(root, "midi")
    for position, cc in enumerate((X_CC, Y_CC)):
        cc_element = ElementTree.SubElement(midi, "cc", number=str(cc))
        ElementTree.SubElement(
            cc_element, "binding", level="ui", type="control", position=str(position), parameter="VALUE",
            translation="linear", translationOutputMin="0", translationOutputMax="1")
    ElementTree.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, encoding="unicode") + "\n"


def write_decent_sampler(bank_dir: str | os.PathLike, index: BankIndex, *, overwrite: bool = False) -> Path:
    """Write ``<bank_dir>/<index.name>.dspreset`` atomically (:func:`decent_sampler_xml`).

    Sample paths are the index's, relative to the bank folder where the preset goes.

    Returns
    -------
    Path

    Raises
    ------
    FileExistsError
        If the file exists and ``overwrite`` is False.
    FileNotFoundError
        If a sample the index names is missing from ``bank_dir``.
    ValueError
        On a bank name that is not a plain file name.
    """
    bank_dir = Path(bank_dir)
    check_bank_files(bank_dir, index)
    text = decent_sampler_xml(index)
    return atomic_write_bytes(bank_dir / f"{index.name}.dspreset", text.encode("utf-8"), overwrite=overwrite)


# ------------------------------------------------------------------------------------ Open NSynth Super

def ons_process_note(audio, *, sample_rate: int) -> np.ndarray:
    """Clean one rendered note the way Open NSynth Super's pipeline does, into one 16-kHz row.

    Steps: mix to mono; resample to 16 kHz (soxr, quality HQ); repair single-sample clicks (where
    two consecutive sample-to-sample jumps exceed 1.0, the middle sample becomes the mean of its
    neighbours); peak-normalise to -12 dBFS; find the onset (first sample whose magnitude exceeds 10 %
    of the peak of the first 0.25 s) and start 16 samples before it; crop / zero-pad to 60000
    samples; linear 8-sample fade-in and fade-out (``linspace(0, 1, 8)``); round to int16.

    Parameters
    ----------
    audio : (time,) or (time, channels) float
        The note at ``sample_rate``, full scale 1.0.
    sample_rate : int
        Hz.

    Returns
    -------
    (60000,) int16
        The row; all zeros for a silent note (the device then plays silence for that cell).

    Raises
    ------
    ValueError
        On an empty, non-finite or badly shaped note, or a non-positive sample rate.
    """
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"a note has shape (time,) or (time, channels) with time > 0, got {np.shape(audio)}")
    if not np.all(np.isfinite(x)):
        raise ValueError("the note contains NaN or infinite samples")
    if not sample_rate > 0:
        raise ValueError(f"sample_rate must be positive (Hz), got {sample_rate!r}")
    if sample_rate != ONS_SAMPLE_RATE:
        import soxr

        x = soxr.resample(x, sample_rate, ONS_SAMPLE_RATE, quality="HQ")
    x = np.array(x, dtype=np.float64)
    jumps = np.flatnonzero(np.abs(np.diff(x)) > ONS_CLICK_JUMP)
    for first, second in zip(jumps[:-1], jumps[1:]):
        if second == first + 1:  # up then down (or down then up): sample first + 1 is a lone spike
            x[first + 1] = 0.5 * (x[first] + x[first + 2])
    peak = float(np.max(np.abs(x)))
    if peak == 0.0:
        return np.zeros(ONS_NOTE_SAMPLES, dtype=np.int16)
    x *= 10.0 ** (ONS_PEAK_DBFS / 20) / peak
    head = np.abs(x[: int(ONS_ONSET_SEARCH_SECONDS * ONS_SAMPLE_RATE)])
    onset = int(np.argmax(head > ONS_ONSET_THRESHOLD * head.max())) if head.max() > 0 else 0
    onset = max(onset - ONS_ONSET_LEAD_SAMPLES, 0)
    row = np.zeros(ONS_NOTE_SAMPLES)
    note = x[onset : onset + ONS_NOTE_SAMPLES]
    row[: note.size] = note
    row[:ONS_FADE_SAMPLES] *= np.linspace(0.0, 1.0, ONS_FADE_SAMPLES)
    row[-ONS_FADE_SAMPLES:] *= np.linspace(1.0, 0.0, ONS_FADE_SAMPLES)
    return np.clip(np.rint(row * INT16_MAX), -INT16_MAX - 1, INT16_MAX).astype(np.int16)


def ons_velocity_layer(velocities) -> int:
    """The velocity layer exported to Open NSynth Super: the one nearest 100 (ties: the louder one)."""
    layers = [int(v) for v in velocities]
    if not layers:
        raise ValueError("the bank has no velocity layers")
    return min(layers, key=lambda v: (abs(v - ONS_PREFERRED_VELOCITY), -v))


def ons_bin_stem(index: BankIndex) -> str:
    """File stem of the pad file: ``"_".join(corners)`` as the device names pads (its ``loadPad`` joins
    the four instrument names with ``_``) when every corner name is a plain token (letters, digits,
    ``.``, ``-``); otherwise the bank name."""
    if all(_ONS_NAME.match(corner) for corner in index.corners):
        return "_".join(index.corners)
    return index.name


def write_ons_bins(bank_dir: str | os.PathLike, index: BankIndex, *, overwrite: bool = False) -> list[Path]:
    """Write an Open NSynth Super pad file and a settings sidecar into ``bank_dir``.

    Files: ``<stem>.bin`` (:func:`ons_bin_stem`; raw little-endian int16, no header,
    ``[81 * n_pitches, 60000]``, row ``(j * 9 + i) * n_pitches + pitch_index``, each row
    :func:`ons_process_note` of cell (i, j)'s note at that root) and ``<stem>.settings.json`` (the
    ``nsynth`` block the device's ``settings.json`` needs for this file: ``resolution`` 9, ``pitches``
    = the bank's roots, ``length`` 60000, ``sampleRate`` 16000, plus the velocity layer used and the
    corner order). Only the velocity layer nearest 100 is exported (:func:`ons_velocity_layer`): the
    device has one layer and velocity only scales its gain. Cells sharing a sound are processed once.

    Parameters
    ----------
    bank_dir : path
        The bank folder (holds the samples the index names).
    index : BankIndex
        A 9 x 9 bank.
    overwrite : bool
        Replace existing files.

    Returns
    -------
    list of Path
        ``[bin_path, settings_path]``.

    Raises
    ------
    ValueError
        If the grid is not 9 x 9 (the device's pad is 9 x 9; render the bank with grid size 9).
    FileExistsError
        If a file exists and ``overwrite`` is False.
    FileNotFoundError
        If a sample the index names is missing.
    """
    import soundfile

    bank_dir = Path(bank_dir)
    if index.grid_size != ONS_GRID_SIZE:
        raise ValueError(
            f"Open NSynth Super's pad is a {ONS_GRID_SIZE} x {ONS_GRID_SIZE} grid; bank {index.name!r} has "
            f"{index.grid_size} x {index.grid_size}: render the bank with grid size {ONS_GRID_SIZE}")
    index.check()
    check_bank_files(bank_dir, index)
    velocity = ons_velocity_layer(index.velocities)
    stem = ons_bin_stem(index)
    bin_path = bank_dir / f"{stem}.bin"
    settings_path = bank_dir / f"{stem}.settings.json"
    if not overwrite:
        for path in (bin_path, settings_path):
            if path.exists():
                raise FileExistsError(f"{path} already exists; pass --force (overwrite=True) to replace it")
    order = [index.sample(i, j, pitch, velocity).path
             for j in range(ONS_GRID_SIZE) for i in range(ONS_GRID_SIZE) for pitch in index.pitches]
    uses = Counter(order)
    shared: dict[str, np.ndarray] = {}  # processed rows of sounds used by several cells
    with atomic_output(bin_path, overwrite=overwrite) as temporary:
        with open(temporary, "wb") as stream:
            for path in order:
                row = shared.get(path)
                if row is None:
                    audio, rate = soundfile.read(str(bank_dir / path), dtype="float64")
                    row = ons_process_note(audio, sample_rate=rate)
                    if uses[path] > 1:
                        shared[path] = row
                stream.write(row.astype("<i2").tobytes())
            stream.flush()
            os.fsync(stream.fileno())
    settings = {
        "nsynth": {"resolution": ONS_GRID_SIZE, "pitches": list(index.pitches), "length": ONS_NOTE_SAMPLES,
                   "sampleRate": ONS_SAMPLE_RATE},
        "corners": list(index.corners),
        "velocity": velocity,
        "rows": ONS_GRID_SIZE * ONS_GRID_SIZE * len(index.pitches),
        "row_order": "(j * 9 + i) * len(pitches) + pitch_index, x (i) fastest",
        "source_bank": index.name,
    }
    atomic_write_bytes(settings_path, (json.dumps(settings, indent=1) + "\n").encode("utf-8"), overwrite=True)
    return [bin_path, settings_path]


def ons_bin_rows(path: str | os.PathLike, *, n_pitches: int) -> np.ndarray:
    """Read a pad file back as ``(81 * n_pitches, 60000)`` int16 (a memory map).

    Raises
    ------
    ValueError
        If the file size is not ``81 * n_pitches * 60000 * 2`` bytes.
    """
    expected = ONS_GRID_SIZE * ONS_GRID_SIZE * n_pitches * ONS_NOTE_SAMPLES * 2
    size = Path(path).stat().st_size
    if size != expected:
        raise ValueError(
            f"{path} holds {size} bytes; a 9 x 9 pad of {n_pitches} pitches holds {expected} "
            f"(81 x {n_pitches} rows of {ONS_NOTE_SAMPLES} int16)")
    return np.memmap(path, dtype="<i2", mode="r", shape=(ONS_GRID_SIZE * ONS_GRID_SIZE * n_pitches, ONS_NOTE_SAMPLES))


# ------------------------------------------------------------------------------------------- helpers
