"""A real fleet state and a real `ttsfleet mcp` process, for the SDK's own client to talk to.

Once per module: a namespace on the real control plane with the chart's MCP
ServiceAccount and Role (rendered by helm), an operator, a Ready pool and a
pool the scheduler cannot place, a SQLite job store, and the MCP server as a
child process logged in as that ServiceAccount, on 127.0.0.1.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cluster.control_plane import ControlPlane, free_port
from cluster.polling import wait_until
from mcp_harness import GRANTS, Fleet, McpProcess, access_file, install_mcp_rbac
from operator_harness import Cluster, OperatorProcess, pool_yaml, running_operators, voice_yaml

SCALING = {"enabled": False, "minReplicas": 1, "maxReplicas": 3}
# More GPUs than any fake node has: the scheduler says so on the pod.
HUGE = {"device": "cuda", "resources": {"limits": {"nvidia.com/gpu": 16}}}


def unschedulable(cluster: Cluster, pool: str) -> bool:
    """Whether the scheduler has said (on the pod and in an event) that it cannot place it."""
    pods = cluster.core.list_namespaced_pod(
        cluster.namespace, label_selector=f"ttsfleet.dev/pool={pool}"
    ).items
    said = any(
        c.type == "PodScheduled" and c.reason == "Unschedulable"
        for p in pods
        for c in (p.status.conditions or [])
    )
    events = cluster.core.list_namespaced_event(
        cluster.namespace, field_selector="reason=FailedScheduling"
    ).items
    return said and bool(events)


@pytest.fixture(scope="module")
def fleet(
    request: pytest.FixtureRequest,
    control_plane: ControlPlane,
    api_client: Any,
    api_installed: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Fleet]:
    """A namespace with a Ready pool (english), an unschedulable one (huge) and the MCP RBAC."""
    namespace = f"mcp-{uuid.uuid4().hex[:10]}"
    workdir = tmp_path_factory.mktemp("mcp")
    control_plane.kubectl("create", "namespace", namespace)
    wait_until(
        lambda: (
            control_plane.kubectl(
                "get", "serviceaccount", "default", "-n", namespace, check=False
            ).returncode
            == 0
        ),
        what=f"ServiceAccount default in {namespace}",
    )
    cluster = Cluster(api_client, control_plane, namespace)
    kubeconfig = install_mcp_rbac(control_plane, namespace)
    with running_operators(request, control_plane, namespace, workdir) as start:
        operator: OperatorProcess = start()
        cluster.apply(
            voice_yaml("joe")
            + "---\n"
            + pool_yaml("english", ["joe"], replicas=2, autoscaling=SCALING)
            + "---\n"
            + pool_yaml("huge", ["joe"], **HUGE)
        )
        cluster.wait_ready("english")
        cluster.wait(
            lambda: cluster.condition("huge", "Ready").get("reason") == "ReplicasNotReady",
            "pool huge reported not ready",
        )
        cluster.wait(
            lambda: unschedulable(cluster, "huge"), "the scheduler's verdict on huge's pod"
        )
        assert operator.running
        yield Fleet(
            cluster=cluster,
            namespace=namespace,
            workdir=workdir,
            kubeconfig=kubeconfig,
            load_port=free_port(),
            router_log=workdir / "router.jsonl",
            jobs_db=workdir / "jobs.db",
            access=access_file(workdir / "access.yaml", GRANTS),
        )
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def server(fleet: Fleet) -> Iterator[McpProcess]:
    """The MCP server as deployed by default: read tools only."""
    process = fleet.start()
    yield process
    process.stop()
