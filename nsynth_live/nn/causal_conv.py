"""Dilated 1-D convolutions as the NSynth WaveNet uses them, with an explicit step cache.

Source: Magenta ``magenta/models/nsynth/wavenet/masked.py`` (``conv1d``): a causal convolution pads
``(K - 1) * dilation`` zeros in front (``y[t] = sum_k W[k] x[t - (K - 1 - k) d] + b``, oldest tap
first); a non-causal one is TF ``SAME`` padding, i.e. ``(K - 1) / 2 * dilation`` zeros each side for
odd ``K``. Weights are initialised like TF's ``uniform_unit_scaling_initializer(1.0)`` and biases
with zeros (Magenta's defaults).

Step cache layout (used by :meth:`CausalConv1d.step` and by the fused generator in
``nsynth_live.runtime.wavenet_generate``): a ring buffer of shape
``((K - 1) * dilation, batch, in_channels)``. Before step ``t`` writes, row ``t mod N`` holds the
input at ``t - (K - 1) d`` and row ``(t + j d) mod N`` holds the input at ``t - (K - 1 - j) d``;
step ``t`` then overwrites row ``t mod N`` with its own input. See :func:`ring_buffer_rows`.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def magenta_uniform_init_(conv: nn.Conv1d) -> nn.Conv1d:
    """Initialise like TF ``uniform_unit_scaling_initializer(1.0)``; zero bias (Magenta default).

    The bound is ``sqrt(3 / fan_in)`` with ``fan_in = kernel_size * in_channels``, which keeps the
    output variance of a linear layer equal to its input variance.
    """
    fan_in = conv.in_channels * conv.kernel_size[0]
    bound = math.sqrt(3.0 / fan_in)
    with torch.no_grad():
        conv.weight.uniform_(-bound, bound)
        if conv.bias is not None:
            conv.bias.zero_()
    return conv


def ring_buffer_rows(time_index: torch.Tensor, *, dilation: int, kernel_size: int) -> torch.Tensor:
    """Rows of a step cache holding the past taps at step ``time_index``, oldest first.

    Parameters
    ----------
    time_index : torch.Tensor, int64, any shape
        Step number(s) ``t`` (samples already processed by the layer).
    dilation, kernel_size : int
        Of the causal convolution; the cache has ``N = (kernel_size - 1) * dilation`` rows.

    Returns
    -------
    torch.Tensor, int64, shape ``time_index.shape + (kernel_size - 1,)``
        Row ``j`` holds the input at ``t - (kernel_size - 1 - j) * dilation``. Row 0 is also the row
        that step ``t`` overwrites with its own input.
    """
    n_rows = (kernel_size - 1) * dilation
    offsets = torch.arange(kernel_size - 1, device=time_index.device, dtype=torch.int64) * dilation
    return (time_index.unsqueeze(-1) + offsets) % n_rows


class CausalConv1d(nn.Conv1d):
    """Causal dilated convolution: ``y[t]`` depends on ``x[t - (K-1)d], ..., x[t - d], x[t]``.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int
        Taps K (3 in NSynth).
    dilation : int
        Spacing d between taps, in samples.

    Notes
    -----
    :meth:`forward` is the training path on whole sequences; :meth:`step` advances one sample
    with an explicit cache from :meth:`new_cache` and gives the same output (up to float rounding).
    """

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int, dilation: int = 1):
        if kernel_size < 1 or dilation < 1:
            raise ValueError(
                f"kernel_size and dilation must be >= 1, got kernel_size={kernel_size}, dilation={dilation}"
            )
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation, padding=0)
        self.left_padding_samples = (kernel_size - 1) * dilation
        magenta_uniform_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve a whole sequence.

        Parameters
        ----------
        x : torch.Tensor, float, shape (batch, in_channels, time)

        Returns
        -------
        torch.Tensor, shape (batch, out_channels, time)
        """
        return super().forward(F.pad(x, (self.left_padding_samples, 0)))

    def new_cache(self, batch_size: int, *, device=None, dtype=None) -> torch.Tensor:
        """Zeroed step cache, shape ``((K - 1) * dilation, batch_size, in_channels)`` (zeros = the padding)."""
        return torch.zeros(
            self.left_padding_samples, batch_size, self.in_channels,
            device=device if device is not None else self.weight.device,
            dtype=dtype if dtype is not None else self.weight.dtype,
        )

    def step(self, x_t: torch.Tensor, cache: torch.Tensor, time_index: torch.Tensor) -> torch.Tensor:
        """Output at one time step; writes ``x_t`` into ``cache`` (in place).

        Parameters
        ----------
        x_t : torch.Tensor, shape (batch, in_channels)
            Input at step ``t``.
        cache : torch.Tensor, shape ((K - 1) * dilation, batch, in_channels)
            From :meth:`new_cache`, advanced by every earlier step of this sequence.
        time_index : torch.Tensor, int64 scalar
            ``t``, the number of earlier steps.

        Returns
        -------
        torch.Tensor, shape (batch, out_channels)
        """
        kernel_size = self.kernel_size[0]
        weight = self.weight  # (out, in, K)
        out = F.linear(x_t, weight[:, :, kernel_size - 1], self.bias)
        if kernel_size > 1:
            rows = ring_buffer_rows(time_index.reshape(()), dilation=self.dilation[0], kernel_size=kernel_size)
            past = cache.index_select(0, rows)  # (K - 1, batch, in), oldest first
            out = out + torch.einsum("kbi,oik->bo", past, weight[:, :, : kernel_size - 1])
            cache.index_copy_(0, rows[:1], x_t.unsqueeze(0))
        return out


class SameConv1d(nn.Conv1d):
    """Non-causal dilated convolution with TF ``SAME`` padding (odd kernel sizes only)."""

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int, dilation: int = 1):
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"SAME padding needs an odd kernel_size >= 1, got {kernel_size}")
        super().__init__(
            in_channels, out_channels, kernel_size, dilation=dilation, padding=(kernel_size - 1) // 2 * dilation
        )
        magenta_uniform_init_(self)
