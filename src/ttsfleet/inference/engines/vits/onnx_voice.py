"""Reads a Piper voice's ONNX file: its tensors, found by the names of the modules that use them.

Piper exports VITS with torch.onnx, which keeps most parameter names
(`dec.ups.0.weight`) but not all: weights that passed through weight
normalisation come out folded under anonymous names (`onnx::Conv_8168`), the
phoneme embedding may be renamed (`sid`), and constant subexpressions are
folded (the duration flow's `exp(-logs)`). The graph still names every node
after its module (`/flow/flows.0/enc/in_layers.0/Conv`), so a parameter that
is not found by name is found as the input of the node its module produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
from onnx import numpy_helper

Array = npt.NDArray[np.float32]


class VoiceWeightsError(ValueError):
    """The voice's tensors do not fit the torch model; the message names the tensor."""


@dataclass(frozen=True)
class Located:
    """A parameter's value and the initializer it came from, for error messages."""

    source: str
    value: Array


# (parameter name, node op, node input index), tried in order when the name
# itself is not an initializer. Weight-normalised convolutions and renamed
# embeddings are the cases Piper's exporter produces.
_BY_NODE = (
    ("weight", "Conv", 1),
    ("weight", "ConvTranspose", 1),
    ("weight", "Gather", 0),
    ("bias", "Conv", 2),
    ("bias", "ConvTranspose", 2),
)


class OnnxVoice:
    """The initializers and node attributes of one exported voice."""

    def __init__(self, path: Path) -> None:
        self.path = path
        graph = onnx.load(str(path)).graph
        self.initializers: dict[str, Array] = {
            tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer
        }
        self._nodes = {node.name: node for node in graph.node}
        self.used: set[str] = set()

    def has(self, name: str) -> bool:
        """Whether the voice has this parameter, under its own name or through its node."""
        return self._find(name) is not None

    def parameter(self, name: str) -> Located:
        """The value of a torch parameter named like the original PyTorch module's."""
        found = self._find(name)
        if found is None:
            raise VoiceWeightsError(
                f"{self.path.name}: tensor {name!r} is missing (no initializer by that name, "
                f"and no {node_name(name, '<op>')} node reading one)"
            )
        self.used.add(found.source)
        return found

    def shape(self, name: str) -> tuple[int, ...]:
        """The shape of a parameter, for reading the network's dimensions."""
        found = self._find(name)
        if found is None:
            raise VoiceWeightsError(f"{self.path.name}: tensor {name!r} is missing")
        return tuple(int(size) for size in found.value.shape)

    def int_attribute(self, node_path: str, attribute: str) -> list[int]:
        """An integer-list attribute of a node (a convolution's dilations, strides)."""
        node = self._nodes.get(node_path)
        if node is None:
            raise VoiceWeightsError(f"{self.path.name}: graph has no node {node_path!r}")
        for attr in node.attribute:
            if attr.name == attribute:
                return [int(value) for value in attr.ints]
        raise VoiceWeightsError(f"{self.path.name}: node {node_path!r} has no {attribute!r}")

    def folded_input(self, node_path: str, index: int) -> Located:
        """A constant that the exporter folded into a node's input."""
        node = self._nodes.get(node_path)
        if node is None or len(node.input) <= index or node.input[index] not in self.initializers:
            raise VoiceWeightsError(
                f"{self.path.name}: expected a constant at input {index} of node {node_path!r}"
            )
        source = node.input[index]
        self.used.add(source)
        return Located(source, self.initializers[source])

    def unused_parameters(self) -> list[str]:
        """Float tensors of the voice that no parameter took: a model that does not fit.

        Folded graph constants (named after their node, `/…`) are not parameters.
        """
        return sorted(
            name
            for name, value in self.initializers.items()
            if name not in self.used
            and not name.startswith("/")
            and value.dtype == np.float32
            and value.ndim > 0
        )

    def _find(self, name: str) -> Located | None:
        if name in self.initializers:
            return Located(name, self.initializers[name])
        kind = name.rsplit(".", 1)[-1]
        for parameter, op, index in _BY_NODE:
            if parameter != kind:
                continue
            node = self._nodes.get(node_name(name, op))
            if (
                node is not None
                and len(node.input) > index
                and node.input[index] in self.initializers
            ):
                return Located(node.input[index], self.initializers[node.input[index]])
        return None


def node_name(parameter: str, op: str) -> str:
    """The node a parameter's module exported: `flow.flows.0.enc.in_layers.1.weight`, `Conv`
    → `/flow/flows.0/enc/in_layers.1/Conv`."""
    path = ""
    for part in parameter.split(".")[:-1]:
        path += f".{part}" if part.isdigit() else f"/{part}"
    return f"{path}/{op}"
