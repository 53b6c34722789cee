"""Windows and the SING spectral loss (Defossez et al. 2018, section 3.2, eq. 3.2-3.3)."""

from __future__ import annotations

import torch

SPECTRAL_N_FFT = 1024  # samples, SING section 3.2
SPECTRAL_HOP_LENGTH_SAMPLES = 256  # samples, SING section 3.2
SPECTRAL_EPS = 1.0  # log(eps + |STFT|^2), SING eq. 3.2


def hann_squared_window(window_length_samples: int, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """Squared periodic Hann window, shape ``(window_length_samples,)``.

    At a hop of a quarter of the window its overlap-add sums to 1.5 (SING section 3.1).
    """
    return torch.hann_window(window_length_samples, periodic=True, dtype=dtype, device=device) ** 2


def log_power_spectrogram(
    audio: torch.Tensor,
    *,
    n_fft: int = SPECTRAL_N_FFT,
    hop_length_samples: int = SPECTRAL_HOP_LENGTH_SAMPLES,
    eps: float = SPECTRAL_EPS,
) -> torch.Tensor:
    """``log(eps + |STFT(audio)|^2)`` with a periodic Hann window and no centring (SING eq. 3.2).

    Parameters
    ----------
    audio : torch.Tensor
        Shape ``(..., time)``, float.

    Returns
    -------
    torch.Tensor
        Shape ``(..., n_fft // 2 + 1, frames)`` with ``frames = 1 + (time - n_fft) // hop``
        (513 x 251 for a 65024-sample SING output).
    """
    window = torch.hann_window(n_fft, periodic=True, dtype=audio.dtype, device=audio.device)
    shape = audio.shape
    spec = torch.stft(
        audio.reshape(-1, shape[-1]), n_fft=n_fft, hop_length=hop_length_samples, window=window,
        center=False, return_complex=True,
    )
    power = spec.real.square() + spec.imag.square()
    return torch.log(eps + power).reshape(*shape[:-1], *power.shape[-2:])


def spectral_loss(estimate: torch.Tensor, target: torch.Tensor, *, distance: str = "l1", **stft_kwargs) -> torch.Tensor:
    """SING's spectral loss: mean distance of log power spectrograms (eq. 3.3).

    Parameters
    ----------
    estimate, target : torch.Tensor
        Shape ``(batch, time)``, same shape, float.
    distance : {"l1", "mse"}
        "l1" is the paper's headline loss (Table 1); "mse" is the default of SING's published code.

    Returns
    -------
    torch.Tensor
        Scalar (mean over batch, bins and frames).

    Raises
    ------
    ValueError
        If the shapes differ or ``distance`` is unknown.
    """
    if estimate.shape != target.shape:
        raise ValueError(f"estimate {tuple(estimate.shape)} and target {tuple(target.shape)} must have one shape")
    difference = log_power_spectrogram(estimate, **stft_kwargs) - log_power_spectrogram(target, **stft_kwargs)
    if distance == "l1":
        return difference.abs().mean()
    if distance == "mse":
        return difference.square().mean()
    raise ValueError(f"distance must be 'l1' or 'mse', got {distance!r}")


def multi_resolution_spectral_loss(estimate: torch.Tensor, target: torch.Tensor, *, n_ffts=(SPECTRAL_N_FFT,),
                                   distance: str = "l1") -> torch.Tensor:
    """Mean of :func:`spectral_loss` over several STFT window lengths, each with a hop of a quarter window.

    With ``n_ffts=(1024,)`` this is SING's loss (eq. 3.3). A 1024-sample window resolves 15.6 Hz at
    16 kHz, four semitones at MIDI 36 (65.4 Hz, where a semitone is 3.9 Hz): there a tone at the
    wrong pitch, or one whose partials sit on multiples of SING's 62.5-Hz frame rate (a waveform
    repeated every 256-sample hop: 125.0 Hz for 130.8), costs almost nothing. A 4096-sample window
    (3.9 Hz) and an 8192-sample one (2 Hz) tell those apart. Averaging losses over window lengths
    is the multi-resolution STFT loss of Yamamoto et al. 2020 (Parallel WaveGAN, section 2.3).

    Parameters
    ----------
    estimate, target : torch.Tensor
        Shape ``(batch, time)``, same shape, float; ``time >= max(n_ffts)``.
    n_ffts : sequence of int
        STFT window lengths in samples.
    distance : {"l1", "mse"}

    Returns
    -------
    torch.Tensor
        Scalar.

    Raises
    ------
    ValueError
        If ``n_ffts`` is empty, a window is shorter than 4 samples or longer than the audio, or as
        :func:`spectral_loss`.
    """
    n_ffts = tuple(int(n) for n in n_ffts)
    if not n_ffts or min(n_ffts) < 4:
        raise ValueError(f"n_ffts must be one or more window lengths >= 4 samples, got {n_ffts}")
    if max(n_ffts) > estimate.shape[-1]:
        raise ValueError(f"a {max(n_ffts)}-sample STFT window is longer than the {estimate.shape[-1]}-sample audio")
    losses = [spectral_loss(estimate, target, distance=distance, n_fft=n, hop_length_samples=n // 4) for n in n_ffts]
    return torch.stack(losses).mean()
