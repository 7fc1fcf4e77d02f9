"""Canary rollouts against the real control plane: a voice change becomes a canary, the gate's
verdict promotes it or rolls it back, and the pool's status and Events say why.

The gate Job's pod does not run here (kwok pods run no containers), so each
test writes the verdict annotation exactly as `ttsfleet gate --pool` does.
"""

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from operator_harness import Cluster, OperatorProcess, pool_yaml, voice_yaml

from ttsfleet.manifests import GROUP, VERSION
from ttsfleet.operator.canary import DEFAULT_GATE_IMAGE
from ttsfleet.rollouts import REVISION_LABEL, VERDICT_ANNOTATION, Verdict

CANARY = "english-inference-canary"


@pytest.fixture
def operator(operators: Callable[..., OperatorProcess]) -> OperatorProcess:
    return operators()


def rollout(cluster: Cluster) -> dict[str, Any]:
    return ((cluster.pool("english") or {}).get("status") or {}).get("rollout") or {}


def voice_revision(cluster: Cluster) -> str | None:
    voice = cluster.custom.get_namespaced_custom_object(
        GROUP, VERSION, cluster.namespace, "ttsvoices", "joe"
    )
    return (voice.get("status") or {}).get("revision")


def speed_in(cluster: Cluster, config_map: str) -> float:
    config = cluster.core.read_namespaced_config_map(config_map, cluster.namespace)
    pod = yaml.safe_load(config.data["pod.yaml"])
    return float(pod["voices"][0]["spec"]["defaults"]["speed"])


def canary_gone(cluster: Cluster) -> bool:
    try:
        cluster.apps.read_namespaced_deployment(CANARY, cluster.namespace)
    except ApiException as error:
        return error.status == 404
    return False


def start_canary(cluster: Cluster, **gate: Any) -> tuple[str, str]:
    """A pool at a stable revision, then a voice edit: returns (stable, canary) revisions."""
    spec = {"replicas": 2, "rollout": {"canaryPercent": 25, "canaryReplicas": 1, "gate": gate}}
    cluster.apply(voice_yaml("joe") + "---\n" + pool_yaml("english", ["joe"], **spec))
    cluster.wait_ready("english")
    stable = cluster.wait(lambda: rollout(cluster).get("stableRevision"), "a stable revision")
    assert rollout(cluster)["phase"] == "Stable"
    before = cluster.wait(lambda: voice_revision(cluster), "the voice's revision in its status")

    cluster.apply(voice_yaml("joe", defaults={"speed": 1.25}))
    cluster.wait(lambda: voice_revision(cluster) not in (None, before), "the new voice revision")
    state = cluster.wait(
        lambda: (r := rollout(cluster)).get("phase") == "Canary" and r, "the canary to start"
    )
    canary = state["canaryRevision"]
    assert canary != stable and state["stableRevision"] == stable
    assert state["canaryPercent"] == 25

    deployment = cluster.wait(
        lambda: cluster.apps.read_namespaced_deployment(CANARY, cluster.namespace), "canary"
    )
    assert deployment.spec.replicas == 1
    labels = deployment.spec.template.metadata.labels
    assert labels[REVISION_LABEL] == canary and "ttsfleet.dev/pool" not in labels
    stable_labels = cluster.deployment("english").spec.template.metadata.labels
    assert stable_labels[REVISION_LABEL] == stable
    assert cluster.deployment("english").spec.replicas == 2
    # The stable pods keep the old voice; the canary's load the edited one.
    assert speed_in(cluster, "english-inference") == 1.0
    assert speed_in(cluster, CANARY) == 1.25
    service = cluster.core.read_namespaced_service(CANARY, cluster.namespace)
    assert service.metadata.labels[REVISION_LABEL] == canary
    job = cluster.wait(
        lambda: cluster_job(cluster, f"english-gate-{canary}"), "the gate Job", timeout=30
    )
    args = job.spec.template.spec.containers[0].args
    assert job.spec.template.spec.containers[0].image == DEFAULT_GATE_IMAGE  # has Whisper
    assert args[args.index("--revision") + 1] == canary
    assert args[args.index("--canary") + 1].startswith(f"{CANARY}.{cluster.namespace}.svc:")
    assert cluster.wait(lambda: cluster.events("english", "CanaryStarted"), "CanaryStarted")
    return stable, canary


def cluster_job(cluster: Cluster, name: str) -> Any:
    try:
        return client.BatchV1Api(cluster.apps.api_client).read_namespaced_job(
            name, cluster.namespace
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def give_verdict(cluster: Cluster, verdict: Verdict) -> None:
    cluster.kubectl(
        "annotate", "ttsp", "english", f"{VERDICT_ANNOTATION}={verdict.to_json()}", "--overwrite"
    )


def test_a_passing_verdict_promotes_the_canary(cluster: Cluster, operator: OperatorProcess) -> None:
    _, canary = start_canary(cluster)

    give_verdict(cluster, Verdict(canary, True, (), {"wordErrorRate": 0.04}))
    state = cluster.wait(
        lambda: (r := rollout(cluster)).get("phase") == "Stable" and r, "the promotion"
    )
    assert state["stableRevision"] == canary and "canaryRevision" not in state
    assert f"revision {canary} promoted" in state["message"]
    assert state["verdict"] == {"wordErrorRate": 0.04}
    cluster.wait(lambda: canary_gone(cluster), "the canary Deployment to go")
    labels = cluster.deployment("english").spec.template.metadata.labels
    assert labels[REVISION_LABEL] == canary
    assert speed_in(cluster, "english-inference") == 1.25
    events = cluster.wait(lambda: cluster.events("english", "CanaryPromoted"), "CanaryPromoted")
    assert events[0].type == "Normal" and canary in events[0].message
    cluster.wait_ready("english")


def test_a_failing_verdict_rolls_back_with_the_reason(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    stable, canary = start_canary(cluster)

    reason = "word error rate 0.92 > 0.30"
    give_verdict(cluster, Verdict(canary, False, (reason,), {"wordErrorRate": 0.92}))
    state = cluster.wait(
        lambda: (r := rollout(cluster)).get("phase") == "RolledBack" and r, "the rollback"
    )
    assert state["stableRevision"] == stable and state["rolledBackRevision"] == canary
    assert reason in state["message"]
    cluster.wait(lambda: canary_gone(cluster), "the canary Deployment to go")
    assert cluster.deployment("english").spec.template.metadata.labels[REVISION_LABEL] == stable
    assert speed_in(cluster, "english-inference") == 1.0
    events = cluster.wait(lambda: cluster.events("english", "CanaryRolledBack"), "the Event")
    assert events[0].type == "Warning" and reason in events[0].message


def test_a_gate_job_that_fails_rolls_back(cluster: Cluster, operator: OperatorProcess) -> None:
    """The gate ran out of time (its pod never finishes here): the Job controller fails it."""
    stable, canary = start_canary(cluster, timeoutSeconds=2)

    state = cluster.wait(
        lambda: (r := rollout(cluster)).get("phase") == "RolledBack" and r,
        "the rollback",
        timeout=90,
    )
    assert state["stableRevision"] == stable and state["rolledBackRevision"] == canary
    assert "the gate Job failed (DeadlineExceeded" in state["message"]
    cluster.wait(lambda: canary_gone(cluster), "the canary Deployment to go")
    events = cluster.wait(lambda: cluster.events("english", "CanaryRolledBack"), "the Event")
    assert events[0].type == "Warning" and "DeadlineExceeded" in events[0].message
