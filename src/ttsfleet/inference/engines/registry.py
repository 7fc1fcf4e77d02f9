"""Builds the engine a TTSVoice asks for, set up as its pod's configuration says."""

from __future__ import annotations

import importlib

from ttsfleet.inference.engine import VoiceEngine
from ttsfleet.manifests import PodConfig, Voice

# engine name -> (module, class, the pip extra that brings its libraries)
ENGINE_MODULES = {
    "piper-onnx": ("ttsfleet.inference.engines.piper_onnx", "PiperOnnxEngine", "piper"),
    "piper-torch": ("ttsfleet.inference.engines.piper_torch", "PiperTorchEngine", "torch"),
}


def load_engine(voice: Voice, pod: PodConfig) -> VoiceEngine:
    """Loads the voice's weights on the pod's device; imports each engine only when used."""
    if voice.engine not in ENGINE_MODULES:
        raise ValueError(f"voice {voice.name}: unknown engine {voice.engine!r}")
    module_name, class_name, extra = ENGINE_MODULES[voice.engine]
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise RuntimeError(
            f"voice {voice.name} uses the {voice.engine} engine, which needs "
            f"{error.name}: pip install 'ttsfleet[{extra}]'"
        ) from error
    engine: VoiceEngine = getattr(module, class_name).for_pod(voice, pod)
    return engine
