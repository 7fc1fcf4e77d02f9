"""The HiFi-GAN generator: latent frames → waveform, with masks for batching and windows.

HiFi-GAN has no masks of its own: run alone, every convolution sees zeros
past the end of the utterance. In a padded batch, or in a window cut from a
longer latent, the positions past an item's end hold whatever the previous
layer computed there. Multiplying each convolution's input by the item's
mask, upsampled to that layer's rate, restores the zeros, so each item's
audio is the same as when it runs alone.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ttsfleet.inference.engines.vits.config import VitsConfig

# HiFi-GAN's leaky ReLU slope inside the generator; the last one uses torch's default.
_SLOPE = 0.1
_LAST_SLOPE = 0.01
_EDGE_KERNEL = 7


class ResBlock(nn.Module):
    """HiFi-GAN residual block type 2: one dilated convolution per residual step."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, dilation=d, padding=d * (kernel - 1) // 2)
            for d in dilations
        )

    def forward(self, x: Tensor, first_input: Tensor, mask: Tensor | None) -> Tensor:
        """first_input is leaky_relu(x), masked: the same for every block of a stage."""
        x = self.convs[0](first_input) + x
        for conv in self.convs[1:]:
            x = conv(_masked(F.leaky_relu(x, _SLOPE), mask)) + x
        return x


class Decoder(nn.Module):
    """Upsampling stages, each followed by parallel residual blocks that are averaged."""

    def __init__(self, config: VitsConfig) -> None:
        super().__init__()
        channels = config.dec_channels
        self.rates = config.upsample_rates
        self.conv_pre = nn.Conv1d(config.inter, channels, _EDGE_KERNEL, padding=_EDGE_KERNEL // 2)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for stage, (rate, kernel) in enumerate(
            zip(config.upsample_rates, config.upsample_kernels, strict=True)
        ):
            stage_channels = channels // 2 ** (stage + 1)
            self.ups.append(
                nn.ConvTranspose1d(
                    2 * stage_channels, stage_channels, kernel, rate, padding=(kernel - rate) // 2
                )
            )
            for block_kernel, dilations in zip(
                config.resblock_kernels, config.resblock_dilations, strict=True
            ):
                self.resblocks.append(ResBlock(stage_channels, block_kernel, dilations))
        self.blocks_per_stage = len(config.resblock_kernels)
        self.conv_post = nn.Conv1d(
            stage_channels, 1, _EDGE_KERNEL, padding=_EDGE_KERNEL // 2, bias=False
        )

    def forward(self, z: Tensor, mask: Tensor | None) -> Tensor:
        """z [B, inter, T] (zero past each item's end), mask [B, 1, T] or None → audio [B, T·hop]."""
        x = self.conv_pre(z)
        for stage, (up, rate) in enumerate(zip(self.ups, self.rates, strict=True)):
            x = up(_masked(F.leaky_relu(x, _SLOPE), mask))
            mask = None if mask is None else mask.repeat_interleave(rate, dim=2)
            first_input = _masked(F.leaky_relu(x, _SLOPE), mask)
            blocks = self.resblocks[
                stage * self.blocks_per_stage : (stage + 1) * self.blocks_per_stage
            ]
            total = blocks[0](x, first_input, mask)
            for block in blocks[1:]:
                total = total + block(x, first_input, mask)
            x = total / self.blocks_per_stage
        x = self.conv_post(_masked(F.leaky_relu(x, _LAST_SLOPE), mask))
        return torch.tanh(x).squeeze(1)


def context_frames(config: VitsConfig) -> int:
    """Latent frames on each side that can influence a frame's audio (the receptive field).

    Decoding a window with this much context on each side and cropping it
    gives the same samples as decoding the whole utterance. Counted in output
    samples, layer by layer, then rounded up to frames. The count is an upper
    bound: it lines up every kernel's extreme taps, which real paths do not.
    """
    period = config.hop  # output samples per position at the current layer
    reach = period * (_EDGE_KERNEL // 2)
    block_reach = max(
        sum(d * (kernel - 1) // 2 for d in dilations)
        for kernel, dilations in zip(
            config.resblock_kernels, config.resblock_dilations, strict=True
        )
    )
    for rate, kernel in zip(config.upsample_rates, config.upsample_kernels, strict=True):
        reach += period * math.ceil(kernel / rate)
        period //= rate
        reach += period * block_reach
    reach += _EDGE_KERNEL // 2
    return math.ceil(reach / config.hop)


def _masked(x: Tensor, mask: Tensor | None) -> Tensor:
    return x if mask is None else x * mask
