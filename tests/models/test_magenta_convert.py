import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

from nsynth_live.models.magenta_convert import convert_magenta_arrays, magenta_variable_table
from nsynth_live.models.wavenet_ae import WaveNetAutoencoder
from nsynth_live.models.wavenet_configs import WAVENET_CONFIGS, get_wavenet_config

import wavenet_numpy_reference as reference

REPO = Path(__file__).resolve().parents[2]
convert_cli = runpy.run_path(str(REPO / "export" / "convert_magenta_checkpoint.py"))["main"]
CONFIG = WAVENET_CONFIGS["tiny"]


def _random_magenta_arrays(rng, config):
    return {
        name: rng.normal(0, 0.3, shape).astype(np.float32)
        for name, (_, shape) in magenta_variable_table(config).items()
    }


def _write_tf1_checkpoint(prefix, arrays, rng):
    """A TF1 checkpoint with Magenta's names, plus EMA shadows, Adam slots and global_step as decoys."""
    tf = pytest.importorskip("tensorflow")
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        for name, array in arrays.items():
            scope, leaf = name.split("/")
            with v1.variable_scope(scope):
                v1.get_variable(leaf, initializer=array)
                for suffix in ("ExponentialMovingAverage", "Adam", "Adam_1"):
                    v1.get_variable(f"{leaf}/{suffix}", initializer=np.full_like(array, 7.0))
        v1.get_variable("global_step", initializer=np.int64(200000))
        saver = v1.train.Saver()
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            saver.save(session, str(prefix), write_meta_graph=False)


def test_table_covers_the_374_magenta_tensors():
    table = magenta_variable_table(get_wavenet_config("magenta"))
    assert len(table) == 374
    assert table["dilatedconv_7/W"] == ("decoder.layers.dilatedconv_7.weight", (1, 3, 512, 1024))
    assert table["cond_map_out1/biases"] == ("decoder.layers.cond_map_out1.bias", (256,))
    assert table["ae_bottleneck/W"] == ("encoder.layers.ae_bottleneck.weight", (1, 1, 128, 16))


@pytest.mark.slow  # imports TensorFlow (4 s on an idle machine)
def test_tf_checkpoint_converts_to_a_model_matching_numpy_on_the_raw_arrays(tmp_path, rng, capsys):
    pytest.importorskip("tensorflow")
    arrays = _random_magenta_arrays(rng, CONFIG)
    prefix = tmp_path / "ckpt" / "model.ckpt-200000"
    prefix.parent.mkdir()
    _write_tf1_checkpoint(prefix, arrays, rng)

    out = tmp_path / "converted.pt"
    assert convert_cli([str(prefix), str(out), "--config", "tiny"]) == 0, capsys.readouterr().err
    assert "sha256" in capsys.readouterr().out
    model = WaveNetAutoencoder.load(out).double()

    params = {name: array.astype(np.float64) for name, array in arrays.items()}
    audio = rng.uniform(-0.7, 0.7, 3 * CONFIG.hop_length_samples)
    ref_en = reference.encode(params, audio, layers=CONFIG.encoder_layers, cycle=CONFIG.encoder_dilation_cycle,
                              hop=CONFIG.hop_length_samples)
    ref_logits = reference.decode_logits(params, audio, ref_en, layers=CONFIG.decoder_layers,
                                         cycle=CONFIG.decoder_dilation_cycle, hop=CONFIG.hop_length_samples)
    with torch.no_grad():
        encoding = model.encode(torch.from_numpy(audio)[None])
        logits, _ = model(torch.from_numpy(audio)[None])
    np.testing.assert_allclose(encoding[0].numpy(), ref_en, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(logits[0].numpy().T, ref_logits, rtol=1e-5, atol=1e-4)

    # refuses to overwrite without --force
    assert convert_cli([str(prefix), str(out), "--config", "tiny"]) == 2
    assert "--force" in capsys.readouterr().err

    # a checkpoint of another size fails naming the tensor and both shapes
    assert convert_cli([str(prefix), str(tmp_path / "x.pt"), "--config", "small"]) == 2
    err = capsys.readouterr().err
    assert "ae_startconv/W" in err and "[1, 3, 1, 8]" in err and "[1, 3, 1, 32]" in err
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.slow
def test_ema_weights_are_read_on_request(tmp_path, rng):
    pytest.importorskip("tensorflow")
    from nsynth_live.models.magenta_convert import read_magenta_checkpoint

    arrays = _random_magenta_arrays(rng, CONFIG)
    prefix = tmp_path / "model.ckpt-1"
    _write_tf1_checkpoint(prefix, arrays, rng)
    raw = read_magenta_checkpoint(prefix, config=CONFIG)
    ema = read_magenta_checkpoint(prefix, config=CONFIG, use_ema=True)
    expected = torch.from_numpy(arrays["res_2/W"][0]).permute(2, 1, 0)
    assert torch.equal(raw.decoder.layers["res_2"].weight.detach(), expected)
    assert (ema.decoder.layers["res_2"].weight == 7.0).all()


def test_missing_and_misshaped_tensors_are_named(rng):
    arrays = _random_magenta_arrays(rng, CONFIG)
    del arrays["skip_3/biases"]
    with pytest.raises(ValueError, match=r"'skip_3/biases' is missing from checkpoint; expected shape \[8\]"):
        convert_magenta_arrays(arrays, config=CONFIG)
    arrays = _random_magenta_arrays(rng, CONFIG)
    arrays["dilatedconv_2/W"] = np.zeros((1, 2, 8, 16), np.float32)
    with pytest.raises(ValueError, match=r"'dilatedconv_2/W'.*shape \[1, 2, 8, 16\], expected \[1, 3, 8, 16\]"):
        convert_magenta_arrays(arrays, config=CONFIG)


def test_missing_prefix_is_reported(tmp_path):
    from nsynth_live.models.magenta_convert import read_magenta_checkpoint

    with pytest.raises(FileNotFoundError, match="model.ckpt-200000"):
        read_magenta_checkpoint(tmp_path / "model.ckpt-200000")


def test_missing_tensorflow_names_the_extra(tmp_path, monkeypatch):
    import sys

    from nsynth_live.models.magenta_convert import read_magenta_checkpoint

    (tmp_path / "model.ckpt-1.index").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # makes `import tensorflow` fail
    with pytest.raises(ImportError, match=r"pip install nsynth-live\[tf\]"):
        read_magenta_checkpoint(tmp_path / "model.ckpt-1", config=CONFIG)
