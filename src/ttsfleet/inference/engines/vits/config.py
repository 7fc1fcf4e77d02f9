"""The dimensions of a Piper VITS network, read from the voice's own tensors and graph.

Piper ships x_low, low, medium and high voices with different widths, layer
counts, upsampling and residual-block dilations, and its JSON config does not
state them. They are read here from tensor shapes and convolution attributes,
so the torch model is built to the voice rather than to one preset.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ttsfleet.inference.engines.vits.onnx_voice import OnnxVoice, VoiceWeightsError


@dataclass(frozen=True)
class VitsConfig:
    """Hyperparameters of the inference path (names follow the VITS paper's code)."""

    n_vocab: int
    hidden: int
    inter: int
    n_heads: int
    window: int
    n_layers: int
    ffn_channels: int
    ffn_kernel: int
    dp_channels: int
    dp_kernel: int
    dp_layers: int
    dp_flows: tuple[int, ...]
    spline_bins: int
    flows: tuple[int, ...]
    flow_hidden: int
    wn_kernel: int
    wn_layers: int
    wn_dilation_rate: int
    dec_channels: int
    upsample_rates: tuple[int, ...]
    upsample_kernels: tuple[int, ...]
    resblock_kernels: tuple[int, ...]
    resblock_dilations: tuple[tuple[int, ...], ...]
    # A multi-speaker voice's speaker count and embedding width; 0 for a single speaker.
    n_speakers: int = 0
    gin_channels: int = 0

    @property
    def hop(self) -> int:
        """Audio samples per latent frame."""
        return math.prod(self.upsample_rates)


def read_config(voice: OnnxVoice) -> VitsConfig:
    """Reads the dimensions; a voice whose layout is not Piper's VITS fails here."""
    names = list(voice.initializers)
    n_vocab, hidden = voice.shape("enc_p.emb.weight")
    rel_positions, head_channels = voice.shape("enc_p.encoder.attn_layers.0.emb_rel_k")[1:]
    ffn_channels, _, ffn_kernel = voice.shape("enc_p.encoder.ffn_layers.0.conv_1.weight")
    dp_channels = voice.shape("dp.pre.weight")[0]
    dp_kernel = voice.shape("dp.convs.convs_sep.0.weight")[2]
    dp_flows = _indices(names, r"dp\.flows\.(\d+)\.pre\.bias")
    spline_params = voice.shape(f"dp.flows.{dp_flows[0]}.proj.weight")[0]
    flows = _indices(names, r"flow\.flows\.(\d+)\.pre\.bias")
    wn_layers = len(_indices(names, rf"flow\.flows\.{flows[0]}\.enc\.in_layers\.(\d+)\.bias"))
    wn_kernel = voice.shape(f"flow.flows.{flows[0]}.enc.in_layers.0.weight")[2]
    upsamples = _indices(names, r"dec\.ups\.(\d+)\.bias")[::-1]
    resblocks = _indices(names, r"dec\.resblocks\.(\d+)\.convs\.0\.bias")[::-1]
    kernels_per_stage = len(resblocks) // max(len(upsamples), 1)
    if any(".convs1." in name for name in names):
        raise VoiceWeightsError(
            f"{voice.path.name}: the decoder uses HiFi-GAN residual block type 1 "
            "(convs1/convs2); the torch engine implements type 2 only"
        )
    n_speakers, gin_channels = voice.shape("emb_g.weight") if voice.has("emb_g.weight") else (0, 0)
    return VitsConfig(
        n_vocab=n_vocab,
        hidden=hidden,
        inter=voice.shape("enc_p.proj.weight")[0] // 2,
        n_heads=hidden // head_channels,
        window=(rel_positions - 1) // 2,
        n_layers=len(_indices(names, r"enc_p\.encoder\.attn_layers\.(\d+)\.conv_q\.bias")),
        ffn_channels=ffn_channels,
        ffn_kernel=ffn_kernel,
        dp_channels=dp_channels,
        dp_kernel=dp_kernel,
        dp_layers=len(_indices(names, r"dp\.convs\.convs_sep\.(\d+)\.bias")),
        dp_flows=dp_flows,
        spline_bins=(spline_params + 1) // 3,
        flows=flows,
        flow_hidden=voice.shape(f"flow.flows.{flows[0]}.pre.weight")[0],
        wn_kernel=wn_kernel,
        wn_layers=wn_layers,
        wn_dilation_rate=(
            voice.int_attribute(f"/flow/flows.{flows[0]}/enc/in_layers.1/Conv", "dilations")[0]
            if wn_layers > 1
            else 1
        ),
        dec_channels=voice.shape("dec.conv_pre.weight")[0],
        upsample_rates=tuple(
            voice.int_attribute(f"/dec/ups.{i}/ConvTranspose", "strides")[0] for i in upsamples
        ),
        upsample_kernels=tuple(voice.shape(f"dec.ups.{i}.weight")[2] for i in upsamples),
        resblock_kernels=tuple(
            voice.shape(f"dec.resblocks.{j}.convs.0.weight")[2] for j in range(kernels_per_stage)
        ),
        resblock_dilations=tuple(
            tuple(
                voice.int_attribute(f"/dec/resblocks.{j}/convs.{c}/Conv", "dilations")[0]
                for c in _indices(names, rf"dec\.resblocks\.{j}\.convs\.(\d+)\.bias")[::-1]
            )
            for j in range(kernels_per_stage)
        ),
        n_speakers=n_speakers,
        gin_channels=gin_channels,
    )


def _indices(names: Iterable[str], pattern: str) -> tuple[int, ...]:
    """Module indices that occur in tensor names, highest first (the reverse-flow order)."""
    regex = re.compile(pattern)
    found = {int(match.group(1)) for name in names if (match := regex.fullmatch(name))}
    return tuple(sorted(found, reverse=True))
