"""Convolutions whose kernel is multiplied by a squared Hann window at every forward (SING, section 3.1)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from nsynth_live.functional.spectral import hann_squared_window


class WindowedConv1d(nn.Conv1d):
    """``Conv1d`` whose weight is multiplied by a squared periodic Hann window along the kernel.

    The stored ``weight`` is the unwindowed one (as in SING's published weights). Input
    ``(batch, in_channels, time)``, output ``(batch, out_channels, frames)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride)
        self.register_buffer("window", hann_squared_window(kernel_size), persistent=False)

    def windowed_weight(self) -> torch.Tensor:
        return self.weight * self.window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.windowed_weight(), self.bias, stride=self.stride)


class WindowedConvTranspose1d(nn.ConvTranspose1d):
    """``ConvTranspose1d`` with a squared Hann window on the kernel: overlap-add of windowed atoms.

    Input ``(batch, in_channels, frames)``, output ``(batch, out_channels, time)`` with
    ``time = (frames - 1) * stride + kernel_size - 2 * padding``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int, padding: int):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
        self.register_buffer("window", hann_squared_window(kernel_size), persistent=False)

    def windowed_weight(self) -> torch.Tensor:
        return self.weight * self.window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose1d(x, self.windowed_weight(), self.bias, stride=self.stride, padding=self.padding)
