"""A multi-speaker Piper voice made from joe's: the shipped graph with VITS speaker conditioning.

No multi-speaker voice ships as a package, so the tests build one. joe's
exported graph is edited into what Piper's exporter writes for a
multi-speaker VITS (n_speakers > 1, gin_channels > 0): a `sid` input, the
speaker embedding `emb_g` gathered by it, and its projections added where
VITS adds them: to the duration predictor's input (`dp.cond`), to every
WaveNet gate of the flow (`cond_layer`, one slice per layer) and to the
decoder's first convolution (`dec.cond`). Node and tensor names follow
Piper's export, including the anonymous name weight normalisation gives
`cond_layer`'s weight. The new weights are small, seeded random numbers:
speech stays speech, and each speaker sounds a little different.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from voices import JOE

from ttsfleet.manifests import Voice, VoiceDefaults, VoiceSource
from ttsfleet.voices.files import voice_files

SPEAKERS = ("ada", "bo", "cy")
GIN_CHANNELS = 16


def build_voice(directory: Path, seed: int = 18) -> Path:
    """Writes the voice (`.onnx` and `.onnx.json`) into directory; returns the model's path."""
    model_path, config_path = voice_files(JOE.source)
    model = onnx.load(str(model_path))
    graph = model.graph
    rng = np.random.default_rng(seed)
    added: list[onnx.NodeProto] = []

    def weight(name: str, *shape: int, scale: float) -> str:
        values = (rng.standard_normal(shape) * scale).astype(np.float32)
        graph.initializer.append(numpy_helper.from_array(values, name))
        return name

    def node(op: str, name: str, inputs: list[str], **attributes: object) -> str:
        output = f"{name}_output_0"
        added.append(helper.make_node(op, inputs, [output], name=name, **attributes))
        return output

    def cond(path: str, channels: int, weight_name: str) -> str:
        """A 1x1 convolution of g, as the module at `path` (`/dp/cond`) exports."""
        module = path.strip("/").replace("/", ".")
        return node(
            "Conv",
            f"{path}/Conv",
            [
                g,
                weight(weight_name, channels, GIN_CHANNELS, 1, scale=0.05),
                weight(f"{module}.bias", channels, scale=0.05),
            ],
            kernel_shape=[1],
        )

    # joe's export named the phoneme embedding after the unused speaker input.
    _rename(graph, "sid", "enc_p.emb.weight")
    graph.input.append(helper.make_tensor_value_info("sid", TensorProto.INT64, [1]))
    gathered = node(
        "Gather",
        "/emb_g/Gather",
        [weight("emb_g.weight", len(SPEAKERS), GIN_CHANNELS, scale=1.0), "sid"],
    )
    axes = numpy_helper.from_array(np.array([-1], dtype=np.int64), "/emb_g/axes")
    graph.initializer.append(axes)
    g = node("Unsqueeze", "/emb_g/Unsqueeze", [gathered, axes.name])  # [1, gin, 1]

    shapes = {t.name: tuple(t.dims) for t in graph.initializer}
    _add_to_output(
        graph, "/dp/pre/Conv", cond("/dp/cond", shapes["dp.pre.bias"][0], "dp.cond.weight"), added
    )
    _add_to_output(
        graph,
        "/dec/conv_pre/Conv",
        cond("/dec/cond", shapes["dec.conv_pre.bias"][0], "dec.cond.weight"),
        added,
    )
    for flow in sorted(
        {n.name.split("/")[2] for n in graph.node if n.name.startswith("/flow/flows.")}
    ):
        gates = _gate_adds(graph, flow)
        if not gates:
            continue  # a flip: no WaveNet
        width = shapes[f"flow.{flow}.enc.in_layers.0.bias"][0]
        projected = cond(
            f"/flow/{flow}/enc/cond_layer", width * len(gates), f"onnx::Conv_cond_{flow}"
        )
        for layer, gate in enumerate(gates):
            starts, ends, axis = (
                numpy_helper.from_array(
                    np.array([v], dtype=np.int64), f"/flow/{flow}/enc/{key}_{layer}"
                )
                for key, v in (
                    ("starts", layer * width),
                    ("ends", (layer + 1) * width),
                    ("axis", 1),
                )
            )
            graph.initializer.extend([starts, ends, axis])
            sliced = node(
                "Slice",
                f"/flow/{flow}/enc/cond_Slice_{layer}",
                [projected, starts.name, ends.name, axis.name],
            )
            gate.input[1] = sliced  # in place of the zeros a single-speaker WN adds
    graph.node.extend(added)
    _sort_topologically(graph)
    onnx.checker.check_model(model)

    directory.mkdir(parents=True, exist_ok=True)
    out = directory / "en_US-trio-medium.onnx"
    onnx.save(model, str(out))
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.update(
        num_speakers=len(SPEAKERS),
        speaker_id_map={name: i for i, name in enumerate(SPEAKERS)},
        dataset="trio",
    )
    out.with_name(out.name + ".json").write_text(json.dumps(config), encoding="utf-8")
    return out


def voice(model: Path, engine: str, name: str = "trio", speaker: int | None = None) -> Voice:
    """The built voice as a TTSVoice, noise off so that both engines' audio can be compared."""
    return Voice(
        name=name,
        source=VoiceSource(path=str(model)),
        engine=engine,
        language="en-US",
        defaults=VoiceDefaults(noise_scale=0.0, noise_w=0.0, speaker=speaker),
    )


def _add_to_output(
    graph: onnx.GraphProto, node_name: str, term: str, added: list[onnx.NodeProto]
) -> None:
    """Adds `term` to a node's output for every consumer of it (x = conv(x) + cond(g))."""
    (producer,) = (n for n in graph.node if n.name == node_name)
    original = producer.output[0]
    summed = f"{node_name}_plus_cond"
    for consumer in graph.node:
        for i, name in enumerate(consumer.input):
            if name == original:
                consumer.input[i] = summed
    added.append(helper.make_node("Add", [original, term], [summed], name=f"{node_name}_cond_Add"))


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    for tensor in graph.initializer:
        if tensor.name == old:
            tensor.name = new
    for consumer in graph.node:
        for i, name in enumerate(consumer.input):
            if name == old:
                consumer.input[i] = new


def _gate_adds(graph: onnx.GraphProto, flow: str) -> list[onnx.NodeProto]:
    """The Add of each WaveNet layer's gate (in_layer output + a zero condition), in layer order."""
    gates = []
    layer = 0
    while True:
        output = f"/flow/{flow}/enc/in_layers.{layer}/Conv_output_0"
        adds = [n for n in graph.node if n.op_type == "Add" and n.input and n.input[0] == output]
        if not adds:
            return gates
        gates.append(adds[0])
        layer += 1


def _sort_topologically(graph: onnx.GraphProto) -> None:
    """ONNX wants every node after the producers of its inputs."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        rest = []
        for n in pending:
            if all(i in ready for i in n.input):
                ordered.append(n)
                ready.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise ValueError(f"graph has a cycle or a missing input near {rest[0].name}")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)
