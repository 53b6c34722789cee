import numpy as np
import pytest
import torch

from nsynth_live.models.checkpoint import CHECKPOINT_FORMAT_VERSION, save_checkpoint
from nsynth_live.models.wavenet_ae import WaveNetAutoencoder, pad_to_hop
from nsynth_live.models.wavenet_configs import WAVENET_CONFIGS, WaveNetAutoencoderConfig, get_wavenet_config

import wavenet_numpy_reference as reference


def _magenta_layout(model):
    """Torch state dict -> Magenta-named float64 arrays ([1, K, Cin, Cout] and biases)."""
    params = {}
    for name, tensor in model.state_dict().items():
        _, _, layer, kind = name.split(".")
        array = tensor.double().numpy()
        if kind == "weight":
            params[f"{layer}/W"] = array.transpose(2, 1, 0)[None]
        else:
            params[f"{layer}/biases"] = array
    return params


def test_magenta_size_parameter_counts_and_names():
    config = get_wavenet_config("magenta")
    with torch.device("meta"):
        model = WaveNetAutoencoder(config)
    n_encoder = sum(p.numel() for p in model.encoder.parameters())
    n_decoder = sum(p.numel() for p in model.decoder.parameters())
    assert n_encoder == 1_976_336
    assert n_decoder == 59_827_712
    names = {name.split(".")[2] for name in model.state_dict()}
    assert len(model.state_dict()) == 374  # Magenta's trainable tensors
    expected = {"ae_startconv", "ae_bottleneck", "startconv", "skip_start", "out1", "cond_map_out1", "logits"}
    for i in range(1, 31):
        expected |= {f"ae_dilatedconv_{i}", f"ae_res_{i}", f"dilatedconv_{i}", f"cond_map_{i}", f"res_{i}", f"skip_{i}"}
    assert names == expected
    assert config.decoder_receptive_field_samples == 6141
    assert tuple(model.decoder.layers["dilatedconv_10"].weight.shape) == (1024, 512, 3)
    assert model.decoder.layers["dilatedconv_10"].dilation == (512,)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_forward_matches_independent_numpy_reference(rng, batch_size):
    torch.manual_seed(0)
    config = WAVENET_CONFIGS["tiny"]
    model = WaveNetAutoencoder(config).double()
    with torch.no_grad():  # non-zero biases so that they are checked too
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    audio = rng.uniform(-0.8, 0.8, (batch_size, 4 * config.hop_length_samples))
    with torch.no_grad():
        encoding = model.encode(torch.from_numpy(audio))
        logits, targets = model(torch.from_numpy(audio))
    params = _magenta_layout(model)
    kwargs = dict(hop=config.hop_length_samples)
    for b in range(batch_size):
        ref_en = reference.encode(params, audio[b], layers=config.encoder_layers,
                                  cycle=config.encoder_dilation_cycle, **kwargs)
        np.testing.assert_allclose(encoding[b].numpy(), ref_en, atol=1e-9)
        ref_logits = reference.decode_logits(params, audio[b], ref_en, layers=config.decoder_layers,
                                             cycle=config.decoder_dilation_cycle, **kwargs)
        np.testing.assert_allclose(logits[b].numpy().T, ref_logits, atol=1e-8)
        np.testing.assert_array_equal(targets[b].numpy(), reference.quantize(audio[b]) + 128)


def test_decoder_is_causal_with_the_stated_receptive_field():
    torch.manual_seed(0)
    config = WAVENET_CONFIGS["tiny"]
    decoder = WaveNetAutoencoder(config).decoder.double()
    time = 8 * config.hop_length_samples
    encoding = torch.randn(1, 8, config.bottleneck_dims, dtype=torch.float64)
    x = torch.zeros(1, time, dtype=torch.float64, requires_grad=True)
    t_out = time - 1
    decoder(x, encoding)[0, :, t_out].sum().backward()
    depends = torch.nonzero(x.grad[0]).flatten()
    # logits at t see inputs t-1 .. t-receptive_field and nothing at or after t
    assert depends.max().item() == t_out - 1
    assert depends.min().item() == t_out - config.decoder_receptive_field_samples


def test_encoder_output_shape_and_bad_length():
    model = WaveNetAutoencoder.from_name("tiny")
    hop = model.config.hop_length_samples
    assert model.encode(torch.zeros(2, 5 * hop)).shape == (2, 5, model.config.bottleneck_dims)
    with pytest.raises(ValueError, match="multiple of hop_length_samples"):
        model.encode(torch.zeros(1, 5 * hop + 1))
    padded = pad_to_hop(torch.ones(1, 5 * hop + 1), hop_length_samples=hop)
    assert padded.shape[-1] == 6 * hop and padded[0, -1] == 0


def test_loss_is_log256_for_uniform_logits():
    model = WaveNetAutoencoder.from_name("tiny")
    with torch.no_grad():
        model.decoder.layers["logits"].weight.zero_()
        loss = model.loss(torch.zeros(2, 2 * model.config.hop_length_samples))
    assert loss.item() == pytest.approx(np.log(256), rel=1e-6)


def test_checkpoint_round_trip_and_refusals(tmp_path):
    model = WaveNetAutoencoder.from_name("tiny")
    path = model.save(tmp_path / "tiny.pt")
    loaded = WaveNetAutoencoder.load(path)
    assert loaded.config == model.config
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name

    with pytest.raises(ValueError, match="sha256"):
        WaveNetAutoencoder.load(path, expected_sha256="0" * 64)

    state = model.state_dict()
    state["decoder.layers.res_2.weight"] = torch.zeros(3, 3, 1)
    save_checkpoint(tmp_path / "bad.pt", model="wavenet_autoencoder", config=model.config.to_dict(),
                    state_dict=state, sample_rate=16000, hop_length_samples=16)
    with pytest.raises(ValueError, match=r"res_2.weight.*\(3, 3, 1\).*\(8, 8, 1\)"):
        WaveNetAutoencoder.load(tmp_path / "bad.pt")

    del state["decoder.layers.res_2.weight"]
    save_checkpoint(tmp_path / "missing.pt", model="wavenet_autoencoder", config=model.config.to_dict(),
                    state_dict=state, sample_rate=16000, hop_length_samples=16)
    with pytest.raises(ValueError, match=r"res_2.weight' is missing; expected shape \(8, 8, 1\)"):
        WaveNetAutoencoder.load(tmp_path / "missing.pt")

    payload = torch.load(path, weights_only=True)
    payload["format_version"] = CHECKPOINT_FORMAT_VERSION + 1
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="format_version"):
        WaveNetAutoencoder.load(tmp_path / "future.pt")


def test_config_validation():
    with pytest.raises(ValueError, match="odd"):
        WaveNetAutoencoderConfig(encoder_kernel_size=2)
    with pytest.raises(ValueError, match="residual_channels must be a positive int, got 0"):
        WaveNetAutoencoderConfig(residual_channels=0)
    with pytest.raises(ValueError, match="256"):
        WaveNetAutoencoderConfig(quantization_channels=65536)
    with pytest.raises(ValueError, match=r"unknown WaveNetAutoencoderConfig field\(s\) \['width'\]"):
        WaveNetAutoencoderConfig.from_dict({"width": 3})
    with pytest.raises(KeyError, match="choose one of"):
        get_wavenet_config("huge")
    config = WAVENET_CONFIGS["small"]
    assert WaveNetAutoencoderConfig.from_dict(config.to_dict()) == config
