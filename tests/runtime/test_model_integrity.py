"""Damaged model files are refused at load with the reason (issue 15 item 5), the intact default loads.

Each test writes a corrupted copy of ``models/sing_default.onnx`` into ``tmp_path``: NaN / inf /
1e30 in one weight tensor, a loud but finite model, flipped bytes, a ``weights_sha256`` mismatch.
"""

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from nsynth_live.runtime.protocol import StreamSpec
from nsynth_live.runtime.sing_onnx import (
    DEFAULT_MODEL_SHA256,
    TEST_NOTE_PEAK_LIMIT,
    WEIGHTS_SHA256_KEY,
    ModelFileError,
    ModelIntegrityError,
    check_test_note,
    load_synth,
    weights_sha256,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPO_ROOT / "models" / "sing_default.onnx"
EXAMPLE = REPO_ROOT / "examples" / "bach_bwv66_6.mid"
FLIPPED_BYTES = 64  # bytes XOR 0xFF in the flipped-bytes tests

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL.is_file(),
                                reason="the default model is produced by export/train_sing.py")


@pytest.fixture(scope="module")
def default_proto():
    return onnx.load(DEFAULT_MODEL)


def save_variant(proto, path, *, tensor=None, index=0, value=None, metadata=None):
    """Copy of ``proto`` with ``tensor.flat[index] = value`` and metadata entries set, saved to ``path``."""
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    if tensor is not None:
        for initializer in model.graph.initializer:
            if initializer.name == tensor:
                array = numpy_helper.to_array(initializer).copy()
                array.flat[index] = value
                initializer.CopyFrom(numpy_helper.from_array(array, tensor))
                break
        else:
            raise AssertionError(f"no initializer {tensor}")
    for key, text in (metadata or {}).items():
        entries = [entry for entry in model.metadata_props if entry.key == key]
        entry = entries[0] if entries else model.metadata_props.add()
        entry.key, entry.value = key, text
    onnx.save(model, path)
    return path


def flip_bytes(source, path, *, fraction):
    data = bytearray(Path(source).read_bytes())
    start = int(len(data) * fraction)
    for i in range(start, start + FLIPPED_BYTES):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def test_the_committed_default_model_matches_its_hash_and_loads():
    assert hashlib.sha256(DEFAULT_MODEL.read_bytes()).hexdigest() == DEFAULT_MODEL_SHA256
    synth = load_synth(DEFAULT_MODEL, expected_file_sha256=DEFAULT_MODEL_SHA256)
    assert 0.01 < synth.test_note_peak < 1.0  # measured 0.24
    assert synth.name is None and synth.weights_sha256 is None  # exported before they existed


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nonfinite_weight_is_refused_with_the_tensor_name(tmp_path, default_proto, value):
    path = save_variant(default_proto, tmp_path / "nan.onnx", tensor="decoder.conv.weight", index=12345, value=value)
    with pytest.raises(ModelIntegrityError, match=r"1 of 22 weight tensors hold NaN or inf: decoder\.conv\.weight") as info:
        load_synth(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("tensor", ["decoder.synthesis.bias", "onnx::MatMul_469", "sequence_generator.pitch_table.weight"])
def test_huge_weight_is_refused(tmp_path, default_proto, tensor):
    """1e30 anywhere, even where the test note does not reach (pitch-table row 0, one matrix entry)."""
    path = save_variant(default_proto, tmp_path / "big.onnx", tensor=tensor, value=1e30)
    with pytest.raises(ModelIntegrityError, match=r"1 of 22 weight tensors hold values beyond 1e\+06 \(up to 1e\+30\)"):
        load_synth(path)


def test_loud_model_with_finite_weights_fails_the_test_note(tmp_path, default_proto):
    # a DC offset of 10 full scale: every weight finite and small, the output far too loud
    path = save_variant(default_proto, tmp_path / "loud.onnx", tensor="decoder.synthesis.bias", value=10.0)
    with pytest.raises(ModelIntegrityError, match=r"a test note .* peaks at 10\.\d full scale") as info:
        load_synth(path)
    assert str(path) in str(info.value)


class _StubSynth:
    """One instrument; every hop's audio is ``value``."""

    spec = StreamSpec(sample_rate=16000, hop_length_samples=4, preroll_steps=2, time_steps=20, embedding_dims=2,
                      pitch_min_midi=40, pitch_max_midi=80, instrument_names=("only",))

    def __init__(self, value):
        self.value = value

    def instrument_embedding(self, name):
        return np.zeros(2, np.float32)

    def new_state(self, n_voices):
        return {"h": np.zeros((n_voices, 3), np.float32)}

    def step(self, instrument_embedding, pitch_midi, velocity, time_index, state):
        return np.full((len(pitch_midi), 4), self.value, np.float32), state


@pytest.mark.parametrize("value, reason", [(np.nan, "is NaN or inf at step 0"), (1e28, "peaks at 1e\\+28"),
                                           (TEST_NOTE_PEAK_LIMIT * 1.01, "peaks at 4.04")])
def test_check_test_note_refuses(value, reason):
    with pytest.raises(ModelIntegrityError, match=reason):
        check_test_note(_StubSynth(value), path="stub.onnx")


def test_check_test_note_accepts_up_to_the_limit():
    assert check_test_note(_StubSynth(-TEST_NOTE_PEAK_LIMIT), path="stub.onnx") == TEST_NOTE_PEAK_LIMIT


def test_weights_sha256_in_the_metadata_is_checked(tmp_path, default_proto):
    good = weights_sha256(default_proto)
    path = save_variant(default_proto, tmp_path / "hashed.onnx", metadata={WEIGHTS_SHA256_KEY: good, "name": "x"})
    synth = load_synth(path)
    assert synth.weights_sha256 == good and synth.name == "x"

    wrong = "0" * 64
    path = save_variant(default_proto, tmp_path / "wrong.onnx", metadata={WEIGHTS_SHA256_KEY: wrong})
    with pytest.raises(ModelIntegrityError, match=f"corrupt: weights sha256 {good} expected {wrong}"):
        load_synth(path)

    # a small finite change the other checks cannot see
    path = save_variant(default_proto, tmp_path / "edited.onnx", tensor="onnx::LSTM_444", value=0.125,
                        metadata={WEIGHTS_SHA256_KEY: good})
    with pytest.raises(ModelIntegrityError, match="corrupt: weights sha256 .* expected " + good):
        load_synth(path)


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.7])
def test_flipped_bytes_are_refused(tmp_path, default_proto, fraction):
    """With the hash the file carries (new exports) or the app's file hash (the default model)."""
    hashed = save_variant(default_proto, tmp_path / "hashed.onnx",
                          metadata={WEIGHTS_SHA256_KEY: weights_sha256(default_proto)})
    with pytest.raises(ModelIntegrityError, match="weights sha256"):
        load_synth(flip_bytes(hashed, tmp_path / "flipped.onnx", fraction=fraction))
    flipped_default = flip_bytes(DEFAULT_MODEL, tmp_path / "flipped_default.onnx", fraction=fraction)
    with pytest.raises(ModelIntegrityError, match=f"was modified or is corrupt: sha256 .* expected {DEFAULT_MODEL_SHA256}"):
        load_synth(flipped_default, expected_file_sha256=DEFAULT_MODEL_SHA256)


def test_flipped_bytes_without_any_hash(tmp_path):
    """Without a hash, what shows: a broken protobuf header, or weights whose test note is too loud.

    (Flips in an LSTM matrix, saturated by its gates, play like the original and pass: measured peak
    0.77 against 0.82 over 20 instruments x 3 pitches; only a hash sees those.)
    """
    with pytest.raises(ModelFileError, match="not a readable ONNX model"):
        load_synth(flip_bytes(DEFAULT_MODEL, tmp_path / "head.onnx", fraction=0.0))
    with pytest.raises(ModelIntegrityError, match="a test note .* peaks at"):  # decoder weights
        load_synth(flip_bytes(DEFAULT_MODEL, tmp_path / "decoder.onnx", fraction=0.3))


def test_a_reexported_default_with_its_own_hash_skips_the_file_hash(tmp_path, default_proto):
    """export/train_sing.py writes the default path: its export carries weights_sha256, checked instead."""
    path = save_variant(default_proto, tmp_path / "retrained.onnx",
                        metadata={WEIGHTS_SHA256_KEY: weights_sha256(default_proto)})
    load_synth(path, expected_file_sha256=DEFAULT_MODEL_SHA256)


def test_app_refuses_a_nan_model_with_exit_code_2(tmp_path, default_proto):
    model = save_variant(default_proto, tmp_path / "nan.onnx", tensor="onnx::LSTM_425", value=np.nan)
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "run_live.py"), "--offline", "--play", str(EXAMPLE),
         "--record", str(tmp_path / "o.wav"), "--model", str(model)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin", "JACK_NO_START_SERVER": "1"},
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"model file {model} is corrupt: 1 of 22 weight tensors hold NaN or inf: onnx::LSTM_425" in result.stderr
    assert not (tmp_path / "o.wav").exists()


def test_app_explains_how_to_restore_a_modified_default_model(tmp_path, monkeypatch):
    from nsynth_live import app

    copy = flip_bytes(DEFAULT_MODEL, tmp_path / "sing_default.onnx", fraction=0.5)
    monkeypatch.setattr(app, "DEFAULT_MODEL_PATH", copy)
    with pytest.raises(app.AppError, match="git checkout -- models/sing_default.onnx") as info:
        app.load_model_or_explain(copy)
    assert "was modified or is corrupt" in str(info.value) and info.value.exit_code == app.EXIT_BAD_INPUT


def test_app_stats_report_the_cut_voices(tmp_path, monkeypatch, capsys):
    """A model that slips through (NaN on some steps): its voices are cut, the render stays finite, the stats say so."""
    import json

    import soundfile

    from nsynth_live import app
    from tests.engine.additive_synth import AdditiveTestSynth

    class NanEvery50thStep(AdditiveTestSynth):
        def step(self, *args, **kwargs):
            audio, state = super().step(*args, **kwargs)
            return (audio * np.nan if self.step_calls % 50 == 0 else audio), state

    synth = NanEvery50thStep()
    monkeypatch.setattr(app, "load_model_or_explain", lambda path: synth)
    out, stats_path = tmp_path / "take.wav", tmp_path / "stats.json"
    assert app.main(["--offline", "--play", str(EXAMPLE), "--record", str(out), "--stats-json", str(stats_path)]) == 0
    stats = json.loads(stats_path.read_text())
    assert stats["nonfinite_voices"] > 10 and stats["nonfinite_hops"] == 0
    assert np.isfinite(soundfile.read(out, dtype="float32")[0]).all()
    assert f"NaN / inf model output: cut {stats['nonfinite_voices']} voice(s), muted 0 hop(s)" in capsys.readouterr().out


def test_weights_sha256_hashes_every_initializer_s_values_in_graph_order(default_proto):
    digest = hashlib.sha256()
    for tensor in default_proto.graph.initializer:
        digest.update(numpy_helper.to_array(tensor).tobytes())
    assert weights_sha256(DEFAULT_MODEL.read_bytes()) == weights_sha256(default_proto) == digest.hexdigest()


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("raw", [True, False])
def test_nonfinite_weights_are_found_in_every_storage(dtype, raw):
    """raw_data, or the typed fields (float_data, double_data, int32_data for float16)."""
    from nsynth_live.runtime.sing_onnx import check_weights

    values = np.array([0.5, np.nan, -1.0], dtype)
    data_type = onnx.helper.np_dtype_to_tensor_dtype(values.dtype)
    tensor = onnx.helper.make_tensor("w", data_type, values.shape, values.tobytes() if raw else values, raw=raw)
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["w"], ["y"])], "g", [],
                                   [onnx.helper.make_tensor_value_info("y", data_type, values.shape)], [tensor])
    with pytest.raises(ModelIntegrityError, match="1 of 1 weight tensors hold NaN or inf: w"):
        check_weights(onnx.helper.make_model(graph).SerializeToString(), path="synthetic.onnx")
