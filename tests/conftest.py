import numpy as np
import pytest


@pytest.fixture
def rng():
    """A fixed-seed random generator: tests are deterministic."""
    return np.random.default_rng(1234)
