import pytest
import torch

from nsynth_live.functional.spectral import hann_squared_window, log_power_spectrogram, spectral_loss


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
