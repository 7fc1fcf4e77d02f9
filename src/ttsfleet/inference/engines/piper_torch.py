"""Piper voices on torch: batched VITS inference whose decoder streams audio window by window.

The network is rebuilt in torch from the voice's ONNX file (vits/), so the
same voice package serves both engines and their audio matches. Unlike the
exported ONNX graph, which takes one sentence at a time, this engine runs a
padded batch in which every item has its own speaking rate and noise, and
hands out each item's audio in steps: the whole batch's latents first (text
encoder, durations, flow: the cheap part), then the decoder over
successive windows of frames, so the first audio leaves long before the
last window is decoded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt
import torch

from ttsfleet.audio import Audio
from ttsfleet.inference.engine import (
    BatchItem,
)
from ttsfleet.inference.engines.piper_engine import PiperEngine
from ttsfleet.inference.engines.vits.config import read_config
from ttsfleet.inference.engines.vits.decoder import context_frames
from ttsfleet.inference.engines.vits.onnx_voice import OnnxVoice
from ttsfleet.inference.engines.vits.synthesizer import Synthesizer
from ttsfleet.inference.engines.vits.weights import load_weights
from ttsfleet.inference.engines.vits.windows import Window, plan_windows
from ttsfleet.inference.voice_files import voice_files
from ttsfleet.manifests import Voice

_LOG = logging.getLogger(__name__)
_EMPTY: Audio = np.zeros(0, dtype=np.float32)


class PiperTorchEngine(PiperEngine):
    """A Piper voice on torch, batched and streamed.

    `window_frames` is the first decoder window in latent frames (one frame
    is `hop` samples, 256 for medium voices: about 12 ms at 22050 Hz), kept
    small so the first audio leaves early; the rest follows in windows of up
    to `max_window_frames`, each handed out block by block as the decoder
    produces it. None decodes each batch as one window.
    """

    def __init__(
        self,
        voice: Voice,
        device: str,
        *,
        max_batch_size: int = 16,
        window_frames: int | None = 32,
        max_window_frames: int = 512,
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
        # Time blocks keep the decoder in cache on CPU; a GPU wants whole windows.
        model = Synthesizer(config, decoder_block=None if self._device.type == "cuda" else 512)
        load_weights(model, onnx_voice)
        self._model = model.eval().to(self._device)
        self._hop = config.hop
        self._context = context_frames(config)
        self._window_frames = window_frames
        self._max_window_frames = max(max_window_frames, window_frames or 1)
        self.max_batch_size = max_batch_size

    def run_batch(self, items: Sequence[BatchItem]) -> Iterator[list[Audio]]:
        if not items:
            return
        with torch.inference_mode():
            z, frame_lengths = self._latents(items)
        lengths = frame_lengths.tolist()
        for window in plan_windows(
            max(lengths), self._window_frames, self._max_window_frames, self._context
        ):
            active = [i for i, length in enumerate(lengths) if length > window.start]
            # Samples each active item still has in this window; pieces end there.
            left = [(min(window.stop, lengths[i]) - window.start) * self._hop for i in active]
            decoded = self._decode(z, frame_lengths, active, window)
            if self._window_frames is None:  # not streaming: the whole batch in one step
                decoded = iter([np.concatenate(list(decoded), axis=1)])
            for audio in decoded:
                pieces = [_EMPTY] * len(items)
                for row, i in enumerate(active):
                    pieces[i] = audio[row, : left[row]]
                    left[row] = max(left[row] - audio.shape[1], 0)
                yield pieces

    def _latents(self, items: Sequence[BatchItem]) -> tuple[torch.Tensor, torch.Tensor]:
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
        )

    def _decode(
        self, z: torch.Tensor, frame_lengths: torch.Tensor, active: list[int], window: Window
    ) -> Iterator[npt.NDArray[np.float32]]:
        """The window's emitted audio for the active items, [len(active), samples] at a time."""
        with torch.inference_mode():
            rows = torch.tensor(active, device=z.device)
            width = window.hi - window.lo
            valid = (frame_lengths[rows] - window.lo).clamp(max=width)
            pieces = self._model.decode(
                z[rows, ..., window.lo : window.hi],
                valid if bool((valid < width).any()) else None,
                emit=(window.start - window.lo, window.stop - window.lo),
            )
        while True:
            # The decoder works as pieces are taken, so each take runs in inference mode.
            with torch.inference_mode():
                piece = next(pieces, None)
            if piece is None:
                return
            yield piece.cpu().numpy()
