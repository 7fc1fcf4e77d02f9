"""The stochastic duration predictor, inference direction only.

Synthesis draws 2-channel noise (scaled by noise_w), runs the predictor's
normalising flow backwards conditioned on the text encoding, and reads the
first channel as log-durations. A multi-speaker voice adds its speaker
embedding to the condition (VITS's cond). Training-only parts (the posterior encoder
and the first coupling layer, which VITS drops at inference) are not built.
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ttsfleet.inference.engines.vits.config import VitsConfig
from ttsfleet.inference.engines.vits.layers import ChannelNorm, conv, to_time_major
from ttsfleet.inference.engines.vits.spline import inverse_spline

# The splines' domain; VITS fixes it rather than learning it.
TAIL_BOUND = 5.0


class DDSConv(nn.Module):
    """Dilated depth-separable convolutions, each a residual step (VITS's DDSConv)."""

    def __init__(self, channels: int, kernel: int, layers: int) -> None:
        super().__init__()
        self.convs_sep = nn.ModuleList(
            conv(channels, channels, kernel, dilation=kernel**i, groups=channels)
            for i in range(layers)
        )
        self.convs_1x1 = nn.ModuleList(conv(channels, channels) for _ in range(layers))
        self.norms_1 = nn.ModuleList(ChannelNorm(channels) for _ in range(layers))
        self.norms_2 = nn.ModuleList(ChannelNorm(channels) for _ in range(layers))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        for sep, pointwise, norm_1, norm_2 in zip(
            self.convs_sep, self.convs_1x1, self.norms_1, self.norms_2, strict=True
        ):
            y = F.gelu(norm_1(sep(x * mask)))
            x = x + F.gelu(norm_2(pointwise(y)))
        return x * mask


class ConvFlow(nn.Module):
    """Coupling layer: half the channels set the spline that transforms the other half."""

    def __init__(self, config: VitsConfig) -> None:
        super().__init__()
        channels, self.bins = config.dp_channels, config.spline_bins
        self.pre = conv(1, channels)
        self.convs = DDSConv(channels, config.dp_kernel, config.dp_layers)
        self.proj = conv(channels, 3 * self.bins - 1)

    def reverse(self, z: Tensor, mask: Tensor, condition: Tensor) -> Tensor:
        z0, z1 = z.chunk(2, dim=1)
        # condition first: the sum takes its channels-last layout, not z0's.
        h = self.convs(condition + self.pre(z0), mask)
        h = to_time_major(self.proj(h) * mask)  # [B, T, 3·bins - 1]
        scale = math.sqrt(self.pre.out_channels)
        z1 = inverse_spline(
            z1.flatten(1),
            h[..., : self.bins] / scale,
            h[..., self.bins : 2 * self.bins] / scale,
            h[..., 2 * self.bins :],
            TAIL_BOUND,
        ).view_as(z1)
        return torch.cat([z0, z1], dim=1) * mask


class ElementwiseAffine(nn.Module):
    """The flow's first layer: a learned per-channel shift and log-scale."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.m = nn.Parameter(torch.zeros(channels, 1))
        self.logs = nn.Parameter(torch.zeros(channels, 1))

    def reverse(self, z: Tensor, mask: Tensor) -> Tensor:
        m, logs = self.m.view(1, -1, 1, 1), self.logs.view(1, -1, 1, 1)
        return (z - m) * torch.exp(-logs) * mask


class DurationPredictor(nn.Module):
    """Text encoding → log-duration per phoneme."""

    def __init__(self, config: VitsConfig) -> None:
        super().__init__()
        channels = config.dp_channels
        self.pre = conv(config.hidden, channels)
        if config.gin_channels:
            self.cond = conv(config.gin_channels, channels)
        self.convs = DDSConv(channels, config.dp_kernel, config.dp_layers)
        self.proj = conv(channels, channels)
        # Keyed by their index in the trained model so that parameter names match.
        self.flows = nn.ModuleDict(
            {"0": ElementwiseAffine(2)} | {str(i): ConvFlow(config) for i in config.dp_flows}
        )
        self.order = config.dp_flows

    def forward(
        self, hidden: Tensor, mask: Tensor, noise_w: Tensor, g: Tensor | None = None
    ) -> Tensor:
        """hidden [B, C, 1, T], mask [B, 1, 1, T], noise_w [B], g [B, gin, 1, 1] or None
        → log-durations [B, 1, 1, T]."""
        x = self.pre(hidden) if g is None else self.pre(hidden) + self.cond(g)
        condition = self.proj(self.convs(x, mask)) * mask
        batch, _, _, length = hidden.shape
        z = torch.randn(batch, 2, 1, length, device=hidden.device) * noise_w.view(-1, 1, 1, 1)
        for index in self.order:
            z = cast(ConvFlow, self.flows[str(index)]).reverse(z.flip(1), mask, condition)
        z = cast(ElementwiseAffine, self.flows["0"]).reverse(z.flip(1), mask)
        return z[:, :1]
