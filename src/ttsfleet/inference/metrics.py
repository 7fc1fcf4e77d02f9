"""Prometheus metrics of one inference pod.

Each server gets its own registry, so several servers in one process (tests,
benchmarks) never share or clash over counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class InferenceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ttsfleet_inference_requests",
            "Requests finished, by method, voice and gRPC status code.",
            ["method", "voice", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ttsfleet_inference_request_duration_seconds",
            "Time from a request's arrival to its last byte of audio.",
            ["method", "voice"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.time_to_first_audio = Histogram(
            "ttsfleet_inference_time_to_first_audio_seconds",
            "Time from a request's arrival until its first audio existed.",
            ["method", "voice"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "ttsfleet_inference_audio_seconds",
            "Seconds of audio produced.",
            ["voice"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "ttsfleet_inference_queue_depth",
            "Requests accepted and waiting for the engine.",
            registry=self.registry,
        )
        self.queue_capacity = Gauge(
            "ttsfleet_inference_queue_capacity",
            "The queue's limit (queue.maxDepth): at this depth new requests are refused.",
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "ttsfleet_inference_in_flight",
            "Requests being synthesized now.",
            registry=self.registry,
        )
        self.queued_audio_seconds = Gauge(
            "ttsfleet_inference_queued_audio_seconds",
            "Seconds of audio accepted and not yet made (predicted from the phonemes).",
            registry=self.registry,
        )
        self.class_queue_depth = Gauge(
            "ttsfleet_inference_class_queue_depth",
            "Requests waiting for the engine, by priority class (interactive, batch).",
            ["priority"],
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "ttsfleet_inference_queue_wait_seconds",
            "Time a request waited in the queue before the engine took it, by priority class.",
            ["priority"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.audio_seconds_per_second = Gauge(
            "ttsfleet_inference_audio_seconds_per_second",
            "The pod's measured speed: audio-seconds made per second of engine time, smoothed.",
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "ttsfleet_inference_batch_size",
            "Streams decoded together in one engine step (one window each).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
