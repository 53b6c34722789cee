"""Interpolation weights of the timbre XY pad."""

from __future__ import annotations

import numpy as np


def bilinear_corner_weights(xy) -> np.ndarray:
    """Bilinear weights of the pad's four corners at one or many points.

    ``e(x, y) = (1-x)(1-y) e00 + x(1-y) e10 + (1-x) y e01 + x y e11``: corners in the order
    (0, 0), (1, 0), (0, 1), (1, 1), as a preset's ``corners``.

    Parameters
    ----------
    xy : (..., 2) float
        Pad coordinates, each in [0, 1] (not checked here).

    Returns
    -------
    (..., 4) float64
        Non-negative weights summing to 1 for points inside the pad.
    """
    xy = np.asarray(xy, dtype=np.float64)
    x, y = xy[..., 0], xy[..., 1]
    return np.stack([(1 - x) * (1 - y), x * (1 - y), (1 - x) * y, x * y], axis=-1)
