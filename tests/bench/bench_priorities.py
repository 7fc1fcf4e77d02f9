"""Priority benchmark: a person's time to first audio while a burst of other work runs.

Run: python tests/bench/bench_priorities.py [--rounds N] [--burst N]

One pod of the real voice on the torch engine (CPU, one torch thread per
lane), over real gRPC. Each round measures the median time to first audio of
a short interactive request on the idle pod, and the time to first audio of
one that arrives just after a burst of long streams (more than a batch
holds) started: sent as batch (jobs), and the same burst sent as
interactive (what every request was before priority classes), which the
newcomer queues behind. The burst is cancelled after each measurement.
Quote the ratios: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
from pathlib import Path

import grpc
import torch

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
from first_audio import first_audio_seconds, median_first_audio  # noqa: E402
from voices import JOE_QUIET, pod_config, running_server  # noqa: E402

from ttsfleet.inference.engines.registry import load_engine  # noqa: E402
from ttsfleet.proto import tts_pb2, tts_pb2_grpc  # noqa: E402

VOICE = dataclasses.replace(JOE_QUIET, name="joe-torch", engine="piper-torch")
BURST_TEXT = (
    "The committee met again on a grey Tuesday morning to go over the plans. "
    "Everyone had read the report, and most of them had questions about the budget. "
    "The chair asked for patience, because the numbers were still being checked."
)


async def during_burst(
    stub: tts_pb2_grpc.TTSServiceStub, burst: int, priority: tts_pb2.Priority
) -> float:
    """The first audio of a request that arrives as `burst` streams of `priority` start."""
    request = tts_pb2.TTSRequest(text=BURST_TEXT, priority=priority)
    calls = [stub.StreamSynthesize(request) for _ in range(burst)]
    try:
        await asyncio.wait_for(calls[0].read(), 120)
        return await first_audio_seconds(stub)
    finally:
        for call in calls:
            call.cancel()
        await asyncio.sleep(0.5)  # the pod lets the cancelled work go


async def bench(rounds: int, burst: int) -> None:
    torch.set_num_threads(1)
    engine = load_engine(VOICE, pod_config(VOICE))
    config = pod_config(VOICE, batching={"maxBatchSize": 8, "maxWaitMilliseconds": 2})
    setups = {
        "idle pod": None,
        f"{burst} batch streams": tts_pb2.PRIORITY_BATCH,
        f"{burst} interactive streams": tts_pb2.PRIORITY_INTERACTIVE,
    }
    results: dict[str, list[float]] = {name: [] for name in setups}
    async with (
        running_server(config, {VOICE.name: engine}) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        stub = tts_pb2_grpc.TTSServiceStub(channel)
        await first_audio_seconds(stub)  # warm up
        for _ in range(rounds):
            for name, priority in setups.items():
                seconds = (
                    await median_first_audio(stub)
                    if priority is None
                    else await during_burst(stub, burst, priority)
                )
                results[name].append(seconds)
    idle = statistics.median(results["idle pod"])
    print(f"\nTime to first audio of a short interactive request; {rounds} rounds, medians")
    print("(idle: the median of five in a row; during a burst: one arriving just after it)")
    print(f"{'while':<26}{'ms':>8}{'vs idle':>10}")
    for name, times in results.items():
        median = statistics.median(times)
        print(f"{name:<26}{median * 1000:>8.0f}{median / idle:>10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--burst", type=int, default=12, help="long streams (a batch holds 8)")
    args = parser.parse_args()
    asyncio.run(bench(args.rounds, args.burst))


if __name__ == "__main__":
    main()
