"""The reference engine: Piper voices on onnxruntime, as piper-tts runs them.

The graph is loaded with its duration tensor (the ceiled phoneme widths,
`w_ceil`) marked as an extra output, as piper-tts's alignment export does,
in memory: the voice's file is untouched, and word timings come from the
same run that makes the audio.
"""

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
        self._piper = PiperVoice.load(model, config, use_cuda=use_cuda, include_alignments=True)

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
        made = self._piper.phoneme_ids_to_audio(
            list(utterance.phoneme_ids), config, include_alignments=True
        )
        assert isinstance(made, tuple)
        audio, id_samples = made
        if id_samples is not None:
            sentence.id_samples = np.atleast_1d(id_samples).tolist()
        sentence.spoken = True
        return np.atleast_1d(audio).astype(np.float32, copy=False)
