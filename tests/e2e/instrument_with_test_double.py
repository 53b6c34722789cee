"""Run ``nsynth_live.app`` with the engine's additive test double instead of the ONNX model.

Used by tests/e2e as the instrument process, so that the whole live path (JACK audio through
PortAudio, JACK MIDI, OSC, --play, --record) is tested on CI whether or not the trained model is
there. Same arguments as run_live.py; ``--model`` is ignored. Tests only, never shipped.
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from nsynth_live import app  # noqa: E402
from tests.engine.additive_synth import AdditiveTestSynth  # noqa: E402

if __name__ == "__main__":
    app.load_model_or_explain = lambda path: AdditiveTestSynth()
    sys.exit(app.main(sys.argv[1:]))
