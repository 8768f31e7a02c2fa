"""Causal dilated temporal convolution network (TCN)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CausalConvBlock(nn.Module):
    """Causal Conv1d (left padding, length kept) -> BatchNorm -> ReLU, plus a residual.

    The residual is a 1x1 convolution when channel counts differ.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.pad = (kernel_size - 1) * dilation
        self.conv = nn.Conv1d(in_ch, out_ch, kernel_size, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm1d(out_ch)
        self.residual = nn.Conv1d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn(self.conv(F.pad(x, (self.pad, 0)))))
        return y + self.residual(x)


class TCN(nn.Module):
    """Stack of causal blocks with the given dilations: (B, C_in, T) -> (B, C, T)."""

    def __init__(self, in_ch: int, channels: int, kernel_size: int,
                 dilations: tuple[int, ...]) -> None:
        super().__init__()
        chans = [in_ch] + [channels] * len(dilations)
        self.blocks = nn.Sequential(*[
            CausalConvBlock(chans[i], chans[i + 1], kernel_size, d)
            for i, d in enumerate(dilations)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)

    @property
    def receptive_field(self) -> int:
        """Time steps (s at 1 Hz) one output sees: 1 + (kernel - 1) x sum of dilations."""
        return 1 + sum(b.pad for b in self.blocks)
