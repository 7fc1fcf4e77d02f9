"""What the job worker and the gateway count, for Prometheus (one registry per process part).

Dead letters are counted as they happen (`ttsfleet_jobs_ended_total{state=
"dead_lettered"}`), so an alert needs no query of the backend.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class JobMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.ended = Counter(
            "ttsfleet_jobs_ended",
            "Jobs that ended, by final state (succeeded, failed, dead_lettered)",
            ["state"],
            registry=self.registry,
        )
        self.retried = Counter(
            "ttsfleet_jobs_retried",
            "Job attempts that failed and were queued again (an attempt spent)",
            registry=self.registry,
        )
        self.fleet_away = Counter(
            "ttsfleet_jobs_fleet_away",
            "Jobs handed back because the fleet was unavailable or full (no attempt spent)",
            registry=self.registry,
        )
        self.loop_errors = Counter(
            "ttsfleet_worker_loop_errors",
            "Unexpected errors in a worker loop (backend down, bugs); the loop retries",
            registry=self.registry,
        )
        self.callbacks = Counter(
            "ttsfleet_callbacks",
            "Callbacks by outcome (delivered, failed, refused, dropped)",
            ["outcome"],
            registry=self.registry,
        )
        self.expired = Counter(
            "ttsfleet_jobs_expired",
            "Finished jobs removed with their audio after the retention time",
            registry=self.registry,
        )
        self.rejected = Counter(
            "ttsfleet_gateway_rejected",
            "Requests the gateway refused before doing any work, by reason",
            ["reason"],
            registry=self.registry,
        )
