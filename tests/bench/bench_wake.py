"""Scale from zero on one machine: what the first request after idle pays.

Run: python tests/bench/bench_wake.py [--cycles 3]

A local pool (examples/sleeping-pool.yaml, `minReplicas: 0`) with a one-second
stabilization window (`ttsfleet up`'s fleet and router, in this process,
the real voice on CPU). Each cycle waits until the pool is asleep, then
sends one short request (cold: held while a pod process starts and loads
the voice) and the same request again at once (warm). The table shows the
client's latency for both, and the router's own wake-up time
(`ttsfleet_router_wake_seconds`: first held request until a ready pod).
Ratios are what to quote: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc
import yaml

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
from timed_fleet import until  # noqa: E402

from ttsfleet.local.fleet import LocalFleet  # noqa: E402
from ttsfleet.manifests import manifests_from_documents  # noqa: E402
from ttsfleet.proto import tts_pb2, tts_pb2_grpc  # noqa: E402
from ttsfleet.router.server import RouterServer  # noqa: E402

FLEET = Path(__file__).resolve().parents[2] / "examples" / "sleeping-pool.yaml"
TEXT = "Good morning, this is the first request of the day."
ASLEEP_WITHIN_S = 60.0


async def timed(stub: tts_pb2_grpc.TTSServiceStub) -> float:
    started = time.perf_counter()
    await stub.Synthesize(tts_pb2.TTSRequest(text=TEXT), timeout=120)
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=3)
    args = parser.parse_args()
    cold, warm, wake = [], [], []
    with tempfile.TemporaryDirectory() as workdir:
        voice, pool = yaml.safe_load_all(FLEET.read_text())
        pool["spec"]["autoscaling"]["scaleDownStabilizationSeconds"] = 1
        local = LocalFleet(manifests_from_documents([voice, pool]), Path(workdir), "json")
        await local.start()
        router = RouterServer(local.discovery, waker=local)
        await router.start()
        registry = router.metrics.registry
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{router.port}") as channel:
                stub = tts_pb2_grpc.TTSServiceStub(channel)
                for _ in range(args.cycles):
                    await until(lambda: not local.pods, ASLEEP_WITHIN_S)
                    before = (
                        registry.get_sample_value(
                            "ttsfleet_router_wake_seconds_sum", {"pool": "english"}
                        )
                        or 0.0
                    )
                    cold.append(await timed(stub))
                    warm.append(await timed(stub))
                    after = (
                        registry.get_sample_value(
                            "ttsfleet_router_wake_seconds_sum", {"pool": "english"}
                        )
                        or 0.0
                    )
                    wake.append(after - before)
        finally:
            await router.stop(1)
            await local.stop(10)
    print(f"{'':24}{'median s':>10}{'min s':>8}{'max s':>8}")
    for name, values in (
        ("cold (woken) request", cold),
        ("router wake-up", wake),
        ("warm request", warm),
    ):
        print(f"{name:24}{statistics.median(values):10.2f}{min(values):8.2f}{max(values):8.2f}")
    print(
        f"cold / warm: {statistics.median(cold) / statistics.median(warm):.1f}x over {args.cycles} cycles"
    )


if __name__ == "__main__":
    asyncio.run(main())
