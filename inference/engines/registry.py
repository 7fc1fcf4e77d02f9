"""Builds the engine a TTSVoice asks for."""

from __future__ import annotations

from ttsfleet.inference.engine import VoiceEngine
from ttsfleet.manifests import Voice


def load_engine(voice: Voice, device: str) -> VoiceEngine:
    """Loads the voice's weights on the device; imports each engine only when used."""
    if voice.engine == "piper-onnx":
        from ttsfleet.inference.engines.piper_onnx import PiperOnnxEngine

        engine: VoiceEngine = PiperOnnxEngine(voice, device)
        return engine
    if voice.engine == "piper-torch":
        try:
            from ttsfleet.inference.engines.piper_torch import PiperTorchEngine
        except ImportError as error:
            raise RuntimeError(
                f"voice {voice.name} uses the piper-torch engine, which needs torch: "
                "pip install 'ttsfleet[torch]'"
            ) from error
        engine = PiperTorchEngine(voice, device)
        return engine
    raise ValueError(f"voice {voice.name}: unknown engine {voice.engine!r}")
