"""Long-form benchmark: fan-out speedup over 1, 2 and 4 pods, and jobs accepted per second.

Run: python tests/bench/bench_jobs.py [--words 2000] [--real-words 2000] [--jobs 1000]

1. A 2,000-word text through the router with fan-out (pieces of ~400
   characters, 4 or 8 at a time per request) on 1, 2 and 4 pods, each pod its
   own process on 127.0.0.1:
   - controlled-timing pods (one word per engine step, one utterance at a
     time): what the scheduling alone gives when every pod has its own
     hardware;
   - the real voice (Piper, onnxruntime on CPU): what this 2-core machine
     gives, where one pod already uses both cores, so more pods share them.
   One pod is the baseline (it gets the pieces too: a 2,000-word text is
   over a pod's maxTextLength, so it cannot go whole anyway).
2. Jobs accepted per second: submissions to the SQLite and Redis backends
   directly, and POST /v1/jobs through the HTTP gateway (SQLite behind it,
   no workers, so only acceptance is measured); 16 submitters at a time.

Ratios are what to quote: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import httpx
import yaml

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
from job_helpers import running_gateway, sentences  # noqa: E402
from redis_server import redis_server  # noqa: E402
from timed_fleet import child_process, pod_process, running_router, timed_pods  # noqa: E402
from voices import JOE  # noqa: E402

from ttsfleet.jobs.backend import open_backend  # noqa: E402
from ttsfleet.jobs.fleet_client import FleetClient  # noqa: E402
from ttsfleet.jobs.model import JobSpec  # noqa: E402
from ttsfleet.manifests import voice_to_manifest  # noqa: E402
from ttsfleet.pieces import FanoutPolicy  # noqa: E402
from ttsfleet.proto import tts_pb2  # noqa: E402
from ttsfleet.router.discovery.static import StaticDiscovery  # noqa: E402
from ttsfleet.router.server import RouterServer  # noqa: E402

PODS = (1, 2, 4)
SUBMITTERS = 16
FANOUT = FanoutPolicy()


@contextlib.asynccontextmanager
async def router_over(addresses: Sequence[str], voice: str) -> AsyncIterator[str]:
    router = RouterServer(StaticDiscovery([(a, "pool", [voice]) for a in addresses], voice))
    port = await router.start("127.0.0.1", 0)
    try:
        for _ in range(1000):  # until every pod's load is known (bounded)
            if all(e.reported_at for e in router.datastore.endpoints):
                break
            await asyncio.sleep(0.01)
        yield f"127.0.0.1:{port}"
    finally:
        await router.stop(1.0)


async def timed(address: str, text: str, parallel: int) -> float:
    policy = FanoutPolicy(parallel=parallel)
    client = FleetClient(address, policy, piece_timeout=3600)
    try:

        async def discard(pcm: bytes, sample_rate: int) -> None:
            """The benchmark times synthesis, not storage."""

        started = time.perf_counter()
        await client.synthesize(tts_pb2.TTSRequest(text=text), lambda done, total: None, discard)
        return time.perf_counter() - started
    finally:
        await client.close()


def real_pod(config: Path) -> contextlib.AbstractAsyncContextManager[object]:
    return child_process(
        "-m", "ttsfleet.cli", "inference", "--config", str(config), "--metrics-port", "0",
        "--log-level", "WARNING",
    )  # fmt: skip


async def speedups(
    title: str, start_pod: Callable[[], contextlib.AbstractAsyncContextManager[object]],
    voice: str, text: str, parallels: Sequence[int],
) -> None:  # fmt: skip
    print(f"\n{title}: {len(text.split())} words, {len(FANOUT.pieces(text))} pieces")
    print(f"{'pods':>5} {'parallel':>9} {'seconds':>9} {'speedup':>8}")
    base: dict[int, float] = {}
    for count in PODS:
        async with contextlib.AsyncExitStack() as stack:
            children = [await stack.enter_async_context(start_pod()) for _ in range(count)]
            addresses = [f"127.0.0.1:{child.port}" for child in children]  # type: ignore[attr-defined]
            address = await stack.enter_async_context(router_over(addresses, voice))
            for parallel in parallels:
                seconds = await timed(address, text, parallel)
                first = base.setdefault(parallel, seconds)
                print(
                    f"{count:>5} {parallel:>9} {seconds:>9.2f} {first / seconds:>7.2f}x", flush=True
                )


async def rate(submit: Callable[[int], Awaitable[object]], count: int) -> float:
    """Jobs per second with SUBMITTERS submitting at once."""
    numbers = iter(range(count))

    async def submitter() -> None:
        for n in numbers:
            await submit(n)

    started = time.perf_counter()
    await asyncio.gather(*(submitter() for _ in range(SUBMITTERS)))
    return count / (time.perf_counter() - started)


async def throughput(jobs: int, workdir: Path) -> None:
    print(f"\nJobs accepted per second ({jobs} jobs, {SUBMITTERS} submitters)")
    rows: list[tuple[str, float]] = []
    sqlite = await open_backend(f"sqlite://{workdir}/direct.db")
    rows.append(
        ("SQLite backend", await rate(lambda n: sqlite.submit(JobSpec(text=f"Job {n}.")), jobs))
    )
    await sqlite.close()
    with redis_server(workdir) as url:
        backend = await open_backend(url)
        rows.append(("Redis backend (appendfsync always)",
                     await rate(lambda n: backend.submit(JobSpec(text=f"Job {n}.")), jobs)))  # fmt: skip
        await backend.close()
    async with (
        timed_pods([0.0]) as pods,
        running_router(pods) as router,
        running_gateway(workdir / "gateway", router.port, workers=0, max_queued=10**9) as gateway,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.port}") as http,
    ):

        async def post(n: int) -> None:
            response = await http.post("/v1/jobs", json={"text": f"Job {n}."})
            response.raise_for_status()

        rows.append(("HTTP POST /v1/jobs (SQLite)", await rate(post, jobs)))
    for name, per_second in rows:
        print(f"  {name:<38} {per_second:>8.0f} jobs/s")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--words", type=int, default=2000, help="timed-pod text length")
    parser.add_argument("--real-words", type=int, default=2000, help="real-voice text (0: skip)")
    parser.add_argument("--step", type=float, default=0.004, help="timed pods' seconds per word")
    parser.add_argument("--jobs", type=int, default=1000, help="submissions per backend")
    args = parser.parse_args()
    await speedups(
        f"Controlled-timing pods ({args.step * 1000:g} ms per word, one at a time)",
        lambda: pod_process(args.step, batch=1),
        "timed",
        sentences(args.words // 10, 10),
        (4, 8),
    )
    with tempfile.TemporaryDirectory() as tmp:
        if args.real_words:
            config = Path(tmp) / "pod.yaml"
            config.write_text(yaml.safe_dump({
                "defaultVoice": JOE.name, "device": "cpu", "queueLimit": 64, "maxTextLength": 5000,
                "batching": {"maxBatchSize": 4, "maxWaitMilliseconds": 5},
                "voices": [voice_to_manifest(JOE)],
            }))  # fmt: skip
            text = " ".join(
                "The quick brown fox jumps over the lazy dog near the river bank today."
                for _ in range(args.real_words // 14)
            )
            await speedups(
                "Real voice (joe, onnxruntime, 2 CPU cores)",
                lambda: real_pod(config),
                JOE.name,
                text,
                (FANOUT.parallel,),
            )
        await throughput(args.jobs, Path(tmp))


if __name__ == "__main__":
    asyncio.run(main())
