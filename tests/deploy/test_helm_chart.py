"""The Helm chart, with the real helm binary, and installed on the real control plane.

The first tests need only helm (built and cached with the control plane):
lint, render, and the values schema refusing bad values. The rendered
container arguments are parsed by the real `ttsfleet operator` and
`ttsfleet router` argument parsers, so the chart cannot drift from the
commands. The rest apply the rendered chart with server-side apply and watch
it come up: CRDs served, operator and router Deployments available with
Running pods (kwok plays the kubelet), RBAC granting what each needs and no
more, and the real router and operator processes doing their work logged in
as the chart's ServiceAccounts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from cluster import binaries
from cluster.control_plane import ControlPlane, free_port
from cluster.polling import wait_until
from operator_harness import OperatorProcess

from ttsfleet.gateway import main as gateway_main
from ttsfleet.jobs import main as jobs_main
from ttsfleet.operator import main as operator_main
from ttsfleet.operator import objects
from ttsfleet.operator.canary import DEFAULT_GATE_IMAGE, gate_job
from ttsfleet.proto import tts_pb2, tts_pb2_grpc
from ttsfleet.rollouts import Rollout
from ttsfleet.router import main as router_main

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "ttsfleet"
KUBE_VERSION = "v1.34.4"  # the test control plane's; the chart needs >= 1.29
RELEASE = "demo"
NAMESPACE = "tts"
COMPONENT = "app.kubernetes.io/component"
EVERY_OPTION = [
    "serviceMonitor.enabled=true",
    "networkPolicy.enabled=true",
    "router.autoscaling.enabled=true",
    "router.tls.enabled=true",
    "router.tls.secretName=router-tls",
    "router.auth.enabled=true",
    "router.auth.secretName=router-tokens",
    "gateway.routerToken.secretName=gateway-token",
    "jobs.backend=redis",
    "jobs.redisUrl=redis://redis:6379/0",
    "gateway.apiKeys.secretName=gateway-api-keys",
    "jobs.callbackSecret.secretName=callback-hmac",
    "podTLS.enabled=true",
    "podTLS.secretName=fleet-tls",
]
Manifest = dict[str, Any]


@pytest.fixture(scope="module")
def helm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """helm's own directories in a throwaway place; no user config or cache leaks in."""
    home = tmp_path_factory.mktemp("helm")
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[name] = str(home / name.lower())
    return env


@pytest.fixture(scope="module")
def helm_bin() -> Path:
    return binaries.locate()["helm"]


def helm(
    helm_bin: Path, env: dict[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(helm_bin), *args], capture_output=True, text=True, env=env, timeout=120
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def template_args(*sets: str, release: str = RELEASE, namespace: str = NAMESPACE) -> list[str]:
    args = ["template", release, str(CHART), f"--namespace={namespace}"]
    args.append(f"--kube-version={KUBE_VERSION}")
    for value in sets:
        args += ["--set", value]
    return args


@pytest.fixture(scope="module")
def render(helm_bin: Path, helm_env: dict[str, str]) -> Any:
    """Render the chart with some --set values into a list of manifests."""

    def rendered(*sets: str) -> list[Manifest]:
        out = helm(helm_bin, helm_env, *template_args(*sets)).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]

    return rendered


def find(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    matches = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind} {name}: {len(matches)} rendered"
    return matches[0]


def container(manifests: list[Manifest], component: str) -> Manifest:
    deployment = find(manifests, "Deployment", f"{RELEASE}-ttsfleet-{component}")
    containers: list[Manifest] = deployment["spec"]["template"]["spec"]["containers"]
    return containers[0]


# -- helm lint and helm template ------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["--values", str(CHART / "values-kind.yaml")],
        [a for s in EVERY_OPTION for a in ("--set", s)],
    ],
    ids=["defaults", "kind", "every-option"],
)
def test_helm_lint_passes_strictly(
    helm_bin: Path, helm_env: dict[str, str], values: list[str]
) -> None:
    result = helm(
        helm_bin,
        helm_env,
        "lint",
        "--strict",
        f"--kube-version={KUBE_VERSION}",
        str(CHART),
        *values,
    )
    assert "0 chart(s) failed" in result.stdout


def test_defaults_render_every_component_with_rbac_and_pdbs(render: Any) -> None:
    """Operator, router and gateway (with its job store); no worker Deployment with sqlite."""
    kinds = sorted(m["kind"] for m in render())
    per_component = ["ServiceAccount", "Deployment", "PodDisruptionBudget"]
    rbac = ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]  # operator, router
    gate = ["ClusterRole", "ServiceAccount", "RoleBinding"]  # canary gate Jobs' identity
    services = ["Service", "Service", "PersistentVolumeClaim"]  # router, gateway; jobs
    policies = ["NetworkPolicy"] * 4  # operator, router, gateway, inference pods
    assert kinds == sorted([*per_component * 3, *rbac, *gate, *services, *policies])


def test_every_component_has_a_network_policy_for_ingress_and_egress(render: Any) -> None:
    """Each pod is selected by a policy of both types whose every egress rule names its ports."""
    manifests = render("jobs.backend=redis", "jobs.redisUrl=redis://r:6379/0")
    policies = [m for m in manifests if m["kind"] == "NetworkPolicy"]
    for component in ("operator", "router", "gateway", "worker"):
        labels = _pod_labels(manifests, component)
        selecting = [
            p for p in policies if _matches(p["spec"]["podSelector"]["matchLabels"], labels)
        ]
        assert len(selecting) == 1, component
        spec = selecting[0]["spec"]
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        assert spec["egress"] and all(rule.get("ports") for rule in spec["egress"]), component
    router_egress = find(manifests, "NetworkPolicy", f"{RELEASE}-ttsfleet-router")["spec"]["egress"]
    to_pods = [r for r in router_egress if any("podSelector" in peer for peer in r.get("to", ()))]
    assert to_pods[0]["ports"] == [{"port": "grpc", "protocol": "TCP"}]
    assert _matches(to_pods[0]["to"][0]["podSelector"]["matchLabels"], objects.labels("any"))
    operator = find(manifests, "NetworkPolicy", f"{RELEASE}-ttsfleet-operator")["spec"]
    assert operator["ingress"] == []  # nothing calls the operator (probes come from its node)


def test_redis_jobs_add_a_worker_deployment_and_scale_the_gateway(render: Any) -> None:
    manifests = render("jobs.backend=redis", "jobs.redisUrl=redis://r:6379/0", "gateway.replicas=3")
    gateway = find(manifests, "Deployment", f"{RELEASE}-ttsfleet-gateway")
    assert gateway["spec"]["replicas"] == 3
    assert gateway["spec"]["strategy"]["type"] == "RollingUpdate"
    assert find(manifests, "Deployment", f"{RELEASE}-ttsfleet-worker")["spec"]["replicas"] == 2
    for component in ("gateway", "worker"):
        pod = find(manifests, "Deployment", f"{RELEASE}-ttsfleet-{component}")
        assert pod["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_gateway_and_worker_command_lines_are_what_ttsfleet_parses(render: Any) -> None:
    """Every flag the chart writes means what it intends to the real parsers."""
    manifests = render(*EVERY_OPTION)
    gateway, worker = container(manifests, "gateway"), container(manifests, "worker")
    assert (gateway["command"], worker["command"]) == (
        ["ttsfleet", "gateway"],
        ["ttsfleet", "worker"],
    )
    parsed_gateway = gateway_main.parse_args(gateway["args"])
    parsed_worker = jobs_main.parse_args(worker["args"])
    for args, spec in ((parsed_gateway, gateway), (parsed_worker, worker)):
        assert args.router == f"{RELEASE}-ttsfleet-router.{NAMESPACE}.svc:50051"
        assert args.backend == "redis://redis:6379/0"
        mounts = {m["name"]: m["mountPath"] for m in spec["volumeMounts"]}
        assert args.results.is_relative_to(mounts["jobs"])
        assert args.router_ca == Path(mounts["router-ca"], "ca.crt")
        assert args.token_file == Path(mounts["router-token"], "token")
        assert args.callback_secret_file == Path(mounts["callback-secret"], "secret")
        assert args.retention_seconds == 7 * 24 * 3600
    assert parsed_gateway.workers == 0  # redis: the worker Deployment runs the jobs
    gateway_mounts = {m["name"]: m["mountPath"] for m in gateway["volumeMounts"]}
    assert parsed_gateway.api_keys_file == Path(gateway_mounts["api-keys"], "keys")
    worker_ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
    assert worker_ports == {"metrics": parsed_worker.metrics_port}
    ports = {p["name"]: p["containerPort"] for p in gateway["ports"]}
    assert ports == {"http": parsed_gateway.port, "grpc": parsed_gateway.grpc_port}
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


def test_sqlite_jobs_live_in_the_gateway_on_its_claim(render: Any) -> None:
    manifests = render()
    gateway = container(manifests, "gateway")
    args = gateway_main.parse_args(gateway["args"])
    assert args.backend == "sqlite:///var/lib/ttsfleet/jobs/jobs.db" and args.workers == 2
    claim = find(manifests, "PersistentVolumeClaim", f"{RELEASE}-ttsfleet-jobs")
    deployment = find(manifests, "Deployment", f"{RELEASE}-ttsfleet-gateway")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["jobs"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # one writer of the file


def test_operator_rules_are_those_of_deploy_rbac(render: Any) -> None:
    """The chart grants the operator exactly what its integration tests run it with."""
    documents = yaml.safe_load_all((ROOT / "deploy" / "rbac" / "operator.yaml").read_text())
    expected = next(d for d in documents if d["kind"] == "ClusterRole")["rules"]
    role = find(render(), "ClusterRole", f"{RELEASE}-ttsfleet-operator")
    assert role["rules"] == expected


def test_gate_rules_are_those_of_deploy_rbac_bound_where_pools_are(render: Any) -> None:
    """Gate Jobs run in their pool's namespace as the ServiceAccount the CRD defaults to."""
    (expected,) = yaml.safe_load_all((ROOT / "deploy" / "rbac" / "gate.yaml").read_text())
    gate = f"{RELEASE}-ttsfleet-gate"
    assert find(render(), "ClusterRole", gate)["rules"] == expected["rules"]

    def bound(*sets: str) -> list[tuple[str, str]]:
        manifests = render(*sets)
        bindings = [m for m in manifests if m["kind"] == "RoleBinding"]
        accounts = [
            (a["metadata"]["namespace"], a["metadata"]["name"])
            for a in manifests
            if a["kind"] == "ServiceAccount" and not a["metadata"]["name"].startswith(RELEASE)
        ]
        subjects = [
            (s["namespace"], s["name"])
            for b in bindings
            if b["roleRef"]
            == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": gate}
            for s in b["subjects"]
        ]
        assert sorted(subjects) == sorted(accounts)
        return sorted(subjects)

    assert bound() == [(NAMESPACE, Rollout().gate.service_account)]
    assert bound("watchNamespaces={voices,tts}") == [
        ("tts", "ttsfleet-gate"),
        ("voices", "ttsfleet-gate"),
    ]
    assert bound("gate.namespaces={speech}", "gate.serviceAccountName=judge") == [
        ("speech", "judge")
    ]
    components = {m["metadata"].get("labels", {}).get(COMPONENT) for m in render("gate.rbac=false")}
    assert "gate" in {m["metadata"]["labels"][COMPONENT] for m in render()} - components


def test_watching_namespaces_turns_cluster_roles_into_roles(render: Any) -> None:
    manifests = render("watchNamespaces={voices,tts}")
    operator = f"{RELEASE}-ttsfleet-operator"
    roles = [m for m in manifests if m["kind"] == "Role" and m["metadata"]["name"] == operator]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["tts", "voices"]
    # Rules on cluster-scoped resources cannot live in a Role: they stay cluster-wide.
    cluster_role = find(manifests, "ClusterRole", operator)
    cluster_resources = {res for rule in cluster_role["rules"] for res in rule["resources"]}
    assert cluster_resources <= {"customresourcedefinitions", "namespaces"}
    assert len(roles[0]["rules"]) + len(cluster_role["rules"]) == len(
        find(render(), "ClusterRole", operator)["rules"]
    )
    assert container(manifests, "operator")["args"] == ["--namespace=voices", "--namespace=tts"]


def test_operator_command_line_is_what_ttsfleet_operator_parses(
    render: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Flags and TTSFLEET_* variables mean what the chart intends to the real parser."""
    manifests = render(
        "watchNamespaces={tts}",
        "operator.voiceCacheDir=/var/cache/tts",
        "operator.ociImageVolumes=true",
    )
    operator = container(manifests, "operator")
    assert operator["command"] == ["ttsfleet", "operator"]
    for variable in operator["env"]:
        monkeypatch.setenv(variable["name"], variable["value"])
    args = operator_main.parse_args(operator["args"])
    assert args.namespace == ["tts"]
    assert args.image == "ghcr.io/ttsfleet/inference:0.1.0"
    assert args.fetcher_image == "ghcr.io/ttsfleet/ttsfleet:0.1.0"  # has `ttsfleet fetch-voice`
    assert args.gate_image == "ghcr.io/ttsfleet/gate:0.1.0" == DEFAULT_GATE_IMAGE  # has Whisper
    assert (args.voice_cache_dir, args.oci_image_volumes) == ("/var/cache/tts", True)
    assert args.peering == f"{RELEASE}-ttsfleet-operator"
    assert (args.interval, args.peering_lifetime) == (10, 60)
    assert args.liveness == "http://0.0.0.0:8080/healthz"
    port = operator["ports"][0]
    assert operator["livenessProbe"]["httpGet"]["port"] == port["name"]
    assert args.liveness.endswith(f":{port['containerPort']}/healthz")


def test_router_command_line_is_what_ttsfleet_router_parses(render: Any) -> None:
    manifests = render(*EVERY_OPTION)
    router = container(manifests, "router")
    assert router["command"] == ["ttsfleet", "router"]
    args = router_main.parse_args(router["args"])
    assert (args.port, args.metrics_port, args.namespace) == (50051, 9090, NAMESPACE)
    mounts = {m["name"]: m["mountPath"] for m in router["volumeMounts"]}
    assert args.tls_cert == Path(mounts["tls"], "tls.crt")
    assert args.tls_key == Path(mounts["tls"], "tls.key")
    assert args.auth_token_file == Path(mounts["auth"], "tokens")
    ports = {p["name"]: p["containerPort"] for p in router["ports"]}
    assert ports == {"grpc": args.port, "metrics": args.metrics_port}


def test_the_router_keeps_serving_then_drains_within_its_grace(render: Any) -> None:
    """preStop wait, then SIGTERM and the drain: Kubernetes must not kill it before both end."""
    manifests = render()
    router = container(manifests, "router")
    pod = find(manifests, "Deployment", f"{RELEASE}-ttsfleet-router")["spec"]["template"]["spec"]
    wait = router["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = router_main.parse_args(router["args"]).drain_seconds
    assert wait > 0
    assert pod["terminationGracePeriodSeconds"] >= wait + drain + 10


def test_pod_tls_gives_the_router_and_operator_the_shared_secret(
    render: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifests = render("podTLS.enabled=true", "podTLS.secretName=fleet-tls")
    router = container(manifests, "router")
    mounts = {m["name"]: m["mountPath"] for m in router["volumeMounts"]}
    args = router_main.parse_args(router["args"])
    assert (args.pod_tls_cert, args.pod_tls_key, args.pod_tls_ca) == tuple(
        Path(mounts["pod-tls"], name) for name in ("tls.crt", "tls.key", "ca.crt")
    )
    operator = container(manifests, "operator")
    for variable in operator["env"]:
        if "value" in variable:
            monkeypatch.setenv(variable["name"], variable["value"])
    parsed = operator_main.parse_args([])
    assert parsed.pod_tls_secret == "fleet-tls"
    assert parsed.pod_tls_dir == Path(
        next(m["mountPath"] for m in operator["volumeMounts"] if m["name"] == "pod-tls")
    )


def test_tls_turns_grpc_probes_into_tcp_probes(render: Any) -> None:
    """The kubelet's gRPC probe speaks plaintext only; it would fail against TLS."""
    plain = container(render(), "router")
    assert plain["readinessProbe"]["grpc"] == {"port": 50051}
    secured = container(render(*EVERY_OPTION), "router")
    assert secured["readinessProbe"]["tcpSocket"] == {"port": "grpc"}
    assert "grpc" not in secured["livenessProbe"]


def test_an_autoscaled_router_leaves_replicas_to_the_hpa(render: Any) -> None:
    manifests = render("router.autoscaling.enabled=true")
    router = find(manifests, "Deployment", f"{RELEASE}-ttsfleet-router")
    assert "replicas" not in router["spec"]
    hpa = find(manifests, "HorizontalPodAutoscaler", f"{RELEASE}-ttsfleet-router")
    assert hpa["spec"]["scaleTargetRef"]["name"] == router["metadata"]["name"]


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def _pod_labels(manifests: list[Manifest], component: str) -> dict[str, str]:
    deployment = find(manifests, "Deployment", f"{RELEASE}-ttsfleet-{component}")
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def test_network_policy_admits_only_router_operator_gate_and_prometheus(render: Any) -> None:
    manifests = render("networkPolicy.enabled=true")
    policy = find(manifests, "NetworkPolicy", f"{RELEASE}-ttsfleet-inference")
    assert policy["metadata"]["namespace"] == NAMESPACE  # the router's pool namespace
    assert _matches(policy["spec"]["podSelector"]["matchLabels"], objects.labels("any-pool"))
    grpc, metrics = policy["spec"]["ingress"]
    assert grpc["ports"] == [{"port": "grpc", "protocol": "TCP"}]
    assert metrics["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    peers = [peer["podSelector"]["matchLabels"] for peer in grpc["from"]]
    assert len(peers) == 3
    for component in ("router", "operator"):
        assert sum(_matches(p, _pod_labels(manifests, component)) for p in peers) == 1
    # Gate Jobs run in the pool's namespace: a peer without a namespaceSelector means that one.
    ref = objects.PoolRef(NAMESPACE, "english", "u")
    job = gate_job(ref, Rollout(), "r1", DEFAULT_GATE_IMAGE)
    gate_pod = job["spec"]["template"]["metadata"]["labels"]
    (gate,) = [
        peer for peer in grpc["from"] if _matches(peer["podSelector"]["matchLabels"], gate_pod)
    ]
    assert "namespaceSelector" not in gate
    port_names = {
        p["name"] for p in objects.service(objects.PoolRef("ns", "p", "u"))["spec"]["ports"]
    }
    assert port_names == {"grpc", "metrics"}


def test_service_monitors_select_the_router_and_every_pools_service(render: Any) -> None:
    manifests = render("serviceMonitor.enabled=true", "serviceMonitor.labels.release=prom")
    router = find(manifests, "ServiceMonitor", f"{RELEASE}-ttsfleet-router")
    service = find(manifests, "Service", f"{RELEASE}-ttsfleet-router")
    assert _matches(router["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert router["metadata"]["labels"]["release"] == "prom"
    inference = find(manifests, "ServiceMonitor", f"{RELEASE}-ttsfleet-inference")
    pool_service = objects.service(objects.PoolRef("ns", "p", "u"))
    assert _matches(
        inference["spec"]["selector"]["matchLabels"], pool_service["metadata"]["labels"]
    )
    assert inference["spec"]["namespaceSelector"] == {"any": True}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ("router.replicas=0", "at '/router/replicas': minimum: got 0, want 1"),
        ("operator.logLevel=LOUD", "at '/operator/logLevel': value must be one of"),
        ("routr.replicas=2", "additional properties 'routr' not allowed"),
        ("router.service.type=Ingress", "at '/router/service/type': value must be one of"),
        ("router.picker=random", "at '/router/picker': value must be one of"),
        ("watchNamespaces={Bad_NS}", "at '/watchNamespaces/0': 'Bad_NS' does not match pattern"),
        ("router.resources.requests.cpu=lots", "at '/router/resources/requests/cpu'"),
        ("router.service.nodePort=80", "at '/router/service/nodePort': minimum"),
        ("router.tls.enabled=true", "router.tls.secretName: name the kubernetes.io/tls Secret"),
        ("router.auth.enabled=true", "router.auth.secretName: name the Secret"),
        ("router.metricsPort=50051", "router.metricsPort: choose a port other than 50051"),
        ("podTLS.enabled=true", "podTLS.secretName: name the kubernetes.io/tls Secret"),
        ("gateway.replicas=2", "gateway.replicas: the sqlite job backend is one file"),
        ("jobs.backend=redis", "jobs.redisUrl: the Redis URL"),
        ("jobs.backend=postgres", "at '/jobs/backend': value must be one of"),
        ("image.tag=1.0:latest", "at '/image/tag': '1.0:latest' does not match pattern"),
        ("inferenceImage.repository=", "at '/inferenceImage/repository': minLength"),
        ("gateway.service.port=0", "at '/gateway/service/port': minimum: got 0"),
        ("router.service.port=70000", "at '/router/service/port': maximum"),
        (
            "router.auth.enabled=true,router.auth.secretName=t",
            "gateway.routerToken.secretName: the router requires a bearer token",
        ),
        ("watchNamespaces={voices}", "router.poolNamespace: tts is not among watchNamespaces"),
        (
            "router.autoscaling.enabled=true,router.autoscaling.minReplicas=12",
            "router.autoscaling: minReplicas must not exceed maxReplicas",
        ),
    ],
)
def test_bad_values_are_refused_with_a_message_naming_them(
    helm_bin: Path, helm_env: dict[str, str], values: str, message: str
) -> None:
    result = helm(helm_bin, helm_env, *template_args(values), check=False)
    assert result.returncode != 0
    assert message in result.stderr


# -- on the real control plane ---------------------------------------------


def _job_volume(release: str) -> Manifest:
    """A hostPath volume that binds the release's job store claim (never mounted: kwok)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"{release}-jobs", "labels": {"app.kubernetes.io/instance": release}},
        "spec": {
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": f"/var/lib/ttsfleet-test/{release}"},
            "claimRef": {"namespace": release, "name": f"{release}-ttsfleet-jobs"},
        },
    }


def _crd_names() -> list[str]:
    documents = [
        d for p in (ROOT / "crds").glob("*.yaml") for d in yaml.safe_load_all(p.read_text())
    ]
    return sorted(d["metadata"]["name"] for d in documents if d)


@pytest.fixture
def install(
    control_plane: ControlPlane, namespace: str, helm_bin: Path, helm_env: dict[str, str]
) -> Iterator[Callable[..., str]]:
    """``install(*sets)``: the chart rendered for ``namespace``, applied server-side; the release.

    CRDs first (as helm does from crds/), until the API serves them; then the
    rest. Cluster-scoped objects are removed afterwards; the namespace
    fixture removes the rest.
    """
    release = namespace  # unique, so cluster-scoped names never collide

    def apply_chart(*sets: str) -> str:
        args = [*template_args(*sets, release=release, namespace=namespace), "--include-crds"]
        manifests = [d for d in yaml.safe_load_all(helm(helm_bin, helm_env, *args).stdout) if d]
        crds = [m for m in manifests if m["kind"] == "CustomResourceDefinition"]
        rest = [m for m in manifests if m["kind"] != "CustomResourceDefinition"]
        assert sorted(crd["metadata"]["name"] for crd in crds) == _crd_names()
        # Other tests apply the same CRDs from crds/; identical values never conflict.
        apply = ("apply", "--server-side", "--field-manager=helm-chart-test", "-f", "-")
        control_plane.kubectl(*apply, "--force-conflicts", input=yaml.safe_dump_all(crds))
        names = [f"crd/{crd['metadata']['name']}" for crd in crds]
        control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
        control_plane.kubectl(*apply, input=yaml.safe_dump_all(rest))
        return release

    yield apply_chart
    selector = f"app.kubernetes.io/instance={release}"
    control_plane.kubectl(
        "delete", "clusterrole,clusterrolebinding,persistentvolume", "-l", selector, "--wait=false"
    )


@pytest.fixture
def installed(install: Callable[..., str]) -> str:
    """The chart with its defaults and a NetworkPolicy; the release (= namespace) name."""
    return install("networkPolicy.enabled=true")


def test_the_rendered_chart_comes_up(control_plane: ControlPlane, installed: str) -> None:
    namespace = release = installed
    # The test cluster has no storage provisioner: a volume for the job store's claim.
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(_job_volume(release)))
    components = ("operator", "router", "gateway")
    deployments = [f"deployment/{release}-ttsfleet-{c}" for c in components]
    control_plane.kubectl(
        "wait", "-n", namespace, "--for=condition=Available", "--timeout=90s", *deployments
    )
    pods = control_plane.kubectl(
        "get", "pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={release}", "-o", "json"
    )
    phases = [
        f"{pod['metadata']['labels']['app.kubernetes.io/component']}={pod['status']['phase']}"
        for pod in json.loads(pods.stdout)["items"]
    ]
    assert sorted(phases) == [
        "gateway=Running",
        "operator=Running",
        "router=Running",
        "router=Running",
    ]
    # The CRDs are served: the kinds resolve, and the examples and the GitOps
    # fleet are valid objects to the API server (schemas, CEL rules).
    listed = control_plane.kubectl("get", "ttspools,ttsvoices", "-n", namespace)
    assert "No resources found" in listed.stderr
    dry_run = ("apply", "-n", namespace, "--dry-run=server")
    for example in sorted((ROOT / "examples").glob("*.yaml")):
        control_plane.kubectl(*dry_run, "-f", str(example))
    control_plane.kubectl(*dry_run, "-k", str(ROOT / "deploy" / "argocd" / "fleet"))


def test_every_option_is_accepted_by_the_api_server(
    control_plane: ControlPlane, installed: str, helm_bin: Path, helm_env: dict[str, str]
) -> None:
    """HPA, TLS and token Secrets, NetworkPolicy: valid objects, as the API server judges.

    ServiceMonitors are left out: they need the Prometheus Operator's CRDs.
    """
    namespace = release = installed
    sets = [s for s in EVERY_OPTION if not s.startswith("serviceMonitor")]
    out = helm(helm_bin, helm_env, *template_args(*sets, release=release, namespace=namespace))
    kinds = {d["kind"] for d in yaml.safe_load_all(out.stdout) if d}
    assert {"HorizontalPodAutoscaler", "NetworkPolicy"} <= kinds
    control_plane.kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "--field-manager=helm-chart-test",
        "-f",
        "-",
        input=out.stdout,
    )


@pytest.mark.parametrize(
    ("values", "reach"),
    [
        ([], f"port-forward service/{RELEASE}-ttsfleet-router 50051:50051"),
        (["--values", str(CHART / "values-kind.yaml")], "listens on every node at port 30051"),
    ],
    ids=["defaults", "kind"],
)
def test_notes_tell_the_user_what_to_do_next(
    control_plane: ControlPlane,
    namespace: str,
    helm_bin: Path,
    helm_env: dict[str, str],
    values: list[str],
    reach: str,
) -> None:
    """A real `helm install`, validated by the API server but not persisted, prints NOTES.txt."""
    result = helm(
        helm_bin,
        helm_env,
        "install",
        RELEASE,
        str(CHART),
        f"--namespace={namespace}",
        f"--kubeconfig={control_plane.kubeconfig}",
        "--dry-run=server",
        *values,
    )
    notes = result.stdout.split("NOTES:", 1)[1]
    assert f"kubectl -n {namespace} wait --for=condition=Available" in notes
    assert f"deployment/{RELEASE}-ttsfleet-operator deployment/{RELEASE}-ttsfleet-router" in notes
    assert f"kubectl -n {namespace} apply -f" in notes  # pools go where the router looks
    assert reach in notes
    assert "ttsfleet say" in notes


def _can(control_plane: ControlPlane, account: str, namespace: str, *request: str) -> bool:
    """kubectl auth can-i as a ServiceAccount: RBAC's own answer."""
    answer = control_plane.kubectl(
        "auth",
        "can-i",
        *request,
        f"--as=system:serviceaccount:{namespace}:{account}",
        check=False,
    )
    return answer.stdout.strip() == "yes"


def test_each_component_may_do_what_it_needs_and_no_more(
    control_plane: ControlPlane, installed: str
) -> None:
    namespace = release = installed
    router, operator = f"{release}-ttsfleet-router", f"{release}-ttsfleet-operator"
    gateway = f"{release}-ttsfleet-gateway"
    gate = "ttsfleet-gate"  # as pools' spec.rollout.gate.serviceAccountName defaults
    can = {
        "gate annotates its pools": (gate, "patch", "ttspools.ttsfleet.dev", "-n", namespace),
        "router watches its pools": (router, "watch", "ttspools.ttsfleet.dev", "-n", namespace),
        "router watches slices": (
            router,
            "watch",
            "endpointslices.discovery.k8s.io",
            "-n",
            namespace,
        ),
        "operator patches pool status": (
            operator,
            "patch",
            "ttspools.ttsfleet.dev",
            "--subresource=status",
            "-n",
            "any",
        ),
        "operator applies deployments": (operator, "patch", "deployments.apps", "-n", "any"),
        # Only a decided canary's Deployment is ever deleted (owner references do the rest).
        "operator removes a decided canary": (operator, "delete", "deployments.apps", "-n", "any"),
        "operator patches voice status": (
            operator,
            "patch",
            "ttsvoices.ttsfleet.dev",
            "--subresource=status",
            "-n",
            "any",
        ),
        "router wakes a sleeping pool": (
            router,
            "patch",
            "ttspools.ttsfleet.dev",
            "--subresource=scale",
            "-n",
            namespace,
        ),
    }
    cannot = {
        "router in other namespaces": (router, "list", "ttspools.ttsfleet.dev", "-n", "default"),
        "router reads secrets": (router, "get", "secrets", "-n", namespace),
        "router writes pools": (router, "patch", "ttspools.ttsfleet.dev", "-n", namespace),
        "router writes pool status": (
            router,
            "patch",
            "ttspools.ttsfleet.dev",
            "--subresource=status",
            "-n",
            namespace,
        ),
        "router scales pools elsewhere": (
            router,
            "patch",
            "ttspools.ttsfleet.dev",
            "--subresource=scale",
            "-n",
            "default",
        ),
        "operator reads secrets": (operator, "get", "secrets", "-n", namespace),
        "operator edits voices": (operator, "patch", "ttsvoices.ttsfleet.dev", "-n", "any"),
        "operator deletes pools": (operator, "delete", "ttspools.ttsfleet.dev", "-n", "any"),
        "gateway reads anything": (gateway, "get", "pods", "-n", namespace),
        "gate reads anything": (gate, "get", "ttspools.ttsfleet.dev", "-n", namespace),
        "gate reads secrets": (gate, "get", "secrets", "-n", namespace),
        "gate writes pool status": (
            gate,
            "patch",
            "ttspools.ttsfleet.dev",
            "--subresource=status",
            "-n",
            namespace,
        ),
        "gate patches pools elsewhere": (gate, "patch", "ttspools.ttsfleet.dev", "-n", "default"),
        "gateway reads secrets": (gateway, "get", "secrets", "-n", namespace),
    }
    denied = [
        what for what, (sa, *req) in can.items() if not _can(control_plane, sa, namespace, *req)
    ]
    allowed = [
        what for what, (sa, *req) in cannot.items() if _can(control_plane, sa, namespace, *req)
    ]
    assert (denied, allowed) == ([], [])


# -- the real components under the chart's ServiceAccounts -----------------


def test_the_router_discovers_pools_with_only_the_charts_rbac(
    control_plane: ControlPlane, installed: str, tmp_path: Path
) -> None:
    """`ttsfleet router` logged in as the chart's router ServiceAccount lists the pool's voices.

    No operator runs in this namespace, so the pool has no pods and no
    EndpointSlices: the router learns the voices from the TTSPool alone and
    dials nothing but the API server.
    """
    namespace = release = installed
    control_plane.kubectl(
        "apply", "-n", namespace, "-f", str(ROOT / "examples" / "quickstart.yaml")
    )
    kubeconfig = control_plane.service_account_kubeconfig(namespace, f"{release}-ttsfleet-router")
    port, log = free_port(), tmp_path / "router.log"
    argv = [
        sys.executable, "-m", "ttsfleet.cli", "router",
        f"--kubeconfig={kubeconfig}", f"--namespace={namespace}", "--host=127.0.0.1",
        f"--port={port}", "--metrics-port=-1", "--drain-seconds=0", "--log-format=text",
    ]  # fmt: skip
    with log.open("wb") as out:
        router = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)

    def voices() -> list[str] | None:
        """The voices the router lists; None until it listens and has discovered them."""
        try:
            direct = [("grpc.enable_http_proxy", 0)]  # never via a proxy: loopback only
            with grpc.insecure_channel(f"127.0.0.1:{port}", options=direct) as channel:
                listed = tts_pb2_grpc.TTSServiceStub(channel).ListVoices(
                    tts_pb2.ListVoicesRequest(), timeout=5
                )
        except grpc.RpcError:
            return None
        return [voice.name for voice in listed.voices] or None

    try:
        assert wait_until(voices, what="voices from the TTSPool", timeout=60) == ["joe"]
    except BaseException:
        print(log.read_text()[-20000:])
        raise
    finally:
        router.terminate()
        router.wait(timeout=30)
    serving = log.read_text().split(" draining", 1)[0]  # stopping ends the watches, noisily
    assert "watch failed" not in serving, serving  # e.g. 403 Forbidden


def test_the_operator_runs_pools_with_the_charts_namespaced_rbac(
    control_plane: ControlPlane, namespace: str, install: Callable[..., str], tmp_path: Path
) -> None:
    """Watching listed namespaces, the operator's Roles plus its small ClusterRole suffice.

    The real `ttsfleet operator`, logged in as the chart's operator
    ServiceAccount, turns a pool into a Ready Deployment (kwok runs the pods)
    and lets it be deleted (its finalizer), reading no pod's load.
    """
    release = install(f"watchNamespaces={{{namespace}}}")
    kubeconfig = control_plane.service_account_kubeconfig(namespace, f"{release}-ttsfleet-operator")
    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log", ["--namespace", namespace])
    try:
        control_plane.kubectl(
            "apply", "-n", namespace, "-f", str(ROOT / "examples" / "quickstart.yaml")
        )
        control_plane.kubectl(
            "wait", "-n", namespace, "ttspool/english", "--for=condition=Ready", "--timeout=90s"
        )
        control_plane.kubectl("get", "-n", namespace, "deployment/english-inference")
        control_plane.kubectl("delete", "-n", namespace, "ttspool/english", "--timeout=60s")
    except BaseException:
        print(operator.log()[-20000:])
        raise
    finally:
        operator.stop()
    assert "Forbidden" not in operator.log(), operator.log()[-20000:]
