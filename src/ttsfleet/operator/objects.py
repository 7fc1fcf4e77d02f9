"""The objects a TTSPool owns, built as plain manifests from the pool and its voices.

Pure: no API calls. The same inputs always give the same manifests, which is
what makes server-side apply idempotent and lets a changed TTSVoice roll the
pool: the pod configuration's hash is a pod-template annotation, so any
change to it is a new ReplicaSet.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ttsfleet import wire
from ttsfleet.manifests import (
    API_VERSION,
    GRPC_PORT_NAME,
    POOL_LABEL,
    PodConfig,
    Pool,
    Voice,
    VoiceSource,
    source_to_manifest,
)
from ttsfleet.rollouts import REVISION_LABEL
from ttsfleet.voices.fetch import MODEL, cache_entry

DEFAULT_IMAGE = "ghcr.io/ttsfleet/inference:0.1.0"
MANAGED_BY = "ttsfleet-operator"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
CONFIG_HASH_ANNOTATION = "ttsfleet.dev/config-hash"
GPU_RESOURCE = "nvidia.com/gpu"
GRPC_PORT = 50051
HEALTH_PORT = 50052  # plaintext health checks only, when gRPC needs client certificates
TLS_DIR = "/etc/ttsfleet/tls"
METRICS_PORT = 9090
CONFIG_DIR = "/etc/ttsfleet"
CONFIG_KEY = "pod.yaml"
NAME_SUFFIX = "-inference"
RUN_AS = 65532  # the distroless "nonroot" user
# A pod drains this long on SIGTERM (finishing accepted work), and Kubernetes
# waits a margin longer before it kills it, so a drain is never cut short.
DRAIN_SECONDS = 30
TERMINATION_GRACE_SECONDS = DRAIN_SECONDS + 15
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's, when present: 10x faster

# The control-plane image: `ttsfleet fetch-voice` runs from it in init containers.
DEFAULT_FETCHER_IMAGE = "ghcr.io/ttsfleet/ttsfleet:0.1.0"
VOICE_CACHE_DIR = "/var/cache/ttsfleet/voices"  # in the pods; the node's directory is a flag
VOICE_VOLUMES_DIR = "/var/lib/ttsfleet/voice-volumes"
VOICE_CA_DIR = "/etc/ttsfleet/voice-ca"
S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


@dataclass(frozen=True)
class VoiceFetching:
    """How pods get voices that are not in their image (the operator's flags).

    `cache_dir` is a directory on each node (a hostPath, writable by the pods'
    user) that fetched voices are kept in by digest, so a second pod on the
    node downloads nothing; empty means a cache per pod (an emptyDir).
    `image_volumes` mounts OCI sources as image volumes, for clusters with
    the ImageVolume feature gate; otherwise an init container fetches them.
    """

    image: str = DEFAULT_FETCHER_IMAGE
    cache_dir: str = ""
    image_volumes: bool = False


DEFAULT_FETCHING = VoiceFetching()


@dataclass(frozen=True)
class PoolRef:
    """Which TTSPool object owns the manifests (owner references need the uid)."""

    namespace: str
    name: str
    uid: str

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> PoolRef:
        meta = body["metadata"]
        return cls(namespace=meta["namespace"], name=meta["name"], uid=meta["uid"])


def owned_name(pool: str) -> str:
    """The name shared by the pool's Deployment, Service, ConfigMap and PDB."""
    return pool + NAME_SUFFIX


def selector_labels(pool: str) -> dict[str, str]:
    """The Deployment's (immutable) selector: keep it minimal."""
    return {"app.kubernetes.io/name": "ttsfleet-inference", POOL_LABEL: pool}


def selector_string(pool: str) -> str:
    """The selector as the scale subresource, HPA and KEDA read it."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector_labels(pool).items()))


def labels(pool: str) -> dict[str, str]:
    return {
        **selector_labels(pool),
        "app.kubernetes.io/instance": pool,
        "app.kubernetes.io/component": "inference",
        "app.kubernetes.io/part-of": "ttsfleet",
        MANAGED_BY_LABEL: MANAGED_BY,
    }


def owner_reference(ref: PoolRef) -> dict[str, Any]:
    """Makes the pool the controller of an object, which goes when the pool goes."""
    return {
        "apiVersion": API_VERSION,
        "kind": "TTSPool",
        "name": ref.name,
        "uid": ref.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(ref: PoolRef, **extra: Any) -> dict[str, Any]:
    return {
        "name": owned_name(ref.name),
        "namespace": ref.namespace,
        "labels": labels(ref.name),
        "ownerReferences": [owner_reference(ref)],
        **extra,
    }


def _mounted_as_image(voice: Voice, fetching: VoiceFetching) -> bool:
    return voice.source.oci is not None and fetching.image_volumes


def _fetched(voice: Voice, fetching: VoiceFetching) -> bool:
    """A remote voice that an init container fetches into the cache."""
    return voice.source.remote and not _mounted_as_image(voice, fetching)


def pod_voice_path(voice: Voice, fetching: VoiceFetching) -> str | None:
    """Where the pod finds a voice that is not in its image; None for package and path voices."""
    source = voice.source
    if _fetched(voice, fetching):
        return str(cache_entry(Path(VOICE_CACHE_DIR), source.sha256) / MODEL)
    if _mounted_as_image(voice, fetching):
        return f"{VOICE_VOLUMES_DIR}/{voice.name}"
    if source.volume is not None:
        return f"{VOICE_VOLUMES_DIR}/{voice.name}/{source.volume.path.lstrip('/')}".rstrip("/")
    return None


def pod_config_text(
    pool: Pool, voices: Iterable[Voice], fetching: VoiceFetching = DEFAULT_FETCHING
) -> str:
    """The pod.yaml a pod loads: fetched and mounted voices appear as the paths they are at."""
    local = []
    for voice in voices:
        path = pod_voice_path(voice, fetching)
        local.append(dataclasses.replace(voice, source=VoiceSource(path=path)) if path else voice)
    return yaml.dump(PodConfig.of(pool, local).to_dict(), Dumper=_DUMPER, sort_keys=True)


def config_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_map(ref: PoolRef, text: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(ref, annotations={CONFIG_HASH_ANNOTATION: config_hash(text)}),
        "data": {CONFIG_KEY: text},
    }


def service(ref: PoolRef) -> dict[str, Any]:
    """Headless: the router reads its EndpointSlices and picks pods itself."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(ref),
        "spec": {
            "clusterIP": "None",
            "selector": selector_labels(ref.name),
            "ports": [
                {
                    "name": GRPC_PORT_NAME,
                    "port": GRPC_PORT,
                    "targetPort": GRPC_PORT_NAME,
                    "appProtocol": "kubernetes.io/h2c",
                },
                {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"},
            ],
        },
    }


def pod_disruption_budget(ref: PoolRef) -> dict[str, Any]:
    """One pod at a time may be evicted, so drains proceed but never empty a pool."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(ref),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(ref.name)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def _resources(pool: Pool) -> dict[str, Any]:
    """The pool's resources as strings (as the API stores them), plus a GPU on cuda."""
    given = pool.raw_spec.get("resources") or {}
    resources = {
        kind: {name: str(q) for name, q in (given.get(kind) or {}).items()}
        for kind in ("limits", "requests")
    }
    named_gpu = GPU_RESOURCE in resources["limits"] or GPU_RESOURCE in resources["requests"]
    if pool.device == "cuda" and not named_gpu:
        resources["limits"][GPU_RESOURCE] = "1"
    return {kind: values for kind, values in resources.items() if values}


def _tolerations(pool: Pool) -> list[dict[str, Any]]:
    tolerations = list(pool.raw_spec.get("tolerations") or [])
    if pool.device == "cuda" and not any(t.get("key") == GPU_RESOURCE for t in tolerations):
        tolerations.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    return tolerations


CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}


def _fetch_container(index: int, voice: Voice, fetching: VoiceFetching) -> dict[str, Any]:
    """`ttsfleet fetch-voice` for one remote voice: into the cache, verified, or the pod waits."""
    source = voice.source
    command = ["ttsfleet", "fetch-voice", "--voice", voice.name, "--cache", VOICE_CACHE_DIR]
    command += ["--source", json.dumps(source_to_manifest(source), sort_keys=True)]
    mounts: list[dict[str, Any]] = [{"name": "voice-cache", "mountPath": VOICE_CACHE_DIR}]
    if source.ca_config_map:
        command += ["--ca-file", f"{VOICE_CA_DIR}/{index}/ca.crt"]
        mounts.append(
            {"name": f"voice-ca-{index}", "mountPath": f"{VOICE_CA_DIR}/{index}", "readOnly": True}
        )
    secret = source.s3.credentials_secret if source.s3 is not None else ""
    env = [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        for key in S3_KEYS
        if secret
    ]
    return {
        "name": f"fetch-voice-{index}",
        "image": fetching.image,
        "command": command,
        **({"env": env} if env else {}),
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": mounts,
    }


def _voice_volumes(voices: list[Voice], fetching: VoiceFetching) -> list[dict[str, Any]]:
    """The cache, each fetched voice's CA, and each mounted voice's PVC or image."""
    cache: dict[str, Any] = (
        {"hostPath": {"path": fetching.cache_dir, "type": "DirectoryOrCreate"}}
        if fetching.cache_dir
        else {"emptyDir": {}}
    )
    volumes = [{"name": "voice-cache", **cache}]
    for index, voice in enumerate(voices):
        source = voice.source
        if _fetched(voice, fetching) and source.ca_config_map:
            volumes.append(
                {"name": f"voice-ca-{index}", "configMap": {"name": source.ca_config_map}}
            )
        elif _mounted_as_image(voice, fetching) and source.oci is not None:
            image = {"reference": source.oci.reference, "pullPolicy": "IfNotPresent"}
            volumes.append({"name": f"voice-{index}", "image": image})
        elif source.volume is not None:
            claim = {"claimName": source.volume.claim_name, "readOnly": True}
            volumes.append({"name": f"voice-{index}", "persistentVolumeClaim": claim})
    return volumes


def _voice_mounts(voices: list[Voice], fetching: VoiceFetching) -> list[dict[str, Any]]:
    return [{"name": "voice-cache", "mountPath": VOICE_CACHE_DIR, "readOnly": True}] + [
        {
            "name": f"voice-{index}",
            "mountPath": f"{VOICE_VOLUMES_DIR}/{voice.name}",
            "readOnly": True,
        }
        for index, voice in enumerate(voices)
        if voice.source.volume is not None or _mounted_as_image(voice, fetching)
    ]


def _probe(period: int, failures: int, port: int, service: str = "") -> dict[str, Any]:
    check: dict[str, Any] = {"port": port, **({"service": service} if service else {})}
    return {"grpc": check, "periodSeconds": period, "failureThreshold": failures}


def _spread(pool: str, topology_key: str) -> dict[str, Any]:
    return {
        "maxSkew": 1,
        "topologyKey": topology_key,
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": selector_labels(pool)},
        "matchLabelKeys": ["pod-template-hash"],
    }


def _tls_args(tls_secret: str) -> list[str]:
    """With a TLS Secret: mutual TLS on the gRPC port, plaintext health checks for probes."""
    if not tls_secret:
        return []
    return [
        "--tls-cert", f"{TLS_DIR}/tls.crt",
        "--tls-key", f"{TLS_DIR}/tls.key",
        "--tls-client-ca", f"{TLS_DIR}/ca.crt",
        "--health-port", str(HEALTH_PORT),
    ]  # fmt: skip


def deployment(
    ref: PoolRef,
    pool: Pool,
    voices: list[Voice],
    image: str,
    text: str,
    tls_secret: str = "",
    fetching: VoiceFetching = DEFAULT_FETCHING,
) -> dict[str, Any]:
    """The inference pods: config mounted read-only, gRPC probes, non-root, spread out."""
    spec = pool.raw_spec
    image = spec.get("image") or image
    # The kubelet's gRPC probe speaks plaintext: with mutual TLS it asks the health port.
    probe_port = HEALTH_PORT if tls_secret else GRPC_PORT
    container = {
        "name": "inference",
        "image": image,
        "command": ["ttsfleet", "inference"],
        "args": [
            "--config",
            f"{CONFIG_DIR}/{CONFIG_KEY}",
            "--host",
            "0.0.0.0",
            "--port",
            str(GRPC_PORT),
            "--metrics-port",
            str(METRICS_PORT),
            "--drain-seconds",
            str(DRAIN_SECONDS),
            *_tls_args(tls_secret),
        ],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {
                "name": "POD_NAMESPACE",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
            },
            {"name": "HOME", "value": "/tmp"},
            # One engine thread per core the pod may use: torch's OpenMP
            # threads slow down several-fold when they outnumber free cores.
            {
                "name": "OMP_NUM_THREADS",
                "valueFrom": {
                    "resourceFieldRef": {
                        "containerName": "inference",
                        "resource": "limits.cpu",
                        "divisor": "1",
                    }
                },
            },
        ],
        "ports": [
            {"name": GRPC_PORT_NAME, "containerPort": GRPC_PORT},
            {"name": "metrics", "containerPort": METRICS_PORT},
        ],
        "startupProbe": _probe(5, 60, probe_port),  # loading voices may take minutes
        "readinessProbe": _probe(5, 2, probe_port),
        # A hung engine fails `liveness` (see inference/server.py), so the pod restarts.
        "livenessProbe": _probe(10, 3, probe_port, service=wire.LIVENESS_SERVICE),
        "resources": _resources(pool),
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            *_voice_mounts(voices, fetching),
            {"name": "tmp", "mountPath": "/tmp"},
            *([{"name": "tls", "mountPath": TLS_DIR, "readOnly": True}] if tls_secret else []),
        ],
    }
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "initContainers": [
            _fetch_container(index, voice, fetching)
            for index, voice in enumerate(voices)
            if _fetched(voice, fetching)
        ],
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": owned_name(ref.name)}},
            *_voice_volumes(voices, fetching),
            {"name": "tmp", "emptyDir": {}},
            *([{"name": "tls", "secret": {"secretName": tls_secret}}] if tls_secret else []),
        ],
        "topologySpreadConstraints": [
            _spread(ref.name, "kubernetes.io/hostname"),
            _spread(ref.name, "topology.kubernetes.io/zone"),
        ],
        "nodeSelector": spec.get("nodeSelector") or {},
        "tolerations": _tolerations(pool),
        "affinity": spec.get("affinity") or {},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(ref),
        "spec": {
            "replicas": pool.replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": selector_labels(ref.name)},
            # Surge rather than remove: a GPU pod takes long to load its voices.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": labels(ref.name),
                    "annotations": {
                        CONFIG_HASH_ANNOTATION: config_hash(text),
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(METRICS_PORT),
                    },
                },
                "spec": {k: v for k, v in pod_spec.items() if v != [] and v != {}},
            },
        },
    }


def desired_objects(
    ref: PoolRef,
    pool: Pool,
    voices: list[Voice],
    image: str = DEFAULT_IMAGE,
    tls_secret: str = "",
    fetching: VoiceFetching = DEFAULT_FETCHING,
    revision: str = "",
) -> list[dict[str, Any]]:
    """Everything the pool owns, in apply order (the ConfigMap before the pods need it).

    With a revision, the Service (and so its EndpointSlices, which the router
    reads) and the pods say which revision of the voices they serve.
    """
    text = pod_config_text(pool, voices, fetching)
    objects = [
        config_map(ref, text),
        service(ref),
        deployment(ref, pool, voices, image, text, tls_secret, fetching),
        pod_disruption_budget(ref),
    ]
    if revision:
        objects[1]["metadata"]["labels"][REVISION_LABEL] = revision
        objects[2]["spec"]["template"]["metadata"]["labels"][REVISION_LABEL] = revision
    return objects
