"""Harmonic-plus-noise synthesis at an exact f0 (DDSP, Engel et al. 2020, sections 3.2-3.3), in torch.

The DSP core of model v3 (:mod:`nsynth_live.models.sing_harmonic`): the same functions train the
model (batches of crops) and run inside its streaming ONNX graph (one hop per voice), so training
and playing produce the same samples.

Conventions
-----------
- Controls arrive once per frame (one frame per hop). Hop ``t`` of a note (samples
  ``[t * hop, (t + 1) * hop)``) ramps every amplitude linearly from frame ``t - 1``'s value to frame
  ``t``'s; frame ``-1`` is silence, so a note fades in over its first hop.
- Phases are a function of the sample index ``n`` from the note's start, never accumulated: harmonic
  ``k`` has phase ``2 pi frac(f_k n / sample_rate)`` and starts at 0 at ``n = 0``. Any hop can be
  rendered alone (crops in training, replays in the engine) and joins its neighbours exactly.
  ``frac(f n / sr)`` is computed as ``frac(frac(f hop / sr) t) + f i / sr`` (``n = t hop + i``),
  which keeps float32 exact to ~2e-5 cycles over a 375-frame note.
- The noise is a fixed table of band-limited noise, one row per band, read at ``n mod length``:
  deterministic (the same state gives the same samples: ONNX equals PyTorch, replay equals
  stepping), and periodic over the table length with no seam (each band is an inverse FFT).
"""

from __future__ import annotations

import math

import numpy as np
import torch


EXP_SIGMOID_EXPONENT = math.log(10.0)  # DDSP's exp_sigmoid: 2 * sigmoid(x) ** ln(10) + 1e-7
EXP_SIGMOID_MAX = 2.0
EXP_SIGMOID_FLOOR = 1e-7


def exp_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """DDSP's positive output nonlinearity ``2 sigmoid(x)^ln 10 + 1e-7`` (Engel et al. 2020, appendix B):
    a smooth, bounded map onto ``(1e-7, 2]`` that behaves like ``exp`` over a wide range."""
    return EXP_SIGMOID_MAX * torch.sigmoid(x) ** EXP_SIGMOID_EXPONENT + EXP_SIGMOID_FLOOR


def midi_f0_hz(pitch_midi: torch.Tensor) -> torch.Tensor:
    """Equal-tempered f0 of MIDI note numbers (A4 = MIDI 69 = 440 Hz): ``(...)`` int -> ``(...)`` float32 Hz."""
    return 440.0 * torch.pow(2.0, (pitch_midi.to(torch.float32) - 69.0) / 12.0)


def partial_frequencies_hz(f0_hz: torch.Tensor, n_harmonics: int, inharmonicity: torch.Tensor | None = None) -> torch.Tensor:
    """Frequencies of a note's partials: ``f_k = k f0 sqrt(1 + B k^2)``, ``k = 1 .. n_harmonics``.

    The stiff-string law (Fletcher, Blackham and Stratton 1962): ``B = 0`` is a harmonic series,
    pianos have ``B`` ~ 1e-4 (bass) to 1e-2 (treble).

    Parameters
    ----------
    f0_hz : (batch,) float32
    n_harmonics : int
    inharmonicity : (batch,) float32 ``B >= 0``, or None for harmonic partials

    Returns
    -------
    (batch, n_harmonics) float32, Hz
    """
    k = torch.arange(1, n_harmonics + 1, dtype=torch.float32, device=f0_hz.device)
    freqs = f0_hz[:, None] * k
    if inharmonicity is not None:
        freqs = freqs * torch.sqrt(1.0 + inharmonicity[:, None] * k * k)
    return freqs


def harmonic_amplitudes(amplitude: torch.Tensor, distribution_logits: torch.Tensor, freqs_hz: torch.Tensor, *,
                        sample_rate: int, max_frequency_fraction: float = 0.45) -> torch.Tensor:
    """Per-partial amplitudes: total amplitude times a normalised distribution over the partials
    below ``max_frequency_fraction * sample_rate`` (none aliases; DDSP's harmonic synthesiser).

    Parameters
    ----------
    amplitude : (batch, frames) float32, >= 0, linear
    distribution_logits : (batch, frames, n_harmonics) float32
    freqs_hz : (batch, n_harmonics) float32

    Returns
    -------
    (batch, frames, n_harmonics) float32, linear amplitudes (a sine's peak)
    """
    weights = exp_sigmoid(distribution_logits) * (freqs_hz < max_frequency_fraction * sample_rate)[:, None, :]
    weights = weights / weights.sum(dim=-1, keepdim=True).clamp_min(EXP_SIGMOID_FLOOR)
    return amplitude[..., None] * weights


def noise_band_edges_hz(n_bands: int, *, sample_rate: int, lowest_edge_hz: float = 40.0) -> np.ndarray:
    """Edges of the noise bands: a log-spaced grid of ``n_bands + 1`` points from ``lowest_edge_hz`` to
    Nyquist whose first point is replaced by 0 (the first band reaches down to DC).

    Returns
    -------
    (n_bands + 1,) float64, Hz, increasing from 0 to ``sample_rate / 2``
    """
    if n_bands < 1:
        raise ValueError(f"n_bands must be >= 1, got {n_bands}")
    nyquist = sample_rate / 2.0
    inner = np.geomspace(lowest_edge_hz, nyquist, n_bands + 1)[1:-1]
    return np.concatenate([[0.0], inner, [nyquist]])


def make_noise_table(n_bands: int, length_samples: int, *, sample_rate: int, seed: int = 0) -> np.ndarray:
    """Band-limited noise, one row per band of :func:`noise_band_edges_hz`, each with unit RMS.

    Made in the frequency domain: unit-magnitude random-phase bins inside each band, inverse real FFT.
    Each row is exactly periodic over ``length_samples`` (read cyclically, it has no seam) and the rows
    are orthogonal (disjoint bins).

    Returns
    -------
    (n_bands, length_samples) float32

    Raises
    ------
    ValueError
        If a band holds no FFT bin (``length_samples`` too short for ``n_bands``).
    """
    rng = np.random.default_rng(seed)
    edges = noise_band_edges_hz(n_bands, sample_rate=sample_rate)
    bins_hz = np.fft.rfftfreq(length_samples, 1.0 / sample_rate)
    phases = np.exp(2j * np.pi * rng.random(bins_hz.shape[0]))
    table = np.empty((n_bands, length_samples), np.float32)
    for band in range(n_bands):
        inside = (bins_hz >= edges[band]) & (bins_hz < edges[band + 1]) & (bins_hz > 0)
        if not inside.any():
            raise ValueError(f"noise band {band} ({edges[band]:.1f}-{edges[band + 1]:.1f} Hz) holds no bin of a "
                             f"{length_samples}-sample table: make it longer")
        row = np.fft.irfft(np.where(inside, phases, 0.0), n=length_samples)
        table[band] = row / np.sqrt(np.mean(row ** 2))
    return table


def noise_blocks(noise_table: torch.Tensor, hop_length_samples: int) -> torch.Tensor:
    """The noise table cut into hops: ``(n_bands, length)`` -> ``(length / hop, hop, n_bands)``, so that
    hop ``t`` of a note reads block ``t mod (length / hop)`` whole (one gather per voice).

    Raises
    ------
    ValueError
        If the table's length is not a multiple of the hop.
    """
    bands, length = noise_table.shape
    if length % hop_length_samples:
        raise ValueError(f"the noise table's {length} samples must be a multiple of the {hop_length_samples}-sample hop")
    return noise_table.reshape(bands, length // hop_length_samples, hop_length_samples).permute(1, 2, 0).contiguous()


def sub_hop_length(hop_length_samples: int) -> int:
    """Length ``Q`` of the sub-blocks a hop is split into for angle-addition synthesis: the power of two
    nearest ``sqrt(hop)`` that divides the hop (32 for 512), or 1."""
    q = 1
    while q * 2 <= hop_length_samples and (q * 2) ** 2 <= 2 * hop_length_samples and hop_length_samples % (q * 2) == 0:
        q *= 2
    return q


def render_hops(harmonic_amps: torch.Tensor, noise_amps: torch.Tensor, freqs_hz: torch.Tensor,
                first_frame: torch.Tensor, blocks: torch.Tensor, *, sample_rate: int,
                hop_length_samples: int) -> torch.Tensor:
    """Audio of consecutive hops ``first_frame .. first_frame + frames - 1`` of each note.

    Every sample is ``sum_k A_k(n) sin(2 pi frac(f_k n / sr)) + sum_b G_b(n) noise_b(n mod length)``
    with ``A``, ``G`` ramped linearly across each hop. The sines are computed by angle addition: with
    ``i = r Q + q`` inside a hop (``Q`` = :func:`sub_hop_length`), ``sin(X_r + Y_q) = sin X_r cos Y_q +
    cos X_r sin Y_q``, so a hop needs ``2 K (hop / Q + Q)`` sines and cosines instead of ``K hop`` (6x
    fewer at hop 512), and the sum over partials becomes one matrix product per hop.

    Parameters
    ----------
    harmonic_amps : (batch, frames + 1, n_harmonics) float32
        Row 0 is the frame before the first hop (zeros before a note's frame 0), row ``j + 1`` the
        frame that hop ``j`` ramps to; linear peak amplitudes.
    noise_amps : (batch, frames + 1, n_bands) float32, the same for the noise bands (RMS gains)
    freqs_hz : (batch, n_harmonics) float32
    first_frame : (batch,) int64, frame index of the first hop in its note
    blocks : (table_length / hop, hop, n_bands) float32, :func:`noise_blocks` of :func:`make_noise_table`

    Returns
    -------
    (batch, frames * hop_length_samples) float32
    """
    batch, frames, n_harmonics = harmonic_amps.shape[0], harmonic_amps.shape[1] - 1, harmonic_amps.shape[2]
    hop = hop_length_samples
    q_len = sub_hop_length(hop)
    r_len = hop // q_len
    device = harmonic_amps.device
    frame = first_frame[:, None] + torch.arange(frames, device=device)  # (batch, frames) int64
    cycles_per_sample = freqs_hz / sample_rate  # (batch, K), cycles / sample
    per_hop = cycles_per_sample * hop
    per_hop = per_hop - torch.floor(per_hop)  # cycles advanced per hop, mod 1
    start = per_hop[:, None, :] * frame[:, :, None].to(torch.float32)  # (batch, frames, K)
    start = start - torch.floor(start)  # cycles at each hop's first sample, mod 1
    r = torch.arange(r_len, dtype=torch.float32, device=device)
    q = torch.arange(q_len, dtype=torch.float32, device=device)
    x = start[..., None] + (cycles_per_sample * q_len)[:, None, :, None] * r  # (batch, frames, K, R) cycles
    x = 2.0 * math.pi * (x - torch.floor(x))  # rad
    y = 2.0 * math.pi * (cycles_per_sample[:, :, None] * q)  # (batch, K, Q) rad, < 2 pi Q f / sr
    previous, current = harmonic_amps[:, :-1, :, None], harmonic_amps[:, 1:, :, None]  # (batch, frames, K, 1)
    slope = current - previous  # amplitude change over the hop
    level = previous + slope * (r * q_len / hop)  # (batch, frames, K, R): amplitude at each sub-block start
    sin_x, cos_x = torch.sin(x), torch.cos(x)
    left = torch.cat([level * sin_x, level * cos_x, slope * sin_x, slope * cos_x], dim=2)  # (batch, frames, 4K, R)
    ramp = q / hop
    cos_y, sin_y = torch.cos(y), torch.sin(y)
    right = torch.cat([cos_y, sin_y, cos_y * ramp, sin_y * ramp], dim=1)  # (batch, 4K, Q)
    audio = torch.matmul(left.transpose(2, 3).reshape(batch, frames * r_len, 4 * n_harmonics), right)
    audio = audio.reshape(batch, frames, hop)
    noise = blocks[torch.remainder(frame, blocks.shape[0])]  # (batch, frames, hop, bands)
    gains = torch.stack([noise_amps[:, :-1], noise_amps[:, 1:] - noise_amps[:, :-1]], dim=3)  # (batch, frames, bands, 2)
    both = torch.matmul(noise, gains)  # (batch, frames, hop, 2)
    hop_ramp = torch.arange(hop, dtype=torch.float32, device=device) / hop
    audio = audio + both[..., 0] + both[..., 1] * hop_ramp
    return audio.reshape(batch, frames * hop)
