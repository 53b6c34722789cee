import pytest
import torch

from nsynth_live.functional.spectral import (
    hann_squared_window, log_power_spectrogram, multi_resolution_spectral_loss, spectral_loss,
)


def test_hann_squared_overlap_add_at_quarter_hop_is_one_and_a_half():
    window = hann_squared_window(1024)
    total = torch.zeros(1024 * 8)
    for start in range(0, len(total) - 1024 + 1, 256):
        total[start:start + 1024] += window
    assert torch.allclose(total[1024:-1024], torch.full_like(total[1024:-1024], 1.5), atol=1e-6)


def test_log_power_spectrogram_shape_matches_sing():
    spec = log_power_spectrogram(torch.zeros(3, 65024))
    assert spec.shape == (3, 513, 251)
    assert torch.all(spec == 0.0)  # log(1 + 0)


def test_sine_energy_lands_in_its_bin():
    t = torch.arange(16000) / 16000.0
    spec = log_power_spectrogram(torch.sin(2 * torch.pi * 1000.0 * t))
    assert int(spec.mean(dim=-1).argmax()) == 64  # 1000 Hz * 1024 / 16000


def test_spectral_loss_properties():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 8192, generator=gen), torch.randn(2, 8192, generator=gen)
    assert spectral_loss(a, a).item() == 0.0
    assert spectral_loss(a, b).item() > 0.1
    assert spectral_loss(a, b).item() == pytest.approx(spectral_loss(b, a).item())
    # Insensitive to a polarity flip (a magnitude loss), sensitive to gain.
    assert spectral_loss(a, -a).item() < 1e-5
    assert spectral_loss(a, 2 * a).item() > 0.5


def test_spectral_loss_refuses_shape_mismatch():
    with pytest.raises(ValueError, match="one shape"):
        spectral_loss(torch.zeros(1, 4096), torch.zeros(1, 4097))


def _harmonic_tone(f0_hz: float, *, samples: int = 16384, sample_rate: int = 16000) -> torch.Tensor:
    t = torch.arange(samples) / sample_rate
    return 0.3 * sum(torch.sin(2 * torch.pi * k * f0_hz * t) / k for k in range(1, 9)).unsqueeze(0)


def test_multi_resolution_loss_with_sing_window_alone_is_sing_loss():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 8192, generator=gen), torch.randn(2, 8192, generator=gen)
    for distance in ("l1", "mse"):
        assert multi_resolution_spectral_loss(a, b, distance=distance).item() == spectral_loss(a, b, distance=distance).item()
    both = multi_resolution_spectral_loss(a, b, n_ffts=(1024, 4096), distance="mse")
    alone = spectral_loss(a, b, distance="mse", n_fft=4096, hop_length_samples=1024)
    assert both.item() == pytest.approx((spectral_loss(a, b, distance="mse").item() + alone.item()) / 2, rel=1e-6)


def test_a_long_window_makes_a_low_note_out_of_tune_cost_more():
    # MIDI 36 (65.4 Hz) against the same tone 25 cents sharp, each loss relative to that of silence:
    # SING's 15.6-Hz bins hardly see the detuning (about 4% of silence's cost, measured); adding
    # a 4096-sample window (3.9-Hz bins) makes it about 5 times as costly
    reference = _harmonic_tone(65.41)
    sharp = _harmonic_tone(65.41 * 2 ** (25 / 1200))
    silence = torch.zeros_like(reference)

    def relative(n_ffts):
        loss = multi_resolution_spectral_loss
        return (loss(sharp, reference, n_ffts=n_ffts, distance="mse")
                / loss(silence, reference, n_ffts=n_ffts, distance="mse")).item()

    assert relative((1024,)) < 0.1
    assert relative((1024, 4096)) > 3 * relative((1024,))


def test_multi_resolution_loss_refuses_bad_windows():
    a = torch.zeros(1, 2048)
    with pytest.raises(ValueError, match="one or more window lengths"):
        multi_resolution_spectral_loss(a, a, n_ffts=())
    with pytest.raises(ValueError, match="4096-sample STFT window is longer than the 2048-sample audio"):
        multi_resolution_spectral_loss(a, a, n_ffts=(1024, 4096))
