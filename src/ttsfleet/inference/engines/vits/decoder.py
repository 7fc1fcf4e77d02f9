"""The HiFi-GAN generator: latent frames → waveform, with masks for batching and windows.

HiFi-GAN has no masks of its own: run alone, every convolution sees zeros
past the end of the utterance. In a padded batch, or in a window cut from a
longer latent, the positions past an item's end hold whatever the previous
layer computed there. Multiplying each convolution's input by the item's
mask, upsampled to that layer's rate, restores the zeros, so each item's
audio is the same as when it runs alone. A multi-speaker voice adds its
speaker embedding, projected (VITS's cond), to the first convolution's output.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ttsfleet.inference.engines.vits.config import VitsConfig
from ttsfleet.inference.engines.vits.layers import conv

# HiFi-GAN's leaky ReLU slope inside the generator; the last one uses torch's default.
_SLOPE = 0.1
_LAST_SLOPE = 0.01
_EDGE_KERNEL = 7
# Inputs are padded (and masked) to a multiple of this many frames. oneDNN
# builds a kernel for every new input shape, which costs about as much as
# running it; with lengths rounded up, a server soon has them all built.
_BUCKET = 8
_MIN_BLOCK = 128


class ResBlock(nn.Module):
    """HiFi-GAN residual block type 2: one dilated convolution per residual step."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(conv(channels, channels, kernel, d) for d in dilations)

    def forward(self, x: Tensor, first_input: Tensor, mask: Tensor | None) -> Tensor:
        """first_input is leaky_relu(x), masked: the same for every block of a stage."""
        x = self.convs[0](first_input).add_(x)
        for step in self.convs[1:]:
            x = step(_masked(F.leaky_relu(x, _SLOPE), mask)).add_(x)
        return x


class Decoder(nn.Module):
    """Upsampling stages, each followed by parallel residual blocks that are averaged.

    On CPU, the stages after the first run block by block over time: at
    audio rate their activations are large (32 channels for every sample),
    a block's stay in cache where a whole utterance's do not, and that is
    worth far more than the few positions of context each block decodes
    twice. `block` counts positions per item after the first upsampling (64
    frames for 512 at medium quality), shrinking in large batches; None runs
    whole windows, as suits a GPU.
    """

    def __init__(self, config: VitsConfig, block: int | None = 512) -> None:
        super().__init__()
        channels = config.dec_channels
        self.rates = config.upsample_rates
        self.block = block
        self.conv_pre = conv(config.inter, channels, _EDGE_KERNEL)
        if config.gin_channels:
            self.cond = conv(config.gin_channels, channels)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for stage, (rate, kernel) in enumerate(
            zip(config.upsample_rates, config.upsample_kernels, strict=True)
        ):
            stage_channels = channels // 2 ** (stage + 1)
            self.ups.append(
                nn.ConvTranspose2d(
                    2 * stage_channels,
                    stage_channels,
                    (1, kernel),
                    (1, rate),
                    padding=(0, (kernel - rate) // 2),
                )
            )
            for block_kernel, dilations in zip(
                config.resblock_kernels, config.resblock_dilations, strict=True
            ):
                self.resblocks.append(ResBlock(stage_channels, block_kernel, dilations))
        self.blocks_per_stage = len(config.resblock_kernels)
        self.conv_post = conv(stage_channels, 1, _EDGE_KERNEL, bias=False)
        self.tail_rate = config.hop // config.upsample_rates[0]
        self.tail_context = math.ceil(receptive_reach(config, 1) / self.tail_rate)

    def forward(
        self,
        z: Tensor,
        mask: Tensor | None,
        emit: tuple[int, int] | None = None,
        g: Tensor | None = None,
    ) -> Tensor:
        """z [B, inter, 1, F] (zero outside each item's frames), mask [B, 1, 1, F] or None → audio.

        `emit` = (first, stop) frames of z whose audio is wanted (default: all);
        the frames around them are context. g [B, gin, 1, 1] is each item's
        speaker embedding (None for a single-speaker voice). Returns
        [B, (stop - first)·hop].
        """
        return torch.cat(list(self.stream(z, mask, emit, g)), dim=1)

    def stream(
        self,
        z: Tensor,
        mask: Tensor | None,
        emit: tuple[int, int] | None = None,
        g: Tensor | None = None,
    ) -> Iterator[Tensor]:
        """Like forward, one time block at a time: [B, samples] pieces in order.

        The first stage runs over the whole input before the first piece.
        """
        first, stop = emit or (0, z.shape[-1])
        z, mask = _pad_right(z, mask, _BUCKET)
        x = self.conv_pre(z) if g is None else self.conv_pre(z) + self.cond(g)
        x, mask = self._stage(0, x, mask)
        rate = self.rates[0]
        length = x.shape[-1]
        # Where each item's frames end, in positions (a window may start past 0).
        ends = None if mask is None else _ends(mask.flatten(1))
        block = (stop - first) * rate
        if self.block is not None:
            # Per item: the whole block alone, less in a batch (the working set
            # grows with it), but never so little that context dominates.
            block = min(self.block, max(4 * self.block // len(x), _MIN_BLOCK))
        for start in range(first * rate, stop * rate, block):
            end = min(start + block, stop * rate)
            lo = max(start - self.tail_context, 0)
            # The last block runs to the (bucketed) end: fewer distinct shapes.
            hi = length if end == stop * rate else min(end + self.tail_context, length)
            # Items that ended before the block leave it: their audio there is silence.
            rows = None if ends is None or bool((ends > start).all()) else ends > start
            part, part_mask = x[..., lo:hi], None if mask is None else mask[..., lo:hi]
            if rows is not None and part_mask is not None:
                part, part_mask = part[rows], part_mask[rows]
            x_block, block_mask = _pad_right(part, part_mask, _BUCKET * rate)
            if block_mask is not None and bool(block_mask.all()):
                block_mask = None  # every item runs past the block: nothing to mask
            audio = self._tail(x_block, block_mask)
            if rows is not None:
                audio = audio.new_zeros(len(x), audio.shape[1]).index_copy_(
                    0, rows.nonzero().flatten(), audio
                )
            yield audio[:, (start - lo) * self.tail_rate : (end - lo) * self.tail_rate]

    def _tail(self, x: Tensor, mask: Tensor | None) -> Tensor:
        for stage in range(1, len(self.rates)):
            x, mask = self._stage(stage, x, mask)
        x = self.conv_post(_masked(F.leaky_relu(x, _LAST_SLOPE), mask))
        return torch.tanh(x).flatten(1)

    def _stage(self, stage: int, x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        x = self.ups[stage](_masked(F.leaky_relu(x, _SLOPE), mask))
        if mask is not None:
            mask = mask.repeat_interleave(self.rates[stage], dim=3)
        first_input = _masked(F.leaky_relu(x, _SLOPE), mask)
        count = self.blocks_per_stage
        blocks = self.resblocks[stage * count : (stage + 1) * count]
        total = blocks[0](x, first_input, mask)
        for block in blocks[1:]:
            total = total.add_(block(x, first_input, mask))
        return total.div_(count), mask


def receptive_reach(config: VitsConfig, first_stage: int = 0) -> int:
    """Output samples on each side that can influence a sample, through the layers from
    upsampling stage `first_stage` on (and the first convolution when 0).

    Counted layer by layer at each layer's rate. It is an upper bound: it
    lines up every kernel's extreme taps, which real paths do not.
    """
    period = config.hop // math.prod(config.upsample_rates[:first_stage])
    reach = period * (_EDGE_KERNEL // 2) if first_stage == 0 else 0
    block_reach = max(
        sum(d * (kernel - 1) // 2 for d in dilations)
        for kernel, dilations in zip(
            config.resblock_kernels, config.resblock_dilations, strict=True
        )
    )
    for rate, kernel in zip(
        config.upsample_rates[first_stage:], config.upsample_kernels[first_stage:], strict=True
    ):
        reach += period * math.ceil(kernel / rate)
        period //= rate
        reach += period * block_reach
    return reach + _EDGE_KERNEL // 2


def context_frames(config: VitsConfig) -> int:
    """Latent frames on each side that can influence a frame's audio.

    Decoding a window with this much context on each side and emitting only
    its middle gives the same samples as decoding the whole utterance.
    """
    return math.ceil(receptive_reach(config) / config.hop)


def _pad_right(x: Tensor, mask: Tensor | None, multiple: int) -> tuple[Tensor, Tensor | None]:
    """Zeros after x up to a multiple of `multiple` positions, masked out."""
    extra = -x.shape[-1] % multiple
    if not extra:
        return x, mask
    if mask is None:
        mask = torch.ones(x.shape[0], 1, 1, x.shape[-1], device=x.device)
    return (
        F.pad(x, (0, extra)).contiguous(memory_format=torch.channels_last),
        F.pad(mask, (0, extra)),
    )


def _ends(mask: Tensor) -> Tensor:
    """[B, T] 0/1 → the position after each row's last 1."""
    positions = torch.arange(1, mask.shape[1] + 1, device=mask.device, dtype=mask.dtype)
    return (mask * positions).amax(1)


def _masked(x: Tensor, mask: Tensor | None) -> Tensor:
    return x if mask is None else x * mask
