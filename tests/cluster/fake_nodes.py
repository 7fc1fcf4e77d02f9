"""Fake GPU nodes: Node objects that kwok keeps Ready and whose pods it runs.

No kubelet exists; kwok manages every node carrying ``KWOK_ANNOTATION`` and
reports node IPs in 192.0.2.0/24 and pod IPs in 203.0.113.0/24
(documentation ranges that nothing dials).
"""

from typing import Any

from kubernetes import client

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_SELECTOR = f"{KWOK_ANNOTATION}=fake"
GPU_LABEL = "ttsfleet.dev/gpu"
GPU_RESOURCE = "nvidia.com/gpu"


def gpu_node(name: str, gpus: int = 4) -> dict[str, Any]:
    """A Node manifest with ``gpus`` allocatable ``nvidia.com/gpu``.

    Status is accepted on create for Nodes (kubelets register that way), so
    the scheduler sees the capacity at once.
    """
    resources = {"cpu": "32", "memory": "256Gi", "pods": "110", GPU_RESOURCE: str(gpus)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "kwok-gpu",
                "type": "kwok",
                GPU_LABEL: "true",
            },
        },
        "spec": {},
        "status": {
            "capacity": resources,
            "allocatable": resources,
        },
    }


def is_schedulable(node: client.V1Node) -> bool:
    """Ready, and without the taints the node lifecycle controller adds."""
    conditions = (node.status.conditions if node.status else None) or []
    ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
    taints = (node.spec.taints if node.spec else None) or []
    return ready and not any(t.effect == "NoSchedule" for t in taints)
