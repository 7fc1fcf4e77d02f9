"""The autoscaler against the real control plane, fed by a real LoadReporter.

The pods are kwok fakes whose IPs must never be dialled, so the operator is
told (``--load-address``) to reach every pod's LoadReporter at one small
gRPC server on 127.0.0.1 that this test runs: every ready pod reports the
queued audio the test sets. A pool asleep at zero is woken as the router
wakes it (its Kubernetes discovery patches the scale subresource).
"""

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from operator_harness import (
    Cluster,
    OperatorProcess,
    pool_yaml,
    voice_yaml,
)

from ttsfleet.proto import ttsfleet_v1_pb2, ttsfleet_v1_pb2_grpc
from ttsfleet.router.discovery.kubernetes import KubernetesDiscovery


class FakeLoad(ttsfleet_v1_pb2_grpc.LoadReporterServicer):
    """Answers WatchLoad with the queued work the test sets, and counts the reads."""

    def __init__(self) -> None:
        self.queue_depth = 0
        self.queued_audio_seconds = 0.0
        self.reads = 0
        self._lock = threading.Lock()

    def WatchLoad(self, request: Any, context: Any) -> Iterator[Any]:
        with self._lock:
            self.reads += 1
        yield ttsfleet_v1_pb2.LoadReport(
            queue_depth=self.queue_depth,
            in_flight=1,
            queue_capacity=32,
            queued_audio_seconds=self.queued_audio_seconds,
        )


@pytest.fixture
def load() -> Iterator[tuple[FakeLoad, str]]:
    servicer = FakeLoad()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    ttsfleet_v1_pb2_grpc.add_LoadReporterServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    server.stop(grace=None)


def replicas(cluster: Cluster, pool: str) -> tuple[int, int]:
    """The pool's spec.replicas and its Deployment's, which the reconcile keeps equal."""
    return (cluster.pool(pool) or {})["spec"]["replicas"], cluster.deployment(pool).spec.replicas


def test_autoscaler_follows_reported_load(
    cluster: Cluster, operators: Callable[..., OperatorProcess], load: tuple[FakeLoad, str]
) -> None:
    fake, address = load
    operators("--load-address", address)
    scaling = {
        "enabled": True,
        "minReplicas": 1,
        "maxReplicas": 4,
        "targetQueuedAudioSeconds": 4,
        "scaleDownStabilizationSeconds": 3,
    }
    cluster.apply(voice_yaml("joe") + "---\n" + pool_yaml("english", ["joe"], autoscaling=scaling))
    cluster.wait_ready("english")
    cluster.wait(
        lambda: (cluster.pool("english") or {})["status"].get("reportingReplicas") == 1,
        "the pod's load in the status",
    )

    # Few requests, much audio: per pod ceil(20 s / 4 s) = 5 wanted, 4 allowed.
    fake.queue_depth, fake.queued_audio_seconds = 2, 20.0
    cluster.wait(lambda: replicas(cluster, "english") == (4, 4), "scaled up to the maximum")
    pool = cluster.wait_ready("english")
    assert pool["status"]["readyReplicas"] == 4
    [up] = cluster.events("english", "ScaledUp")
    assert "1 -> 4 replicas: 20.0 s of audio queued on 1/1 reporting pods" in up.message
    cluster.wait(
        lambda: (cluster.pool("english") or {})["status"].get("queuedAudioSeconds") == 80,
        "the queued audio of all four pods in the status",
    )

    fake.queue_depth, fake.queued_audio_seconds = 0, 0.0
    cluster.wait(lambda: replicas(cluster, "english") == (1, 1), "scaled down to the minimum")
    [down] = cluster.events("english", "ScaledDown")
    assert "4 -> 1 replicas: 0.0 s of audio queued on 4/4 reporting pods" in down.message
    assert cluster.wait_ready("english")["status"]["lastScaleTime"]


def test_autoscaling_off_leaves_replicas_to_the_spec(
    cluster: Cluster, operators: Callable[..., OperatorProcess], load: tuple[FakeLoad, str]
) -> None:
    fake, address = load
    fake.queue_depth, fake.queued_audio_seconds = 100, 500.0
    operators("--load-address", address)
    cluster.apply(voice_yaml("joe") + "---\n" + pool_yaml("english", ["joe"], replicas=2))
    cluster.wait(
        lambda: (cluster.pool("english") or {}).get("status", {}).get("queueDepth") == 200,
        "the load in the status",
    )
    seen = fake.reads
    cluster.wait(lambda: fake.reads >= seen + 6, "three more autoscaling ticks")
    assert replicas(cluster, "english") == (2, 2)
    assert not cluster.events("english", "ScaledUp")


async def test_demand_wakes_a_sleeping_pool_and_idleness_puts_it_back(
    cluster: Cluster,
    operators: Callable[..., OperatorProcess],
    load: tuple[FakeLoad, str],
    api_client: Any,
) -> None:
    """Zero pods; the router's wake-up (0 -> 1) gives a Ready pod; no demand, back to zero."""
    _, address = load
    operators("--load-address", address)
    scaling = {
        "enabled": True,
        "minReplicas": 0,
        "maxReplicas": 2,
        "scaleDownStabilizationSeconds": 3,
    }
    cluster.apply(
        voice_yaml("joe") + "---\n" + pool_yaml("english", ["joe"], replicas=0, autoscaling=scaling)
    )
    cluster.wait(
        lambda: getattr(cluster.deployment("english"), "spec", None), "the pool's Deployment"
    )
    assert replicas(cluster, "english") == (0, 0)
    seen = load[0].reads
    await asyncio.sleep(3)  # several autoscaling ticks: nothing wakes a pool with no demand
    assert replicas(cluster, "english") == (0, 0) and load[0].reads == seen

    await KubernetesDiscovery(api_client, cluster.namespace).wake("english")
    cluster.wait(lambda: replicas(cluster, "english") == (1, 1), "woken to one replica")
    cluster.wait(
        lambda: (cluster.pool("english") or {})["status"].get("readyReplicas") == 1,
        "a Ready pod (kwok)",
    )
    cluster.wait(lambda: replicas(cluster, "english") == (0, 0), "asleep again", timeout=90)
    [down] = cluster.events("english", "ScaledDown")
    assert "1 -> 0 replicas: 0.0 s of audio queued on 1/1 reporting pods" in down.message
    cluster.wait(
        lambda: (
            cluster.condition("english", "Ready").get("message")
            == "the pool sleeps at zero replicas; its next request wakes it"
        ),
        "the status to say the pool sleeps",
    )
