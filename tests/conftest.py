import numpy as np
import pytest

# fail_on_skip: CI (NSYNTH_LIVE_FAIL_ON_SKIP=1) fails a run that skipped a test
pytest_plugins = ["pytester", "tests.fail_on_skip"]


@pytest.fixture
def rng():
    """A fixed-seed random generator: tests are deterministic."""
    return np.random.default_rng(1234)
