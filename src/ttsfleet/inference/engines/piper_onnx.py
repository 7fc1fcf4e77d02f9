"""The reference engine: Piper voices on onnxruntime, as piper-tts runs them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import onnxruntime
from piper.config import SynthesisConfig
from piper.voice import PiperVoice

from ttsfleet.audio import Audio
from ttsfleet.inference.engine import (
    BatchItem,
    SynthesisParams,
    Utterance,
)
from ttsfleet.inference.engines.piper_engine import PiperEngine
from ttsfleet.inference.voice_files import voice_files
from ttsfleet.manifests import Voice


class PiperOnnxEngine(PiperEngine):
    """One utterance at a time: the exported Piper graph takes a batch of one."""

    max_batch_size = 1

    def __init__(self, voice: Voice, device: str) -> None:
        model, config = voice_files(voice.source)
        use_cuda = device == "cuda" and "CUDAExecutionProvider" in (
            onnxruntime.get_available_providers()
        )
        super().__init__(voice, "piper-onnx", config)
        self._piper = PiperVoice.load(model, config, use_cuda=use_cuda)

    def run_batch(self, items: Sequence[BatchItem]) -> Iterator[list[Audio]]:
        yield [self._synthesize(utterance, params) for utterance, params in items]

    def _synthesize(self, utterance: Utterance, params: SynthesisParams) -> Audio:
        config = SynthesisConfig(
            speaker_id=params.speaker,
            length_scale=params.length_scale,
            noise_scale=params.noise_scale,
            noise_w_scale=params.noise_w,
        )
        audio = self._piper.phoneme_ids_to_audio(list(utterance.phoneme_ids), config)
        assert isinstance(audio, np.ndarray)
        return np.atleast_1d(audio).astype(np.float32, copy=False)
