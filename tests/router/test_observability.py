"""What the router tells operators: Prometheus metrics per pool and pod (logs: test_command.py)."""

from __future__ import annotations

import asyncio
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from timed_fleet import words

from ttsfleet.inference.server import InferenceServer
from ttsfleet.proto import tts_pb2, tts_pb2_grpc
from ttsfleet.router.server import RouterServer


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples by name, from the router's metrics endpoint on 127.0.0.1."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


async def test_metrics_per_pool_and_pod(
    pods: list[InferenceServer], router: RouterServer, stub: tts_pb2_grpc.TTSServiceStub
) -> None:
    for _ in range(3):
        assert [c async for c in stub.StreamSynthesize(tts_pb2.TTSRequest(text=words(4)))]
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.Synthesize(tts_pb2.TTSRequest(text="hi", voice="nobody"))
    samples = await asyncio.to_thread(scrape, router.metrics_port)
    pod_names = {f"127.0.0.1:{pod.port}" for pod in pods}

    requests = {
        (s["method"], s["pod"], s["code"]): value
        for s, value in samples["ttsfleet_router_requests_total"]
    }
    served = sum(
        v
        for (m, pod, code), v in requests.items()
        if m == "StreamSynthesize" and pod in pod_names and code == "OK"
    )
    assert served == 3
    assert requests[("Synthesize", "", "NOT_FOUND")] == 1, "refused before any pod was picked"
    assert sum(v for labels, v in samples["ttsfleet_router_picks_total"]) == 3
    ttfa = dict(
        (s["pool"], v) for s, v in samples["ttsfleet_router_time_to_first_audio_seconds_count"]
    )
    assert ttfa["pool"] == 3
    latency = {s["method"]: v for s, v in samples["ttsfleet_router_request_duration_seconds_count"]}
    assert latency["StreamSynthesize"] == 3
    depths = {s["pod"] for s, _ in samples["ttsfleet_router_pod_queue_depth"]}
    assert depths == pod_names
    ready = {s["pool"]: v for s, v in samples["ttsfleet_router_pool_ready_pods"]}
    assert ready == {"pool": 2}
