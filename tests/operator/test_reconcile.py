"""The operator against the real control plane: objects, status, updates, cascades.

Each test gets a fresh namespace and its own operator process, running as
the least-privilege ServiceAccount (see operator_harness).
"""

from collections.abc import Callable

import pytest
import yaml
from cluster.fake_nodes import GPU_LABEL
from cluster.polling import wait_until
from operator_harness import (
    REPO,
    Cluster,
    OperatorProcess,
    pool_yaml,
    voice_yaml,
)

CONFIG_HASH = "ttsfleet.dev/config-hash"


@pytest.fixture
def operator(operators: Callable[..., OperatorProcess]) -> OperatorProcess:
    return operators()


def template_hash(cluster: Cluster, pool: str) -> str:
    return cluster.deployment(pool).spec.template.metadata.annotations[CONFIG_HASH]


def test_quickstart_becomes_a_ready_fleet(cluster: Cluster, operator: OperatorProcess) -> None:
    cluster.apply_file(REPO / "examples" / "quickstart.yaml")
    pool = cluster.wait_ready("english")

    name = "english-inference"
    assert cluster.owned() == {kind: [name] for kind in cluster.owned()}
    status = pool["status"]
    assert status["observedGeneration"] == pool["metadata"]["generation"]
    assert (status["replicas"], status["readyReplicas"]) == (2, 2)
    assert (
        status["selector"] == "app.kubernetes.io/name=ttsfleet-inference,ttsfleet.dev/pool=english"
    )
    assert status["service"] == name
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions == {
        "Ready": ("True", "ReplicasReady"),
        "Progressing": ("False", "RolloutComplete"),
        "Degraded": ("False", "AsExpected"),
    }

    deployment = cluster.deployment("english")
    assert deployment.spec.replicas == 2
    assert [r.uid for r in deployment.metadata.owner_references] == [pool["metadata"]["uid"]]
    service = cluster.core.read_namespaced_service(name, cluster.namespace)
    assert service.spec.cluster_ip == "None"
    assert {p.name: p.port for p in service.spec.ports} == {"grpc": 50051, "metrics": 9090}
    config = cluster.core.read_namespaced_config_map(name, cluster.namespace)
    pod_config = yaml.safe_load(config.data["pod.yaml"])
    assert [v["metadata"]["name"] for v in pod_config["voices"]] == ["joe"]
    assert status["configHash"] == template_hash(cluster, "english")

    printed = cluster.kubectl("get", "ttsp", "english").stdout.split()
    assert printed[:6] == ["NAME", "READY", "DESIRED", "QUEUE", "VOICES", "AGE"]
    assert printed[6:9] == ["english", "2", "2"]


def test_cluster_wide_operator(cluster: Cluster, operators: Callable[..., OperatorProcess]) -> None:
    """As the chart runs it: all namespaces, with the cluster-wide peering object."""
    operators(cluster_wide=True)
    cluster.apply_file(REPO / "examples" / "quickstart.yaml")
    cluster.wait_ready("english")
    peering = cluster.custom.get_cluster_custom_object(
        "kopf.dev", "v1", "clusterkopfpeerings", "ttsfleet"
    )
    assert peering["status"]  # the operator's keep-alive


def test_scale_subresource_drives_the_deployment(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    cluster.apply(voice_yaml("joe") + "---\n" + pool_yaml("english", ["joe"], replicas=1))
    cluster.wait_ready("english")

    cluster.kubectl("scale", "ttsp", "english", "--replicas=3")
    pool = cluster.wait(
        lambda: (p := cluster.wait_ready("english"))["status"]["readyReplicas"] == 3 and p,
        "three ready replicas",
    )
    scale = yaml.safe_load(
        cluster.kubectl(
            "get", "--raw",
            f"/apis/ttsfleet.dev/v1alpha1/namespaces/{cluster.namespace}/ttspools/english/scale",
        ).stdout
    )  # fmt: skip
    assert scale["spec"]["replicas"] == 3
    assert scale["status"] == {"replicas": 3, "selector": pool["status"]["selector"]}


def test_gpu_pool_example_schedules_on_gpu_nodes(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    cluster.apply_file(REPO / "examples" / "gpu-pool.yaml")
    # Autoscaling is on with minReplicas 2: the pool is raised to it without load.
    pool = cluster.wait(
        lambda: (p := cluster.wait_ready("english-gpu"))["status"]["readyReplicas"] == 2 and p,
        "two ready GPU pods",
    )
    assert pool["spec"]["replicas"] == 2
    assert cluster.events("english-gpu", "ScaledUp")
    pods = cluster.core.list_namespaced_pod(
        cluster.namespace, label_selector="ttsfleet.dev/pool=english-gpu"
    ).items
    assert len(pods) == 2
    for pod in pods:
        node = cluster.core.read_node(pod.spec.node_name)
        assert node.metadata.labels[GPU_LABEL] == "true"
        [container] = pod.spec.containers
        assert container.resources.limits["nvidia.com/gpu"] == "1"
        assert container.security_context.read_only_root_filesystem is True
        assert container.readiness_probe.grpc.port == 50051


def test_manual_edits_are_corrected(cluster: Cluster, operator: OperatorProcess) -> None:
    cluster.apply(voice_yaml("joe") + "---\n" + pool_yaml("english", ["joe"], replicas=2))
    cluster.wait_ready("english")
    name = "english-inference"

    cluster.kubectl("scale", "deployment", name, "--replicas=5")
    cluster.kubectl("patch", "configmap", name, "-p", '{"data": {"pod.yaml": "{}"}}')
    cluster.kubectl("delete", "service", name)
    cluster.kubectl("label", "deployment", name, "team=speech")  # not ours: must survive

    cluster.wait(lambda: cluster.deployment("english").spec.replicas == 2, "replicas restored")
    cluster.wait(
        lambda: (
            "joe"
            in cluster.core.read_namespaced_config_map(name, cluster.namespace).data["pod.yaml"]
        ),
        "pod.yaml restored",
    )
    cluster.wait(lambda: cluster.owned()["Service"] == [name], "Service recreated")
    assert cluster.deployment("english").metadata.labels["team"] == "speech"
    assert cluster.events("english", "DriftCorrected")
    cluster.wait_ready("english")


def test_voice_change_rolls_every_pool_serving_it(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    cluster.apply(
        "---\n".join(
            [
                voice_yaml("joe"),
                voice_yaml("amy"),
                pool_yaml("first", ["joe"]),
                pool_yaml("second", ["amy", "joe"], defaultVoice="amy"),
                pool_yaml("other", ["amy"]),
            ]
        )
    )
    before = {
        pool: cluster.wait_ready(pool)["status"]["configHash"]
        for pool in ("first", "second", "other")
    }

    cluster.apply(voice_yaml("joe", defaults={"speed": 1.5}))

    for pool in ("first", "second"):
        cluster.wait(
            lambda pool=pool: template_hash(cluster, pool) != before[pool], f"{pool} rolled"
        )
        after = cluster.wait(
            lambda pool=pool: (
                (p := cluster.wait_ready(pool))["status"]["configHash"] != before[pool] and p
            ),
            f"{pool} Ready on the new configuration",
        )
        config = cluster.core.read_namespaced_config_map(f"{pool}-inference", cluster.namespace)
        joe = next(
            v
            for v in yaml.safe_load(config.data["pod.yaml"])["voices"]
            if v["metadata"]["name"] == "joe"
        )
        assert joe["spec"]["defaults"]["speed"] == 1.5
        assert after["status"]["updatedReplicas"] == after["spec"]["replicas"]
    assert template_hash(cluster, "other") == before["other"]


def test_missing_voice_degrades_then_recovers(cluster: Cluster, operator: OperatorProcess) -> None:
    cluster.apply(pool_yaml("english", ["amy"]))
    degraded = cluster.wait(
        lambda: (c := cluster.condition("english", "Degraded")).get("status") == "True" and c,
        "Degraded",
    )
    assert degraded["reason"] == "VoiceMissing"
    assert "amy" in degraded["message"]
    assert cluster.condition("english", "Ready")["status"] == "False"
    assert cluster.deployment("english") is None
    cluster.wait(lambda: cluster.events("english", "VoiceMissing"), "a VoiceMissing Event")

    cluster.apply(voice_yaml("amy"))
    cluster.wait_ready("english")
    assert cluster.condition("english", "Degraded")["status"] == "False"
    cluster.wait(lambda: cluster.events("english", "Recovered"), "a Recovered Event")

    # A voice deleted under a running pool: Degraded, but its pods keep serving.
    cluster.kubectl("delete", "ttsv", "amy")
    cluster.wait(
        lambda: cluster.condition("english", "Degraded").get("reason") == "VoiceMissing",
        "Degraded again",
    )
    assert cluster.condition("english", "Ready")["status"] == "True"
    assert cluster.deployment("english") is not None


def test_rejected_deployment_is_reported(cluster: Cluster, operator: OperatorProcess) -> None:
    bad_affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "Sideways"}]}
                ]
            }
        }
    }
    cluster.apply(
        voice_yaml("joe") + "---\n" + pool_yaml("english", ["joe"], affinity=bad_affinity)
    )
    degraded = cluster.wait(
        lambda: (c := cluster.condition("english", "Degraded")).get("status") == "True" and c,
        "Degraded",
    )
    assert degraded["reason"] == "ApplyFailed"
    assert "Sideways" in degraded["message"]


def test_deleting_a_pool_removes_what_it_owned(cluster: Cluster, operator: OperatorProcess) -> None:
    cluster.apply(
        voice_yaml("joe")
        + "---\n"
        + pool_yaml("english", ["joe"])
        + "---\n"
        + pool_yaml("kept", ["joe"])
    )
    cluster.wait_ready("english")
    cluster.wait_ready("kept")

    cluster.kubectl("delete", "ttsp", "english", "--wait=false")
    # The garbage collector follows owner references (it learns a new CRD's
    # kinds within 30 s of discovery refresh, hence the generous bound).
    cluster.wait(
        lambda: all(names == ["kept-inference"] for names in cluster.owned().values()),
        "owned objects of the deleted pool gone",
        timeout=120,
    )
    cluster.wait(
        lambda: (
            not cluster.core.list_namespaced_pod(
                cluster.namespace, label_selector="ttsfleet.dev/pool=english"
            ).items
        ),
        "its pods gone",
        timeout=120,
    )


def test_killed_mid_reconcile_converges_without_duplicates(
    cluster: Cluster, operators: Callable[..., OperatorProcess]
) -> None:
    pools = [f"pool-{i}" for i in range(30)]
    cluster.apply("---\n".join([voice_yaml("joe"), *(pool_yaml(p, ["joe"]) for p in pools)]))
    first = operators()
    wait_until(
        lambda: cluster.apps.list_namespaced_deployment(cluster.namespace).items,
        what="the first Deployment",
        timeout=60,
        interval=0.02,
    )
    first.kill()
    owned = cluster.owned()
    unfinished = [
        pool
        for pool in pools
        if any(f"{pool}-inference" not in names for names in owned.values())
        or "observedGeneration" not in ((cluster.pool(pool) or {}).get("status") or {})
    ]
    assert unfinished, "the operator finished before it could be killed mid-way"

    operators()
    for pool in pools:
        cluster.wait_ready(pool, timeout=120)
    expected = sorted(f"{p}-inference" for p in pools)
    assert cluster.owned() == {kind: expected for kind in cluster.owned()}
    # One ReplicaSet each: the restart did not roll anything.
    replica_sets = cluster.apps.list_namespaced_replica_set(cluster.namespace).items
    assert sorted(rs.metadata.owner_references[0].name for rs in replica_sets) == expected
