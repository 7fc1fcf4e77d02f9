"""Fills every parameter of the torch model from the voice's ONNX tensors, or says which does not fit.

Every parameter must find a tensor of exactly its shape, and every weight
tensor of the voice must find a parameter: a voice with layers this model
does not have (a residual block of another type, say) is refused rather than half-loaded.
"""

from __future__ import annotations

import numpy as np
import torch

from ttsfleet.inference.engines.vits.onnx_voice import (
    Located,
    OnnxVoice,
    VoiceWeightsError,
    node_name,
)
from ttsfleet.inference.engines.vits.synthesizer import Synthesizer


def load_weights(model: Synthesizer, voice: OnnxVoice) -> None:
    """Copies the voice's tensors into the model's parameters."""
    state: dict[str, torch.Tensor] = {}
    for name, parameter in model.named_parameters():
        located = _locate(voice, name)
        expected = _as_exported(tuple(parameter.shape))
        if tuple(located.value.shape) != expected:
            raise VoiceWeightsError(
                f"{voice.path.name}: tensor {name!r} (initializer {located.source!r}) has shape "
                f"{list(located.value.shape)}, but the model built from this voice's dimensions "
                f"expects {list(expected)}"
            )
        if located.value.dtype != np.float32:
            raise VoiceWeightsError(
                f"{voice.path.name}: tensor {name!r} (initializer {located.source!r}) is "
                f"{located.value.dtype}, expected float32"
            )
        state[name] = torch.from_numpy(np.array(located.value, copy=True)).view(parameter.shape)
    unused = voice.unused_parameters()
    if unused:
        raise VoiceWeightsError(
            f"{voice.path.name}: the torch model has no place for tensors {unused[:5]}"
            + (f" and {len(unused) - 5} more" if len(unused) > 5 else "")
        )
    model.load_state_dict(state, strict=True)


def _as_exported(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The decoder runs its 1-D convolutions as 2-D ones over [B, C, 1, T]: its weights
    have a unit height, [out, in, 1, kernel], that the exported [out, in, kernel] lacks."""
    return shape[:2] + shape[3:] if len(shape) == 4 and shape[2] == 1 else shape


def _locate(voice: OnnxVoice, name: str) -> Located:
    # The exporter folds the duration flow's ElementwiseAffine into the
    # constant exp(-logs), the factor its Mul node applies.
    if name.endswith(".logs") and not voice.has(name):
        folded = voice.folded_input(node_name(name, "Mul"), 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = -np.log(folded.value)
        if not np.all(np.isfinite(logs)):
            raise VoiceWeightsError(
                f"{voice.path.name}: tensor {name!r} (folded into {folded.source!r}) "
                "is not a positive scale"
            )
        return Located(folded.source, logs.astype(np.float32))
    return voice.parameter(name)
