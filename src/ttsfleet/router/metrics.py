"""Prometheus metrics of the router, per pool and pod.

The router gets its own registry, so several routers in one process (the
local fleet's tests, benchmarks) never share counters. A request the router
refuses before any pod is picked carries an empty pod label.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# A process start on one machine takes seconds; a GPU node from a cloud, minutes.
_WAKE_BUCKETS = (0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)


class RouterMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ttsfleet_router_requests",
            "Requests finished, by method, pool, pod and gRPC status code.",
            ["method", "pool", "pod", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ttsfleet_router_request_duration_seconds",
            "Time from a request's arrival at the router to its last byte.",
            ["method", "pool"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.time_to_first_audio = Histogram(
            "ttsfleet_router_time_to_first_audio_seconds",
            "Time from a stream's arrival at the router until its first audio left it.",
            ["pool"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.picks = Counter(
            "ttsfleet_router_picks",
            "Times a pod was picked for a request (retries included).",
            ["pool", "pod"],
            registry=self.registry,
        )
        self.revision_picks = Counter(
            "ttsfleet_router_revision_picks",
            "Times a revision of a pool was picked (a canary's share of traffic).",
            ["pool", "revision"],
            registry=self.registry,
        )
        self.retries = Counter(
            "ttsfleet_router_retries",
            "Requests sent to a second pod after the first failed before any audio.",
            ["pool"],
            registry=self.registry,
        )
        self.ejections = Counter(
            "ttsfleet_router_ejections",
            "Times a pod was ejected after failing repeatedly.",
            ["pool", "pod"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "ttsfleet_router_pod_queue_depth",
            "The queue depth a pod last reported to the router.",
            ["pool", "pod"],
            registry=self.registry,
        )

        self.shed = Counter(
            "ttsfleet_router_shed",
            "Requests refused because every pod was full for their priority class "
            "(batch work is shed first).",
            ["pool", "priority"],
            registry=self.registry,
        )
        self.finish_ratio = Histogram(
            "ttsfleet_router_finish_vs_predicted_ratio",
            "A request's time on its pod over the finish time the picker predicted for it.",
            ["pool"],
            buckets=(0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 4, 10),
            registry=self.registry,
        )
        self.pool_ready_pods = Gauge(
            "ttsfleet_router_pool_ready_pods",
            "Ready pods the router may send a pool's requests to (0: the pool is down or asleep).",
            ["pool"],
            registry=self.registry,
        )
        self.pool_may_sleep = Gauge(
            "ttsfleet_router_pool_may_sleep",
            "1 for a pool that may sleep at zero pods (autoscaling.minReplicas 0): with no "
            "ready pod it is asleep, not down, and its requests are held while it wakes.",
            ["pool"],
            registry=self.registry,
        )
        self.held_requests = Gauge(
            "ttsfleet_router_held_requests",
            "Requests held while their pool wakes from zero pods.",
            ["pool"],
            registry=self.registry,
        )
        self.held_audio_seconds = Gauge(
            "ttsfleet_router_held_audio_seconds",
            "Audio the held requests will make, estimated from their text: "
            "a sleeping pool's demand, for HPA or KEDA.",
            ["pool"],
            registry=self.registry,
        )
        self.wakeups = Counter(
            "ttsfleet_router_wakeups",
            "Times a request found its pool asleep at zero pods and the router woke it.",
            ["pool"],
            registry=self.registry,
        )
        self.wake_seconds = Histogram(
            "ttsfleet_router_wake_seconds",
            "Time from the first request held for a sleeping pool until a pod of it was ready.",
            ["pool"],
            buckets=_WAKE_BUCKETS,
            registry=self.registry,
        )

    def forget(self, pool: str, pod: str) -> None:
        """Drops a gone pod's gauge; its counters stay, as Prometheus counters do."""
        try:
            self.queue_depth.remove(pool, pod)
        except KeyError:
            return
