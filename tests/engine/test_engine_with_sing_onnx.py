"""The engine over the real streaming SING ONNX runtime (a tiny random-weight model exported to
tmp_path): the engine's batched, gathered/scattered stepping equals the model's own note render."""

import numpy as np
import pytest

from nsynth_live.engine import Engine, NoteOn
from nsynth_live.presets import Preset

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from nsynth_live.models.sing import Sing  # noqa: E402
from nsynth_live.models.sing_configs import SingConfig  # noqa: E402
from nsynth_live.runtime.sing_export import export_sing_onnx  # noqa: E402
from nsynth_live.runtime.sing_onnx import load_synth  # noqa: E402
from tests.engine.additive_synth import INSTRUMENT_NAMES  # noqa: E402


@pytest.fixture(scope="module")
def tiny_synth(tmp_path_factory):
    torch.manual_seed(0)
    config = SingConfig(name="tiny", embedding_dims=16, conv_channels=32, lstm_hidden=16,
                        num_instruments=len(INSTRUMENT_NAMES))
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    export_sing_onnx(Sing(config).eval(), INSTRUMENT_NAMES, path, pitch_min_midi=36, pitch_max_midi=84)
    return load_synth(path)


def test_engine_voices_equal_the_models_own_note_render(tiny_synth):
    corner = "organ_acoustic_005"
    notes = [(48, 100), (60, 50), (67, 127)]
    hops = 40
    embedding = tiny_synth.instrument_embedding(corner)
    expected = sum(tiny_synth.render_note(embedding, pitch_midi=p, velocity=v, hops=hops)
                   for p, v in notes)
    scale = float(np.max(np.abs(expected)))
    assert scale > 0
    gain_db = 20 * np.log10(0.5 / scale)  # keep the mix under the limiter and the soft clip
    preset = Preset(name="p", corners=(corner,) * 4, gain_db=float(gain_db), width=0.0)  # centred: no pan
    engine = Engine(tiny_synth, preset, output_sample_rate=16000, max_voices=4)
    for pitch, velocity in notes:
        engine.post(NoteOn(pitch, velocity))
    mix = np.concatenate([engine.render_hop()[:, 0] for _ in range(hops)])
    attack = int(engine.config.attack_seconds * 16000)
    np.testing.assert_allclose(mix[attack:], (0.5 / scale) * expected[attack:], atol=1e-5)


def test_long_held_chord_loops_inside_the_time_table(tiny_synth):
    engine = Engine(tiny_synth, Preset(name="p", corners=("organ_acoustic_005",) * 4),
                    output_sample_rate=48000)
    for pitch in (48, 55, 64):
        engine.post(NoteOn(pitch, 100))
    audio = np.concatenate([engine.render_hop() for _ in range(400)])  # 6.4 s > 265 frames
    assert audio.shape == (400 * 768, 2) and np.all(np.isfinite(audio))
    assert engine.active_voice_count == 3
