"""Smoke tests proving the test control plane is the real thing.

Scheduling, controllers, garbage collection, CEL validation and RBAC all run
in the real Kubernetes binaries; kwok only stands in for kubelets.
"""

import ipaddress
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from cluster.control_plane import ControlPlane, StartupError
from cluster.fake_nodes import GPU_LABEL, GPU_RESOURCE
from cluster.polling import wait_until

# kwok never pulls images: a name that cannot resolve proves it.
IMAGE = "registry.invalid/ttsfleet/none:0"
POD_NETWORK = ipaddress.ip_network("203.0.113.0/24")
SERVICE_NETWORK = ipaddress.ip_network("198.51.100.0/24")


def gpu_deployment(name: str, *, replicas: int = 1, gpus: int = 1) -> client.V1Deployment:
    """A Deployment whose pods each need ``gpus`` GPUs on a GPU node."""
    labels = {"app": name}
    container = client.V1Container(
        name="worker",
        image=IMAGE,
        resources=client.V1ResourceRequirements(limits={GPU_RESOURCE: str(gpus)}),
    )
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[container], node_selector={GPU_LABEL: "true"}),
            ),
        ),
    )


def is_running_and_ready(pod: client.V1Pod) -> bool:
    """Phase Running and the Ready condition True."""
    conditions = pod.status.conditions or []
    ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
    return pod.status.phase == "Running" and ready


def test_kubectl_and_server_report_the_built_version(control_plane: ControlPlane) -> None:
    versions = json.loads(control_plane.kubectl("version", "--output=json").stdout)

    assert versions["serverVersion"]["gitVersion"].startswith("v1.34.")
    assert versions["clientVersion"]["gitVersion"] == versions["serverVersion"]["gitVersion"]


def test_gpu_deployment_gets_running_ready_pods_on_gpu_nodes(
    api_client: Any, namespace: str
) -> None:
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    apps.create_namespaced_deployment(namespace, gpu_deployment("tts", replicas=2))

    def ready_pods() -> list[client.V1Pod] | None:
        pods = core.list_namespaced_pod(namespace, label_selector="app=tts").items
        ready = [p for p in pods if is_running_and_ready(p)]
        return ready if len(ready) == 2 else None

    pods = wait_until(ready_pods, what="2 Running, Ready GPU pods", timeout=90)

    gpu_nodes = {n.metadata.name for n in core.list_node(label_selector=f"{GPU_LABEL}=true").items}
    assert {p.spec.node_name for p in pods} <= gpu_nodes
    assert all(ipaddress.ip_address(p.status.pod_ip) in POD_NETWORK for p in pods)


def test_service_gets_cluster_ip_and_endpoint_slice_in_documentation_ranges(
    api_client: Any, namespace: str
) -> None:
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    discovery = client.DiscoveryV1Api(api_client)
    apps.create_namespaced_deployment(namespace, gpu_deployment("tts"))
    service = core.create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="tts"),
            spec=client.V1ServiceSpec(
                selector={"app": "tts"}, ports=[client.V1ServicePort(port=50051)]
            ),
        ),
    )

    def ready_addresses() -> list[str] | None:
        slices = discovery.list_namespaced_endpoint_slice(
            namespace, label_selector="kubernetes.io/service-name=tts"
        ).items
        addresses = [
            address
            for s in slices
            for e in s.endpoints or []
            if e.conditions and e.conditions.ready
            for address in e.addresses
        ]
        return addresses or None

    addresses = wait_until(ready_addresses, what="a ready EndpointSlice address", timeout=90)

    assert ipaddress.ip_address(service.spec.cluster_ip) in SERVICE_NETWORK
    assert all(ipaddress.ip_address(a) in POD_NETWORK for a in addresses)


def test_pod_needing_more_gpus_than_any_node_stays_pending(
    api_client: Any, namespace: str, control_plane: ControlPlane
) -> None:
    core = client.CoreV1Api(api_client)
    too_many = str(control_plane.gpus_per_node + 1)
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="greedy"),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="worker",
                    image=IMAGE,
                    resources=client.V1ResourceRequirements(limits={GPU_RESOURCE: too_many}),
                )
            ]
        ),
    )
    core.create_namespaced_pod(namespace, pod)

    def unschedulable() -> client.V1PodCondition | None:
        status = core.read_namespaced_pod_status("greedy", namespace).status
        return next(
            (
                c
                for c in status.conditions or []
                if c.type == "PodScheduled" and c.status == "False"
            ),
            None,
        )

    condition = wait_until(unschedulable, what="PodScheduled=False on pod greedy", timeout=60)

    assert condition.reason == "Unschedulable"
    assert f"Insufficient {GPU_RESOURCE}" in condition.message
    assert core.read_namespaced_pod("greedy", namespace).status.phase == "Pending"


def test_deleting_a_deployment_garbage_collects_its_replicaset(
    api_client: Any, namespace: str
) -> None:
    apps = client.AppsV1Api(api_client)
    owner = apps.create_namespaced_deployment(namespace, gpu_deployment("doomed"))

    def owned_replicasets() -> list[client.V1ReplicaSet]:
        return [
            rs
            for rs in apps.list_namespaced_replica_set(namespace).items
            if any(ref.uid == owner.metadata.uid for ref in rs.metadata.owner_references or [])
        ]

    wait_until(owned_replicasets, what="the Deployment's ReplicaSet", timeout=60)
    apps.delete_namespaced_deployment(
        "doomed", namespace, body=client.V1DeleteOptions(propagation_policy="Background")
    )

    # The garbage collector, not the client, removes the ReplicaSet; its
    # discovery refresh can lag up to about 30 s for new types.
    wait_until(lambda: not owned_replicasets(), what="ReplicaSet garbage-collected", timeout=120)


CEL_MESSAGE = "spec.min must not exceed spec.max"


def range_crd(group: str) -> dict[str, Any]:
    """A CRD whose CEL rule rejects min > max."""
    spec_schema = {
        "type": "object",
        "required": ["min", "max"],
        "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
        "x-kubernetes-validations": [{"rule": "self.min <= self.max", "message": CEL_MESSAGE}],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"ranges.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": "Range", "plural": "ranges", "singular": "range"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": spec_schema},
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture
def range_group(api_client: Any) -> Iterator[str]:
    """Install the Range CRD under a unique group; remove it afterwards."""
    extensions = client.ApiextensionsV1Api(api_client)
    group = f"smoke-{uuid.uuid4().hex[:8]}.ttsfleet.dev"
    extensions.create_custom_resource_definition(range_crd(group))

    def established() -> bool:
        crd = extensions.read_custom_resource_definition(f"ranges.{group}")
        return any(
            c.type == "Established" and c.status == "True" for c in crd.status.conditions or []
        )

    wait_until(established, what="CRD Established", timeout=60)
    yield group
    extensions.delete_custom_resource_definition(f"ranges.{group}")


def test_crd_cel_rule_rejects_a_bad_object_with_its_message(
    api_client: Any, namespace: str, range_group: str
) -> None:
    custom = client.CustomObjectsApi(api_client)

    def create(name: str, low: int, high: int) -> Any:
        body = {
            "apiVersion": f"{range_group}/v1",
            "kind": "Range",
            "metadata": {"name": name},
            "spec": {"min": low, "max": high},
        }
        return custom.create_namespaced_custom_object(range_group, "v1", namespace, "ranges", body)

    def created_good() -> bool:
        """The endpoint can 404 for a moment after Established."""
        try:
            create("good", 1, 2)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    wait_until(created_good, what="the Range endpoint to serve", timeout=30)
    with pytest.raises(ApiException) as rejected:
        create("bad", 3, 2)

    assert rejected.value.status == 422
    assert CEL_MESSAGE in rejected.value.body


@pytest.mark.parametrize("credential", ["token", "certificate"])
def test_service_account_identity_gets_only_what_its_role_allows(
    control_plane: ControlPlane, api_client: Any, namespace: str, credential: str
) -> None:
    core, rbac = client.CoreV1Api(api_client), client.RbacAuthorizationV1Api(api_client)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="operator"))
    )
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="read-configmaps"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["list"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="operator"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name="read-configmaps"
            ),
            subjects=[
                client.RbacV1Subject(kind="ServiceAccount", name="operator", namespace=namespace)
            ],
        ),
    )
    if credential == "token":
        kubeconfig = control_plane.service_account_kubeconfig(namespace, "operator")
    else:
        kubeconfig = control_plane.user_kubeconfig(
            f"system:serviceaccount:{namespace}:operator",
            ("system:serviceaccounts", f"system:serviceaccounts:{namespace}"),
        )

    with control_plane.api_client_for(kubeconfig) as api:
        restricted = client.CoreV1Api(api)
        restricted.list_namespaced_config_map(namespace)
        with pytest.raises(ApiException) as forbidden:
            restricted.list_namespaced_secret(namespace)

    assert forbidden.value.status == 403
    whoami = control_plane.kubectl("auth", "whoami", "--output=json", kubeconfig=kubeconfig)
    username = json.loads(whoami.stdout)["status"]["userInfo"]["username"]
    assert username == f"system:serviceaccount:{namespace}:operator"


def test_a_failing_component_is_named_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "kube-apiserver"
    fake.write_text("#!/bin/sh\necho 'fake apiserver: refusing to start'\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    plane = ControlPlane()

    with pytest.raises(StartupError) as failure:
        plane.start()

    assert failure.value.component == "kube-apiserver"
    assert "refusing to start" in str(failure.value)
    assert plane.pids() == {}
    assert not plane.dir.exists()
