import pytest

from nsynth_live.engine import Engine
from tests.engine.additive_synth import AdditiveTestSynth


@pytest.fixture
def synth():
    return AdditiveTestSynth()


@pytest.fixture
def make_engine(synth):
    def make(preset="default", **kwargs):
        return Engine(synth, preset, **kwargs)

    return make

