"""The router's Kubernetes discovery against the real control plane.

Discovery runs alone (no router around it), logged in as a ServiceAccount
with only the rules the Helm chart grants the router. The EndpointSlices
carry documentation-range addresses (203.0.113.0/24): they are read, never
dialled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster.control_plane import ControlPlane
from kubernetes import client
from timed_fleet import until

from ttsfleet.router.discovery import Topology
from ttsfleet.router.discovery import kubernetes as discovery

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
ACCOUNT = "ttsfleet-router"
# What deploy/rbac/router.yaml (and so the Helm chart) grants the router.
[RULES] = [
    document["rules"]
    for document in yaml.safe_load_all((ROOT / "deploy" / "rbac" / "router.yaml").read_text())
    if document["kind"] == "Role"
]


def router_account(control_plane: ControlPlane, namespace: str) -> Path:
    """The router's ServiceAccount in `namespace`, with no rights yet, as a kubeconfig."""
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": ACCOUNT}}
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(account))
    return control_plane.service_account_kubeconfig(namespace, ACCOUNT)


def grant_router_rules(control_plane: ControlPlane, namespace: str) -> None:
    """Binds the router's ServiceAccount to a Role with the chart's rules."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": ACCOUNT},
        "rules": RULES,
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": ACCOUNT},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ACCOUNT},
        "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": namespace}],
    }
    control_plane.kubectl(
        "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all([role, binding])
    )


def pool(name: str, voices: list[str], default: str | None = None, **more: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"voices": voices, **more}
    if default:
        spec["defaultVoice"] = default
    return {
        "apiVersion": "ttsfleet.dev/v1alpha1",
        "kind": "TTSPool",
        "metadata": {"name": name},
        "spec": spec,
    }


def service(pool_name: str) -> client.V1Service:
    """The pool's headless Service as the operator makes it, minus the selector.

    Without a selector the EndpointSlice controller leaves the test's slices alone.
    """
    return client.V1Service(
        metadata=client.V1ObjectMeta(
            name=f"{pool_name}-inference", labels={discovery.POOL_LABEL: pool_name}
        ),
        spec=client.V1ServiceSpec(
            cluster_ip="None",
            ports=[
                client.V1ServicePort(name="grpc", port=50051),
                client.V1ServicePort(name="metrics", port=9090),
            ],
        ),
    )


def endpoint_slice(pool_name: str, ready: dict[str, bool]) -> client.V1EndpointSlice:
    return client.V1EndpointSlice(
        metadata=client.V1ObjectMeta(
            name=f"{pool_name}-inference-test",
            labels={
                discovery.POOL_LABEL: pool_name,
                "kubernetes.io/service-name": f"{pool_name}-inference",
                "endpointslice.kubernetes.io/managed-by": "tests.ttsfleet.dev",
            },
        ),
        address_type="IPv4",
        ports=[
            client.DiscoveryV1EndpointPort(name="metrics", port=9090),
            client.DiscoveryV1EndpointPort(name="grpc", port=50051),
        ],
        endpoints=[
            client.V1Endpoint(addresses=[ip], conditions=client.V1EndpointConditions(ready=flag))
            for ip, flag in ready.items()
        ],
    )


class Published:
    """Every topology discovery publishes, and a bounded wait for one that fits."""

    def __init__(self) -> None:
        self.topologies: list[Topology] = []
        self._changed = asyncio.Event()

    def __call__(self, topology: Topology) -> None:
        self.topologies.append(topology)
        self._changed.set()

    async def until(self, fits: Callable[[Topology], bool], seconds: float = 30) -> Topology:
        async with asyncio.timeout(seconds):
            while not (self.topologies and fits(self.topologies[-1])):
                self._changed.clear()
                await self._changed.wait()
        return self.topologies[-1]


def addresses(topology: Topology, pool_name: str) -> set[str]:
    found = topology.pools.get(pool_name)
    return set(found.addresses) if found else set()


@pytest.fixture(scope="module")
def crds(control_plane: ControlPlane) -> None:
    control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    control_plane.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")


@contextlib.asynccontextmanager
async def discovering(kubeconfig: Path, namespace: str) -> AsyncIterator[Published]:
    """Runs discovery logged in with `kubeconfig`; yields what it publishes."""
    api = discovery.api_client(str(kubeconfig))
    published = Published()
    task = asyncio.create_task(discovery.KubernetesDiscovery(api, namespace).run(published))
    try:
        yield published
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        api.close()


async def test_discovery_follows_pools_and_ready_endpoints(
    control_plane: ControlPlane, api_client: Any, namespace: str, crds: None
) -> None:
    custom = client.CustomObjectsApi(api_client)
    core = client.CoreV1Api(api_client)
    slices = client.DiscoveryV1Api(api_client)

    def create_pool(name: str, voices: list[str], default: str | None = None) -> None:
        custom.create_namespaced_custom_object(
            "ttsfleet.dev", "v1alpha1", namespace, "ttspools", pool(name, voices, default)
        )

    create_pool("standard", ["joe", "amy"], default="amy")
    core.create_namespaced_service(namespace, service("standard"))
    slices.create_namespaced_endpoint_slice(
        namespace,
        endpoint_slice(
            "standard", {"203.0.113.10": True, "203.0.113.11": True, "203.0.113.12": False}
        ),
    )
    kubeconfig = router_account(control_plane, namespace)
    grant_router_rules(control_plane, namespace)
    async with discovering(kubeconfig, namespace) as published:
        first = await published.until(lambda t: "standard" in t.pools)
        assert addresses(first, "standard") == {"203.0.113.10:50051", "203.0.113.11:50051"}
        assert first.pools["standard"].voices == {"joe", "amy"}
        assert first.default_voice == "amy"

        slices.patch_namespaced_endpoint_slice(
            "standard-inference-test",
            namespace,
            endpoint_slice(
                "standard", {"203.0.113.10": True, "203.0.113.11": False, "203.0.113.12": True}
            ),
        )
        await published.until(
            lambda t: addresses(t, "standard") == {"203.0.113.10:50051", "203.0.113.12:50051"}
        )

        create_pool("studio", ["kim"])
        core.create_namespaced_service(namespace, service("studio"))
        slices.create_namespaced_endpoint_slice(
            namespace, endpoint_slice("studio", {"203.0.113.20": True})
        )
        both = await published.until(lambda t: addresses(t, "studio") == {"203.0.113.20:50051"})
        assert both.pools["studio"].voices == {"kim"}
        assert both.default_voice == "amy", "the oldest pool still decides"

        slices.delete_namespaced_endpoint_slice("standard-inference-test", namespace)
        await published.until(lambda t: "standard" in t.pools and not addresses(t, "standard"))
        custom.delete_namespaced_custom_object(
            "ttsfleet.dev", "v1alpha1", namespace, "ttspools", "studio"
        )
        await published.until(lambda t: set(t.pools) == {"standard"})


async def test_discovery_keeps_trying_until_it_is_allowed_to_watch(
    control_plane: ControlPlane,
    api_client: Any,
    namespace: str,
    crds: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Refused lists (403 before the RoleBinding exists) are retried with backoff, not fatal."""
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        "ttsfleet.dev", "v1alpha1", namespace, "ttspools", pool("standard", ["joe"])
    )
    kubeconfig = router_account(control_plane, namespace)
    async with discovering(kubeconfig, namespace) as published:
        await until(lambda: any(getattr(r, "status", None) == 403 for r in caplog.records), 30)
        assert not published.topologies
        grant_router_rules(control_plane, namespace)
        found = await published.until(lambda t: "standard" in t.pools)
    assert found.pools["standard"].voices == {"joe"}


async def test_a_sleeping_pool_is_woken_with_only_the_routers_rules(
    control_plane: ControlPlane, api_client: Any, namespace: str, crds: None
) -> None:
    """The wake-up is a JSON patch of the scale subresource: 0 -> 1, and only from 0."""
    custom = client.CustomObjectsApi(api_client)
    sleeping = {"enabled": True, "minReplicas": 0}
    for name, replicas in (("night", 0), ("busy", 3)):
        custom.create_namespaced_custom_object(
            "ttsfleet.dev",
            "v1alpha1",
            namespace,
            "ttspools",
            pool(name, ["joe"], replicas=replicas, autoscaling=sleeping),
        )
    kubeconfig = router_account(control_plane, namespace)
    grant_router_rules(control_plane, namespace)

    def replicas(name: str) -> int:
        body = custom.get_namespaced_custom_object(
            "ttsfleet.dev", "v1alpha1", namespace, "ttspools", name
        )
        return int(body["spec"]["replicas"])

    async with discovering(kubeconfig, namespace) as published:
        found = await published.until(lambda t: {"night", "busy"} <= set(t.pools))
    assert found.pools["night"].scales_from_zero and found.pools["busy"].scales_from_zero
    api = discovery.api_client(str(kubeconfig))
    try:
        router = discovery.KubernetesDiscovery(api, namespace)
        await router.wake("night")
        assert replicas("night") == 1
        await router.wake("night")  # awake already: the patch's test fails, quietly
        await router.wake("busy")
        assert (replicas("night"), replicas("busy")) == (1, 3)
        night = custom.get_namespaced_custom_object(
            "ttsfleet.dev", "v1alpha1", namespace, "ttspools", "night"
        )
        writers = {entry["manager"] for entry in night["metadata"]["managedFields"]}
        assert discovery.FIELD_MANAGER in writers
    finally:
        api.close()


async def test_a_pool_that_may_not_sleep_is_not_offered_for_waking(
    control_plane: ControlPlane, api_client: Any, namespace: str, crds: None
) -> None:
    custom = client.CustomObjectsApi(api_client)
    for name, scaling in (("fixed", {}), ("floor-one", {"enabled": True, "minReplicas": 1})):
        custom.create_namespaced_custom_object(
            "ttsfleet.dev",
            "v1alpha1",
            namespace,
            "ttspools",
            pool(name, ["joe"], autoscaling=scaling),
        )
    kubeconfig = router_account(control_plane, namespace)
    grant_router_rules(control_plane, namespace)
    async with discovering(kubeconfig, namespace) as published:
        found = await published.until(lambda t: {"fixed", "floor-one"} <= set(t.pools))
    assert not found.pools["fixed"].scales_from_zero
    assert not found.pools["floor-one"].scales_from_zero
