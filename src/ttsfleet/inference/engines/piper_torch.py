"""Piper voices on torch: batched VITS inference, decoded window by window.

The network is rebuilt in torch from the voice's ONNX file (vits/), so the
same voice package serves both engines and their audio matches. Unlike the
exported ONNX graph, which takes one sentence at a time, this engine runs
padded batches in which every item has its own speaking rate and noise.
`prepare` computes a batch's latents (text encoder, durations, flow: the
cheap part, which needs the whole sentence); each stream then keeps its own
latent frames and plan of decoder windows, and `step` decodes the next
window of any set of streams in one batched decoder call, whatever window
each is at, so the scheduler can admit new sentences at every window
boundary. In a multi-speaker voice each stream also keeps its speaker
embedding, so one batch mixes speakers as freely as speaking rates.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self, cast

import torch

from ttsfleet.audio import Audio
from ttsfleet.inference.engine import BatchItem, Stream
from ttsfleet.inference.engines.piper_engine import PiperEngine
from ttsfleet.inference.engines.vits.config import VitsConfig, read_config
from ttsfleet.inference.engines.vits.decoder import context_frames
from ttsfleet.inference.engines.vits.layers import LAYOUT
from ttsfleet.inference.engines.vits.onnx_voice import OnnxVoice, VoiceWeightsError
from ttsfleet.inference.engines.vits.synthesizer import Synthesizer
from ttsfleet.inference.engines.vits.weights import load_weights
from ttsfleet.inference.engines.vits.windows import Window, plan_windows
from ttsfleet.manifests import ManifestError, PodConfig, Voice
from ttsfleet.voices.files import voice_files

_LOG = logging.getLogger(__name__)
# Float32 tensors alive at once per position of the decoder's widest stage,
# counting the caching allocator's slack: 10 estimates 328 KB per decoded
# frame for the medium voices, against 248 KB measured on an H200 (batch 256,
# one window).
_LIVE_TENSORS = 10


@dataclass(eq=False)
class _Windows(Stream):
    """One utterance's latent frames [1, inter, 1, F], its speaker embedding [1, gin, 1, 1]
    (None for a single-speaker voice) and the decoder windows still to run."""

    z: torch.Tensor
    g: torch.Tensor | None
    windows: list[Window]
    next: int = 0
    id_samples: Sequence[int] | None = None

    @property
    def done(self) -> bool:
        return self.next >= len(self.windows)


class PiperTorchEngine(PiperEngine):
    """A Piper voice on torch, batched and streamed.

    `window_frames` is the first decoder window in latent frames (one frame
    is `hop` samples, 256 for medium voices: about 12 ms at 22050 Hz), kept
    small so the first audio leaves early; the next windows double up to
    `max_window_frames`. None decodes each utterance as one window.
    `max_batch_size` is the most streams one step decodes: the pod's
    batching.maxBatchSize. `tf32` lets a CUDA device's convolutions and
    matrix products round their inputs to TF32 (faster, less exact); it
    changes nothing on CPU.
    """

    def __init__(
        self,
        voice: Voice,
        device: str,
        *,
        max_batch_size: int = 16,
        window_frames: int | None = 32,
        max_window_frames: int = 512,
        tf32: bool = False,
    ) -> None:
        model_path, config_path = voice_files(voice.source)
        super().__init__(voice, "piper-torch", config_path)
        if device == "cuda" and not torch.cuda.is_available():
            _LOG.warning("voice %s: CUDA is not available, running on CPU", voice.name)
        self._device = torch.device(
            "cuda" if device == "cuda" and torch.cuda.is_available() else "cpu"
        )
        onnx_voice = OnnxVoice(model_path)
        config = read_config(onnx_voice)
        if config.n_speakers != len(self.info.speakers.table):
            raise VoiceWeightsError(
                f"{model_path.name}: the model has {config.n_speakers or 'no'} speaker "
                f"embeddings, its config {self._front.config.num_speakers} speakers"
            )
        # Time blocks keep the decoder in cache on CPU; a GPU wants whole windows.
        model = Synthesizer(config, decoder_block=None if self._device.type == "cuda" else 512)
        load_weights(model, onnx_voice)
        self._model = model.eval().to(self._device)
        self._hop = config.hop
        self._context = context_frames(config)
        self._window_frames = window_frames
        self._max_window_frames = max(max_window_frames, window_frames or 1)
        self.max_batch_size = max_batch_size
        if self._device.type == "cuda":
            precision = "tf32" if tf32 else "ieee"
            torch.backends.cudnn.conv.fp32_precision = precision  # type: ignore[attr-defined]
            torch.backends.cuda.matmul.fp32_precision = precision
            free, _ = torch.cuda.mem_get_info(self._device)
            refuse_unfit_batch(config, max_batch_size, self._widest_window(), free)

    @classmethod
    def for_pod(cls, voice: Voice, pod: PodConfig) -> Self:
        return cls(voice, pod.device, max_batch_size=pod.batching.max_batch_size, tf32=pod.gpu.tf32)

    def _widest_window(self) -> int:
        """Frames one row of a step holds at most: the largest window and its context.

        (With windows off an utterance is one window of any length; the bound
        then holds for utterances up to `max_window_frames`.)
        """
        return self._max_window_frames + 2 * self._context

    def prepare(self, items: Sequence[BatchItem]) -> list[Stream]:
        with torch.inference_mode():
            g = self._speakers(items)
            z, frame_lengths, durations = self._latents(items, g)
        frames = (durations.long() * self._hop).tolist()
        return [
            _Windows(
                z[row : row + 1, ..., :length],
                None if g is None else g[row : row + 1],
                plan_windows(length, self._window_frames, self._max_window_frames, self._context),
                id_samples=frames[row][: len(utterance.phoneme_ids)],
            )
            for row, (length, (utterance, _)) in enumerate(
                zip(frame_lengths.tolist(), items, strict=True)
            )
        ]

    def step(self, streams: Sequence[Stream]) -> list[Audio]:
        """Decodes each stream's next window in one call.

        Rows are placed so that the frames to emit start at the same column
        in every row (a first window has no context before it), padded with
        masked zeros, and each row's audio is cropped to its own window.
        """
        own = [cast(_Windows, stream) for stream in streams]
        windows = [stream.windows[stream.next] for stream in own]
        emit_at = max(w.start - w.lo for w in windows)
        shifts = [emit_at - (w.start - w.lo) for w in windows]
        width = max(shift + w.hi - w.lo for shift, w in zip(shifts, windows, strict=True))
        emitted = [w.stop - w.start for w in windows]
        with torch.inference_mode():
            z = own[0].z.new_zeros(len(own), own[0].z.shape[1], 1, width)
            for row, (stream, shift, w) in enumerate(zip(own, shifts, windows, strict=True)):
                z[row, ..., shift : shift + w.hi - w.lo] = stream.z[0, ..., w.lo : w.hi]
            spans = [(shift, shift + w.hi - w.lo) for shift, w in zip(shifts, windows, strict=True)]
            full = all(span == (0, width) for span in spans)
            pieces = self._model.decode(
                z.contiguous(memory_format=LAYOUT),
                None if full else torch.tensor(spans, device=z.device),
                emit=(emit_at, emit_at + max(emitted)),
                g=None if own[0].g is None else torch.cat([cast(torch.Tensor, s.g) for s in own]),
            )
            audio = torch.cat(list(pieces), dim=1).cpu().numpy()
        for stream in own:
            stream.next += 1
        return [audio[row, : frames * self._hop] for row, frames in enumerate(emitted)]

    def _speakers(self, items: Sequence[BatchItem]) -> torch.Tensor | None:
        """Each item's speaker embedding [B, gin, 1, 1]; None for a single-speaker voice.

        An item without a speaker gets the voice's default, as in the ONNX engine.
        """
        default = self.info.speakers.default
        if default is None:
            return None
        ids = torch.tensor(
            [default if params.speaker is None else params.speaker for _, params in items]
        )
        return self._model.speaker_embedding(ids.to(self._device))

    def _latents(
        self, items: Sequence[BatchItem], g: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        longest = max(len(utterance.phoneme_ids) for utterance, _ in items)
        ids = torch.zeros(len(items), longest, dtype=torch.long)
        for row, (utterance, _) in enumerate(items):
            ids[row, : len(utterance.phoneme_ids)] = torch.tensor(utterance.phoneme_ids)
        lengths = torch.tensor([len(utterance.phoneme_ids) for utterance, _ in items])
        scales = torch.tensor(
            [[p.length_scale, p.noise_scale, p.noise_w] for _, p in items], dtype=torch.float32
        )
        device = self._device
        return self._model.latents(
            ids.to(device),
            lengths.to(device),
            length_scale=scales[:, 0].to(device),
            noise_scale=scales[:, 1].to(device),
            noise_w=scales[:, 2].to(device),
            g=g,
        )


def decoder_bytes_per_frame(config: VitsConfig) -> int:
    """Device memory one latent frame of one row takes while the decoder runs (an estimate).

    The stages run one after another, so the widest stage (channels times
    positions per frame) sets the peak.
    """
    widest: int = max(
        config.dec_channels // 2 ** (stage + 1) * math.prod(config.upsample_rates[: stage + 1])
        for stage in range(len(config.upsample_rates))
    )
    return widest * _LIVE_TENSORS * 4


def refuse_unfit_batch(config: VitsConfig, batch: int, frames: int, free_bytes: int) -> None:
    """Fails at load time when a full step would not fit in the device's free memory."""
    needed = batch * frames * decoder_bytes_per_frame(config)
    if needed > free_bytes:
        fits = free_bytes // (frames * decoder_bytes_per_frame(config))
        raise ManifestError(
            f"batching.maxBatchSize {batch} needs about {needed / 2**30:.1f} GiB of device "
            f"memory for decoder windows of {frames} frames; {free_bytes / 2**30:.1f} GiB is "
            f"free, enough for {fits}"
        )
