"""Reading TTSVoice/TTSPool manifests: defaults applied, mistakes named clearly."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ttsfleet.manifests import (
    ManifestError,
    PodConfig,
    load_manifests,
    manifests_from_documents,
    source_from_manifest,
    voice_from_manifest,
    voice_to_manifest,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _voice(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ttsfleet.dev/v1alpha1",
        "kind": "TTSVoice",
        "metadata": {"name": "v"},
        "spec": spec,
    }


def _pool(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ttsfleet.dev/v1alpha1",
        "kind": "TTSPool",
        "metadata": {"name": "p"},
        "spec": spec,
    }


def test_quickstart_example_reads_with_defaults() -> None:
    fleet = load_manifests(EXAMPLES / "quickstart.yaml")
    (pool,) = fleet.pools
    assert pool.voices == ("joe",) and pool.default_voice == "joe"
    assert pool.replicas == 2 and pool.device == "cpu"
    assert pool.autoscaling.enabled is False
    assert [v.name for v in fleet.voices_of(pool)] == ["joe"]


def test_voice_round_trips_through_the_pod_config() -> None:
    voice = voice_from_manifest(
        _voice(
            source={"package": "x"},
            defaults={"noiseScale": 0},
            lexicon=[{"word": "ttsfleet", "phonemes": "tˌiːtˌiːˈɛsfliːt"}],  # noqa: RUF001
        )
    )
    assert voice.lexicon == (("ttsfleet", "tˌiːtˌiːˈɛsfliːt"),)  # noqa: RUF001
    assert voice_from_manifest(voice_to_manifest(voice)) == voice
    pool = manifests_from_documents([_pool(voices=["v"])]).pools[0]
    data = PodConfig.of(pool, [voice]).to_dict()
    assert data["defaultVoice"] == "v" and data["voices"][0]["spec"]["source"] == {"package": "x"}
    assert PodConfig.from_dict(data) == PodConfig.of(pool, [voice])


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (_voice(source={}), "exactly one of package, path, url, huggingface, oci, s3, volume"),
        (_voice(source={"package": "a", "path": "/b"}), "exactly one of"),
        (_voice(source={"package": "a"}, engine="espeak"), "spec.engine 'espeak'"),
        (_voice(source={"package": "a"}, lexicon=[{"word": "a b", "phonemes": "x"}]), "lexicon[0]"),
        (_voice(source={"package": "a"}, lexicon=[{"word": "ab"}]), "lexicon[0] needs a word"),
        (_voice(source={"package": "a"}, lexicon={"ab": "x"}), "spec.lexicon must be a list"),
        (_pool(), "voices is required"),
        (_pool(voices=["a"], defaultVoice="b"), "defaultVoice 'b' is not in spec.voices"),
        (_pool(voices=["a"], device="tpu"), "spec.device 'tpu'"),
        (_pool(voices=["a"], replicas=-1), "must be positive"),
        ({**_pool(voices=["a"]), "apiVersion": "ttsfleet.dev/v9"}, "apiVersion must be"),
    ],
)
def test_mistakes_are_named(document: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError, match=re.escape(message)):
        manifests_from_documents([document])


def test_pool_naming_a_missing_voice_fails_clearly() -> None:
    fleet = manifests_from_documents([_pool(voices=["ghost"])])
    with pytest.raises(ManifestError, match="no TTSVoice named ghost"):
        fleet.voices_of(fleet.pools[0])


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: [unclosed\n")
    with pytest.raises(ManifestError, match=r"bad\.yaml: not valid YAML"):
        load_manifests(bad)


def _crd_defaults(schema: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every default in an OpenAPI schema, by dotted field path."""
    found = {}
    for name, prop in (schema.get("properties") or {}).items():
        path = f"{prefix}{name}"
        if "default" in prop and prop.get("type") != "object":
            found[path] = prop["default"]
        found |= _crd_defaults(prop, f"{path}.")
    return found


def test_the_crds_defaults_are_the_ones_python_applies() -> None:
    """The CRD is the API's source of truth; reading a bare pool must give the same values."""
    crd = yaml.safe_load((Path(__file__).resolve().parents[2] / "crds/ttspools.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    defaults = _crd_defaults(schema)
    pool = manifests_from_documents([_pool(voices=["v"])]).pools[0]
    assert {
        "queue.maxDepth": pool.queue_limit,
        "maxTextLength": pool.max_text_length,
        "maxUnaryResponseBytes": pool.max_unary_bytes,
        "batching.maxBatchSize": pool.batching.max_batch_size,
        "batching.maxWaitMilliseconds": pool.batching.max_wait_ms,
        "gpu.tf32": pool.gpu.tf32,
        "replicas": pool.replicas,
        "device": pool.device,
        "autoscaling.enabled": pool.autoscaling.enabled,
        "autoscaling.minReplicas": pool.autoscaling.min_replicas,
        "autoscaling.maxReplicas": pool.autoscaling.max_replicas,
        "autoscaling.targetQueuedAudioSeconds": pool.autoscaling.target_queued_audio_seconds,
        "autoscaling.scaleDownStabilizationSeconds": (
            pool.autoscaling.scale_down_stabilization_seconds
        ),
    } == {
        key: defaults[key]
        for key in defaults
        if key != "defaultVoice" and not key.startswith("rollout.")  # see test_rollout_decisions
    }


def test_a_pod_configuration_without_its_voices_names_the_field() -> None:
    with pytest.raises(ManifestError, match="voices is required"):
        PodConfig.from_dict({"defaultVoice": "v"})
    with pytest.raises(ManifestError, match="defaultVoice 'x' is not among its voices"):
        PodConfig.from_dict({"defaultVoice": "x", "voices": [_voice(source={"package": "p"})]})


def test_the_voice_source_defaults_are_the_ones_python_applies() -> None:
    """spec.source's CRD defaults and VoiceSource's, field for field."""
    crd = yaml.safe_load((Path(__file__).resolve().parents[2] / "crds/ttsvoices.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    defaults = _crd_defaults(spec["properties"]["source"])
    sha = "0" * 64
    hf = source_from_manifest({"huggingface": {"repo": "r", "file": "f.onnx"}, "sha256": sha}, "")
    oci = source_from_manifest({"oci": {"reference": "r.test/v"}, "sha256": sha}, "")
    s3 = source_from_manifest(
        {"s3": {"endpoint": "e", "bucket": "b", "key": "k"}, "sha256": sha}, ""
    )
    claim = source_from_manifest({"volume": {"claimName": "c"}}, "")
    assert hf.huggingface and oci.oci and s3.s3 and claim.volume
    assert {
        "huggingface.endpoint": hf.huggingface.endpoint,
        "huggingface.revision": hf.huggingface.revision,
        "oci.plainHttp": oci.oci.plain_http,
        "s3.region": s3.s3.region,
        "volume.path": claim.volume.path,
        "limits.maxBytes": hf.limits.max_bytes,
        "limits.connectTimeoutSeconds": hf.limits.connect_seconds,
        "limits.readTimeoutSeconds": hf.limits.read_seconds,
        "limits.totalTimeoutSeconds": hf.limits.total_seconds,
    } == defaults


@pytest.mark.parametrize(
    "source",
    [
        {"url": "https://h.test/j.onnx", "sha256": "a" * 64, "caConfigMap": "ca"},
        {"oci": {"reference": "r.test/v:1", "plainHttp": True}, "sha256": "b" * 64},
        {
            "s3": {"endpoint": "https://s3.test", "bucket": "bb", "key": "k.onnx",
                   "credentialsSecret": "keys"},
            "sha256": "c" * 64,
            "limits": {"maxBytes": 5, "connectTimeoutSeconds": 1, "readTimeoutSeconds": 2,
                       "totalTimeoutSeconds": 3},
        },
        {"volume": {"claimName": "voices", "path": "/en"}},
    ],
)  # fmt: skip
def test_every_source_round_trips_through_the_pod_config(source: dict[str, Any]) -> None:
    voice = voice_from_manifest(_voice(source=source))
    written = voice_to_manifest(voice)["spec"]["source"]
    for key, value in source.items():  # what was given, plus the defaults applied
        assert written[key] == value or value.items() <= written[key].items()
    assert voice_from_manifest(voice_to_manifest(voice)) == voice
