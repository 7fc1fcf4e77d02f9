"""The tensor layout every stage shares, and the small pieces built on it.

Sequences are [B, C, 1, T] tensors in channels-last memory order (in memory:
[B, T, C]) and every 1-D convolution runs as a 2-D one with a (1, k)
kernel. oneDNN's convolutions are markedly faster in that layout than in
conv1d's [B, C, T] (several times for the decoder's few channels over long
time axes), attention and layer norm read it as [B, T, C] without copying,
and elementwise steps keep it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LAYOUT = torch.channels_last


def conv(
    inputs: int,
    outputs: int,
    kernel: int = 1,
    dilation: int = 1,
    groups: int = 1,
    bias: bool = True,
) -> nn.Conv2d:
    """A 'same'-padded 1-D convolution over time, as a 2-D one over [B, C, 1, T]."""
    padding = dilation * (kernel - 1) // 2
    return nn.Conv2d(
        inputs,
        outputs,
        (1, kernel),
        dilation=(1, dilation),
        padding=(0, padding),
        groups=groups,
        bias=bias,
    )


def from_time_major(x: Tensor) -> Tensor:
    """[B, T, C] → [B, C, 1, T] in channels-last order: the same memory, no copy."""
    return x.unsqueeze(1).permute(0, 3, 1, 2)


def to_time_major(x: Tensor) -> Tensor:
    """[B, C, 1, T] → [B, T, C]; no copy when x is channels-last."""
    return x.permute(0, 2, 3, 1).flatten(1, 2)


def sequence_mask(lengths: Tensor, max_length: int) -> Tensor:
    """[B] lengths → [B, 1, 1, T] float mask, 1 inside each item and 0 in its padding.

    Multiplying by it before every convolution makes a padded item see the
    same zeros past its end as when it runs alone, which is what keeps batched
    output equal to unbatched output.
    """
    positions = torch.arange(max_length, device=lengths.device)
    return (positions[None, :] < lengths[:, None]).view(len(lengths), 1, 1, -1).float()


class ChannelNorm(nn.Module):
    """Layer normalisation over the channel axis (VITS's LayerNorm)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.gamma.shape, self.gamma, self.beta, self.eps)
        return y.permute(0, 3, 1, 2)
