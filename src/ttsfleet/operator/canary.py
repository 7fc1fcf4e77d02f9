"""The objects of a rollout, built as plain manifests (pure): canary pods, revision records, the gate.

The canary's ConfigMap, Service and Deployment are the stable ones under
`<pool>-inference-canary`, with pods that carry the canary label instead of
the pool label, so neither Deployment nor the stable Service ever selects
the other's pods. Each revision's voices are kept in a ControllerRevision
owned by the pool: the stable pods are rebuilt from it while the voices'
specs already say something newer.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from ttsfleet.manifests import (
    POOL_LABEL,
    ManifestError,
    Voice,
    voice_from_manifest,
    voice_to_manifest,
)
from ttsfleet.operator.objects import (
    CONTAINER_SECURITY,
    GRPC_PORT,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    RUN_AS,
    TLS_DIR,
    PoolRef,
    owned_name,
    owner_reference,
    selector_labels,
)
from ttsfleet.rollouts import CANARY_LABEL, REVISION_LABEL, Rollout

CANARY_SUFFIX = "-canary"
# The gate image (docker/Dockerfile built with the `gate` extra): Whisper and
# the measuring libraries, which neither the inference nor the control-plane image carries.
DEFAULT_GATE_IMAGE = "ghcr.io/ttsfleet/gate:0.1.0"
# What the chart's NetworkPolicy admits to inference pods' gRPC port from the pool's namespace.
GATE_POD_LABELS = {"app.kubernetes.io/name": "ttsfleet-gate"}
CANARY_KINDS = ("ConfigMap", "Service", "Deployment")  # no PDB: a canary may go at once


def canary_name(pool: str) -> str:
    return owned_name(pool) + CANARY_SUFFIX


def canary_selector(pool: str) -> dict[str, str]:
    labels = {k: v for k, v in selector_labels(pool).items() if k != POOL_LABEL}
    return {**labels, CANARY_LABEL: pool}


def canary_objects(
    ref: PoolRef, stable: list[dict[str, Any]], revision: str, replicas: int
) -> list[dict[str, Any]]:
    """The canary's objects, made from the stable objects built with the canary's voices."""
    name, selector = canary_name(ref.name), canary_selector(ref.name)
    objects = []
    for manifest in copy.deepcopy([m for m in stable if m["kind"] in CANARY_KINDS]):
        meta = manifest["metadata"]
        meta["name"] = name
        meta["labels"] |= {CANARY_LABEL: ref.name, REVISION_LABEL: revision}
        if manifest["kind"] == "Service":
            manifest["spec"]["selector"] = selector
        if manifest["kind"] == "Deployment":
            spec = manifest["spec"]
            spec["replicas"] = replicas
            spec["selector"] = {"matchLabels": selector}
            template = spec["template"]
            pod_labels = {k: v for k, v in template["metadata"]["labels"].items()}
            pod_labels.pop(POOL_LABEL)
            template["metadata"]["labels"] = pod_labels | selector | {REVISION_LABEL: revision}
            pod = template["spec"]
            for volume in pod["volumes"]:
                if volume["name"] == "config":
                    volume["configMap"]["name"] = name
            for spread in pod.get("topologySpreadConstraints") or ():
                spread["labelSelector"] = {"matchLabels": selector}
        objects.append(manifest)
    return objects


def _owned_metadata(ref: PoolRef, name: str, revision: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": ref.namespace,
        "labels": {MANAGED_BY_LABEL: MANAGED_BY, POOL_LABEL: ref.name, REVISION_LABEL: revision},
        "ownerReferences": [owner_reference(ref)],
    }


def record_name(pool: str, revision: str) -> str:
    return f"{pool}-{revision}"


def revision_record(
    ref: PoolRef, revision: str, voices: list[Voice], number: int
) -> dict[str, Any]:
    """A ControllerRevision holding the voices of one revision of the pool."""
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": _owned_metadata(ref, record_name(ref.name, revision), revision),
        "data": {"voices": [voice_to_manifest(v) for v in voices]},
        "revision": number,
    }


def recorded_voices(record: Mapping[str, Any]) -> list[Voice]:
    """The voices a ControllerRevision holds; ManifestError when it holds none readable."""
    voices = (record.get("data") or {}).get("voices")
    if not isinstance(voices, list) or not voices:
        raise ManifestError(f"ControllerRevision {record['metadata']['name']}: no voices")
    return [voice_from_manifest(v) for v in voices]


def gate_job_name(pool: str, revision: str) -> str:
    return f"{pool}-gate-{revision}"


def gate_failure(job: Mapping[str, Any]) -> str | None:
    """Why a gate Job failed (out of time, or its pod kept failing); None while it has not."""
    for condition in (job.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            why = condition.get("reason", "Failed")
            detail = condition.get("message")
            return f"the gate Job failed ({why}{': ' + detail if detail else ''})"
    return None


def gate_job(
    ref: PoolRef, rollout: Rollout, revision: str, image: str, tls_secret: str = ""
) -> dict[str, Any]:
    """The Job that runs `ttsfleet gate` on the canary and annotates the pool with its verdict.

    `image` is the operator's gate image (one with `ttsfleet[gate]`), unless the
    rollout names its own; with pod TLS the Job mounts the pool's TLS Secret,
    as the pods it calls require a client certificate.
    """
    gate = rollout.gate
    service = f"{{}}.{ref.namespace}.svc:{GRPC_PORT}"
    args = [
        "--canary", service.format(canary_name(ref.name)),
        "--stable", service.format(owned_name(ref.name)),
        "--revision", revision,
        "--pool", f"{ref.namespace}/{ref.name}",
        "--language", gate.language,
        "--max-word-error-rate", str(gate.max_word_error_rate),
        "--max-ttfa-ratio", str(gate.max_ttfa_ratio),
        "--max-error-rate", str(gate.max_error_rate),
        "--min-loudness-lufs", str(gate.min_loudness_lufs),
        "--max-loudness-lufs", str(gate.max_loudness_lufs),
        "--max-clipped-fraction", str(gate.max_clipped_fraction),
    ]  # fmt: skip
    for text in gate.texts:
        args += ["--text", text]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    if tls_secret:
        args += [
            "--pod-tls-cert", f"{TLS_DIR}/tls.crt",
            "--pod-tls-key", f"{TLS_DIR}/tls.key",
            "--pod-tls-ca", f"{TLS_DIR}/ca.crt",
        ]  # fmt: skip
        mounts.append({"name": "tls", "mountPath": TLS_DIR, "readOnly": True})
        volumes.append({"name": "tls", "secret": {"secretName": tls_secret}})
    container = {
        "name": "gate",
        "image": gate.image or image,
        "command": ["ttsfleet", "gate"],
        "args": args,
        "env": [{"name": "HOME", "value": "/tmp"}],
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _owned_metadata(ref, gate_job_name(ref.name, revision), revision),
        "spec": {
            "backoffLimit": 1,
            "activeDeadlineSeconds": gate.timeout_seconds,
            "ttlSecondsAfterFinished": 24 * 3600,
            "template": {
                "metadata": {"labels": GATE_POD_LABELS | {REVISION_LABEL: revision}},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": gate.service_account,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }
