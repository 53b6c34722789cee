import numpy as np
import pytest
import torch

from nsynth_live.functional.mu_law import (
    mu_law_class_to_code,
    mu_law_code_to_class,
    mu_law_code_to_input,
    mu_law_decode,
    mu_law_encode,
)


@pytest.mark.parametrize("as_torch", [False, True])
def test_golden_values(as_torch):
    # Values from the reference (Magenta utils.mu_law / inv_mu_law with floor binning).
    x = np.array([1e-4, -1e-4, 0.5, -0.5, 0.0, 1.0, -1.0])
    expected_q = np.array([0, -1, 112, -113, 0, 127, -128])
    q = mu_law_encode(torch.from_numpy(x) if as_torch else x)
    q = q.numpy() if as_torch else q
    np.testing.assert_array_equal(q, expected_q)
    assert q.dtype == np.int64
    decoded = mu_law_decode(torch.from_numpy(q) if as_torch else q)
    decoded = decoded.numpy() if as_torch else decoded
    assert decoded[0] == 0.0  # q = 0 decodes to exactly zero
    assert decoded[2] == pytest.approx(0.509, abs=1e-3)
    # bin centre of q = 112: (112.5 / 128) through the inverse mu-law, computed by hand
    assert decoded[2] == pytest.approx((256.0 ** (112.5 / 128) - 1) / 255, rel=1e-6)
    assert decoded[1] < 0 and decoded[3] < 0


def test_plus_one_is_clamped_to_the_last_class():
    q = mu_law_encode(np.array([1.0, 0.9999999, 2.0, -2.0]))
    np.testing.assert_array_equal(q, [127, 127, 127, -128])
    np.testing.assert_array_equal(mu_law_code_to_class(q), [255, 255, 255, 0])


def test_every_code_round_trips_through_its_bin_centre():
    q = np.arange(-128, 128)
    np.testing.assert_array_equal(mu_law_encode(mu_law_decode(q)), q)
    np.testing.assert_array_equal(mu_law_encode(mu_law_decode(torch.from_numpy(q))).numpy(), q)


def test_floor_binning_is_monotone_and_numpy_matches_torch(rng):
    x = np.sort(rng.uniform(-1, 1, 10_000))
    q_np = mu_law_encode(x)
    q_t = mu_law_encode(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(q_np, q_t)
    assert np.all(np.diff(q_np) >= 0)
    # floor binning: the decoded bin centre is within half a bin of the input in the companded domain
    companded = np.sign(x) * np.log1p(255 * np.abs(x)) / np.log(256) * 128
    assert np.all((companded >= q_np) & (companded < q_np + 1))


def test_network_input_and_classes():
    q = np.array([-128, -1, 0, 127])
    np.testing.assert_allclose(mu_law_code_to_input(q), [-1.0, -1 / 128, 0.0, 127 / 128])
    assert mu_law_code_to_input(q).dtype == np.float32
    np.testing.assert_array_equal(mu_law_code_to_class(q), [0, 127, 128, 255])
    np.testing.assert_array_equal(mu_law_class_to_code(mu_law_code_to_class(q)), q)
    t = torch.tensor([-128, 127])
    assert mu_law_code_to_input(t).dtype == torch.float32
    assert mu_law_class_to_code(torch.tensor([0, 255])).tolist() == [-128, 127]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="NaN"):
        mu_law_encode(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match=r"\[-128, 127\]"):
        mu_law_decode(np.array([200]))
    with pytest.raises(ValueError, match="mu_law_class_to_code"):
        mu_law_decode(torch.tensor([255]))


def test_class_edges_bound_what_encode_maps_to_each_class():
    from nsynth_live.functional.mu_law import mu_law_class_edges

    edges = mu_law_class_edges()
    assert edges.shape == (257,) and np.all(np.diff(edges) > 0)
    assert edges[0] == -np.inf and edges[-1] == np.inf and edges[128] == 0.0
    inner = edges[1:-1]
    nudge = np.abs(inner) * 1e-9 + 1e-15
    # each inner edge starts its class: encode maps just above it to that class, just below to the one before
    np.testing.assert_array_equal(mu_law_code_to_class(mu_law_encode(inner + nudge)), np.arange(1, 256))
    np.testing.assert_array_equal(mu_law_code_to_class(mu_law_encode(inner - nudge)), np.arange(0, 255))
    centres = mu_law_decode(np.arange(-128, 128)).astype(np.float64)
    assert np.all((centres >= edges[:-1]) & (centres < edges[1:]))
