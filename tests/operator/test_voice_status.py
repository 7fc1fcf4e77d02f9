"""TTSVoice status on the real control plane: each voice is checked once, Ready or Degraded with why.

The operator (a real process, least-privilege role) fetches remote voices
from a Hugging Face-style HTTPS server on loopback whose CA reaches it
through the voice's caConfigMap, as it would in a cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import voice_servers
import yaml
from operator_harness import GROUP, VERSION, Cluster, OperatorProcess, pool_yaml, voice_yaml
from voice_servers import JOE_CONFIG, JOE_MODEL, JOE_SHA256, Hub

WRONG_SHA256 = "f" * 64


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with voice_servers.hub(tmp_path_factory.mktemp("hub")) as server:
        server.publish(
            "rhasspy/joe", "v1", "en/joe.onnx", JOE_MODEL.read_bytes(), JOE_CONFIG.read_bytes()
        )
        yield server


@pytest.fixture
def operator(operators: Callable[..., OperatorProcess]) -> OperatorProcess:
    return operators()


def voice(cluster: Cluster, name: str) -> dict[str, Any]:
    found: dict[str, Any] = cluster.custom.get_namespaced_custom_object(
        GROUP, VERSION, cluster.namespace, "ttsvoices", name
    )
    return found


def conditions(body: dict[str, Any]) -> dict[str, tuple[str, str]]:
    found = (body.get("status") or {}).get("conditions") or []
    return {c["type"]: (c["status"], c["reason"]) for c in found}


def wait_checked(cluster: Cluster, name: str, ready: str) -> dict[str, Any]:
    """The voice once its status reflects its generation with Ready == `ready`."""

    def checked() -> dict[str, Any] | None:
        body = voice(cluster, name)
        status = body.get("status") or {}
        current = status.get("observedGeneration") == body["metadata"]["generation"]
        return body if current and conditions(body).get("Ready", ("",))[0] == ready else None

    return cluster.wait(checked, f"TTSVoice {name} Ready={ready}", timeout=90)  # type: ignore[no-any-return]


def hf_voice(hub: Hub, name: str, sha256: str = JOE_SHA256, file: str = "en/joe.onnx") -> str:
    source = {
        "huggingface": {"endpoint": hub.url, "repo": "rhasspy/joe", "revision": "v1", "file": file},
        "sha256": sha256,
        "caConfigMap": "voice-ca",
    }
    return voice_yaml(name, source=source)


def ca_config_map(hub: Hub) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "voice-ca"},
            "data": {"ca.crt": Path(hub.ca_file).read_text()},
        }
    )


def test_package_voice_reports_its_file_and_pools(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    cluster.apply(voice_yaml("joe"))
    status = wait_checked(cluster, "joe", "True")["status"]
    assert conditions(voice(cluster, "joe")) == {
        "Ready": ("True", "Found"),
        "Degraded": ("False", "AsExpected"),
    }
    assert (status["sampleRate"], status["speakerCount"], status["speakers"]) == (22050, 0, [])
    assert status["sha256"] == JOE_SHA256 and status["source"] == str(JOE_MODEL)
    assert status["pools"] == []

    cluster.apply(pool_yaml("english", voices=["joe"]))
    cluster.wait(lambda: voice(cluster, "joe")["status"]["pools"] == ["english"], "pools listed")

    printed = cluster.kubectl("get", "ttsv", "joe").stdout.split()
    assert printed[:7] == ["NAME", "ENGINE", "LANGUAGE", "READY", "RATE", "SPEAKERS", "AGE"]
    assert printed[7:13] == ["joe", "piper-onnx", "en-US", "True", "22050", "0"]
    annotations = voice(cluster, "joe")["metadata"].get("annotations") or {}
    assert not [a for a in annotations if a.startswith("kopf.")]  # state lives in status.kopf


def test_remote_voice_verified_then_degraded_by_a_wrong_digest(
    cluster: Cluster, operator: OperatorProcess, hub: Hub
) -> None:
    cluster.apply(ca_config_map(hub))
    cluster.apply(hf_voice(hub, "joe"))
    status = wait_checked(cluster, "joe", "True")["status"]
    assert status["source"] == f"{hub.url}/rhasspy/joe/resolve/v1/en/joe.onnx"
    assert (status["sha256"], status["sizeBytes"]) == (JOE_SHA256, JOE_MODEL.stat().st_size)
    assert status["sampleRate"] == 22050

    cluster.apply(hf_voice(hub, "joe", sha256=WRONG_SHA256))
    body = wait_checked(cluster, "joe", "False")
    assert conditions(body)["Degraded"] == ("True", "DigestMismatch")
    message = next(c["message"] for c in body["status"]["conditions"] if c["type"] == "Degraded")
    assert JOE_SHA256 in message and WRONG_SHA256 in message
    assert "sha256" not in body["status"]  # nothing verified is claimed
    events = cluster.core.list_namespaced_event(
        cluster.namespace, field_selector="involvedObject.name=joe,reason=DigestMismatch"
    )
    assert [e.type for e in events.items] == ["Warning"]


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ({"file": "en/nobody.onnx"}, "NotFound"),
        ({"sampleRate": 16000}, "SampleRateMismatch"),
        ({"caConfigMap": "no-such-ca"}, "MissingCA"),
    ],
)
def test_bad_voices_are_degraded_with_the_reason(
    cluster: Cluster, operator: OperatorProcess, hub: Hub, edit: dict[str, Any], reason: str
) -> None:
    cluster.apply(ca_config_map(hub))
    manifest = yaml.safe_load(hf_voice(hub, "joe", file=edit.get("file", "en/joe.onnx")))
    if "sampleRate" in edit:
        manifest["spec"]["sampleRate"] = edit["sampleRate"]
    if "caConfigMap" in edit:
        manifest["spec"]["source"]["caConfigMap"] = edit["caConfigMap"]
    cluster.apply(yaml.safe_dump(manifest))
    body = wait_checked(cluster, "joe", "False")
    assert conditions(body) == {"Ready": ("False", reason), "Degraded": ("True", reason)}
    printed = cluster.kubectl("get", "ttsv", "joe", "-o", "wide").stdout
    assert reason in printed


def test_pool_pods_fetch_remote_voices_into_the_node_cache_and_mount_claims(
    cluster: Cluster, operators: Callable[..., OperatorProcess], hub: Hub
) -> None:
    """The API server accepts the pods as the operator writes them for non-image voices."""
    operators("--voice-cache-dir", "/var/cache/ttsfleet-voices", "--fetcher-image", "cp:test")
    cluster.apply(ca_config_map(hub))
    cluster.apply(hf_voice(hub, "joe"))
    claim = {"volume": {"claimName": "voices", "path": "/en/ann.onnx"}}
    cluster.apply(voice_yaml("ann", source=claim))
    cluster.apply(pool_yaml("english", voices=["joe", "ann"]))
    deployment = cluster.wait(lambda: cluster.deployment("english"), "the pool's Deployment")
    pod = deployment.spec.template.spec
    [init] = pod.init_containers
    assert (init.image, init.command[:2]) == ("cp:test", ["ttsfleet", "fetch-voice"])
    volumes = {v.name: v for v in pod.volumes}
    assert volumes["voice-cache"].host_path.path == "/var/cache/ttsfleet-voices"
    assert volumes["voice-ca-0"].config_map.name == "voice-ca"
    pvc = volumes["voice-1"].persistent_volume_claim
    assert (pvc.claim_name, pvc.read_only) == ("voices", True)
    body = wait_checked(cluster, "ann", "True")
    assert conditions(body)["Ready"] == ("True", "OnVolume")
    assert body["status"]["pools"] == ["english"]


def test_a_degraded_voice_degrades_its_pool_without_rolling_it(
    cluster: Cluster, operator: OperatorProcess, hub: Hub
) -> None:
    cluster.apply(ca_config_map(hub))
    cluster.apply(hf_voice(hub, "joe"))
    cluster.apply(pool_yaml("english", voices=["joe"]))
    wait_checked(cluster, "joe", "True")
    cluster.wait_ready("english")
    template = cluster.deployment("english").spec.template.metadata.annotations

    cluster.apply(hf_voice(hub, "joe", sha256=WRONG_SHA256))
    wait_checked(cluster, "joe", "False")
    degraded = cluster.wait(
        lambda: (c := cluster.condition("english", "Degraded")).get("status") == "True" and c,
        "the pool Degraded by its voice",
    )
    assert degraded["reason"] == "VoiceDegraded"
    assert "TTSVoice joe is Degraded (DigestMismatch" in degraded["message"]
    assert WRONG_SHA256 in degraded["message"]
    # The pods keep the voice that checked out: nothing was rolled.
    assert cluster.deployment("english").spec.template.metadata.annotations == template

    cluster.apply(hf_voice(hub, "joe"))
    cluster.wait(
        lambda: cluster.condition("english", "Degraded").get("status") == "False",
        "the pool recovered with its voice",
    )
