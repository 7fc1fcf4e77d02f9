"""The decoder's masks, emitted spans and receptive field, on a small random network."""

from __future__ import annotations

import pytest
import torch

from ttsfleet.inference.engines.vits.config import VitsConfig
from ttsfleet.inference.engines.vits.decoder import Decoder, context_frames
from ttsfleet.inference.engines.vits.layers import sequence_mask

pytestmark = pytest.mark.torch

CONFIG = VitsConfig(
    n_vocab=10, hidden=8, inter=4, n_heads=2, window=2, n_layers=1, ffn_channels=8,
    ffn_kernel=3, dp_channels=8, dp_kernel=3, dp_layers=1, dp_flows=(1,), spline_bins=4,
    flows=(0,), flow_hidden=8, wn_kernel=3, wn_layers=1, wn_dilation_rate=1, dec_channels=16,
    upsample_rates=(4, 2), upsample_kernels=(8, 4), resblock_kernels=(3, 5),
    resblock_dilations=((1, 2), (2, 3)),
)  # fmt: skip


@pytest.fixture
def decoder() -> Decoder:
    torch.manual_seed(0)
    decoder = Decoder(CONFIG, block=16).eval()
    with torch.no_grad():
        for parameter in decoder.parameters():
            parameter.normal_(0, 0.3)
    return decoder


def test_padded_items_decode_as_if_alone(decoder: Decoder) -> None:
    lengths = torch.tensor([30, 17, 9])
    z = torch.randn(3, CONFIG.inter, 1, 30) * sequence_mask(lengths, 30)
    with torch.no_grad():
        batched = decoder(z, sequence_mask(lengths, 30))
        for row, length in enumerate(lengths.tolist()):
            alone = decoder(z[row : row + 1, ..., :length], None)[0]
            assert torch.allclose(batched[row, : length * CONFIG.hop], alone, atol=1e-5)


def test_a_window_with_context_decodes_like_the_whole(decoder: Decoder) -> None:
    z = torch.randn(1, CONFIG.inter, 1, 60)
    context = context_frames(CONFIG)
    with torch.no_grad():
        whole = decoder(z, None)[0]
        lo, first, stop, hi = 20 - context, 20, 35, 35 + context
        window = decoder(z[..., lo:hi], None, emit=(first - lo, stop - lo))[0]
        too_little = decoder(z[..., first - 1 : hi], None, emit=(1, stop - first + 1))[0]
    expected = whole[first * CONFIG.hop : stop * CONFIG.hop]
    assert torch.allclose(window, expected, atol=1e-5)
    assert not torch.allclose(too_little, expected, atol=1e-5)


def test_block_size_does_not_change_the_audio(decoder: Decoder) -> None:
    z = torch.randn(2, CONFIG.inter, 1, 40)
    with torch.no_grad():
        small = decoder(z, None)
        decoder.block = None
        large = decoder(z, None)
    assert torch.allclose(small, large, atol=1e-5)
