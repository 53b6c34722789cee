"""Timbre grids: the corner weights of every cell of an N x N XY grid, and which cells sound the same.

Cell ``(i, j)`` (column ``i`` along X, row ``j`` along Y) sits at ``x = i / (N - 1)``,
``y = j / (N - 1)``. Corners are in the order (x, y) = (0, 0), (1, 0), (0, 1), (1, 1), as a preset's.

Two weighting schemes:

* ``bilinear`` (default): ``w = ((1-x)(1-y), x(1-y), (1-x)y, xy)``, the live XY pad's blend
  (:func:`nsynth_live.functional.interpolation.bilinear_corner_weights`), so a bank cell sounds like
  the live instrument at the same XY.
* ``ons``: Open NSynth Super's distance cones (its published ``audio/workdir/utils.py``,
  ``get_weights``): ``w_c = max(1 - ||xy - c||_2, 0)`` per corner ``c``, normalised to sum to 1. A
  cell weighs at most three corners and the centre weighs all four equally.

Deduplication: a bank may name the same sound at several corners (``--corners a,a,b,b``); the
weights are then summed per distinct sound and cells whose summed weights are equal are rendered
once (Open NSynth Super dedups the same way, on weights rounded to 3 decimals; we round to
:data:`WEIGHT_DECIMALS` so only cells that are equal to float precision merge).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nsynth_live.functional.interpolation import bilinear_corner_weights

GRID_SCHEMES = ("bilinear", "ons")
CORNER_XY = np.array([(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)])  # pad coordinates of the 4 corners
WEIGHT_DECIMALS = 9  # cells whose weights agree to 1e-9 are one sound
MAX_GRID_SIZE = 33  # cells per side; 33 x 33 = 1089 cells per root and velocity


def grid_points(grid_size: int) -> np.ndarray:
    """Pad coordinates of every cell, x fastest (Open NSynth Super's order).

    Returns
    -------
    (grid_size * grid_size, 2) float64
        Row ``j * grid_size + i`` is cell ``(i, j)`` at ``(i / (N-1), j / (N-1))``; a 1 x 1 grid is
        the centre ``(0.5, 0.5)``.

    Raises
    ------
    ValueError
        If ``grid_size`` is not an integer in 1..33.
    """
    if isinstance(grid_size, bool) or not isinstance(grid_size, (int, np.integer)) or not 1 <= grid_size <= MAX_GRID_SIZE:
        raise ValueError(f"grid_size must be an integer in 1..{MAX_GRID_SIZE}, got {grid_size!r}")
    if grid_size == 1:
        return np.array([[0.5, 0.5]])
    axis = np.arange(grid_size) / (grid_size - 1)
    x, y = np.meshgrid(axis, axis)  # y rows, x columns: x fastest when flattened
    return np.stack([x.reshape(-1), y.reshape(-1)], axis=1)


def ons_corner_weights(xy) -> np.ndarray:
    """Open NSynth Super's distance-cone weights at one or many pad points.

    Parameters
    ----------
    xy : (..., 2) float
        Pad coordinates in [0, 1].

    Returns
    -------
    (..., 4) float64
        ``max(1 - distance to corner, 0)`` normalised to sum 1, corners (0,0), (1,0), (0,1), (1,1).
    """
    xy = np.asarray(xy, dtype=np.float64)
    distances = np.linalg.norm(xy[..., None, :] - CORNER_XY, axis=-1)
    cones = np.maximum(1.0 - distances, 0.0)
    return cones / cones.sum(axis=-1, keepdims=True)


def corner_weights(xy, *, scheme: str = "bilinear") -> np.ndarray:
    """Corner weights of pad points under ``scheme`` (``"bilinear"`` or ``"ons"``).

    Parameters
    ----------
    xy : (..., 2) float
        Pad coordinates in [0, 1].

    Returns
    -------
    (..., 4) float64, non-negative, summing to 1.

    Raises
    ------
    ValueError
        For an unknown scheme or coordinates outside [0, 1].
    """
    xy = np.asarray(xy, dtype=np.float64)
    if not np.all(np.isfinite(xy)) or xy.size and (xy.min() < 0 or xy.max() > 1):
        raise ValueError("pad coordinates must lie in [0, 1]")
    if scheme == "bilinear":
        return bilinear_corner_weights(xy)
    if scheme == "ons":
        return ons_corner_weights(xy)
    raise ValueError(f"grid scheme must be one of {', '.join(GRID_SCHEMES)}, got {scheme!r}")


@dataclass(frozen=True)
class GridSounds:
    """The distinct sounds of a grid.

    Attributes
    ----------
    grid_size : int
    scheme : str
    cell_weights : (N * N, 4) float64
        Corner weights of each cell, x fastest (row ``j * N + i`` is cell ``(i, j)``).
    sound_of_cell : (N * N,) int64
        Index into ``sound_weights`` of each cell's sound.
    sound_weights : (sounds, 4) float64
        Corner weights of each distinct sound (those of its first cell).
    sound_cells : tuple of (int, int)
        ``(i, j)`` of the first cell of each sound; a sound's key is ``x{i}y{j}``.
    """

    grid_size: int
    scheme: str
    cell_weights: np.ndarray
    sound_of_cell: np.ndarray
    sound_weights: np.ndarray
    sound_cells: tuple[tuple[int, int], ...]

    def sound_key(self, sound: int) -> str:
        """Name of a sound: ``x{i}y{j}`` of its first cell."""
        i, j = self.sound_cells[sound]
        return f"x{i}y{j}"


def grid_sounds(grid_size: int, corners, *, scheme: str = "bilinear") -> GridSounds:
    """Weights of every cell of an N x N grid, with cells that sound the same merged.

    Parameters
    ----------
    grid_size : int
        N, 1..33.
    corners : sequence of 4 hashable
        Corner sounds (names or paths) at (0,0), (1,0), (0,1), (1,1); equal names are one sound.
    scheme : str
        ``"bilinear"`` or ``"ons"``.

    Returns
    -------
    GridSounds

    Raises
    ------
    ValueError
        For a bad grid size, scheme or number of corners.
    """
    corners = tuple(corners)
    if len(corners) != 4:
        raise ValueError(f"4 corners expected, got {len(corners)}")
    weights = corner_weights(grid_points(grid_size), scheme=scheme)
    distinct = list(dict.fromkeys(corners))
    to_distinct = np.zeros((4, len(distinct)))
    for c, name in enumerate(corners):
        to_distinct[c, distinct.index(name)] = 1.0
    effective = np.round(weights @ to_distinct, WEIGHT_DECIMALS)
    sound_of_cell = np.empty(weights.shape[0], dtype=np.int64)
    first_of_key: dict[bytes, int] = {}
    firsts: list[int] = []
    for cell, row in enumerate(effective):
        key = (row + 0.0).tobytes()  # + 0.0 turns -0.0 into 0.0
        if key not in first_of_key:
            first_of_key[key] = len(firsts)
            firsts.append(cell)
        sound_of_cell[cell] = first_of_key[key]
    n = grid_size
    return GridSounds(
        grid_size=n, scheme=scheme, cell_weights=weights, sound_of_cell=sound_of_cell,
        sound_weights=weights[firsts], sound_cells=tuple((c % n, c // n) for c in firsts))
