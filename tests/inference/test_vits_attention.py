"""Relative-position attention against a plain double loop over query and key."""

from __future__ import annotations

import math

import pytest
import torch

from ttsfleet.inference.engines.vits.text_encoder import RelativeAttention

pytestmark = pytest.mark.torch


def _naive(attention: RelativeAttention, x: torch.Tensor, length: int) -> torch.Tensor:
    """Scores q·k + q·E_k[j - i] and outputs Σ p·(v + E_v[j - i]) within the window."""
    heads, d, window = attention.n_heads, attention.head_channels, attention.window
    q, k, v = (
        conv(x)[0].view(heads, d, -1)
        for conv in (attention.conv_q, attention.conv_k, attention.conv_v)
    )
    q = q / math.sqrt(d)
    e_k, e_v = attention.emb_rel_k[0], attention.emb_rel_v[0]
    out = torch.zeros(heads, d, x.shape[3])
    for h in range(heads):
        for i in range(length):
            scores = torch.full((x.shape[3],), -1e4)
            for j in range(length):
                scores[j] = q[h, :, i] @ k[h, :, j]
                if abs(j - i) <= window:
                    scores[j] += q[h, :, i] @ e_k[j - i + window]
            p = torch.softmax(scores, 0)
            for j in range(length):
                out[h, :, i] += p[j] * v[h, :, j]
                if abs(j - i) <= window:
                    out[h, :, i] += p[j] * e_v[j - i + window]
    return attention.conv_o(out.reshape(1, heads * d, 1, -1))


def test_matches_the_double_loop_on_the_real_positions() -> None:
    torch.manual_seed(0)
    attention = RelativeAttention(channels=8, n_heads=2, window=2)
    with torch.no_grad():
        attention.emb_rel_k.normal_()
        attention.emb_rel_v.normal_()
        x = torch.randn(1, 8, 1, 9)
        length = 7  # two padded positions
        mask = (torch.arange(9) < length).float().view(1, 1, 1, 9)
        pair = (mask.transpose(2, 3) * mask) > 0
        ours = attention(x * mask, pair)
        expected = _naive(attention, x * mask, length)
    assert torch.allclose(ours[..., :length], expected[..., :length], atol=1e-5)
