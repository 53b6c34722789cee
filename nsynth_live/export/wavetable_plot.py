"""A PNG picture of a wavetable: frames drawn over time, as wavetable synths show them."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from nsynth_live.fileio import atomic_write_bytes

_MAX_DRAWN_FRAMES = 64  # frames drawn in the waterfall; more become an unreadable block


def wavetable_png_bytes(frames, *, title: str = "") -> bytes:
    """Render a table as PNG: a waterfall of frames (left) and a heat map of all frames (right).

    Parameters
    ----------
    frames : (frames, samples) float
        The table.
    title : str
        Figure title.

    Returns
    -------
    bytes
        PNG data.

    Raises
    ------
    ImportError
        If matplotlib is missing (install nsynth-live's dependencies: ``pip install matplotlib``).
    ValueError
        If ``frames`` is not 2-D.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:  # pragma: no cover - matplotlib is a core dependency
        raise ImportError("the wavetable picture needs matplotlib: pip install matplotlib") from error

    table = np.asarray(frames, dtype=np.float64)
    if table.ndim != 2:
        raise ValueError(f"frames must have shape (frames, samples), got {table.shape}")
    n_frames, n_samples = table.shape
    figure = Figure(figsize=(11, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    waterfall, heatmap = figure.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})

    drawn = np.unique(np.linspace(0, n_frames - 1, min(n_frames, _MAX_DRAWN_FRAMES)).round().astype(int))
    phase = np.arange(n_samples) / n_samples
    depth = max(len(drawn) - 1, 1)
    for order, index in enumerate(drawn[::-1]):  # back to front
        k = len(drawn) - 1 - order  # 0 = first frame (front)
        shift_x = 0.35 * k / depth
        shift_y = 1.6 * k / depth
        colour = (0.1 + 0.6 * k / depth, 0.3, 0.9 - 0.6 * k / depth)
        # hidden lines: each frame hides what lies below it from the frames behind
        waterfall.fill_between(
            phase * 0.65 + shift_x, table[index] * 0.45 + shift_y, shift_y - 0.5, color="white", zorder=2 * order
        )
        waterfall.plot(
            phase * 0.65 + shift_x, table[index] * 0.45 + shift_y, color=colour, lw=0.8, zorder=2 * order + 1
        )
    waterfall.set_axis_off()
    waterfall.set_title(f"{n_frames} frames x {n_samples} samples (front: first frame)", fontsize=9)

    limit = max(float(np.max(np.abs(table))), 1e-9)
    waterfall.set_ylim(-0.5, 2.1)
    image = heatmap.imshow(
        table, aspect="auto", origin="lower", cmap="RdBu_r", vmin=-limit, vmax=limit,
        extent=(0, n_samples, -0.5, n_frames - 0.5), interpolation="nearest",
    )
    heatmap.set_xlabel("sample in cycle")
    heatmap.set_ylabel("frame")
    figure.colorbar(image, ax=heatmap, fraction=0.05, label="amplitude")
    return figure_png_bytes(figure, title=title)


def figure_png_bytes(figure, *, title: str = "", tight_layout: bool = True) -> bytes:
    """A matplotlib ``Figure`` (Agg canvas attached) as PNG bytes, with ``title`` as its suptitle."""
    if title:
        figure.suptitle(title, fontsize=11)
    if tight_layout:
        figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def save_wavetable_png(path, frames, *, title: str = "", overwrite: bool = False) -> Path:
    """Write :func:`wavetable_png_bytes` atomically to ``path``.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    """
    return atomic_write_bytes(path, wavetable_png_bytes(frames, title=title), overwrite=overwrite)
