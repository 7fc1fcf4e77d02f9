"""The prior encoder: phoneme ids → hidden states and the latent prior (mean, log-std).

A transformer whose self-attention adds learned embeddings for relative
offsets within a window (Shaw et al.), as in VITS. Offsets beyond the window
contribute nothing, so both relative terms are banded: each query sees
2·window+1 embeddings, gathered into place rather than padded and skewed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ttsfleet.inference.engines.vits.config import VitsConfig
from ttsfleet.inference.engines.vits.layers import ChannelNorm, conv, from_time_major

# Score given to padded keys: the value VITS was trained and exported with.
_MASKED_SCORE = -1e4


class RelativeAttention(nn.Module):
    """Multi-head self-attention with windowed relative-position keys and values."""

    def __init__(self, channels: int, n_heads: int, window: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.window = window
        self.head_channels = channels // n_heads
        self.conv_q = conv(channels, channels)
        self.conv_k = conv(channels, channels)
        self.conv_v = conv(channels, channels)
        self.conv_o = conv(channels, channels)
        # One table shared by all heads (VITS's heads_share=True).
        self.emb_rel_k = nn.Parameter(torch.zeros(1, 2 * window + 1, self.head_channels))
        self.emb_rel_v = nn.Parameter(torch.zeros(1, 2 * window + 1, self.head_channels))

    def forward(self, x: Tensor, pair_mask: Tensor) -> Tensor:
        """x [B, C, 1, T]; pair_mask [B, 1, T, T] bool, True where query and key are both real."""
        batch, channels, _, length = x.shape
        q, k, v = (
            project(x)
            .permute(0, 2, 3, 1)
            .reshape(batch, length, self.n_heads, self.head_channels)
            .transpose(1, 2)
            for project in (self.conv_q, self.conv_k, self.conv_v)
        )  # [B, H, T, d]
        q = q / math.sqrt(self.head_channels)
        offsets = torch.arange(length, device=x.device)
        relative = offsets[None, :] - offsets[:, None]  # key - query, [T, T]
        in_window = relative.abs() <= self.window
        band = (relative.clamp(-self.window, self.window) + self.window).expand(
            batch, self.n_heads, length, length
        )
        relative_scores = torch.matmul(q, self.emb_rel_k.transpose(1, 2))  # [B, H, T, 2w+1]
        scores = torch.matmul(q, k.transpose(2, 3))
        scores = scores + relative_scores.gather(3, band) * in_window
        scores = scores.masked_fill(~pair_mask, _MASKED_SCORE)
        weights = F.softmax(scores, dim=-1)
        # The weight each query gives to each offset: its row read along the band.
        padded = F.pad(weights, (self.window, self.window))
        along_band = offsets[:, None] + torch.arange(2 * self.window + 1, device=x.device)
        offset_weights = padded.gather(
            3, along_band.expand(batch, self.n_heads, length, 2 * self.window + 1)
        )
        out = torch.matmul(weights, v) + torch.matmul(offset_weights, self.emb_rel_v)
        projected: Tensor = self.conv_o(
            from_time_major(out.transpose(1, 2).reshape(batch, length, channels))
        )
        return projected


class FeedForward(nn.Module):
    """Two masked convolutions with a ReLU between them."""

    def __init__(self, channels: int, hidden: int, kernel: int) -> None:
        super().__init__()
        self.conv_1 = conv(channels, hidden, kernel)
        self.conv_2 = conv(hidden, channels, kernel)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = torch.relu(self.conv_1(x * mask))
        out: Tensor = self.conv_2(x * mask) * mask
        return out


class TextEncoder(nn.Module):
    """Embedding, post-norm transformer layers, and the projection to the prior's statistics."""

    def __init__(self, config: VitsConfig) -> None:
        super().__init__()
        if config.ffn_kernel % 2 == 0:
            raise ValueError("the torch engine supports odd feed-forward kernels only")
        channels = config.hidden
        self.emb = nn.Embedding(config.n_vocab, channels)
        self.encoder = _Encoder(config)
        self.proj = conv(channels, 2 * config.inter)

    def forward(self, ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """ids [B, T], mask [B, 1, 1, T] → hidden [B, C, 1, T], prior mean and log-std."""
        x = from_time_major(self.emb(ids) * math.sqrt(self.emb.embedding_dim))
        hidden = self.encoder(x * mask, mask)
        mean, log_std = (self.proj(hidden) * mask).chunk(2, dim=1)
        return hidden, mean, log_std


class _Encoder(nn.Module):
    """Named `encoder` so that parameter names match the exported ones."""

    def __init__(self, config: VitsConfig) -> None:
        super().__init__()
        channels = config.hidden
        self.attn_layers = nn.ModuleList(
            RelativeAttention(channels, config.n_heads, config.window)
            for _ in range(config.n_layers)
        )
        self.norm_layers_1 = nn.ModuleList(ChannelNorm(channels) for _ in range(config.n_layers))
        self.ffn_layers = nn.ModuleList(
            FeedForward(channels, config.ffn_channels, config.ffn_kernel)
            for _ in range(config.n_layers)
        )
        self.norm_layers_2 = nn.ModuleList(ChannelNorm(channels) for _ in range(config.n_layers))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        pair_mask = (mask.transpose(2, 3) * mask) > 0
        for attention, norm_1, ffn, norm_2 in zip(
            self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2, strict=True
        ):
            x = norm_1(x + attention(x, pair_mask))
            x = norm_2(x + ffn(x, mask))
        return x * mask
