"""Fixtures shared by every component's tests: the real control plane, operators, real voices.

One control plane per test session, started only when a test asks for it
(start-up takes seconds, a cold build of the binaries tens of minutes, once
per machine); one fresh namespace per test, so tests do not see each other's
objects. Every test that uses the control plane is marked `integration`, so
`pytest -m "not integration"` runs what needs none.
"""

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster.control_plane import ControlPlane
from cluster.polling import wait_until
from kubernetes import client
from kubernetes.client.rest import ApiException
from operator_harness import Cluster, OperatorProcess, install_api, running_operators
from voices import JOE_QUIET, load_engines, pod_config, running_servers


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks ``integration`` every test that needs the control plane, however indirectly."""
    for item in items:
        if "control_plane" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """etcd, apiserver, controller manager, scheduler and kwok with GPU nodes."""
    with ControlPlane() as plane:
        yield plane


@pytest.fixture(scope="session")
def api_client(control_plane: ControlPlane) -> Iterator[Any]:
    """An admin ``kubernetes.client.ApiClient`` shared by the session."""
    with control_plane.api_client() as api:
        yield api


def _default_service_account(core: client.CoreV1Api, namespace: str) -> bool:
    try:
        core.read_namespaced_service_account("default", namespace)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


@pytest.fixture
def namespace(api_client: Any) -> Iterator[str]:
    """A unique namespace, ready for pods, deleted after the test.

    Pods are rejected until the controller manager has created the
    namespace's ``default`` ServiceAccount, so wait for it first.
    """
    core = client.CoreV1Api(api_client)
    name = f"test-{uuid.uuid4().hex[:10]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_until(
        lambda: _default_service_account(core, name),
        what=f"ServiceAccount default in namespace {name}",
        timeout=60,
    )
    yield name
    core.delete_namespace(name)


# Operator fixtures: the API (CRDs) installed once per module, the admin's view
# of the test namespace, and operators started under the least-privilege role.


@pytest.fixture(scope="module")
def api_installed(control_plane: ControlPlane) -> None:
    install_api(control_plane)


@pytest.fixture
def cluster(
    api_client: Any, control_plane: ControlPlane, namespace: str, api_installed: None
) -> Cluster:
    return Cluster(api_client, control_plane, namespace)


@pytest.fixture
def operators(
    request: pytest.FixtureRequest,
    control_plane: ControlPlane,
    namespace: str,
    api_installed: None,
    tmp_path: Path,
) -> Iterator[Callable[..., OperatorProcess]]:
    with running_operators(request, control_plane, namespace, tmp_path) as start:
        yield start


# Real-voice fixtures: the deterministic voice (noise off) on two pods in this process.


@pytest.fixture(scope="session")
def quiet_engines() -> dict[str, Any]:
    """Loading a voice takes a second or two: once per session."""
    return load_engines(JOE_QUIET)


@pytest.fixture
async def two_quiet_pods(quiet_engines: dict[str, Any]) -> AsyncIterator[list[Any]]:
    """Two inference servers with the noise-free voice, sharing the loaded engine."""
    async with running_servers(2, pod_config(JOE_QUIET), quiet_engines) as pods:
        yield pods
