import numpy as np

from nsynth_live.functional.interpolation import bilinear_corner_weights


def test_corners_centre_and_edges():
    np.testing.assert_allclose(bilinear_corner_weights([[0, 0], [1, 0], [0, 1], [1, 1]]), np.eye(4))
    np.testing.assert_allclose(bilinear_corner_weights([0.5, 0.5]), [0.25] * 4)
    np.testing.assert_allclose(bilinear_corner_weights([0.25, 0.0]), [0.75, 0.25, 0.0, 0.0])


def test_weights_sum_to_one_inside_the_pad(rng):
    weights = bilinear_corner_weights(rng.uniform(0, 1, (100, 2)))
    assert weights.shape == (100, 4) and np.all(weights >= 0)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
