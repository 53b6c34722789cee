"""Rainbowgrams of a multisample bank: NSynth's CQT picture of a note, and a grid map of a whole bank.

A rainbowgram (Engel et al. 2017, "Neural Audio Synthesis of Musical Notes with WaveNet Autoencoders",
ICML, Sec. 4.1 and the caption of Fig. 2) is a constant-Q spectrogram drawn with the log magnitude as
brightness and the instantaneous frequency (time derivative of the unwrapped phase) as hue. The values
follow magenta's NSynth code (``magenta/models/nsynth/utils.py``: ``instantaneous_frequency`` divides the
phase difference by pi) and Jesse Engel's rainbowgram plotting gist (CQT with hop 256, 4 bins per
semitone, ``filter_scale`` 0.8, a black alpha mask over a ``rainbow`` colour map).
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Mapping

import numpy as np

from nsynth_live.export.wavetable_plot import figure_png_bytes
from nsynth_live.fileio import atomic_write_bytes

CQT_FILTER_SCALE = 0.8  # dimensionless, magenta NSynth rainbowgram gist ("res_factor")
DISPLAY_RANGE_DB = 80.0  # dB below the loudest bin that fade to black
MAGNITUDE_FLOOR_DB = -120.0  # dB re the loudest bin; quieter bins (and silent audio) read this
THUMBNAIL_SAMPLE_RATE = 16_000  # Hz, NSynth dataset rate; grid-map thumbnails are resampled to it
THUMBNAIL_DURATION_SECONDS = 1.5  # the start of each note drawn in the grid map
THUMBNAIL_BINS_PER_OCTAVE = 24  # quarter tones: enough for a ~120-pixel thumbnail, twice as fast as 48
_THUMBNAIL_FADE_SECONDS = 0.05  # raised-cosine fade where a thumbnail cuts its note
_RAINBOWGRAM_FIGSIZE_INCHES = (10.0, 5.0)
_DPI = 100
_GRID_CELL_INCHES = 1.3  # side of one thumbnail in the grid map
_GRID_MAX_INCHES = 20.0  # the grid map never grows past this (pixels = inches * 100)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def _validated_audio(audio, *, name: str) -> np.ndarray:
    """Return ``audio`` as a 1-D float64 array; ValueError naming ``name`` if empty, not 1-D or non-finite."""
    samples = np.asarray(audio)
    if samples.dtype.kind not in "iuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {samples.dtype}")
    samples = samples.astype(np.float64, copy=False)
    if samples.ndim != 1:
        raise ValueError(f"{name} must be mono with shape (time,), got shape {samples.shape}; mix down first")
    if samples.size == 0:
        raise ValueError(f"{name} is empty (shape {samples.shape}); give at least one sample")
    if not np.all(np.isfinite(samples)):
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        raise ValueError(f"{name} holds {bad} non-finite samples (NaN or inf); clean the audio first")
    return samples


def _validated_sample_rate(sample_rate) -> float:
    value = float(sample_rate)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
    return value


def _clamped_octaves(*, sample_rate: float, n_octaves: int, fmin_hz: float) -> int:
    """Whole octaves above ``fmin_hz`` whose bins (and filter bandwidths) stay below Nyquist."""
    nyquist_hz = sample_rate / 2.0
    if not math.isfinite(fmin_hz) or not 0.0 < fmin_hz < nyquist_hz / 2.0:
        raise ValueError(
            f"fmin_hz must lie in (0, {nyquist_hz / 2.0:g}) Hz (a quarter of sample_rate={sample_rate:g} Hz) "
            f"so that at least one octave fits below Nyquist, got {fmin_hz!r}"
        )
    # The top bin of octave k sits at fmin * 2**(k - 1/bins_per_octave): it and its filter's upper
    # band edge (+0.7 % for 48 bins per octave) stay below fmin * 2**k <= Nyquist.
    return max(1, min(n_octaves, int(math.floor(math.log2(nyquist_hz / fmin_hz) + 1e-9))))


def rainbowgram(
    audio,
    *,
    sample_rate: float,
    hop_length_samples: int = 256,
    bins_per_octave: int = 48,
    n_octaves: int = 7,
    fmin_hz: float = 32.7,
) -> tuple[np.ndarray, np.ndarray]:
    """NSynth's rainbowgram: CQT log magnitude and instantaneous frequency of a mono note.

    Parameters
    ----------
    audio : (time,) float
        Mono audio, any scale (the magnitude is relative to its loudest bin).
    sample_rate : float
        Hz.
    hop_length_samples : int
        Samples between CQT frames (frame ``t`` is centred on sample ``t * hop_length_samples``).
    bins_per_octave : int
        CQT bins per octave (48 = four per semitone, as NSynth's ``over_sample=4``).
    n_octaves : int
        Octaves above ``fmin_hz``; clamped to the whole octaves that fit below Nyquist
        (e.g. 7 at 16 kHz from C1).
    fmin_hz : float
        Centre frequency of the lowest bin, Hz (32.7 Hz = C1).

    Returns
    -------
    magnitude_db : (bins, frames) float32
        ``20 log10(|C| / max |C|)``: dB relative to the loudest bin (0 dB), floored at
        ``MAGNITUDE_FLOOR_DB`` (-120 dB); silent audio gives the floor everywhere.
    instantaneous_frequency : (bins, frames) float32
        Phase advance of each bin over one hop divided by pi (magenta's normalisation), in [-1, 1]:
        a partial of ``f`` Hz reads ``wrap(2 pi f hop / sample_rate) / pi``, so
        ``f = value * sample_rate / (2 hop)`` modulo ``sample_rate / hop``. As in magenta, frame 0 holds
        the initial phase divided by pi.

    Bin ``k`` is centred on ``fmin_hz * 2 ** (k / bins_per_octave)`` Hz (``librosa.cqt_frequencies``).

    Raises
    ------
    ValueError
        If ``audio`` is empty, not 1-D or holds NaN/inf; if ``sample_rate``, ``hop_length_samples``,
        ``bins_per_octave`` or ``n_octaves`` is not positive; if ``fmin_hz`` leaves no octave below
        Nyquist.

    Notes
    -----
    Source: Engel et al. 2017, Sec. 4.1 / Fig. 2; magenta ``nsynth/utils.py`` (``instantaneous_frequency``);
    CQT by ``librosa.cqt`` with ``filter_scale=0.8`` as in the NSynth rainbowgram gist.
    """
    import librosa

    samples = _validated_audio(audio, name="audio")
    rate = _validated_sample_rate(sample_rate)
    for label, value in (
        ("hop_length_samples", hop_length_samples),
        ("bins_per_octave", bins_per_octave),
        ("n_octaves", n_octaves),
    ):
        if int(value) != value or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    octaves = _clamped_octaves(sample_rate=rate, n_octaves=int(n_octaves), fmin_hz=float(fmin_hz))
    with warnings.catch_warnings():
        # short notes are shorter than the low octaves' FFTs; librosa zero-pads them and says so
        warnings.filterwarnings("ignore", message=r"n_fft=\d+ is too large", category=UserWarning)
        cqt = librosa.cqt(
            samples,
            sr=rate,
            hop_length=int(hop_length_samples),
            fmin=float(fmin_hz),
            n_bins=octaves * int(bins_per_octave),
            bins_per_octave=int(bins_per_octave),
            filter_scale=CQT_FILTER_SCALE,
        )
    magnitude = np.abs(cqt)
    peak = float(magnitude.max())
    if peak > 0.0:
        with np.errstate(divide="ignore"):
            magnitude_db = 20.0 * np.log10(magnitude / peak)
        magnitude_db = np.maximum(magnitude_db, MAGNITUDE_FLOOR_DB)
    else:
        magnitude_db = np.full(magnitude.shape, MAGNITUDE_FLOOR_DB)
    phase = np.unwrap(np.angle(cqt), axis=1)  # rad
    instantaneous = np.diff(phase, axis=1, prepend=0.0) / np.pi  # (rad / hop) / pi
    return magnitude_db.astype(np.float32), instantaneous.astype(np.float32)


def _rainbow_rgb(magnitude_db: np.ndarray, instantaneous_frequency: np.ndarray) -> np.ndarray:
    """(bins, frames, 3) float RGB: ``rainbow`` hue from the IF, darkened towards black over 80 dB."""
    from matplotlib import colormaps

    hue = colormaps["rainbow"]((instantaneous_frequency + 1.0) / 2.0)[..., :3]
    brightness = np.clip(1.0 + magnitude_db / DISPLAY_RANGE_DB, 0.0, 1.0)
    return hue * brightness[..., None]


def _import_matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:  # pragma: no cover - matplotlib is a core dependency
        raise ImportError("the rainbowgram pictures need matplotlib: pip install matplotlib") from error
    return Figure, FigureCanvasAgg


def rainbowgram_png_bytes(audio, *, sample_rate: float, title: str = "") -> bytes:
    """Render a note's :func:`rainbowgram` as a 1000 x 500 PNG, drawn as NSynth draws it.

    Hue is the instantaneous frequency (``rainbow`` colour map over [-1, 1]); brightness is the
    magnitude, black at 80 dB below the loudest bin. The vertical axis is the CQT's log frequency
    (C of each octave labelled with its note name and Hz); the horizontal axis is time in seconds.

    Parameters
    ----------
    audio : (time,) float
        Mono audio.
    sample_rate : float
        Hz.
    title : str
        Figure title.

    Returns
    -------
    bytes
        PNG data, 1000 x 500 pixels.

    Raises
    ------
    ImportError
        If matplotlib is missing (``pip install matplotlib``).
    ValueError
        As :func:`rainbowgram`.
    """
    import librosa

    Figure, FigureCanvasAgg = _import_matplotlib()
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    hop_length_samples, bins_per_octave, fmin_hz = 256, 48, 32.7
    magnitude_db, instantaneous = rainbowgram(
        audio, sample_rate=sample_rate, hop_length_samples=hop_length_samples,
        bins_per_octave=bins_per_octave, fmin_hz=fmin_hz,
    )
    n_bins, n_frames = magnitude_db.shape
    frame_seconds = hop_length_samples / float(sample_rate)

    figure = Figure(figsize=_RAINBOWGRAM_FIGSIZE_INCHES, dpi=_DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    axes.set_facecolor("black")
    axes.imshow(
        _rainbow_rgb(magnitude_db, instantaneous), origin="lower", aspect="auto", interpolation="nearest",
        extent=(-0.5 * frame_seconds, (n_frames - 0.5) * frame_seconds, -0.5, n_bins - 0.5),
    )
    octave_bins = np.arange(0, n_bins + 1, bins_per_octave)
    octave_hz = fmin_hz * 2.0 ** (octave_bins / bins_per_octave)
    axes.set_yticks(octave_bins - 0.5 * (octave_bins == n_bins))
    axes.set_yticklabels(
        [f"{librosa.hz_to_note(hz, unicode=False)}  {hz:.0f} Hz" for hz in octave_hz], fontsize=8
    )
    axes.set_ylabel("frequency (CQT, log scale)")
    axes.set_xlabel("time (s)")
    axes.set_title(
        f"hue: instantaneous frequency; brightness: magnitude ({DISPLAY_RANGE_DB:.0f} dB range)", fontsize=9
    )
    mappable = ScalarMappable(norm=Normalize(-1.0, 1.0), cmap=colormaps["rainbow"])
    figure.colorbar(mappable, ax=axes, fraction=0.04, pad=0.02, label="phase advance per hop / \u03c0")
    return figure_png_bytes(figure, title=title)


def _thumbnail_rgb(samples: np.ndarray, sample_rate: float) -> np.ndarray:
    """RGB rainbowgram of the first 1.5 s at <= 16 kHz, 24 bins per octave: cheap enough for 81 cells."""
    import soxr

    kept = max(1, int(round(THUMBNAIL_DURATION_SECONDS * sample_rate)))
    if samples.size > kept:
        # fade out over the last 50 ms so the cut does not draw a broadband click
        fade = min(kept, int(round(_THUMBNAIL_FADE_SECONDS * sample_rate)))
        samples = samples[:kept].copy()
        samples[kept - fade:] *= 0.5 + 0.5 * np.cos(np.linspace(0.0, np.pi, fade))
    rate = float(sample_rate)
    if rate > THUMBNAIL_SAMPLE_RATE:
        samples = soxr.resample(samples, rate, THUMBNAIL_SAMPLE_RATE)
        rate = float(THUMBNAIL_SAMPLE_RATE)
    magnitude_db, instantaneous = rainbowgram(
        samples, sample_rate=rate, hop_length_samples=256, bins_per_octave=THUMBNAIL_BINS_PER_OCTAVE
    )
    return _rainbow_rgb(magnitude_db, instantaneous)


def _validated_cells(cells: Mapping, grid_size: int) -> dict[tuple[int, int], np.ndarray]:
    if int(grid_size) != grid_size or grid_size < 2:
        raise ValueError(f"grid_size must be an integer >= 2 (cells at i / (grid_size - 1)), got {grid_size!r}")
    grid_size = int(grid_size)
    valid = {(i, j) for i in range(grid_size) for j in range(grid_size)}
    out = {}
    for key, audio in cells.items():
        try:
            i, j = (int(index) for index in key)
        except (TypeError, ValueError):
            raise ValueError(f"cell keys must be (i, j) integer pairs, got {key!r}") from None
        if (i, j) not in valid:
            raise ValueError(
                f"cell key {key!r} lies outside the {grid_size} x {grid_size} grid (indices 0..{grid_size - 1})"
            )
        out[(i, j)] = _validated_audio(audio, name=f"cell {(i, j)}")
    missing = sorted(valid - set(out))
    if missing:
        shown = ", ".join(str(cell) for cell in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ValueError(
            f"{len(missing)} of {grid_size * grid_size} cells have no audio ({shown}); render every cell first"
        )
    return out


def grid_map_png_bytes(cells: Mapping, *, sample_rate: float, grid_size: int, title: str = "") -> bytes:
    """Render a square PNG of an N x N bank: one small rainbowgram per grid cell, laid out as an XY pad.

    Cell ``(i, j)`` sits in column ``i`` (X, left to right) and row ``j`` counted from the bottom
    (Y, bottom to top), labelled ``(x, y) = (i / (N - 1), j / (N - 1))``. Each thumbnail shows the first
    1.5 s of the note resampled to 16 kHz (soxr), 24 CQT bins per octave from C1, and the same colours
    as :func:`rainbowgram_png_bytes` (each cell relative to its own loudest bin). About 0.05 s per cell.

    Parameters
    ----------
    cells : mapping (i, j) -> (time,) float
        Mono audio of every cell, ``0 <= i, j < grid_size``.
    sample_rate : float
        Hz, of every cell's audio.
    grid_size : int
        N (>= 2).
    title : str
        Figure title.

    Returns
    -------
    bytes
        PNG data, square: ``min(1.3 N + 1, 20)`` inches at 100 dpi.

    Raises
    ------
    ImportError
        If matplotlib is missing.
    ValueError
        If ``grid_size`` < 2, a key is not an (i, j) pair inside the grid, a cell is missing, or a cell's
        audio is empty, not 1-D or non-finite (the message names the cell).
    """
    Figure, FigureCanvasAgg = _import_matplotlib()
    rate = _validated_sample_rate(sample_rate)
    audio_by_cell = _validated_cells(cells, grid_size)
    n = int(grid_size)
    side_inches = min(_GRID_CELL_INCHES * n + 1.0, _GRID_MAX_INCHES)
    figure = Figure(figsize=(side_inches, side_inches), dpi=_DPI)
    FigureCanvasAgg(figure)
    # margins in inches, as fractions of the figure: axis labels, cell labels and the title
    figure.subplots_adjust(
        left=0.5 / side_inches, right=1 - 0.2 / side_inches, bottom=0.5 / side_inches,
        top=1 - (0.6 if title else 0.3) / side_inches, wspace=0.06, hspace=0.3,
    )
    grid = figure.subplots(n, n, squeeze=False)
    fontsize = max(4.0, min(8.0, 60.0 / n))
    for (i, j), samples in sorted(audio_by_cell.items()):
        axes = grid[n - 1 - j, i]  # row 0 of the subplot grid is the top: y = 1
        axes.imshow(_thumbnail_rgb(samples, rate), origin="lower", aspect="auto", interpolation="nearest")
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_title(f"({i / (n - 1):.2f}, {j / (n - 1):.2f})", fontsize=fontsize, pad=2)
    figure.supxlabel("x \u2192  (thumbnails: first 1.5 s, CQT from C1, hue = inst. frequency)", fontsize=9)
    figure.supylabel("y \u2192", fontsize=9)
    return figure_png_bytes(figure, title=title, tight_layout=False)


def sanitized_file_stem(name: str) -> str:
    """``name`` made safe as a file stem: characters outside ``[A-Za-z0-9_.-]`` become ``_``, leading dots
    are dropped, an empty result becomes ``"unnamed"``. No path separator survives, so the file stays in
    its folder (``"../../evil"`` -> ``"_.._evil"``)."""
    stem = _SAFE_NAME.sub("_", str(name)).lstrip(".")
    return stem or "unnamed"


def save_bank_pictures(
    out_dir,
    *,
    corner_audio: Mapping[str, np.ndarray],
    cells: Mapping,
    sample_rate: float,
    grid_size: int,
    overwrite: bool = False,
) -> list[Path]:
    """Write ``rainbowgram_<corner>.png`` per corner and ``grid_map.png`` into ``out_dir``, atomically.

    Parameters
    ----------
    out_dir : path
        Destination folder (created if missing). No file is written outside it: corner names are
        reduced by :func:`sanitized_file_stem`.
    corner_audio : mapping str -> (time,) float
        Mono audio of each corner instrument, by name.
    cells : mapping (i, j) -> (time,) float
        As :func:`grid_map_png_bytes`.
    sample_rate : float
        Hz, of all audio.
    grid_size : int
        N of the grid (>= 2).
    overwrite : bool
        Replace existing pictures. If False, nothing is written when any target exists.

    Returns
    -------
    list of Path
        The corner pictures in ``corner_audio`` order, then ``grid_map.png``.

    Raises
    ------
    FileExistsError
        If a target exists and ``overwrite`` is False (checked before anything is written).
    ValueError
        If two corner names sanitize to the same file name, or as :func:`rainbowgram_png_bytes` and
        :func:`grid_map_png_bytes` (bad audio or cells).
    """
    folder = Path(out_dir)
    targets: dict[Path, str] = {}
    for name in corner_audio:
        path = folder / f"rainbowgram_{sanitized_file_stem(name)}.png"
        if path in targets:
            raise ValueError(
                f"corner names {targets[path]!r} and {name!r} both become {path.name}; rename one of them"
            )
        targets[path] = name
    grid_path = folder / "grid_map.png"
    if not overwrite:
        existing = [str(path) for path in [*targets, grid_path] if path.exists()]
        if existing:
            raise FileExistsError(
                f"{', '.join(existing)} already exist(s); pass --force (overwrite=True) to replace them"
            )
    # draw everything before writing anything: bad audio leaves no half-written bank of pictures
    pictures = {
        path: rainbowgram_png_bytes(corner_audio[name], sample_rate=sample_rate, title=f"corner: {name}")
        for path, name in targets.items()
    }
    pictures[grid_path] = grid_map_png_bytes(
        cells, sample_rate=sample_rate, grid_size=grid_size, title=f"{grid_size} x {grid_size} grid map"
    )
    return [atomic_write_bytes(path, data, overwrite=overwrite) for path, data in pictures.items()]
