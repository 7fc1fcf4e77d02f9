"""The reference engine: Piper voices on onnxruntime, as piper-tts runs them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self, cast

import numpy as np
import onnxruntime
from piper.config import SynthesisConfig
from piper.voice import PiperVoice

from ttsfleet.audio import Audio
from ttsfleet.inference.engine import BatchItem, Stream
from ttsfleet.inference.engines.piper_engine import PiperEngine
from ttsfleet.manifests import PodConfig, Voice
from ttsfleet.voices.files import voice_files


@dataclass(eq=False)
class _Sentence(Stream):
    """The exported graph makes a sentence's audio in one call: its only step."""

    item: BatchItem
    spoken: bool = False

    @property
    def done(self) -> bool:
        return self.spoken


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

    @classmethod
    def for_pod(cls, voice: Voice, pod: PodConfig) -> Self:
        return cls(voice, pod.device)

    def prepare(self, items: Sequence[BatchItem]) -> list[Stream]:
        return [_Sentence(item) for item in items]

    def step(self, streams: Sequence[Stream]) -> list[Audio]:
        return [self._speak(cast(_Sentence, stream)) for stream in streams]

    def _speak(self, sentence: _Sentence) -> Audio:
        utterance, params = sentence.item
        config = SynthesisConfig(
            speaker_id=params.speaker,
            length_scale=params.length_scale,
            noise_scale=params.noise_scale,
            noise_w_scale=params.noise_w,
        )
        audio = self._piper.phoneme_ids_to_audio(list(utterance.phoneme_ids), config)
        assert isinstance(audio, np.ndarray)
        sentence.spoken = True
        return np.atleast_1d(audio).astype(np.float32, copy=False)
