"""The router's tunables in one place; `ttsfleet router --help` documents each as a flag."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ttsfleet.manifests import DEFAULT_MAX_UNARY_BYTES
from ttsfleet.pieces import FanoutPolicy
from ttsfleet.router.picker import PICKERS
from ttsfleet.tls import DEFAULT_SERVER_NAME, TLSFiles


@dataclass(frozen=True)
class RouterSettings:
    # "finish-time" (the pod predicted to finish the request first), "power-of-two"
    # (queue depth) or "round-robin" (load-blind); the last two for comparison.
    picker: str = "finish-time"
    # A load report older than this says nothing about the pod's capacity.
    stale_after: float = 2.0
    # Seconds a request may wait for a queue to make room when every pod is full.
    saturation_wait: float = 0.0
    # A batch request counts a pod as full once this share of its queue is
    # taken: batch work is shed (RESOURCE_EXHAUSTED) before interactive work.
    batch_room_share: float = 0.5
    # Seconds a shed batch request is told to wait before trying again.
    batch_retry_after: int = 5
    # One pick in this many is logged with its prediction and the runner-up's (0: none).
    pick_log_every: int = 100
    # A request for a pool asleep at zero pods is held up to this many seconds
    # (never past its deadline) while the pool is woken; 0: refuse at once.
    wake_hold_seconds: float = 60.0
    # Requests held per sleeping pool; more are refused (RESOURCE_EXHAUSTED).
    max_held_requests: int = 100
    # Further pods to try when a call fails before any audio was sent.
    retries: int = 1
    # Outlier detection: this many failures in a row eject a pod for
    # ejection_seconds x (ejections in a row), at most max_ejection_seconds.
    eject_after_failures: int = 3
    ejection_seconds: float = 5.0
    max_ejection_seconds: float = 60.0
    # How often pods stream their load: at most every min, at least every max.
    load_min_interval_ms: int = 20
    load_max_interval_ms: int = 500
    # Seconds a dropped pod's calls may run on before its channel closes.
    close_grace: float = 30.0
    # None: no Prometheus endpoint; 0: any free port.
    metrics_port: int | None = None
    # Mutual TLS towards pods (PEM files, re-read when they change); None: plaintext.
    pod_tls: TLSFiles | None = None
    pod_tls_server_name: str = DEFAULT_SERVER_NAME
    # TLS on the listener when both are set (PEM files).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Bearer tokens accepted on every call but health checks, one a line, re-read
    # when the file changes; None: no auth.
    auth_token_file: Path | None = None
    # Texts at least this long are split at sentences and spoken by several
    # pods at once, fanout_parallel pieces at a time (0: never split). Above
    # the largest piece (1,000 characters), so pieces sent by a client that
    # fans out itself (the jobs worker) are never split again.
    fanout_min_chars: int = 1200
    fanout_parallel: int = 4
    # Longest text the router accepts; pods limit each piece on their own.
    max_text_chars: int = 100_000
    # Largest answer to a unary Synthesize the router joins from pieces; a
    # text whose audio could be larger is refused before any piece is sent
    # (pods check the requests they answer whole against their pool's limit).
    max_unary_bytes: int = DEFAULT_MAX_UNARY_BYTES

    @property
    def fanout(self) -> FanoutPolicy:
        if self.fanout_parallel < 1:
            return FanoutPolicy(min_chars=self.max_text_chars + 1, parallel=1)
        return FanoutPolicy(min_chars=self.fanout_min_chars, parallel=self.fanout_parallel)

    def __post_init__(self) -> None:
        if self.picker not in PICKERS:
            raise ValueError(f"unknown picker {self.picker!r}; one of {sorted(PICKERS)}")
        if not 0 < self.batch_room_share <= 1:
            raise ValueError(f"batch_room_share {self.batch_room_share} is not in (0, 1]")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both a certificate and a key file")
