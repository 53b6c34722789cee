"""Timbre grids: corner weights (bilinear and Open NSynth Super's cones), cell order, dedup."""

import numpy as np
import pytest

from nsynth_live.render.grid import corner_weights, grid_points, grid_sounds, ons_corner_weights


def test_grid_points_are_x_fastest_and_span_the_pad():
    points = grid_points(3)
    assert points.shape == (9, 2)
    np.testing.assert_allclose(points[:3], [[0, 0], [0.5, 0], [1, 0]])  # row j = 0, x rising
    np.testing.assert_allclose(points[3], [0, 0.5])
    np.testing.assert_allclose(grid_points(1), [[0.5, 0.5]])


@pytest.mark.parametrize("bad", [0, 34, 2.5, True])
def test_grid_size_outside_range_is_refused(bad):
    with pytest.raises(ValueError, match="grid_size"):
        grid_points(bad)


@pytest.mark.parametrize("scheme", ["bilinear", "ons"])
def test_weights_are_a_partition_of_unity_and_corners_are_pure(scheme):
    weights = corner_weights(grid_points(9), scheme=scheme)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert weights.min() >= 0
    corners = corner_weights([[0, 0], [1, 0], [0, 1], [1, 1]], scheme=scheme)
    np.testing.assert_allclose(corners, np.eye(4), atol=1e-12)


def test_bilinear_weights_match_the_live_pad_formula():
    x, y = 0.25, 0.75
    np.testing.assert_allclose(corner_weights([x, y]), [(1 - x) * (1 - y), x * (1 - y), (1 - x) * y, x * y])


def test_ons_cones_follow_their_published_formula():
    # centre: every corner at distance sqrt(0.5) -> equal weights
    np.testing.assert_allclose(ons_corner_weights([0.5, 0.5]), [0.25] * 4)
    # middle of the bottom edge: the top corners are more than 1 away and get nothing
    np.testing.assert_allclose(ons_corner_weights([0.5, 0.0]), [0.5, 0.5, 0.0, 0.0])
    # (0.25, 0.25): cones 1 - d, normalised; the far corner (d > 1) gets 0
    d = np.array([np.hypot(0.25, 0.25), np.hypot(0.75, 0.25), np.hypot(0.25, 0.75), np.hypot(0.75, 0.75)])
    cones = np.maximum(1 - d, 0)
    np.testing.assert_allclose(ons_corner_weights([0.25, 0.25]), cones / cones.sum())
    assert ons_corner_weights([0.25, 0.25])[3] == 0.0


def test_cells_with_equal_weights_are_one_sound():
    distinct = grid_sounds(9, ["a", "b", "c", "d"])
    assert len(distinct.sound_cells) == 81
    # the same sound along X: only the row (y) matters, so 9 sounds for 81 cells
    rows_only = grid_sounds(9, ["a", "a", "b", "b"])
    assert len(rows_only.sound_cells) == 9
    assert all(i == 0 for i, _ in rows_only.sound_cells)
    cell = 4 * 9 + 7  # cell (7, 4) sounds like cell (0, 4)
    assert rows_only.sound_key(int(rows_only.sound_of_cell[cell])) == "x0y4"
    assert len(grid_sounds(5, ["a"] * 4).sound_cells) == 1


def test_unknown_scheme_and_coordinates_outside_the_pad_are_refused():
    with pytest.raises(ValueError, match="scheme"):
        corner_weights([0.5, 0.5], scheme="nearest")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        corner_weights([1.5, 0.5])
