"""kind-config.yaml is a config kind accepts, and a cluster the examples can run on.

No Docker here, so kind itself cannot run. Instead the config is checked the
way kind reads it: strict decoding against the fields of kind's
``kind.x-k8s.io/v1alpha4`` types (sigs.k8s.io/kind pkg/apis/config/v1alpha4,
types.go) and the rules of its validation (pkg/internal/apis/config,
validate.go). An unknown field is a hard error in kind, so it is one here.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KIND_CONFIG = ROOT / "kind-config.yaml"
KIND_VALUES = ROOT / "charts" / "ttsfleet" / "values-kind.yaml"


@dataclass(frozen=True)
class MapOf:
    """A map with string keys and values of one type (Go's map[string]T)."""

    value: Any


# Each struct is {field: schema}; a schema is a Python type, a struct,
# [schema] for a list, or MapOf(schema).
PORT_MAPPING = {"containerPort": int, "hostPort": int, "listenAddress": str, "protocol": str}
MOUNT = {
    "containerPath": str,
    "hostPath": str,
    "readOnly": bool,
    "selinuxRelabel": bool,
    "propagation": str,
}
PATCH_JSON6902 = {"group": str, "version": str, "kind": str, "patch": str}
NODE = {
    "role": str,
    "image": str,
    "labels": MapOf(str),
    "extraMounts": [MOUNT],
    "extraPortMappings": [PORT_MAPPING],
    "kubeadmConfigPatches": [str],
    "kubeadmConfigPatchesJSON6902": [PATCH_JSON6902],
}
NETWORKING = {
    "ipFamily": str,
    "apiServerPort": int,
    "apiServerAddress": str,
    "podSubnet": str,
    "serviceSubnet": str,
    "disableDefaultCNI": bool,
    "kubeProxyMode": str,
    "dnsSearch": [str],
}
CLUSTER = {
    "kind": str,
    "apiVersion": str,
    "name": str,
    "nodes": [NODE],
    "networking": NETWORKING,
    "featureGates": MapOf(bool),
    "runtimeConfig": MapOf(str),
    "kubeadmConfigPatches": [str],
    "kubeadmConfigPatchesJSON6902": [PATCH_JSON6902],
    "containerdConfigPatches": [str],
    "containerdConfigPatchesJSON6902": [str],
}
ENUMS = {
    "role": {"control-plane", "worker"},
    "protocol": {"TCP", "UDP", "SCTP"},
    "propagation": {"None", "HostToContainer", "Bidirectional"},
    "ipFamily": {"ipv4", "ipv6", "dual"},
    "kubeProxyMode": {"iptables", "ipvs", "nftables", "none"},
}
PORT_FIELDS = {"containerPort", "hostPort", "apiServerPort"}
CLUSTER_NAME = re.compile(r"^[a-z0-9.-]+$")

# Labels in the kubernetes.io and k8s.io namespaces that a kubelet may set on
# its own Node (NodeRestriction); kind passes node labels to the kubelet, so any
# other label there stops the node from joining.
KUBELET_LABELS = {
    "kubernetes.io/hostname",
    "kubernetes.io/arch",
    "kubernetes.io/os",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
}
KUBELET_LABEL_SUFFIXES = (".kubelet.kubernetes.io", ".node.kubernetes.io")


def schema_problems(value: Any, schema: Any, path: str) -> list[str]:
    """What kind's strict decoding (and its enums and port ranges) would reject."""
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return [f"{path}: expected a mapping"]
        problems = [f"{path}.{key}: unknown field" for key in value if key not in schema]
        for key, child in value.items():
            if key in schema:
                problems += schema_problems(child, schema[key], f"{path}.{key}")
        return problems
    if isinstance(schema, list):
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        return [
            p
            for i, item in enumerate(value)
            for p in schema_problems(item, schema[0], f"{path}[{i}]")
        ]
    if isinstance(schema, MapOf):
        if not isinstance(value, dict):
            return [f"{path}: expected a mapping"]
        return [
            p
            for key, item in value.items()
            for p in schema_problems(item, schema.value, f"{path}.{key}")
        ]
    # bool is an int in Python; Go's decoder does not mix them.
    if not isinstance(value, schema) or (schema is int and isinstance(value, bool)):
        return [f"{path}: expected {schema.__name__}, got {value!r}"]
    field = path.rsplit(".", 1)[-1]
    if field in ENUMS and value not in ENUMS[field]:
        return [f"{path}: {value!r} is not one of {sorted(ENUMS[field])}"]
    if field in PORT_FIELDS and not -1 <= value <= 65535:
        return [f"{path}: invalid port number {value}"]
    return []


def semantic_problems(config: dict[str, Any]) -> list[str]:
    """kind's validation beyond field types: identity, name, roles, unique host ports."""
    problems = []
    if (config.get("apiVersion"), config.get("kind")) != ("kind.x-k8s.io/v1alpha4", "Cluster"):
        problems.append("apiVersion/kind must be kind.x-k8s.io/v1alpha4 Cluster")
    if not CLUSTER_NAME.match(config.get("name", "kind")):
        problems.append(f"cluster name must match {CLUSTER_NAME.pattern}")
    nodes = config.get("nodes", [])
    if not any(node.get("role", "control-plane") == "control-plane" for node in nodes):
        problems.append("must have at least one control-plane node")
    for index, node in enumerate(nodes):
        bound = set()
        for mapping in node.get("extraPortMappings", []):
            host_port = mapping.get("hostPort", 0)
            key = (
                mapping.get("listenAddress", "0.0.0.0"),
                host_port,
                mapping.get("protocol", "TCP"),
            )
            if host_port not in (-1, 0) and key in bound:
                problems.append(f"nodes[{index}]: port mapping {key} configured twice")
            bound.add(key)
    return problems


def label_problems(labels: dict[str, str]) -> list[str]:
    """Labels the kubelet would refuse to set, or that are not valid label syntax."""
    problems = []
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        reserved = prefix.endswith(("kubernetes.io", "k8s.io"))
        allowed = key in KUBELET_LABELS or prefix.endswith(KUBELET_LABEL_SUFFIXES)
        if reserved and not allowed:
            problems.append(f"{key}: the kubelet may not set this label on its node")
        if not re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", name):
            problems.append(f"{key}: invalid label name")
        if value and not re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", value):
            problems.append(f"{key}: invalid label value {value!r}")
    return problems


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(KIND_CONFIG.read_text())
    return loaded


def test_only_kinds_fields_with_the_right_types(config: dict[str, Any]) -> None:
    assert schema_problems(config, CLUSTER, "config") == []


def test_passes_kinds_validation(config: dict[str, Any]) -> None:
    assert semantic_problems(config) == []


def test_has_a_control_plane_and_workers(config: dict[str, Any]) -> None:
    roles = [node.get("role", "control-plane") for node in config["nodes"]]
    assert roles.count("control-plane") == 1
    assert roles.count("worker") >= 2


def test_node_labels_can_be_set_by_the_kubelet(config: dict[str, Any]) -> None:
    problems = [p for node in config["nodes"] for p in label_problems(node.get("labels", {}))]
    assert problems == []


def _pool_node_selectors() -> dict[str, dict[str, str]]:
    selectors = {}
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "TTSPool":
                name = f"{path.name}: {doc['metadata']['name']}"
                selectors[name] = doc["spec"].get("nodeSelector") or {}
    return selectors


def test_every_example_pool_has_a_node_to_run_on(config: dict[str, Any]) -> None:
    """Each example pool's nodeSelector is matched by some worker's labels."""
    workers = [n.get("labels", {}) for n in config["nodes"] if n.get("role") == "worker"]
    unmatched = [
        pool
        for pool, selector in _pool_node_selectors().items()
        if not any(selector.items() <= labels.items() for labels in workers)
    ]
    assert unmatched == []


def test_the_routers_node_port_is_published_on_loopback(config: dict[str, Any]) -> None:
    """values-kind.yaml's NodePort is what the host port forwards to, on 127.0.0.1 only."""
    service = yaml.safe_load(KIND_VALUES.read_text())["router"]["service"]
    mappings = [m for n in config["nodes"] for m in n.get("extraPortMappings", [])]
    published = {m["containerPort"]: m for m in mappings}
    assert service["type"] == "NodePort"
    mapping = published[service["nodePort"]]
    assert ipaddress.ip_address(mapping["listenAddress"]).is_loopback


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        ({"nodes": [{"role": "worker", "lables": {}}]}, "config.nodes[0].lables: unknown field"),
        ({"nodes": [{"role": "master"}]}, "config.nodes[0].role: 'master' is not one of"),
        ({"nodes": [{"extraPortMappings": [{"hostPort": 70000}]}]}, "invalid port number 70000"),
        ({"nodes": [{"extraPortMappings": [{"hostPort": True}]}]}, "expected int, got True"),
        ({"networking": {"kubeProxyMode": "userspace"}}, "kubeProxyMode: 'userspace'"),
    ],
)
def test_the_checker_rejects_what_kind_rejects(broken: dict[str, Any], expected: str) -> None:
    """The checks above are only worth something if they catch mistakes."""
    problems = schema_problems({"kind": "Cluster", **broken}, CLUSTER, "config")
    assert any(expected in problem for problem in problems), problems


def test_the_semantic_checks_reject_what_kind_rejects() -> None:
    duplicate = {"hostPort": 8080, "listenAddress": "127.0.0.1"}
    config = {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "name": "Bad_Name",
        "nodes": [{"role": "worker", "extraPortMappings": [duplicate, duplicate]}],
    }
    problems = semantic_problems(config)
    assert len(problems) == 3, problems
    assert label_problems({"node-role.kubernetes.io/gpu": ""}) != []
    assert label_problems({"topology.kubernetes.io/zone": "a", "ttsfleet.dev/gpu": "true"}) == []
