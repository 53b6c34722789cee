import numpy as np
import pytest
import torch

from nsynth_live.functional.mu_law import mu_law_code_to_input, mu_law_encode
from nsynth_live.models.wavenet_ae import WaveNetAutoencoder
from nsynth_live.models.wavenet_configs import WaveNetAutoencoderConfig
from nsynth_live.runtime import wavenet_generate
from nsynth_live.runtime.wavenet_generate import WaveNetGenerator, resolve_device

# dilations 1, 2, 4, 8, 16, 1, 2 with kernel 3: caches up to 32 rows, several wrap-arounds in 6 frames
CONFIG = WaveNetAutoencoderConfig(
    hop_length_samples=32, bottleneck_dims=4, encoder_channels=8, encoder_layers=2, encoder_dilation_cycle=2,
    residual_channels=12, skip_channels=10, decoder_layers=7, decoder_dilation_cycle=5,
)


def _model(seed=0):
    torch.manual_seed(seed)
    model = WaveNetAutoencoder(CONFIG)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("batch_size", [1, 4])
def test_teacher_forced_incremental_logits_equal_full_forward(rng, batch_size):
    model = _model()
    frames = 6
    audio = torch.from_numpy(rng.uniform(-0.9, 0.9, (batch_size, frames * CONFIG.hop_length_samples)))
    x_scaled = mu_law_code_to_input(mu_law_encode(audio))
    encodings = torch.from_numpy(rng.normal(size=(batch_size, frames, CONFIG.bottleneck_dims)).astype(np.float32))
    with torch.no_grad():
        full = model.decoder(x_scaled, encodings)
    incremental = WaveNetGenerator(model.decoder).teacher_forced_logits(x_scaled, encodings)
    assert incremental.shape == full.shape
    assert (incremental - full).abs().max().item() <= 1e-4


def test_bfloat16_step_is_close_to_float32(rng):
    model = _model()
    frames = 2
    audio = torch.from_numpy(rng.uniform(-0.9, 0.9, (2, frames * CONFIG.hop_length_samples)))
    x_scaled = mu_law_code_to_input(mu_law_encode(audio))
    encodings = torch.from_numpy(rng.normal(size=(2, frames, CONFIG.bottleneck_dims)).astype(np.float32))
    ref = WaveNetGenerator(model.decoder).teacher_forced_logits(x_scaled, encodings)
    bf16 = WaveNetGenerator(model.decoder, dtype=torch.bfloat16).teacher_forced_logits(x_scaled, encodings)
    assert bf16.dtype == torch.float32
    scale = ref.abs().max().item()
    assert (bf16 - ref).abs().max().item() < 0.05 * scale
    # the most likely class agrees almost everywhere
    assert (bf16.argmax(1) == ref.argmax(1)).float().mean().item() > 0.9


def test_output_length_is_frames_times_hop_and_seeded(rng):
    model = _model()
    generator = WaveNetGenerator(model.decoder)
    encodings = rng.normal(size=(3, 5, CONFIG.bottleneck_dims)).astype(np.float32)
    audio = generator.generate(torch.from_numpy(encodings), seed=7)
    assert audio.shape == (3, 5 * CONFIG.hop_length_samples)
    assert audio.dtype == torch.float32
    assert torch.equal(audio, generator.generate(torch.from_numpy(encodings), seed=7))
    assert not torch.equal(audio, generator.generate(torch.from_numpy(encodings), seed=8))
    assert audio.abs().max() < 1.0


def test_sampling_follows_the_softmax_and_temperature():
    """Zeroed network except the logits bias: every step draws from softmax(bias / T)."""
    model = _model()
    with torch.no_grad():
        model.decoder.layers["logits"].weight.zero_()
        bias = torch.full((256,), -30.0)
        bias[128 + 10], bias[128 - 20] = 1.0, 0.0  # p(q=10) = e / (1 + e) = 0.731 at T = 1
        model.decoder.layers["logits"].bias.copy_(bias)
    generator = WaveNetGenerator(model.decoder)
    encodings = torch.zeros(64, 4, CONFIG.bottleneck_dims)
    codes = generator.generate_codes(encodings, seed=1)
    assert set(codes.unique().tolist()) == {10, -20}
    fraction = (codes == 10).float().mean().item()
    n = codes.numel()
    assert abs(fraction - np.e / (1 + np.e)) < 4 * np.sqrt(0.2 / n)
    greedy = generator.generate_codes(encodings, seed=1, temperature=0.0)
    assert (greedy == 10).all()
    hot = generator.generate_codes(encodings, seed=1, temperature=4.0)
    expected = torch.softmax(bias / 4.0, dim=0)[128 + 10].item()  # 0.53: the 254 unlikely classes get 6 %
    assert abs((hot == 10).float().mean().item() - expected) < 4 * np.sqrt(0.25 / n)
    assert ((hot != 10) & (hot != -20)).float().mean().item() > 0.03


def test_generation_is_causal_in_the_encoding(rng):
    """Changing the last frame's encoding leaves every earlier sample unchanged."""
    model = _model()
    generator = WaveNetGenerator(model.decoder)
    encodings = torch.from_numpy(rng.normal(size=(2, 4, CONFIG.bottleneck_dims)).astype(np.float32))
    a = generator.generate_codes(encodings, seed=3)
    changed = encodings.clone()
    changed[:, -1] += 5.0
    b = generator.generate_codes(changed, seed=3)
    hop = CONFIG.hop_length_samples
    assert torch.equal(a[:, : 3 * hop], b[:, : 3 * hop])
    assert not torch.equal(a[:, 3 * hop:], b[:, 3 * hop:])


def test_bad_input_is_refused():
    generator = WaveNetGenerator(_model().decoder)
    with pytest.raises(ValueError, match=r"\(batch, frames >= 1, 4\)"):
        generator.generate(torch.zeros(5, CONFIG.bottleneck_dims))
    with pytest.raises(ValueError, match="NaN"):
        generator.generate(torch.full((1, 2, CONFIG.bottleneck_dims), float("nan")))
    with pytest.raises(ValueError, match="temperature"):
        generator.generate(torch.zeros(1, 2, CONFIG.bottleneck_dims), temperature=-1)
    with pytest.raises(ValueError, match="float32, bfloat16 or float16"):
        WaveNetGenerator(_model().decoder, dtype=torch.float64)
    with pytest.raises(ValueError, match="'auto', 'cpu', 'cuda'"):
        resolve_device("gpu")


def test_bfloat16_generation_runs_and_is_seeded(rng):
    generator = WaveNetGenerator(_model().decoder, dtype=torch.bfloat16)
    encodings = torch.from_numpy(rng.normal(size=(2, 3, CONFIG.bottleneck_dims)).astype(np.float32))
    audio = generator.generate(encodings, seed=1)
    assert audio.shape == (2, 3 * CONFIG.hop_length_samples) and audio.dtype == torch.float32
    assert torch.equal(audio, generator.generate(encodings, seed=1))


def test_prepack_is_refused_off_cpu_bfloat16():
    with pytest.raises(ValueError, match="prepack=True needs CPU, bfloat16"):
        WaveNetGenerator(_model().decoder, dtype=torch.float32, prepack=True)
    assert not WaveNetGenerator(_model().decoder, dtype=torch.float32).prepacked


def test_prepacked_bfloat16_steps_match_addmm(rng, monkeypatch):
    """Pre-packed oneDNN linears give addmm's logits; batches above the limit use addmm itself."""
    model = _model()
    auto = WaveNetGenerator(model.decoder, dtype=torch.bfloat16)
    assert auto.prepacked == wavenet_generate.cpu_bf16_prepacking_available()
    if not auto.prepacked:  # this CPU or build has no oneDNN bf16: asking for it is an error
        with pytest.raises(ValueError, match="prepack=True"):
            WaveNetGenerator(model.decoder, dtype=torch.bfloat16, prepack=True)
        return
    plain = WaveNetGenerator(model.decoder, dtype=torch.bfloat16, prepack=False)
    assert auto.uses_prepacked(1) and auto.uses_prepacked(wavenet_generate.PREPACKED_MAX_BATCH)
    assert not auto.uses_prepacked(wavenet_generate.PREPACKED_MAX_BATCH + 1)
    assert not plain.uses_prepacked(1)

    calls = []
    packed_linear = wavenet_generate.linear_prepacked
    monkeypatch.setattr(wavenet_generate, "linear_prepacked",
                        lambda *args: calls.append(args[0].shape[0]) or packed_linear(*args))
    frames, batch = 3, 3
    audio = torch.from_numpy(rng.uniform(-0.9, 0.9, (batch, frames * CONFIG.hop_length_samples)))
    x_scaled = mu_law_code_to_input(mu_law_encode(audio))
    encodings = torch.from_numpy(rng.normal(size=(batch, frames, CONFIG.bottleneck_dims)).astype(np.float32))
    packed_logits = auto.teacher_forced_logits(x_scaled, encodings)
    # every linear of every step: startconv, skip_start, 7 x (dilated, res+skip), out1, logits
    assert len(calls) == frames * CONFIG.hop_length_samples * (4 + 2 * CONFIG.decoder_layers)
    calls.clear()
    plain_logits = plain.teacher_forced_logits(x_scaled, encodings)
    assert not calls
    scale = plain_logits.abs().max().item()
    assert (packed_logits - plain_logits).abs().max().item() <= 0.02 * scale
    assert (packed_logits.argmax(1) == plain_logits.argmax(1)).float().mean().item() > 0.98

    many = torch.from_numpy(rng.normal(size=(wavenet_generate.PREPACKED_MAX_BATCH + 1, 1, CONFIG.bottleneck_dims))
                            .astype(np.float32))
    assert torch.equal(auto.generate_codes(many, seed=2), plain.generate_codes(many, seed=2))
    assert not calls


def test_row_seeds_make_each_note_independent_of_its_batch(rng):
    generator = WaveNetGenerator(_model().decoder)
    encodings = torch.from_numpy(rng.normal(size=(3, 6, CONFIG.bottleneck_dims)).astype(np.float32))
    together = generator.generate_codes(encodings, row_seeds=[11, 22, 33])
    alone = generator.generate_codes(encodings[1:2], row_seeds=[22])
    swapped = generator.generate_codes(encodings[[2, 1]], row_seeds=[33, 22])
    assert torch.equal(together[1], alone[0]) and torch.equal(together[1], swapped[1])
    assert not torch.equal(together[1], generator.generate_codes(encodings[1:2], row_seeds=[23])[0])
    short = generator.generate_codes(encodings, row_seeds=[11, 22, 33], max_samples=50)
    assert short.shape == (3, 50) and torch.equal(short, together[:, :50])
    with pytest.raises(ValueError, match="one seed per row"):
        generator.generate_codes(encodings, row_seeds=[1])
