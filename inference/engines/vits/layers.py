"""Small pieces shared by the VITS stages."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def sequence_mask(lengths: Tensor, max_length: int) -> Tensor:
    """[B] lengths → [B, 1, T] float mask, 1 inside each item and 0 in its padding.

    Multiplying by it before every convolution makes a padded item see the
    same zeros past its end as when it runs alone, which is what keeps batched
    output equal to unbatched output.
    """
    positions = torch.arange(max_length, device=lengths.device)
    return (positions[None, :] < lengths[:, None]).unsqueeze(1).to(torch.float32)


class ChannelNorm(nn.Module):
    """Layer normalisation over the channel axis of a [B, C, T] tensor (VITS's LayerNorm)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        y = F.layer_norm(x.transpose(1, 2), self.gamma.shape, self.gamma, self.beta, self.eps)
        return y.transpose(1, 2)
