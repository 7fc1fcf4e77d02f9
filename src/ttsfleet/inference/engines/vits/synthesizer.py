"""The VITS stages in sequence for a padded batch: ids → latent frames → audio.

Split in two calls so that the engine can stream: `latents` runs the text
encoder, duration predictor and flow over whole utterances (they need the
whole sentence), `decode` turns any span of latent frames into audio piece
by piece (the larger part of the work). A multi-speaker voice conditions the
duration predictor, flow and decoder on each item's speaker embedding, as
VITS does (the text encoder does not see the speaker).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from ttsfleet.inference.engines.vits.config import VitsConfig
from ttsfleet.inference.engines.vits.decoder import Decoder
from ttsfleet.inference.engines.vits.duration import DurationPredictor
from ttsfleet.inference.engines.vits.flow import Flow
from ttsfleet.inference.engines.vits.layers import LAYOUT, sequence_mask
from ttsfleet.inference.engines.vits.text_encoder import TextEncoder


class Synthesizer(nn.Module):
    """Module names follow Piper's (enc_p, dp, flow, dec) so every parameter keeps its name."""

    def __init__(self, config: VitsConfig, decoder_block: int | None = 512) -> None:
        super().__init__()
        self.enc_p = TextEncoder(config)
        self.dp = DurationPredictor(config)
        self.flow = Flow(config)
        self.dec = Decoder(config, decoder_block)
        if config.n_speakers:
            self.emb_g = nn.Embedding(config.n_speakers, config.gin_channels)
        self.to(memory_format=LAYOUT)

    def latents(
        self,
        ids: Tensor,
        lengths: Tensor,
        length_scale: Tensor,
        noise_scale: Tensor,
        noise_w: Tensor,
        g: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """ids [B, T] padded, the rest [B] → latent z [B, inter, 1, F], frame counts [B]
        and each phoneme id's frames [B, T] (zero past an item's length).

        Each item has its own scales and speaker embedding g [B, gin, 1, 1]
        (from `speaker_embedding`; None for a single-speaker voice), so one
        batch can mix speaking rates and speakers.
        """
        mask = sequence_mask(lengths, ids.shape[1])
        hidden, mean, log_std = self.enc_p(ids, mask)
        log_w = self.dp(hidden, mask, noise_w, g)
        durations = torch.ceil(torch.exp(log_w) * mask * length_scale.view(-1, 1, 1, 1)).flatten(1)
        ends = torch.cumsum(durations, dim=1)  # [B, T]: the frame after each phoneme
        frame_lengths = ends[:, -1].clamp_min(1).long()
        frames = int(frame_lengths.max())
        position = torch.arange(frames, device=ids.device, dtype=ends.dtype).repeat(len(ids), 1)
        # Which phoneme each frame repeats; frames past the last phoneme get none.
        owner = torch.searchsorted(ends, position, right=True)
        aligned = (position < ends[:, -1:]).view(len(ids), 1, 1, -1).to(mean.dtype)
        index = owner.clamp_max(ids.shape[1] - 1).view(len(ids), 1, 1, -1)
        index = index.expand(-1, mean.shape[1], -1, -1)
        mean = mean.gather(3, index).contiguous(memory_format=LAYOUT) * aligned
        log_std = log_std.gather(3, index).contiguous(memory_format=LAYOUT) * aligned
        noise = torch.randn_like(mean) * torch.exp(log_std) * noise_scale.view(-1, 1, 1, 1)
        frame_mask = sequence_mask(frame_lengths, frames)
        z = self.flow.reverse(mean + noise, frame_mask, g)
        return z * frame_mask, frame_lengths, durations

    def speaker_embedding(self, speakers: Tensor) -> Tensor:
        """Speaker ids [B] → g [B, gin, 1, 1], the conditioning every stage after the encoder reads."""
        g: Tensor = self.emb_g(speakers)
        return g.view(*g.shape, 1, 1).contiguous(memory_format=LAYOUT)

    def decode(
        self,
        z: Tensor,
        spans: Tensor | None,
        emit: tuple[int, int] | None = None,
        g: Tensor | None = None,
    ) -> Iterator[Tensor]:
        """z [B, inter, 1, F] → audio of frames emit = [first, stop) (default all), in pieces.

        spans [B, 2] when items hold frames [start, stop) of z only (a batch
        of windows of different utterances, each placed so that the frames to
        emit line up); the rest of each row is zeros and is masked, which
        is what running it alone would see. Frames outside `emit` are context.
        Each piece is [B, samples], the next stretch of every item's audio;
        work is done as pieces are taken. g is each item's speaker embedding.
        """
        mask = None
        if spans is not None:
            frames = torch.arange(z.shape[-1], device=z.device)
            inside = (frames >= spans[:, :1]) & (frames < spans[:, 1:])
            mask = inside.view(len(z), 1, 1, -1).to(z.dtype)
        return self.dec.stream(z, mask, emit, g)
