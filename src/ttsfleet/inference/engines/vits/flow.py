"""The normalising flow between the text prior and the decoder's latent, run in reverse.

Mean-only affine couplings (Piper trains VITS with mean_only=True): each
layer keeps one half of the channels and subtracts from the other a shift
that a WaveNet-style stack computes from the kept half. A channel flip
between layers alternates the halves. In a multi-speaker voice the speaker
embedding g shifts every gate of every stack (VITS's cond_layer).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from ttsfleet.inference.engines.vits.config import VitsConfig
from ttsfleet.inference.engines.vits.layers import conv


class WaveNet(nn.Module):
    """Gated dilated convolutions with residual and skip outputs (VITS's WN)."""

    def __init__(
        self, channels: int, kernel: int, layers: int, dilation_rate: int, gin_channels: int = 0
    ) -> None:
        super().__init__()
        self.channels = channels
        if gin_channels:
            # One projection of g for all layers; layer i reads its 2·channels slice.
            self.cond_layer = conv(gin_channels, 2 * channels * layers)
        self.in_layers = nn.ModuleList(
            conv(channels, 2 * channels, kernel, dilation=dilation_rate**i) for i in range(layers)
        )
        self.res_skip_layers = nn.ModuleList(
            conv(channels, channels if i == layers - 1 else 2 * channels) for i in range(layers)
        )

    def forward(self, x: Tensor, mask: Tensor, g: Tensor | None) -> Tensor:
        """x [B, C, 1, T]; g [B, gin, 1, 1], the speaker embedding, or None."""
        skip = torch.zeros_like(x)
        last = len(self.in_layers) - 1
        conditions = None if g is None else self.cond_layer(g).split(2 * self.channels, dim=1)
        for i, (in_layer, res_skip) in enumerate(
            zip(self.in_layers, self.res_skip_layers, strict=True)
        ):
            gate = in_layer(x) if conditions is None else in_layer(x) + conditions[i]
            acts = torch.tanh(gate[:, : self.channels]) * torch.sigmoid(gate[:, self.channels :])
            out = res_skip(acts)
            if i == last:
                skip = skip + out
            else:
                x = (x + out[:, : self.channels]) * mask
                skip = skip + out[:, self.channels :]
        return skip * mask


class CouplingLayer(nn.Module):
    """One mean-only residual coupling layer."""

    def __init__(self, config: VitsConfig) -> None:
        super().__init__()
        half = config.inter // 2
        self.pre = conv(half, config.flow_hidden)
        self.enc = WaveNet(
            config.flow_hidden,
            config.wn_kernel,
            config.wn_layers,
            config.wn_dilation_rate,
            config.gin_channels,
        )
        self.post = conv(config.flow_hidden, half)

    def reverse(self, z: Tensor, mask: Tensor, g: Tensor | None) -> Tensor:
        z0, z1 = z.chunk(2, dim=1)
        shift = self.post(self.enc(self.pre(z0) * mask, mask, g)) * mask
        return torch.cat([z0, (z1 - shift) * mask], dim=1)


class Flow(nn.Module):
    """Prior sample z_p → decoder latent z."""

    def __init__(self, config: VitsConfig) -> None:
        super().__init__()
        # Keyed by index in the trained model (flips sit at the odd indices).
        self.flows = nn.ModuleDict({str(i): CouplingLayer(config) for i in config.flows})
        self.order = config.flows

    def reverse(self, z: Tensor, mask: Tensor, g: Tensor | None) -> Tensor:
        for index in self.order:
            z = cast(CouplingLayer, self.flows[str(index)]).reverse(z.flip(1), mask, g)
        return z
