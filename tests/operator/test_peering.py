"""Two operator replicas never fight: kopf peering keeps one working, one standing by.

The replicas share a KopfPeering object (created by whichever starts
first); the one with the highest priority handles pools, the other pauses
until the leader's keep-alive expires (``--peering-lifetime``, 6 s here).
"""

from collections.abc import Callable
from typing import Any

from operator_harness import (
    Cluster,
    OperatorProcess,
    pool_yaml,
    voice_yaml,
)


def peers(cluster: Cluster) -> dict[str, Any]:
    """The replicas' keep-alives, by identity (kopf keeps them in the status)."""
    peering = cluster.custom.get_namespaced_custom_object(
        "kopf.dev", "v1", cluster.namespace, "kopfpeerings", "ttsfleet"
    )
    return dict(peering.get("status") or {})


def reconciled(operator: OperatorProcess, pool: str) -> bool:
    return f"/{pool}: reconciled" in operator.log()


def test_one_replica_works_while_the_other_stands_by(
    cluster: Cluster, operators: Callable[..., OperatorProcess]
) -> None:
    leader = operators("--priority", "200")
    cluster.wait(lambda: "Resuming operations" in leader.log(), "the leader at work")
    standby = operators("--priority", "100")
    cluster.wait(lambda: len(peers(cluster)) == 2, "both replicas in the peering object")

    cluster.apply(voice_yaml("joe") + "---\n" + pool_yaml("first", ["joe"]))
    cluster.wait_ready("first")
    cluster.kubectl("scale", "deployment", "first-inference", "--replicas=3")
    cluster.wait(lambda: cluster.deployment("first").spec.replicas == 1, "the edit corrected")
    cluster.wait_ready("first")
    assert reconciled(leader, "first")
    assert not reconciled(standby, "first")
    assert "Resuming operations" not in standby.log()  # it started paused and stayed so
    assert len(cluster.events("first", "DriftCorrected")) == 1

    leader.kill()
    cluster.apply(pool_yaml("second", ["joe"]))
    cluster.wait_ready("second", timeout=60)
    assert reconciled(standby, "second")
    assert "Resuming operations" in standby.log()
    assert cluster.owned()["Deployment"] == ["first-inference", "second-inference"]
